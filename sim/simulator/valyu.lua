-- Simulated Valyu DeepResearch API (contract Part B, simulator rules C.4 V1-V13).
-- Routes under /v1/deepresearch; auth by X-API-Key; tasks settle lazily against the virtual clock.
-- Bodies are encoded here (simulator.valyu_json) so empty arrays stay [] and ETags are stable.
local json = require("simulator.valyu_json")
local validate = require("simulator.valyu_validate")
local tasks = require("simulator.valyu_task")
local assets = require("simulator.valyu_assets")
local batch = require("simulator.valyu_batch")
local batch_api = require("simulator.valyu_batch_api")
local webhook = require("simulator.valyu_webhook")
local content = require("simulator.valyu_content")

local M = {}

-- Built-in API keys (docs/simulator_valyu.md). Keys never appear in /_sim/state.
local DEFAULT_KEYS = {
  ["valyu-key"] = { org = "val_org1" },
  ["valyu-other"] = { org = "val_org2" },
  ["valyu-noperm"] = { org = "val_org3", permission = false },
  ["valyu-poor"] = { org = "val_org_poor" },
}

local DEFAULT_ORGS = {
  val_org1 = { balance = 100 }, val_org2 = { balance = 100 }, val_org3 = { balance = 100 },
  val_org_poor = { balance = 0.20 },
}

local DEFAULTS = {
  error_shape = "simple",      -- "simple" | "validation"
  concurrency = 3,             -- running tasks per organisation before new ones queue
  time_scale = 1,              -- multiplies every duration
  -- virtual seconds; max "up to ~180 minutes" (docs), instant "under 30 seconds"
  duration = { instant = 20, fast = 180, standard = 900, heavy = 3600, max = 10800 },
  fail_pattern = "[fail]",     -- plain substring of the query that makes a task fail midway
  fail_at = 0.5,               -- fraction of the work at which such a task fails
  etag = true,                 -- weak ETag + If-None-Match/304 on status
  retry_after = false,         -- seconds: Retry-After on status 200/304 (and billing 503)
  billing_unavailable = false, -- create answers 503, nothing created
  refund_on_failure = true,
  refund_on_cancel = "full",   -- "full" | "unused" (pro rata) | "none"
  list_default_limit = 10,
  list_envelope = "array",     -- list answers: "array" (bare) | "data" ({data: [...]})
  hitl_pause_after = 300,      -- seconds an unanswered checkpoint stays awaiting_input -> paused
  hitl_auto_continue = false,  -- opt-in: continue by itself instead of pausing (not the real API)
  requeue_delay = 5,           -- seconds a task answered while paused stays queued at least
  default_balance = 100,       -- USD, for organisations not listed in `orgs`
  asset_size = 4096,           -- bytes of a report.pdf (rule in simulator.valyu_assets)
  image_size = 1024,           -- bytes of a chart image
  images = 0,                  -- chart images per completed task
  webhook_clock = "virtual",   -- X-Webhook-Timestamp from the "virtual" clock or "real" time
  webhook_timeout = 2,         -- real seconds a delivery may take
  webhook_fail = false,        -- true: deliveries are not attempted and are recorded as failed
  -- echo the create metadata in status bodies too (undocumented upstream)
  status_metadata = false,
}

local MESSAGES = {
  [401] = "Invalid API key",
  [402] = "Insufficient credits",
  [403] = "API key does not have inference permission",
  [404] = "Task not found",
  [503] = "Billing service temporarily unavailable. Please try again later.",
}

local JSON_HEADERS = { ["Content-Type"] = "application/json" }

-- Unix seconds of an ISO-8601 UTC time (the app's virtual clock has its own epoch).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

local function unix_of_iso(s)
  local y, mo, d, h, mi, sec = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return 0 end
  return days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600
    + tonumber(mi) * 60 + tonumber(sec)
end

local function fill_defaults(cfg, defaults)
  for k, v in pairs(defaults) do
    if cfg[k] == nil then
      if type(v) == "table" then
        cfg[k] = {}
        fill_defaults(cfg[k], v)
      else
        cfg[k] = v
      end
    elseif type(v) == "table" and type(cfg[k]) == "table" then
      fill_defaults(cfg[k], v)
    end
  end
end

local function reply(status, body, headers)
  local h = {}
  for k, v in pairs(JSON_HEADERS) do h[k] = v end
  for k, v in pairs(headers or {}) do h[k] = v end
  return status, json.encode(body), h
end

local function fail(status, message, headers)
  return reply(status, { success = false, error = message or MESSAGES[status] }, headers)
end

function M.install(app)
  json.set_null(app.null)
  local epoch = unix_of_iso(app:iso(0))
  local sim

  local function cfg() return app.config.valyu end

  local function webhook_unix(now)
    if cfg().webhook_clock == "real" then return os.time() end
    return sim.unix(now)
  end

  local function batch_ended(b)
    app:count("valyu.batches_" .. b.status)
    if b.webhook_url then
      webhook.queue(sim, "batch." .. b.status, b.id, b.webhook_url, b.webhook_secret,
        json.encode(batch.body(sim, b)))
    end
  end

  -- Settles tasks, then the batches whose members have all ended.
  local function settle(now)
    tasks.settle(sim, now)
    batch.settle(sim, batch_ended)
  end

  -- After a request: signs the deliveries its settling queued, and sends them from the engine's
  -- loop once the answer is out (the receiver may be the very client waiting for it).
  local function publish(now)
    local s = sim
    if webhook.sign(s, webhook_unix(now)) > 0 and app.server and not s.flush_scheduled then
      s.flush_scheduled = true
      app.server:timer(0, function()
        s.flush_scheduled = false
        webhook.flush(s, cfg())
      end)
    end
  end

  local function build()
    app.config.valyu = app.config.valyu or {}
    local c = app.config.valyu
    fill_defaults(c, DEFAULTS)
    if c.keys == nil then c.keys = {} end
    if c.orgs == nil then c.orgs = {} end
    fill_defaults(c.keys, DEFAULT_KEYS)
    fill_defaults(c.orgs, DEFAULT_ORGS)
    sim = tasks.new_state()
    sim.cfg = cfg
    sim.null = app.null
    sim.iso = function(t) return app:iso(t, true) end
    sim.unix = function(t) return math.floor(epoch + t) end
    sim.unix_ms = function(t) return math.floor((epoch + t) * 1000 + 0.5) end
    sim.count = function(name, n) app:count(name, n or 1) end
    sim.on_end = function(task, t)
      if task.webhook_url then
        webhook.queue(sim, "task." .. task.status, task.id, task.webhook_url,
          task.webhook_secret, json.encode(tasks.status_body(sim, task, t)))
      end
    end
    sim.concurrency = function(org)
      local o = cfg().orgs[org]
      return math.max(1, math.floor(tonumber(o and o.concurrency or cfg().concurrency) or 3))
    end
  end
  build()
  app:on_reset(build)

  local function start_balance(org)
    local c = cfg()
    local o = c.orgs[org]
    if o and tonumber(o.balance) then return tonumber(o.balance) end
    for _, k in pairs(c.keys) do
      if type(k) == "table" and k.org == org and tonumber(k.balance) then
        return tonumber(k.balance)
      end
    end
    return tonumber(c.default_balance) or 100
  end

  -- The caller's organisation, or the error reply (401 unknown key, 403 no permission).
  local function auth(req)
    local key = req.headers["x-api-key"]
    local entry = type(key) == "string" and cfg().keys[key]
    if type(entry) ~= "table" or entry.disabled or type(entry.org) ~= "string" then
      return nil, 401
    end
    if entry.permission == false then return nil, 403 end
    return entry.org
  end

  local function after(now, ...)
    publish(now)
    return ...
  end

  -- Wraps a handler: authenticates, settles the clock, finds the caller's task when :id is routed.
  local function api(handler, needs_task)
    return function(req)
      local org, status = auth(req)
      if not org then return fail(status) end
      local now = req.now or app:now()
      settle(now)
      local task
      if needs_task then
        task = sim.tasks[req.params.id]
        -- Another organisation's task is indistinguishable from a missing one (no id probing).
        if not task or task.org ~= org then return after(now, fail(404)) end
      end
      return after(now, handler(req, org, now, task))
    end
  end

  local function validation_failure(errs)
    if errs.status == 404 then
      return reply(404, { error = "workflow_not_found" })
    end
    if cfg().error_shape == "validation" then
      local list = json.array()
      for i, e in ipairs(errs) do list[i] = { code = e.code, key = e.key, message = e.message } end
      return reply(400, {
        error = "validation_failed",
        message = string.format("%d validation error%s", #errs, #errs == 1 and "" or "s"),
        errors = list,
      })
    end
    local first = errs[1]
    if first.code == validate.WORKFLOW_CONFLICT then return fail(400, first.code) end
    return fail(400, first.message)
  end

  local function body_of(req)
    if req.json ~= nil then return req.json end
    if req.body == nil or not req.body:find("%S") then return {} end
    return nil
  end

  local function base_url(req)
    return "http://" .. (req.headers.host or "127.0.0.1")
  end

  app:route("POST", "/v1/deepresearch/tasks", api(function(req, org, now)
    local body = body_of(req)
    local r, errs
    if body == nil then
      errs = { { code = "invalid_json", key = "body", message = "Invalid request parameters" } }
    else
      r, errs = validate.create(body)
    end
    if not r then return validation_failure(errs) end
    local c = cfg()
    local extra = tonumber(c.retry_after)
      and { ["Retry-After"] = tostring(math.floor(c.retry_after)) } or nil
    if c.billing_unavailable then return fail(503, nil, extra) end
    if tasks.available_cents(sim, org, start_balance(org)) < tasks.PRICE_CENTS[r.mode] then
      return fail(402)
    end

    local seed = app:random(1, 2147483646)
    local id = app:uuid()
    local task = tasks.create(sim, org, r, now, seed, id, base_url(req) ..
      "/v1/deepresearch/tasks/" .. id)
    settle(now)
    app:count("valyu.tasks_created")
    local out = {
      deepresearch_id = id, status = task.status == "queued" and "queued" or "running",
      mode = task.mode, created_at = sim.iso(now), metadata = task.metadata, public = false,
      webhook_secret = task.webhook_secret, brand_collection_id = r.brand_collection_id,
    }
    if task.status == "queued" then
      out.message = string.format(
        "Task queued: your organization already has %d concurrent tasks running; it will start " ..
        "when one finishes", sim.concurrency(org))
    end
    return reply(200, out)
  end))

  app:route("GET", "/v1/deepresearch/tasks/:id/status", api(function(req, _, now, task)
    local c = cfg()
    local text = json.encode(tasks.status_body(sim, task, now))
    local headers = { ["Content-Type"] = "application/json" }
    if tonumber(c.retry_after) then headers["Retry-After"] = tostring(math.floor(c.retry_after)) end
    if c.etag ~= false then
      local etag = 'W/"' .. json.hash(text) .. '"'
      headers["ETag"] = etag
      local inm = req.headers["if-none-match"]
      if type(inm) == "string" then
        local bare = etag:sub(3)
        for tag in inm:gmatch("[^,]+") do
          tag = tag:match("^%s*(.-)%s*$")
          if tag == "*" or tag == etag or tag == bare or tag:gsub("^W/", "") == bare then
            return 304, "", headers
          end
        end
      end
    end
    return 200, text, headers
  end, true))

  app:route("GET", "/v1/deepresearch/list", api(function(req, org)
    local raw = req.query and req.query.limit
    local limit = cfg().list_default_limit
    if raw ~= nil then
      limit = tonumber(raw)
      if not limit or limit % 1 ~= 0 or limit < 1 or limit > 100 then
        if cfg().error_shape == "validation" then
          return validation_failure({ { code = "invalid_value", key = "limit",
            message = "limit must be an integer between 1 and 100" } })
        end
        return fail(400, "limit must be an integer between 1 and 100")
      end
    end
    local mine = {}
    for _, task in pairs(sim.tasks) do
      if task.org == org then mine[#mine + 1] = task end
    end
    table.sort(mine, function(a, b) return a.seq > b.seq end)
    local out = json.array()
    for i = 1, math.min(limit, #mine) do
      local t = mine[i]
      out[i] = { deepresearch_id = t.id, query = t.query, status = t.status,
        created_at = sim.iso(t.created_at), public = t.public }
    end
    if cfg().list_envelope == "data" then return reply(200, { data = out }) end
    return reply(200, out)
  end))

  app:route("POST", "/v1/deepresearch/tasks/:id/cancel", api(function(_, _, now, task)
    if tasks.TERMINAL[task.status] then
      return fail(400, string.format("Task cannot be cancelled: it is already %s", task.status))
    end
    tasks.cancel(sim, task, now)
    settle(now)
    app:count("valyu.tasks_cancelled")
    return reply(200,
      { success = true, message = "Task cancelled successfully", deepresearch_id = task.id })
  end, true))

  app:route("DELETE", "/v1/deepresearch/tasks/:id/delete", api(function(_, _, _, task)
    if not tasks.TERMINAL[task.status] then
      return fail(400,
        string.format("Task cannot be deleted while %s; cancel it first", task.status))
    end
    sim.tasks[task.id] = nil
    app:count("valyu.tasks_deleted")
    return reply(200,
      { success = true, message = "Task deleted successfully", deepresearch_id = task.id })
  end, true))

  app:route("POST", "/v1/deepresearch/tasks/:id/update", api(function(req, _, now, task)
    local body = body_of(req)
    local instruction = type(body) == "table" and body.instruction
    if type(instruction) ~= "string" or not instruction:find("%S") then
      if cfg().error_shape == "validation" then
        return validation_failure({ { code = "missing_param", key = "instruction",
          message = 'Required parameter "instruction" is missing or empty' } })
      end
      return fail(400, "instruction is required and cannot be empty")
    end
    if task.status ~= "running" then
      return fail(400, string.format("Task cannot be updated: it is %s", task.status))
    end
    if tasks.current_step(task, now) >= task.total_steps - 1 then
      return fail(400, "Task cannot be updated: it has entered the writing phase")
    end
    tasks.add_instruction(task, now, instruction)
    app:count("valyu.tasks_updated")
    return reply(200, { success = true, message = "Instruction added", deepresearch_id = task.id })
  end, true))

  app:route("POST", "/v1/deepresearch/tasks/:id/respond", api(function(req, _, now, task)
    local body = body_of(req)
    if type(body) ~= "table" or type(body.interaction_id) ~= "string"
      or type(body.response) ~= "table" then
      return fail(400, "interaction_id (string) and response (object) are required")
    end
    if not tasks.WAITING[task.status] then
      return fail(400, string.format(
        "Task must be in awaiting_input or paused status (status %s)", task.status))
    end
    if body.interaction_id ~= task.interaction.interaction_id then
      return fail(400, "Interaction not found or already answered")
    end
    local problem = validate.respond(task.interaction.type, body.response)
    if problem then return fail(400, problem) end
    local st = tasks.respond(sim, task, now, body.response)
    settle(now)
    app:count("valyu.tasks_responded")
    return reply(200, { success = true, status = st, deepresearch_id = task.id })
  end, true))

  app:route("POST", "/v1/deepresearch/tasks/:id/public", api(function(req, _, _, task)
    local body = body_of(req)
    if type(body) ~= "table" or type(body.public) ~= "boolean" then
      return fail(400, "public (boolean) is required")
    end
    task.public = body.public
    return reply(200,
      { success = true, message = "Task visibility updated", deepresearch_id = task.id,
      public = task.public })
  end, true))

  -- Assets: by API key (the owner's) or by the token in the signed URL.
  local function serve_asset(req)
    local task = sim.tasks[req.params.id]
    local org = auth(req)
    local token = req.query and req.query.token
    if not task or not (org == task.org or (token ~= nil and token == task.asset_token)) then
      if not task or org then return fail(404) end
      return fail(401)
    end
    local bytes, ctype = assets.get(task, req.params.asset_id, cfg())
    if bytes then
      app:count("valyu.assets_served")
      return 200, bytes, { ["Content-Type"] = ctype }
    end
    return fail(404, "Asset not found")
  end

  app:route("GET", "/v1/deepresearch/tasks/:id/assets/:asset_id", function(req)
    local now = req.now or app:now()
    settle(now)
    return after(now, serve_asset(req))
  end)

  batch_api.install(app, {
    api = api, reply = reply, fail = fail, validation_failure = validation_failure,
    body_of = body_of, base_url = base_url, start_balance = start_balance,
    sim = function() return sim end, cfg = cfg, batch_ended = batch_ended,
    new_id = function() return app:uuid() end,
    new_secret = function() return content.rng(app:random(1, 2147483646)):hex(64) end,
  })

  app:expose("valyu", function()
    settle(app:now())
    publish(app:now())
    local list, ids = {}, {}
    for id in pairs(sim.tasks) do ids[#ids + 1] = id end
    table.sort(ids, function(a, b) return sim.tasks[a].seq < sim.tasks[b].seq end)
    for i, id in ipairs(ids) do
      local t = sim.tasks[id]
      list[i] = {
        deepresearch_id = id, org = t.org, status = t.status, mode = t.mode, query = t.query,
        created_at = sim.iso(t.created_at),
        started_at = t.started_at and sim.iso(t.started_at) or nil,
        ended_at = t.ended_at and sim.iso(t.ended_at) or nil, public = t.public,
        current_step = t.started_at and tasks.current_step(t, app:now()) or 0,
        total_steps = t.total_steps,
        cost = t.cost_cents / 100, held = t.held / 100, instructions = #t.instructions,
        messages = #t.messages, webhook_url = t.webhook_url,
        assets = assets.list(t, cfg()), batch_id = t.batch_id,
      }
    end
    local balances, orgs = {}, {}
    for org in pairs(cfg().orgs) do orgs[org] = true end
    for org in pairs(sim.ledger) do orgs[org] = true end
    for org in pairs(orgs) do
      local l = tasks.ledger(sim, org)
      balances[org] = {
        balance = tasks.available_cents(sim, org, start_balance(org)) / 100,
        held = l.held / 100, charged = l.charged / 100, refunded = l.refunded / 100,
      }
    end
    local active = 0
    for _ in pairs(sim.active) do active = active + 1 end
    -- app.array keeps an empty list a JSON [] under the engine's cjson encoder.
    local n = #list
    if app.array then list = app.array(list) end
    local blist, bids = {}, {}
    for id in pairs(sim.batches) do bids[#bids + 1] = id end
    table.sort(bids, function(a, b) return sim.batches[a].seq < sim.batches[b].seq end)
    for i, id in ipairs(bids) do
      local b = sim.batches[id]
      local body = batch.body(sim, b)
      local members = {}
      for k, t in ipairs(b.members) do members[k] = t.id end
      body.tasks = app.array and app.array(members) or members
      blist[i] = body
    end
    local hooks = webhook.view(sim)
    if app.array then blist, hooks = app.array(blist), app.array(hooks) end
    return { tasks = list, task_count = n, active = active, balances = balances, created = sim.seq,
      batches = blist, webhooks = hooks }
  end)
end

return M

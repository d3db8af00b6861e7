-- Routes of the simulated Valyu batches (contract B.9): /v1/deepresearch/batches[...].
-- `h` carries the provider's helpers (valyu.lua): api (auth + settle wrapper), reply, fail,
-- validation_failure, body_of, base_url, start_balance, sim(), cfg(), new_id(), new_secret().
local json = require("simulator.valyu_json")
local validate = require("simulator.valyu_validate")
local tasks = require("simulator.valyu_task")
local batch = require("simulator.valyu_batch")

local M = {}

local STATUSES = { queued = true, running = true, completed = true, failed = true,
  cancelled = true }

local function bad_limit(h, raw, default)
  if raw == nil then return nil, default end
  local n = tonumber(raw)
  if not n or n % 1 ~= 0 or n < 1 or n > 100 then
    return h.fail(400, "limit must be an integer between 1 and 100")
  end
  return nil, n
end

-- Every error of a create-style check, keys prefixed (tasks[3].query).
local function collect(errs, list, prefix)
  for _, e in ipairs(list) do
    errs[#errs + 1] = { code = e.code, key = prefix .. e.key, message = prefix .. e.message }
  end
end

local function check_batch(body)
  local errs = {}
  if type(body) ~= "table" then
    return nil, { { code = "invalid_body", key = "body", message = "Invalid request parameters" } }
  end
  if body.hitl ~= nil then
    errs[#errs + 1] = { code = "invalid_param", key = "hitl",
      message = "hitl is not supported for batch tasks" }
  end
  if body.name ~= nil and type(body.name) ~= "string" then
    errs[#errs + 1] = { code = "invalid_type", key = "name", message = "name must be a string" }
  end
  local r, verrs = validate.create({ query = "batch", mode = body.mode, model = body.model,
    output_formats = body.output_formats, search = body.search, webhook_url = body.webhook_url,
    metadata = body.metadata })
  if not r then collect(errs, verrs, "") end
  if #errs > 0 then return nil, errs end
  r.name = body.name
  r.search = type(body.search) == "table" and body.search or nil
  r.brand_collection_id = type(body.brand_collection_id) == "string"
    and body.brand_collection_id or nil
  return r
end

-- Validates every task of an add call; nothing is created unless all pass.
local function check_tasks(b, body)
  local list = type(body) == "table" and body.tasks
  if type(list) ~= "table" or #list < 1 or #list > batch.MAX_ADD then
    return nil, { { code = "invalid_value", key = "tasks",
      message = "tasks must be an array of 1 to 100 tasks" } }
  end
  local errs, out = {}, {}
  for i, item in ipairs(list) do
    local prefix = string.format("tasks[%d].", i - 1)
    if type(item) ~= "table" then
      errs[#errs + 1] = { code = "invalid_type", key = prefix:sub(1, -2),
        message = prefix:sub(1, -2) .. " must be an object" }
    elseif item.hitl ~= nil then
      errs[#errs + 1] = { code = "invalid_param", key = prefix .. "hitl",
        message = prefix .. "hitl is not supported for batch tasks" }
    elseif item.id ~= nil and type(item.id) ~= "string" then
      errs[#errs + 1] = { code = "invalid_type", key = prefix .. "id",
        message = prefix .. "id must be a string" }
    else
      local probe = {}
      for k, v in pairs(item) do
        if k ~= "id" then probe[k] = v end
      end
      -- tasks inherit the batch's mode, output formats and search settings
      probe.mode, probe.model = b.mode, nil
      probe.output_formats, probe.search = b.output_formats, b.search
      local r, verrs = validate.create(probe)
      if r then
        r.batch_task_id = item.id
        out[i] = r
      else
        collect(errs, verrs, prefix)
      end
    end
  end
  if #errs > 0 then return nil, errs end
  return out
end

function M.install(app, h)
  local function find(org, id)
    local b = h.sim().batches[id]
    if not b or b.org ~= org then return nil end
    return b
  end

  app:route("POST", "/v1/deepresearch/batches", h.api(function(req, org, now)
    local spec, errs = check_batch(h.body_of(req))
    if not spec then return h.validation_failure(errs) end
    local secret = spec.webhook_url and h.new_secret() or nil
    local b = batch.create(h.sim(), org, spec, now, h.new_id(), secret)
    app:count("valyu.batches_created")
    local out = batch.body(h.sim(), b)
    out.organisation_id = nil
    out.webhook_secret = secret
    return h.reply(200, out)
  end))

  app:route("GET", "/v1/deepresearch/batches", h.api(function(req, org)
    local failed, limit = bad_limit(h, req.query.limit, h.cfg().list_default_limit)
    if failed then return failed, limit end
    local mine = {}
    for _, b in pairs(h.sim().batches) do
      if b.org == org then mine[#mine + 1] = b end
    end
    table.sort(mine, function(x, y) return x.seq > y.seq end)
    local out = json.array()
    for i = 1, math.min(limit, #mine) do out[i] = batch.body(h.sim(), mine[i]) end
    return h.reply(200, { batches = out })
  end))

  app:route("GET", "/v1/deepresearch/batches/:id", h.api(function(req, org)
    local b = find(org, req.params.id)
    if not b then return h.fail(404, "Batch not found") end
    return h.reply(200, batch.body(h.sim(), b))
  end))

  app:route("POST", "/v1/deepresearch/batches/:id/tasks", h.api(function(req, org, now)
    local sim, cfg = h.sim(), h.cfg()
    local b = find(org, req.params.id)
    if not b then return h.fail(404, "Batch not found") end
    if not batch.ACTIVE[b.status] then
      return h.fail(400, string.format("Batch is %s: tasks can only be added to an open or " ..
        "processing batch", b.status))
    end
    local list, errs = check_tasks(b, h.body_of(req))
    if not list then return h.validation_failure(errs) end
    if cfg.billing_unavailable then return h.fail(503) end
    local need = #list * tasks.PRICE_CENTS[b.mode]
    if tasks.available_cents(sim, org, h.start_balance(org)) < need then return h.fail(402) end
    local added = json.array()
    for i, r in ipairs(list) do
      local seed, id = app:random(1, 2147483646), app:uuid()
      local t = tasks.create(sim, org, r, now, seed, id,
        h.base_url(req) .. "/v1/deepresearch/tasks/" .. id)
      t.batch_id, t.batch_task_id = b.id, r.batch_task_id
      b.members[#b.members + 1] = t
      added[i] = { task_id = r.batch_task_id, batch_task_id = r.batch_task_id,
        deepresearch_id = id, status = t.status }
    end
    b.status = "processing"
    app:count("valyu.tasks_created", #list)
    app:count("valyu.batch_tasks_added", #list)
    return h.reply(200, { batch_id = b.id, added = #list, tasks = added,
      counts = batch.counts(b) })
  end))

  app:route("GET", "/v1/deepresearch/batches/:id/tasks", h.api(function(req, org, now)
    local b = find(org, req.params.id)
    if not b then return h.fail(404, "Batch not found") end
    local q = req.query
    if q.status ~= nil and not STATUSES[q.status] then
      return h.fail(400, "status must be one of queued, running, completed, failed, cancelled")
    end
    local failed, limit = bad_limit(h, q.limit, 25)
    if failed then return failed, limit end
    local key = q.last_key
    if key == "" then key = nil end
    local page, more = batch.page(b, q.status, limit, key)
    if not page then return h.fail(400, "Invalid last_key") end
    local include = q.include_output == "true" or q.include_output == "1"
    local items = json.array()
    for i, t in ipairs(page) do items[i] = batch.task_item(h.sim(), t, include, now) end
    return h.reply(200, { batch_id = b.id, tasks = items, pagination = {
      count = #items, has_more = more, last_key = more and page[#page].id or json.null } })
  end))

  app:route("POST", "/v1/deepresearch/batches/:id/cancel", h.api(function(req, org, now)
    local b = find(org, req.params.id)
    if not b then return h.fail(404, "Batch not found") end
    if not batch.ACTIVE[b.status] then
      return h.fail(400, string.format("Batch cannot be cancelled: it is already %s", b.status))
    end
    local n = batch.cancel(h.sim(), b, now)
    h.batch_ended(b)
    app:count("valyu.batches_cancelled")
    return h.reply(200, { batch_id = b.id, status = "cancelled", cancelled_count = n })
  end))
end

return M

-- luacheck: std lua54
-- Simulated Gemini Interactions API for the Deep Research agents (gemini.md Part C, G1-G14).
-- Routes under /v1beta/interactions; auth by x-goog-api-key; Google's error envelope; runs are
-- planned at create time and read lazily against the virtual clock. No list, no idempotency.
local validate = require "simulator.gemini_validate"
local run = require "simulator.gemini_run"
local webhook = require "simulator.gemini_webhook"
local clock = require "simulator.clock"

local M = {}

local DAY = 86400

-- Defaults of config.gemini (docs/simulator.md, "Gemini"). Keys never leave through /_sim.
M.DEFAULTS = {
  keys = {
    ["gemini-key"] = { tier = "paid", project = "proj-1" },
    ["gemini-other"] = { tier = "paid", project = "proj-2" },
    ["gemini-free"] = { tier = "free", project = "proj-free" },
    ["gemini-leaked"] = { tier = "paid", project = "proj-1", leaked = true },
  },
  -- agent id -> "standard" | "max" | "retired" (the shut-down switch: set an id to "retired")
  agents = {
    ["deep-research-preview-04-2026"] = "standard",
    ["deep-research-max-preview-04-2026"] = "max",
    ["deep-research-pro-preview-12-2025"] = "retired",
  },
  free_tier_forbidden = true, -- free-tier keys get 403 on create
  time_scale = 1,             -- multiplies every duration
  duration = { standard = { 180, 900 }, max = { 480, 2100 }, plan = { 20, 60 },
    queued = { 5, 60 } },
  hard_limit = 3600,          -- seconds of running before a forced `failed`
  start_queued = false,       -- true: every run waits `duration.queued` in `queued` first
  queued_hold = false,        -- true: runs stay `queued` until cancelled
  stuck = false,              -- true: runs stay `in_progress` forever (past the hard limit)
  outcome = false,            -- "incomplete" | "budget_exceeded" | "failed" for every run
  markers = { incomplete = "[incomplete]", budget_exceeded = "[budget]", failed = "[fail]",
    stuck = "[stuck]", queued = "[queued]" },
  fail_at = 0.5,              -- share of the run at which `failed` strikes
  budget_at = 0.8,            -- share of the run at which `budget_exceeded` strikes
  planning_status = "completed", -- or "requires_action": how a plan turn ends
  -- "steps" | "outputs" (legacy) | "both" | "by_revision" (steps only for an Api-Revision
  -- header on or after `steps_revision`, else outputs: D6)
  layout = "steps",
  steps_revision = "2026-05-20",
  citation_urls = "redirect", -- "redirect" (grounding-api-redirect) | "source"
  delete_cancels = false,     -- true: DELETE of a running interaction also stops it
  retention = { paid = 55 * DAY, free = DAY },
  rate = { creates_per_min = 10, gets_per_min = 600 },
  retry_after_header = false, -- true: 429 also carries Retry-After
  error_list = false,         -- true: error bodies wrapped in a one-element list [G7]
  -- Standard Webhooks secret for webhook_config.uris deliveries (base64 after "whsec_")
  webhook_secret = "whsec_c2ltdWxhdGVkLWdlbWluaS13ZWJob29rLXNlY3JldA==",
  webhook_timeout = 2,        -- real seconds a delivery may take
  webhook_fail = false,       -- true: deliveries are not attempted and are recorded as failed
  -- USD per million tokens, search per 1000 queries (the A.6 estimate; data, not Google's prices)
  rates = {
    standard = { input = 2, cached = 0.2, output = 12, search_per_1000 = 14 },
    max = { input = 2, cached = 0.2, output = 12, search_per_1000 = 14 },
  },
  sizes = {
    standard = { input = { 200000, 300000 }, output = { 50000, 70000 },
      thought = { 15000, 30000 }, tool = { 20000, 40000 }, queries = { 60, 100 },
      rounds = { 8, 12 } },
    max = { input = { 800000, 1000000 }, output = { 70000, 90000 },
      thought = { 30000, 60000 }, tool = { 60000, 100000 }, queries = { 120, 180 },
      rounds = { 12, 18 } },
    plan = { input = { 3000, 6000 }, output = { 500, 900 }, thought = { 500, 1500 },
      tool = { 0, 0 }, queries = { 2, 5 }, rounds = { 1, 1 } },
  },
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

local UNREGISTERED = "Method doesn't allow unregistered callers (callers without established "
  .. "identity). Please use API Key or other form of API consumer identity to call this API."
local KEY_INVALID = "API key not valid. Please pass a valid API key."

function M.install(app)
  app.config.gemini = copy(M.DEFAULTS)
  local sim

  local function cfg() return app.config.gemini end

  local function reset()
    sim = { tasks = {}, order = {}, buckets = {}, query_key_uses = 0, webhooks = {}, hook_n = 0 }
  end
  reset()
  app:on_reset(reset)

  -- Google's envelope (A.1); headers optional.
  local function fail(code, status, message, details, headers)
    local err = { error = { code = code, message = message, status = status, details = details } }
    return code, cfg().error_list and { err } or err, headers
  end

  local function auth(req)
    local key = req.headers["x-goog-api-key"]
    if key == nil and req.query.key then
      key = req.query.key
      sim.query_key_uses = sim.query_key_uses + 1
      app:count("gemini.query_key")
    end
    if key == nil or key == "" then return nil, { 403, "PERMISSION_DENIED", UNREGISTERED } end
    local entry = cfg().keys[key]
    if type(entry) ~= "table" then
      return nil, { 400, "INVALID_ARGUMENT", KEY_INVALID, {
        { ["@type"] = "type.googleapis.com/google.rpc.ErrorInfo", reason = "API_KEY_INVALID",
          domain = "googleapis.com",
          metadata = { service = "generativelanguage.googleapis.com" } },
        { ["@type"] = "type.googleapis.com/google.rpc.LocalizedMessage", locale = "en-US",
          message = KEY_INVALID } } }
    end
    if entry.leaked then
      return nil, { 403, "PERMISSION_DENIED",
        "Your API key was reported as leaked. Please use another API key." }
    end
    entry.key = key
    return entry
  end

  -- Per-key sliding one-minute buckets of virtual time (G13).
  local function limited(key, kind, now)
    local limit = tonumber(cfg().rate[kind == "create" and "creates_per_min" or "gets_per_min"])
    local b = sim.buckets[key .. "|" .. kind] or {}
    sim.buckets[key .. "|" .. kind] = b
    while b[1] and b[1] <= now - 60 do table.remove(b, 1) end
    if limit and #b >= limit then
      return math.max(1, math.ceil(b[1] + 60 - now))
    end
    b[#b + 1] = now
    return nil
  end

  local function too_many(delay)
    app:count("gemini.rate_limited")
    local headers = cfg().retry_after_header and { ["Retry-After"] = tostring(delay) } or nil
    return fail(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
      { { ["@type"] = "type.googleapis.com/google.rpc.RetryInfo",
        retryDelay = delay .. "s" } }, headers)
  end

  local function payload(task, event, status)
    local meta = task.webhook_config.user_metadata
    return app:encode({ type = event, timestamp = app:iso(app:now(), true),
      data = { id = task.id, status = status, user_metadata = meta } })
  end

  -- Queues and signs the deliveries of runs that ended by now; sends them from the engine's
  -- loop once the current answer is out (the receiver may be the client waiting for it).
  local function publish(now)
    if webhook.sweep(sim, function(task) return (run.state(task, now)) end, payload) == 0 then
      return
    end
    webhook.sign(sim, clock.EPOCH + now, cfg().webhook_secret)
    local s = sim
    if app.server then
      app.server:timer(0, function()
        webhook.flush(s, cfg(), function(name) app:count(name) end)
      end)
    end
  end

  -- Wraps a handler: authenticates, rate-limits, then handler(req, key_entry, now).
  local function api(kind, handler)
    return function(req)
      local entry, err = auth(req)
      if not entry then return fail(err[1], err[2], err[3], err[4]) end
      local now = req.now or app:now()
      local delay = limited(entry.key, kind, now)
      if delay then return too_many(delay) end
      local status, body, headers = handler(req, entry, now)
      publish(now)
      return status, body, headers
    end
  end

  -- The caller's visible interaction: nil when unknown, another project's, deleted or expired.
  local function find(id, entry, now)
    local task = sim.tasks[id]
    if not task or task.project ~= entry.project or task.deleted_at then return nil end
    if run.expired(task, now, cfg().retention) then return nil end
    return task
  end

  local function not_found()
    return fail(404, "NOT_FOUND", "Interaction not found.")
  end

  local function new_id()
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    local out = {}
    for i = 1, 40 do
      local n = app:random(1, #alphabet)
      out[i] = alphabet:sub(n, n)
    end
    return "v1_" .. table.concat(out)
  end

  local function layout(req)
    local c = cfg()
    if c.layout ~= "by_revision" then return c.layout end
    if not req then return "both" end -- the side channel shows both
    local rev = req.headers["api-revision"]
    return (rev and rev >= tostring(c.steps_revision)) and "steps" or "outputs"
  end

  local function view(task, now, opts)
    opts = opts or {}
    return run.view(task, now, { layout = layout(opts.req), include_input = opts.input,
      iso = function(t) return app:iso(t, true) end, array = app.array })
  end

  local function create(req, entry, now)
    local body = req.json
    if req.body == "" or req.json_error then
      return fail(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    end
    local code, status, message = validate.create(body, cfg().agents)
    if code then return fail(code, status, message) end
    local prev
    if body.previous_interaction_id then
      prev = find(body.previous_interaction_id, entry, now)
      if not prev then
        return fail(400, "INVALID_ARGUMENT", "previous_interaction_id "
          .. body.previous_interaction_id .. " does not name an interaction of this project.")
      end
    end
    if entry.tier == "free" and cfg().free_tier_forbidden then
      return fail(403, "PERMISSION_DENIED", "Deep Research agents require a paid-tier API key.")
    end
    local task = run.new(body, prev, { id = new_id(), now = now, project = entry.project,
      tier = entry.tier, cfg = cfg(), random = function(m, n) return app:random(m, n) end,
      rng = app:rng_for(app.seed * 7919 + #sim.order + 1), array = app.array })
    sim.tasks[task.id] = task
    sim.order[#sim.order + 1] = task
    app:count("gemini.tasks_created")
    return 200, view(task, now, { req = req })
  end

  local function get(req, entry, now)
    local stream = req.query.stream
    if stream ~= nil and stream ~= "false" then
      return fail(400, "INVALID_ARGUMENT", "stream=true is not simulated: poll with stream=false.")
    end
    if req.query.last_event_id then
      return fail(400, "INVALID_ARGUMENT", "last_event_id requires stream=true.")
    end
    local task = find(req.params.id, entry, now)
    if not task then return not_found() end
    return 200, view(task, now, { input = req.query.include_input == "true", req = req })
  end

  local function cancel(req, entry, now)
    local task = find(req.params.id, entry, now)
    if not task then return not_found() end
    if not run.running(task, now) then
      return fail(400, "FAILED_PRECONDITION",
        "Only background interactions that are still running can be cancelled.")
    end
    task.cancelled_at = now
    app:count("gemini.cancels")
    return 200, view(task, now, { req = req })
  end

  local function delete(req, entry, now)
    local task = find(req.params.id, entry, now)
    if not task then return not_found() end
    if cfg().delete_cancels and run.running(task, now) then task.cancelled_at = now end
    task.deleted_at = now
    app:count("gemini.deletes")
    return 200, {}
  end

  app:route("POST", "/v1beta/interactions", api("create", create))
  app:route("GET", "/v1beta/interactions", api("get", function()
    return fail(404, "NOT_FOUND", "Method not found: interactions cannot be listed.")
  end))
  app:route("GET", "/v1beta/interactions/:id", api("get", get))
  app:route("POST", "/v1beta/interactions/:id/cancel", api("get", cancel))
  app:route("DELETE", "/v1beta/interactions/:id", api("get", delete))

  app:expose("gemini", function()
    local now = app:now()
    publish(now)
    local list, total = {}, 0
    for i, task in ipairs(sim.order) do
      list[i] = run.side(task, now, cfg(), view(task, now))
      total = total + list[i].estimated_cost_usd
    end
    return { tasks = app.array(list), query_key_uses = sim.query_key_uses,
      webhooks = app.array(webhook.view(sim)),
      charges = { tasks = #sim.order, estimated_usd = math.floor(total * 10000 + 0.5) / 10000 } }
  end)
end

return M

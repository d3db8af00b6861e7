-- luacheck: std lua54
-- Simulated Perplexity Agent API in background mode (perplexity-agent.md PART C, PA1-PA18):
-- /v1/agent and its /v1/responses alias (answered when the bearer key is a Perplexity key),
-- presets as data, [web:N]/[N] markers resolved against search_results ids (blocks of 10 in a
-- shuffled order), usage with a cost, asynchronous cancel, strict validation, rate limits, and
-- the retired Sonar routes (403 chat_completions_not_available).
local common = require "simulator.responses_common"
local text = require "simulator.responses_content"
local validate = require "simulator.perplexity_validate"
local report = require "simulator.perplexity_report"

local M = {}

local DAY = 86400
local MIB = 1024 * 1024

local DEFAULTS = {
  -- Built-in keys (docs/simulator.md); any other key is invalid. Keys never reach /_sim/state.
  keys = { ["pplx-key"] = {}, ["pplx-other"] = {}, ["pplx-blocked"] = { blocked = true } },
  -- Preset data (A.4, Oct 2026): resolved model, steps, marker style, run time (virtual s),
  -- search calls, fetches, tokens.
  presets = {
    fast = { model = "openai/gpt-6-luna", steps = 1, style = "bracket", duration = { 2, 6 },
      searches = { 1, 3 }, fetches = { 0, 0 }, input = { 3000, 9000 }, output = { 200, 900 },
      tools = { "web_search" }, service_tier = "fast" },
    low = { model = "openai/gpt-6-luna", steps = 5, style = "web", duration = { 5, 15 },
      searches = { 3, 5 }, fetches = { 0, 1 }, input = { 8000, 20000 }, output = { 600, 2000 },
      tools = { "web_search", "fetch_url" } },
    medium = { model = "openai/gpt-6-luna", steps = 15, style = "web", duration = { 25, 90 },
      searches = { 4, 8 }, fetches = { 0, 2 }, input = { 15000, 60000 }, output = { 1000, 5000 },
      tools = { "web_search", "fetch_url" } },
    high = { model = "openai/gpt-5.6-sol", steps = 15, style = "web", duration = { 120, 480 },
      searches = { 6, 12 }, fetches = { 1, 3 }, input = { 40000, 120000 },
      output = { 3000, 9000 }, tools = { "web_search", "fetch_url" } },
    xhigh = { model = "anthropic/claude-opus-5-5", steps = 100, style = "web",
      duration = { 300, 1500 }, searches = { 8, 12 }, fetches = { 1, 3 },
      input = { 80000, 200000 }, output = { 5000, 15000 },
      tools = { "web_search", "finance_search", "sandbox" } },
    ["wide-research"] = { model = "openai/gpt-5.6-sol", steps = 100, style = "web",
      duration = { 600, 1800 }, searches = { 8, 12 }, fetches = { 1, 3 },
      input = { 80000, 200000 }, output = { 5000, 15000 }, tools = { "web_search", "fetch_url" } },
  },
  aliases = { ["fast-search"] = "fast", ["pro-search"] = "low", ["deep-research"] = "medium",
    ["advanced-deep-research"] = "high", ultra = "xhigh" },
  -- Token prices, USD per 1M (input, cache read, output).
  models = {
    ["openai/gpt-6-luna"] = { input = 0.2, cached = 0.02, output = 1.2 },
    ["openai/gpt-5.6-luna"] = { input = 0.2, cached = 0.02, output = 1.2 },
    ["openai/gpt-5.6-sol"] = { input = 5, cached = 0.5, output = 30 },
    ["anthropic/claude-opus-5-5"] = { input = 15, cached = 1.5, output = 75 },
    ["perplexity/sonar"] = { input = 1, cached = 0.1, output = 1 },
  },
  search_price_preset = 0.001, search_price_model = 0.0025, fetch_price = 0.0035,
  queue_delay = { 1, 3 },       -- virtual seconds queued (fast: most of its run)
  time_scale = 1,
  fail_pattern = "SIMULATE_FAIL", fail_share = 0, failed_usage = true,
  incomplete_pattern = "[incomplete]",
  partial_output = true,        -- false: output [] until terminal (July 2026 vendor note)
  stable_created_at = false,    -- true: created_at stays the creation time
  sparse_cost = true,           -- false: zero-valued cost keys present
  links_with_instructions = true, -- custom instructions -> markdown-link citations
  dangling_marker = false, page_marker = false, duplicate_id = false,
  cancel_delay = { 5, 15 },     -- virtual seconds a cancelling run still shows in_progress
  cancel_unknown = "400",       -- "400" (observed) | "404" (documented)
  late_completion = false,
  retention = 30 * DAY,
  tier = 0, count_polls = false, enforce_qps = false, retry_after = false,
  rpm = { 50, 150, 500, 1000, 4000, 8000 }, qps = { 1, 3, 8, 17, 33, 33 },
  strict_filters = false,       -- documented strictness for mixed domains / ISO dates
  effort_field = true,          -- accept `effort` as a synonym of `preset`
  models_fail_first = 0,        -- the first N entries of a `models` chain fail over
  legacy_retired = true,        -- Sonar routes answer 403
  models_public = false,        -- GET /v1/models without a key answers 200
}

local RETIRED = { message = "Sonar is now the Agent API. Use /v1/responses instead of /v1/sonar."
  .. " Migrate here: https://docs.perplexity.ai/docs/agent-api/migrate-from-sonar/overview",
  type = "chat_completions_not_available", code = 403 }

local ID = "^resp_[%w_%-]+$"

local app, st

local function cfg() return app.config.perplexity end

local function err(status, message, type_, param)
  return status, { error = { message = message, type = type_, code = status, param = param } }
end

local function is_key(req)
  local key = common.bearer(req)
  return key ~= nil and type(cfg().keys[key]) == "table"
end

-- Planning ------------------------------------------------------------------------------------

local function between(r, range, scale)
  return (range[1] + r:random() * (range[2] - range[1])) * (scale or 1)
end

local function engine(body)
  local c = cfg()
  local name = body.preset or (c.effort_field and body.effort)
  if type(name) == "string" then
    local base = name:gsub("@.*$", "")
    base = c.aliases[base] or base
    local p = c.presets[base]
    if not p then return nil, err(400, "unknown preset: " .. name, "invalid_request") end
    if type(body.model) == "string" and not c.models[body.model] then
      return nil, err(400, "model not supported: " .. body.model, "invalid_model")
    end
    return { preset = name, p = p, model = type(body.model) == "string" and body.model or p.model }
  end
  local list = body.models or { body.model }
  if #list == 0 then
    return nil, err(400, "validation failed: one of preset, model or models is required",
      "invalid_request")
  end
  local chosen = list[math.min(#list, (c.models_fail_first or 0) + 1)]
  for _, m in ipairs(list) do
    if not c.models[m] then return nil, err(400, "model not supported: " .. m, "invalid_model") end
  end
  local searching = false
  for _, t in ipairs(body.tools or {}) do searching = searching or t.type == "web_search" end
  return { model = chosen, p = { steps = 1, style = "web", duration = { 5, 30 },
    searches = searching and { 2, 5 } or { 0, 0 }, fetches = { 0, 0 }, input = { 2000, 12000 },
    output = { 300, 2000 } } }
end

local function plan_times(task, r)
  local c, p = cfg(), task.engine.p
  local d = between(r, p.duration, c.time_scale)
  if not task.background then
    task.start, task.finish = task.created, task.created
  elseif p.style == "bracket" and task.engine.preset then
    task.start, task.finish = task.created + d * 0.8, task.created + d
  else
    task.start = task.created + between(r, c.queue_delay, c.time_scale)
    task.finish = task.start + d
  end
end

local function plan_outcome(task, r)
  local c, cap = cfg(), task.max_output_tokens
  if c.fail_pattern and task.input_text:find(c.fail_pattern, 1, true)
    or r:random() < (c.fail_share or 0) then
    task.outcome, task.finish = "failed", task.start + (task.finish - task.start) * 0.6
  elseif cap and cap < task.tokens.output then
    task.outcome, task.no_message = "incomplete", cap < 64
  elseif c.incomplete_pattern and task.input_text:find(c.incomplete_pattern, 1, true) then
    task.outcome = "incomplete"
  else
    task.outcome = "completed"
  end
end

local function plan(task)
  local r = app:rng_for(task.seed)
  plan_times(task, r)
  local p = task.engine.p
  local input = r:random(p.input[1], p.input[2])
  local output = r:random(p.output[1], p.output[2])
  task.tokens = { input = input, cached = math.floor(input * (0.5 + r:random() * 0.4)),
    output = output, reasoning = math.floor(output * (0.2 + r:random() * 0.5)) }
  report.plan(task, r, cfg())
  plan_outcome(task, r)
end

-- Views ---------------------------------------------------------------------------------------

local function status_at(task, now)
  if task.cancel_at and now >= task.cancel_at then return "cancelled", task.cancel_at end
  if now < task.start then return task.cancel_at and "in_progress" or "queued", now end
  if now < task.finish then return "in_progress", now end
  return task.outcome, task.finish
end

local function visible(task, upto, status)
  local out = {}
  local terminal = status ~= "queued" and status ~= "in_progress"
  if status == "queued" or (not terminal and not cfg().partial_output)
    or (status == "incomplete" and task.no_message) then -- the captured truncation: []
    return out
  end
  for _, e in ipairs(task.items) do
    if e.t <= upto then out[#out + 1] = e.item end
  end
  if status == "completed" or (status == "incomplete" and not task.no_message) then
    out[#out + 1] = report.message(task, status, app)
  end
  return out
end

local function costs(task, status, share)
  local c = cfg()
  local price = c.models[task.engine.model] or { input = 1, cached = 0.1, output = 1 }
  local t = task.tokens
  local output = status == "incomplete" and (task.max_output_tokens or t.output) or
    math.floor(t.output * share)
  local searches, fetches = report.counts(task, status == "failed" and task.finish or math.huge)
  local search_each = task.engine.preset and c.search_price_preset or c.search_price_model
  return { output = output, searches = searches, fetches = fetches,
    input_cost = common.round((t.input - t.cached) * price.input / 1e6),
    cache_read_cost = common.round(t.cached * price.cached / 1e6),
    output_cost = common.round(output * price.output / 1e6),
    search_cost = common.round(searches * search_each),
    fetch_cost = common.round(fetches * c.fetch_price) }
end

local function put(t, k, v)
  if v ~= 0 or not cfg().sparse_cost then t[k] = v end
end

local function usage(task, status)
  if status == "cancelled" or status == "queued" or status == "in_progress"
    or (status == "failed" and not cfg().failed_usage) then
    return app.null
  end
  local x = costs(task, status, status == "failed" and 0.6 or 1)
  local t, sparse = task.tokens, status == "incomplete"
  local tools_cost = sparse and 0 or common.round(x.search_cost + x.fetch_cost)
  local cost = { currency = "USD" }
  put(cost, "input_cost", x.input_cost)
  put(cost, "output_cost", x.output_cost)
  if not sparse then
    put(cost, "cache_read_cost", x.cache_read_cost)
    put(cost, "tool_calls_cost", tools_cost)
    local details = {}
    put(details, "search_web", x.search_cost)
    put(details, "fetch_url", x.fetch_cost)
    if next(details) then cost.tool_calls_cost_details = details end
  end
  cost.total_cost = common.round(x.input_cost + x.output_cost
    + (sparse and 0 or x.cache_read_cost) + tools_cost)
  local reasoning = (status == "incomplete" and task.no_message) and x.output
    or math.min(x.output, t.reasoning)
  local u = { input_tokens = t.input, output_tokens = x.output, total_tokens = t.input + x.output,
    input_tokens_details = { cache_creation_input_tokens = 0, cache_read_input_tokens = t.cached,
      cached_tokens = t.cached },
    output_tokens_details = { reasoning_tokens = reasoning }, cost = cost }
  if not sparse then
    u.tool_calls_details = { search_web = { invocation = x.searches, cost_usd = x.search_cost } }
    if x.fetches > 0 then
      u.tool_calls_details.fetch_url = { invocation = x.fetches, cost_usd = x.fetch_cost,
        token_usage = { { model = "openai/gpt-6-luna", input_tokens = 1800 * x.fetches,
          output_tokens = 350 * x.fetches } } }
    end
  end
  return u
end

local function opt(v) if v == nil then return app.null end return v end

local function serialize(task, now)
  local status, upto = status_at(task, now)
  local done = status == "completed"
  local shown = cfg().stable_created_at and task.created or now
  local cancelled = status == "cancelled"
  local tools = {}
  if done then
    for i, ty in ipairs(task.engine.p.tools or {}) do tools[i] = { type = ty } end
    if not task.engine.preset then tools = common.copy(task.tools) end
  end
  return {
    id = task.id, object = "response", created_at = common.unix(shown), status = status,
    completed_at = done and common.unix(cfg().stable_created_at and task.finish or shown)
      or app.null,
    background = task.background,
    model = (done or not task.engine.preset) and task.engine.model or task.engine.preset,
    output = app.array(visible(task, upto, status)), usage = usage(task, status),
    error = (cancelled and { code = "cancelled", message = "cancelled", type = "cancelled" })
      or (status == "failed" and { code = "internal_error", message = "the run failed",
        type = "internal_error" }) or app.null,
    incomplete_details = (cancelled and { reason = "cancelled" })
      or (status == "incomplete" and { reason = "max_output_tokens" }) or app.null,
    instructions = opt(task.instructions), max_output_tokens = opt(task.max_output_tokens),
    max_tool_calls = opt(task.max_tool_calls), metadata = task.metadata,
    parallel_tool_calls = false, previous_response_id = opt(task.previous_response_id),
    prompt_cache_key = app.null, reasoning = { effort = opt(task.effort), summary = app.null },
    safety_identifier = app.null,
    service_tier = done and task.engine.p.service_tier or "default", store = task.store,
    temperature = app.null, text = { format = { type = "text" } }, tool_choice = "auto",
    tools = app.array(tools), top_logprobs = 0, top_p = app.null, truncation = "",
    frequency_penalty = 0, presence_penalty = 0, user = app.null,
  }
end

-- Side channel: what a run cost so far, cancelled runs included (the API never says).
local function accrued(task, now)
  local status = status_at(task, now)
  if status == "queued" then return 0 end
  local share = 1
  if status == "in_progress" or status == "cancelled" then
    local upto = status == "cancelled" and task.cancel_at or now
    share = math.max(0, math.min(1, (upto - task.start) / math.max(1, task.finish - task.start)))
  end
  local x = costs(task, status == "cancelled" and "failed" or status, share)
  local searches, fetches = report.counts(task, status == "completed" and math.huge
    or (status == "cancelled" and task.cancel_at or now))
  local each = task.engine.preset and cfg().search_price_preset or cfg().search_price_model
  return common.round(x.input_cost * share + x.cache_read_cost * share + x.output_cost
    + searches * each + fetches * cfg().fetch_price)
end

-- Requests ------------------------------------------------------------------------------------

local function limits(req, key, counted)
  local c = cfg()
  local tier = math.tointeger(c.tier) or 0
  local w = st.windows[key] or { rpm = {}, qps = {} }
  st.windows[key] = w
  local rpm = c.rpm[tier + 1] or 50
  local ok, used, wait = true, #w.rpm, 0
  if counted then ok, used, wait = common.take(w.rpm, req.now, rpm, 60) end
  if ok and c.enforce_qps then
    local _
    ok, _, wait = common.take(w.qps, req.now, c.qps[tier + 1] or 1, 1)
  end
  local h = { ["x-ratelimit-limit"] = rpm, ["x-ratelimit-remaining"] = ok and (rpm - used) or 0,
    ["x-ratelimit-used"] = used, ["x-ratelimit-reset"] = common.unix(req.now + 1) }
  if ok then return h end
  app:count("perplexity.rate_limited")
  if c.retry_after then h["Retry-After"] = math.max(1, math.ceil(wait)) end
  return nil, h
end

local function headers_for(h)
  h = h or {}
  h.server = "cloudflare"
  h["cf-ray"] = common.hex(app, 16) .. "-FRA"
  return h
end

-- Auth first (PA3), then the rate limit (PA14); handlers get (req, key, headers).
local function guarded(kind, fn)
  return function(req)
    local key = common.bearer(req)
    local spec = key and cfg().keys[key]
    if type(spec) ~= "table" then
      local s, b = err(401, "Invalid API key provided. Ensure your API key is correct and active.",
        "invalid_api_key")
      return s, b, headers_for()
    end
    if spec.blocked then
      local s, b = err(403, "Forbidden", "forbidden")
      return s, b, headers_for()
    end
    local h, over = limits(req, key, kind == "create" or cfg().count_polls)
    if not h then
      local s, b = err(429, "rate limit exceeded", "request_rate_limit_exceeded")
      return s, b, headers_for(over)
    end
    local s, b, extra = fn(req, key)
    for k, v in pairs(extra or {}) do h[k] = v end
    return s, b, headers_for(h)
  end
end

local function input_text(input)
  if type(input) == "string" then return input end
  local parts = {}
  for _, item in ipairs(input) do
    local c = type(item) == "table" and item.content
    if type(c) == "string" then parts[#parts + 1] = c end
    for _, p in ipairs(type(c) == "table" and c or {}) do
      if type(p) == "table" and type(p.text) == "string" then parts[#parts + 1] = p.text end
    end
  end
  return table.concat(parts, "\n")
end

local function check_previous(body, key, now)
  local prev = body.previous_response_id
  if prev == nil or prev == app.null then return nil end
  local task = st.by_id[prev]
  if not task or task.key ~= key or status_at(task, now) ~= "completed" then
    return err(400, "invalid request", "invalid_request")
  end
end

local function new_task(req, key, body, eng)
  local task = { id = "resp_" .. app:uuid(), msg_id = "msg_" .. app:uuid(),
    seed = app:random(1, 2147483647), key = key, engine = eng, created = req.now,
    background = body.background == true, store = body.store ~= false,
    input_text = input_text(body.input),
    tools = common.copy(type(body.tools) == "table" and body.tools or {}),
    metadata = type(body.metadata) == "table" and common.copy(body.metadata) or {},
    instructions = type(body.instructions) == "string" and body.instructions or nil,
    max_output_tokens = math.tointeger(body.max_output_tokens),
    max_tool_calls = math.tointeger(body.max_tool_calls),
    previous_response_id = type(body.previous_response_id) == "string"
      and body.previous_response_id or nil,
    effort = type(body.reasoning) == "table" and type(body.reasoning.effort) == "string"
      and body.reasoning.effort or nil }
  task.topic = text.topic(task.input_text)
  plan(task)
  st.tasks[#st.tasks + 1] = task
  st.by_id[task.id] = task
  app:count("perplexity.tasks_created")
  return task
end

local function create(req, key)
  if #(req.body or "") > 32 * MIB then
    return err(413, "request body too large", "payload_too_large")
  end
  local problem = validate.check(req, app.null,
    { strict = cfg().strict_filters, effort = cfg().effort_field })
  if problem then return err(problem.status, problem.message, problem.type, problem.param) end
  local body = {} -- top-level nulls mean "not given"
  for k, v in pairs(req.json) do if v ~= app.null then body[k] = v end end
  local eng, s, b = engine(body)
  if not eng then return s, b end
  if type(eng.model) == "string" and eng.model:find("^anthropic/")
    and body.max_output_tokens == nil then
    return err(400, "validation failed: max_output_tokens is required when using Anthropic "
      .. "models", "invalid_request")
  end
  s, b = check_previous(body, key, req.now)
  if s then return s, b end
  local task = new_task(req, key, body, eng)
  return 200, serialize(task, req.now)
end

local function readable(req, key)
  local id = req.params.id
  if not id:match(ID) or #id > 105 then
    return nil, err(400, "invalid response id", "invalid_request")
  end
  local task = st.by_id[id]
  if not task or task.key ~= key or not task.store then
    return nil, err(404, "resource not found", "not_found")
  end
  local status, at = status_at(task, req.now)
  if status ~= "queued" and status ~= "in_progress" and req.now > at + cfg().retention then
    return nil, err(404, "resource not found", "not_found")
  end
  return task
end

local function get(req, key)
  local task, s, b = readable(req, key)
  if not task then return s, b end
  return 200, serialize(task, req.now)
end

local function cancel(req, key)
  local id = req.params.id
  if not id:match(ID) or #id > 105 then
    return err(400, "invalid response id", "invalid_request")
  end
  local task = st.by_id[id]
  local terminal = "the run is already terminal and cannot be cancelled"
  if not task or task.key ~= key then
    if cfg().cancel_unknown == "404" then return err(404, "resource not found", "not_found") end
    return err(400, terminal, "invalid_request")
  end
  local status = status_at(task, req.now)
  if status ~= "queued" and status ~= "in_progress" then
    return err(400, terminal, "invalid_request")
  end
  if not task.cancel_requested then
    app:count("perplexity.cancels")
    local r = app:rng_for(task.seed + 7)
    local at = req.now + between(r, cfg().cancel_delay)
    task.cancel_requested = req.now
    if cfg().late_completion then -- the run completes instead of cancelling
      task.finish, task.outcome = math.min(task.finish, at), "completed"
      task.start = math.min(task.start, task.finish)
    elseif task.finish > at then -- else the run ends before the cancel lands: it stands
      task.cancel_at = at
    end
  end
  return 200, { response_id = task.id, status = "cancelling" }
end

local function not_found()
  return err(404, "resource not found", "not_found")
end

local function models(req)
  if not is_key(req) and not cfg().models_public then
    return err(401, "Invalid API key provided. Ensure your API key is correct and active.",
      "invalid_api_key")
  end
  local data = {}
  local ids = {}
  for id in pairs(cfg().models) do ids[#ids + 1] = id end
  table.sort(ids)
  for i, id in ipairs(ids) do
    data[i] = { id = id, object = "model", created = 0, owned_by = id:match("^([^/]+)") }
  end
  return 200, { object = "list", data = app.array(data) }, headers_for()
end

local function retired()
  if not cfg().legacy_retired then return 404, { error = { message = "resource not found",
    type = "not_found", code = 404 } } end
  app:count("perplexity.retired_calls")
  return 403, { error = common.copy(RETIRED) }, headers_for()
end

local function expose()
  local now, tasks = app:now(), {}
  for i, task in ipairs(st.tasks) do
    tasks[i] = { id = task.id, status = status_at(task, now), preset = task.engine.preset
      or app.null, model = task.engine.model, background = task.background, store = task.store,
      created_at = common.unix(task.created), cancel_requested = task.cancel_requested ~= nil,
      cost_usd = accrued(task, now) }
  end
  return { tasks = app.array(tasks), creates = #st.tasks }
end

local function install_routes()
  local owns = is_key
  for _, base in ipairs({ "/v1/agent", "/v1/responses" }) do
    local function route(method, pattern, handler)
      if base == "/v1/agent" then app:route(method, base .. pattern, handler)
      else common.route(app, method, base .. pattern, handler, owns) end
    end
    route("POST", "", guarded("create", create))
    route("GET", "/:id", guarded("get", get))
    route("POST", "/:id/cancel", guarded("cancel", cancel))
    route("GET", "", guarded("get", not_found))
    route("DELETE", "/:id", guarded("get", not_found))
  end
  app:route("GET", "/v1/models", models)
  for _, r in ipairs({ { "POST", "/chat/completions" }, { "POST", "/v1/chat/completions" },
    { "POST", "/v1/sonar" }, { "POST", "/async/chat/completions" },
    { "GET", "/async/chat/completions" }, { "GET", "/async/chat/completions/:id" },
    { "POST", "/v1/async/sonar" }, { "GET", "/v1/async/sonar" },
    { "GET", "/v1/async/sonar/:id" } }) do
    app:route(r[1], r[2], retired)
  end
end

function M.install(a)
  app = a
  app.config.perplexity = common.copy(DEFAULTS)
  app:on_reset(function() st = { tasks = {}, by_id = {}, windows = {} } end)
  install_routes()
  app:expose("perplexity", expose)
end

return M

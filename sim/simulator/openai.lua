-- luacheck: std lua54
-- Simulated OpenAI Responses API in background mode (openai.md PART C, O1-O13): deep-research
-- runs on the virtual clock, url_citation annotations with CHARACTER offsets, usage without a
-- cost field, cancel, delete, retention, per-key rate limits and the shut-down model answer.
-- A run is planned at create (times, items, report, usage) and each GET shows the part of the
-- plan that virtual "now" has reached, so snapshots are monotonic and terminal ones frozen.
local common = require "simulator.responses_common"
local text = require "simulator.responses_content"
local validate = require "simulator.openai_validate"
local webhook = require "simulator.openai_webhook"

local M = {}

local DAY = 86400

local DEFAULTS = {
  -- Built-in keys (docs/simulator.md); any other key is invalid. Keys never reach /_sim/state.
  keys = { ["openai-key"] = { org = "org-sim" }, ["openai-zdr"] = { org = "org-zdr", zdr = true },
    ["openai-broke"] = { org = "org-broke", insufficient_quota = true } },
  -- Model data: the dated snapshot echoed in `model`, run time range (virtual seconds).
  models = {
    ["o3-deep-research"] = { snapshot = "o3-deep-research-2025-06-26", duration = { 480, 1500 } },
    ["o4-mini-deep-research"] = { snapshot = "o4-mini-deep-research-2025-06-26",
      duration = { 240, 720 } },
    ["gpt-5.5-pro"] = { snapshot = "gpt-5.5-pro-2026-04-23", duration = { 360, 1200 } },
    ["gpt-5.4-pro"] = { snapshot = "gpt-5.4-pro-2026-03-05", duration = { 360, 1200 } },
    ["o3"] = { snapshot = "o3-2025-04-16", duration = { 60, 240 } },
  },
  -- Shut-down dates (openai.md status warning); a model is gone once `today` reaches its date.
  shutdown = { ["o3-deep-research"] = "2026-07-23", ["o4-mini-deep-research"] = "2026-07-23",
    ["o3"] = "2026-12-11" },
  today = "2026-12-07",
  -- USD per 1M tokens, per search call, per code session: the side channel's cost.
  prices = {
    ["o3-deep-research"] = { input = 10, cached = 2.5, output = 40 },
    ["o4-mini-deep-research"] = { input = 2, cached = 0.5, output = 8 },
    ["gpt-5.5-pro"] = { input = 30, cached = 30, output = 180 },
    ["gpt-5.4-pro"] = { input = 30, cached = 30, output = 180 },
    ["o3"] = { input = 2, cached = 0.5, output = 8 },
    web_search = 0.01, code_interpreter = 0.03,
  },
  queue_delay = { 1, 30 },     -- virtual seconds queued
  time_scale = 1,              -- multiplies queue delays and run times
  searches = { 8, 30 },        -- web search calls per run (capped by max_tool_calls)
  fail_pattern = "[fail]",     -- plain substring of the input: the run fails midway
  fail_share = 0,              -- share of other runs that fail (seeded)
  incomplete_pattern = "[incomplete]",
  incomplete_reason = "max_output_tokens", -- or "content_filter"
  incomplete_no_message = false, -- incomplete runs end with no message item at all
  citations = "link",          -- "link" | "sentence" (ranges cover the sentence) | "none"
  tool_usage = true,           -- false: omit tool_usage
  insufficient_quota = false,  -- every create answers 429 insufficient_quota
  late_completion = false,     -- a cancelled run reads completed on the next GET
  zdr = false,                 -- every run is deleted 10 minutes after it ends
  retention_unstored = 600,    -- virtual seconds after the end (store:false, ZDR)
  retention_stored = 30 * DAY,
  creates_per_min = 60, requests_per_min = 600, tokens_per_min = 30000000,
  retry_after_ms = false,      -- 429s carry retry-after-ms instead of retry-after
  retry_after = false,         -- a number: the retry hint sent instead of the true wait
  -- Project webhooks (O14): off until webhook_url is an http:// URL.
  webhook_url = false,
  webhook_secret = "whsec_c2ltdWxhdGVkLW9wZW5haS13ZWJob29rLXNlY3JldA==",
  webhook_timeout = 2,         -- real seconds a delivery may take
  webhook_bad_signature = false, webhook_stale = false, webhook_duplicate = false,
}

local app, st

local function cfg() return app.config.openai end

local function fail(status, message, type_, param, code, headers)
  return status, { error = { message = message, type = type_ or "invalid_request_error",
    param = param or app.null, code = code or app.null } }, headers
end

local function base_model(model)
  return (model:gsub("%-%d%d%d%d%-%d%d%-%d%d$", ""))
end

-- Planning ------------------------------------------------------------------------------------

local function input_text(input)
  if type(input) == "string" then return input end
  local parts = {}
  for _, item in ipairs(input) do
    if type(item) == "table" then
      if type(item.content) == "string" then parts[#parts + 1] = item.content end
      for _, p in ipairs(type(item.content) == "table" and item.content or {}) do
        if type(p) == "table" and type(p.text) == "string" then parts[#parts + 1] = p.text end
      end
    end
  end
  return table.concat(parts, "\n")
end

local function between(r, range, scale)
  return (range[1] + r:random() * (range[2] - range[1])) * (scale or 1)
end

local function plan_calls(task, r, sources)
  local types = validate.types(task.tools)
  local searching = false
  for t in pairs(validate.SEARCH) do searching = searching or types[t] end
  local n = searching and r:random(cfg().searches[1], cfg().searches[2]) or 0
  if task.max_tool_calls then n = math.min(n, task.max_tool_calls) end
  local calls = {}
  for k = 1, n do
    local src = sources[(k - 1) % #sources + 1]
    if k > 2 and r:random() < 0.2 then
      calls[k] = { type = "open_page", url = src.url }
    else
      calls[k] = { type = "search", query = task.topic .. " " .. src.domain,
        sources = { { type = "url", url = src.url } } }
    end
  end
  return calls, types.code_interpreter
end

local function plan_items(task, r, sources)
  local calls, code = plan_calls(task, r, sources)
  local items, d = {}, task.finish - task.start
  local n = #calls + 1
  local function at(k) return task.start + d * 0.95 * (k - 0.5) / n end
  local summary = type(task.reasoning) == "table" and task.reasoning.summary
  for k, action in ipairs(calls) do
    if k % 3 == 1 then
      local rs = { id = "rs_" .. common.hex(app, 48), type = "reasoning",
        summary = app.empty_array }
      if summary and summary ~= app.null then
        rs.summary = { { type = "summary_text", text = "**Planning the search**\n\nLooking for "
          .. "recent figures on " .. task.topic .. " — step " .. k .. "." } }
      end
      items[#items + 1] = { t = at(k), item = rs }
    end
    items[#items + 1] = { t = at(k), item = { id = "ws_" .. common.hex(app, 48),
      type = "web_search_call", status = "completed", action = action } }
    if code and k == (#calls + 1) // 2 then
      items[#items + 1] = { t = at(k), item = { id = "ci_" .. common.hex(app, 48),
        type = "code_interpreter_call", status = "completed",
        code = "import pandas as pd\nprint(pd.Series([4.2, 5.1]).pct_change())",
        container_id = "cntr_" .. common.hex(app, 48), outputs = app.null } }
    end
  end
  task.searches = 0
  for _, a in ipairs(calls) do if a.type == "search" then task.searches = task.searches + 1 end end
  task.code = code and 1 or 0
  return items
end

-- The report: markdown with an inline link per claim and a url_citation whose character range
-- is that link (or the whole sentence, by switch).
local function report(task, r, sources)
  local parts, anns, pos = {}, {}, 0
  local function add(s)
    parts[#parts + 1] = s
    pos = pos + common.chars(s)
  end
  add("# " .. task.topic .. " — research report\n\n")
  for _, sec in ipairs(text.plan(r, task.topic, #sources)) do
    add("## " .. sec.title .. "\n\n")
    for _, claim in ipairs(sec.claims) do
      local sentence_start = pos
      add(claim.text .. " ")
      local src = sources[claim.source or 1]
      if claim.source and task.searches > 0 then
        local link = "([" .. src.domain .. "](" .. src.url .. "))"
        local start = pos
        add(link)
        anns[#anns + 1] = { type = "url_citation", url = src.url, title = src.title,
          start_index = cfg().citations == "sentence" and sentence_start or start,
          end_index = pos }
      end
      add(". ")
    end
    add("\n\n")
  end
  task.text, task.annotations = table.concat(parts), anns
end

local function plan_usage(task, r)
  local input = r:random(20000, 80000)
  local output = r:random(8000, 30000)
  local reasoning = math.floor(output * (0.7 + r:random() * 0.2))
  task.tokens = { input = input, cached = math.floor(input * r:random() * 0.6), output = output,
    reasoning = reasoning }
end

local function plan_outcome(task, r)
  local c = cfg()
  local cap = task.max_output_tokens
  if c.fail_pattern and task.input_text:find(c.fail_pattern, 1, true)
    or r:random() < (c.fail_share or 0) then
    task.outcome, task.finish = "failed", task.start + (task.finish - task.start) * 0.6
  elseif cap and cap < task.tokens.output then
    task.outcome, task.cut = "incomplete", cap / task.tokens.output
    task.no_message = cap <= task.tokens.reasoning
  elseif c.incomplete_pattern and task.input_text:find(c.incomplete_pattern, 1, true) then
    task.outcome, task.cut = "incomplete", 0.6
  else
    task.outcome = "completed"
  end
  if task.outcome == "incomplete" and c.incomplete_no_message then task.no_message = true end
end

local function plan(task)
  local r = app:rng_for(task.seed)
  local m, c = cfg().models[base_model(task.model)] or {}, cfg()
  if task.background then
    task.start = task.created + between(r, c.queue_delay, c.time_scale)
    task.finish = task.start + between(r, m.duration or { 300, 900 }, c.time_scale)
  else
    task.start, task.finish = task.created, task.created -- answered when done
  end
  local sources = text.sources(r, task.topic, r:random(6, 12))
  task.items = plan_items(task, r, sources)
  report(task, r, sources)
  plan_usage(task, r)
  plan_outcome(task, r)
end

-- Views ---------------------------------------------------------------------------------------

local function status_at(task, now)
  if task.cancelled_at then return "cancelled", task.cancelled_at end
  if now < task.start then return "queued", now end
  if now < task.finish then return "in_progress", now end
  return task.outcome, task.finish
end

local function truncate(s, share)
  local n = math.floor(common.chars(s) * share)
  return n > 0 and s:sub(1, (utf8.offset(s, n + 1) or #s + 1) - 1) or ""
end

local function message(task, status)
  local body, anns = task.text, task.annotations
  if status == "incomplete" then
    body = truncate(task.text, task.cut or 0.6)
    local n, kept = common.chars(body), {}
    for _, a in ipairs(anns) do if a.end_index <= n then kept[#kept + 1] = a end end
    anns = kept
  end
  if cfg().citations == "none" then anns = {} end
  return { id = task.msg_id, type = "message", role = "assistant",
    status = status == "incomplete" and "incomplete" or "completed",
    content = { { type = "output_text", text = body, annotations = app.array(common.copy(anns)),
      logprobs = app.empty_array } } }
end

local function usage(task, status, share)
  if status ~= "completed" and status ~= "incomplete" and status ~= "failed" then
    return app.null
  end
  local t = task.tokens
  local output = status == "incomplete" and (task.max_output_tokens or math.floor(t.output * share))
    or math.floor(t.output * share)
  local reasoning = math.min(output, math.floor(t.reasoning * share))
  return { input_tokens = t.input, input_tokens_details = { cached_tokens = t.cached,
      cache_write_tokens = 0 },
    output_tokens = output, output_tokens_details = { reasoning_tokens = reasoning },
    total_tokens = t.input + output }
end

local function visible(task, upto, status)
  local out, searches = {}, 0
  for _, e in ipairs(task.items) do
    if e.t <= upto then
      out[#out + 1] = e.item
      if e.item.type == "web_search_call" and e.item.action.type == "search" then
        searches = searches + 1
      end
    end
  end
  if (status == "completed" or status == "incomplete") and not task.no_message then
    out[#out + 1] = message(task, status)
  end
  return out, searches
end

local function serialize(task, now)
  local status, upto = status_at(task, now)
  local output, searches = visible(task, upto, status)
  local share = status == "failed" and 0.6 or 1
  local body = {
    id = task.id, object = "response", created_at = common.unix(task.created), status = status,
    background = task.background,
    completed_at = status == "completed" and common.unix(task.finish) or app.null,
    error = status == "failed" and { code = "server_error", message = "An error occurred while "
      .. "processing your request. You can retry your request, or contact us through our help "
      .. "center at help.openai.com if the error persists." } or app.null,
    incomplete_details = status == "incomplete" and { reason = cfg().incomplete_reason }
      or app.null,
    instructions = task.instructions or app.null, max_output_tokens = task.max_output_tokens
      or app.null, max_tool_calls = task.max_tool_calls or app.null,
    metadata = task.metadata, model = task.snapshot, output = app.array(output),
    parallel_tool_calls = true, previous_response_id = app.null,
    reasoning = { effort = task.effort or "medium", summary = task.summary or app.null },
    service_tier = status == "queued" and "auto" or "default", store = task.store,
    temperature = 1, text = { format = { type = "text" }, verbosity = "medium" },
    tool_choice = "auto", tools = app.array(task.tools), top_p = 1, truncation = "disabled",
    usage = usage(task, status, share), user = app.null,
  }
  if cfg().tool_usage then body.tool_usage = { web_search = { num_requests = searches } } end
  return body
end

local function cost(task, now)
  local status = status_at(task, now)
  local p = cfg().prices[base_model(task.model)] or {}
  local share = status == "failed" and 0.6 or 1
  if status == "queued" then return 0 end
  if status == "in_progress" or status == "cancelled" then
    share = math.min(1, ((task.cancelled_at or now) - task.start)
      / math.max(1, task.finish - task.start))
  end
  local t = task.tokens
  local tokens = ((t.input - t.cached) * (p.input or 0) + t.cached * (p.cached or 0)
    + t.output * share * (p.output or 0)) / 1e6
  local _, searches = visible(task, status == "cancelled" and task.cancelled_at or now, "x")
  return common.round(tokens + searches * cfg().prices.web_search
    + task.code * cfg().prices.code_interpreter, 6)
end

-- Requests ------------------------------------------------------------------------------------

local function mask(key)
  if #key < 8 then return "****" end
  return key:sub(1, 3) .. "*****" .. key:sub(-4)
end

local function auth(req)
  local key = common.bearer(req)
  if not key then
    return nil, fail(401, "You didn't provide an API key. You need to provide your API key in an "
      .. "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the"
      .. " password field (with blank username) if you're accessing the API from your browser "
      .. "and are prompted for a username and password. You can obtain an API key from "
      .. "https://platform.openai.com/account/api-keys.", nil, nil, "invalid_api_key")
  end
  local spec = cfg().keys[key]
  if type(spec) ~= "table" then
    return nil, fail(401, "Incorrect API key provided: " .. mask(key) .. ". You can find your API"
      .. " key at https://platform.openai.com/account/api-keys.", nil, nil, "invalid_api_key")
  end
  return { key = key, spec = spec }
end

-- Per-key windows: creates and other requests counted apart; headers describe the bucket used.
local function limit(who, req, kind)
  local c = cfg()
  local w = st.windows[who.key] or { create = {}, request = {} }
  st.windows[who.key] = w
  local lim = kind == "create" and c.creates_per_min or c.requests_per_min
  local ok, used, wait = common.take(w[kind], req.now, lim, 60)
  local headers = {
    ["x-ratelimit-limit-requests"] = lim, ["x-ratelimit-remaining-requests"] = lim - used,
    ["x-ratelimit-reset-requests"] = common.go_duration(wait),
    ["x-ratelimit-limit-tokens"] = c.tokens_per_min,
    ["x-ratelimit-remaining-tokens"] = c.tokens_per_min - (kind == "create" and 4000 or 0),
    ["x-ratelimit-reset-tokens"] = "0s",
    ["openai-organization"] = who.spec.org or "org-sim", ["openai-version"] = "2020-10-01",
    ["openai-processing-ms"] = app:random(20, 400),
  }
  if ok then return headers end
  app:count("openai.rate_limited")
  local hint = tonumber(c.retry_after) or math.max(1, math.ceil(wait))
  if c.retry_after_ms then headers["retry-after-ms"] = math.floor(hint * 1000)
  else headers["retry-after"] = hint end
  return nil, fail(429, string.format("Rate limit reached for requests in organization %s on "
    .. "requests per min (RPM): Limit %d, Used %d, Requested 1. Please try again in %ds.",
    who.spec.org or "org-sim", lim, used, math.ceil(wait)), "requests", app.null,
    "rate_limit_exceeded", headers)
end

-- Queues and signs the events of runs that ended by `now`; sends them from the engine's loop
-- once the current answer is out (the receiver may be the client waiting for it).
local function publish(now)
  local function ended(task)
    local status, at = status_at(task, now)
    return status, common.unix(at)
  end
  local function event_id() return "evt_" .. common.hex(app, 32) end
  if webhook.sweep(st.webhooks, st.tasks, cfg(), ended, event_id,
    function(v) return app:encode(v) end) == 0 then
    return
  end
  webhook.sign(st.webhooks, common.unix(now), cfg())
  local list, c = st.webhooks, cfg()
  if app.server then
    app.server:timer(0, function()
      webhook.flush(list, c, function(name) app:count(name) end)
    end)
  end
end

local function guarded(kind, fn)
  return function(req)
    local who, status, body = auth(req)
    if not who then return status, body end
    local headers, s2, b2, h2 = limit(who, req, kind)
    if not headers then return s2, b2, h2 end
    local s, b, h = fn(req, who)
    for k, v in pairs(h or {}) do headers[k] = v end
    publish(req.now)
    return s, b, headers
  end
end

local function gone(task, now)
  if not task or task.deleted then return true end
  local status, at = status_at(task, now)
  if status == "queued" or status == "in_progress" then return false end
  local zdr = not task.store or task.zdr or cfg().zdr
  return now > at + (zdr and cfg().retention_unstored or cfg().retention_stored)
end

local function not_found(id)
  return fail(404, "Response with id '" .. id .. "' not found.")
end

local function shut_down(model)
  local date = cfg().shutdown[base_model(model)]
  return type(date) == "string" and cfg().today >= date
end

local function create(req, who)
  if type(req.json) == "table" then -- top-level nulls mean "not given"
    for k, v in pairs(req.json) do if v == app.null then req.json[k] = nil end end
  end
  local problem = validate.check(req, app.null)
  if problem then
    return fail(problem.status, problem.message, nil, problem.param, problem.code)
  end
  if cfg().insufficient_quota or who.spec.insufficient_quota then
    return fail(429, "You exceeded your current quota, please check your plan and billing "
      .. "details. For more information on this error, read the docs: "
      .. "https://platform.openai.com/docs/guides/error-codes/api-errors.", "insufficient_quota",
      nil, "insufficient_quota")
  end
  local body = req.json
  local model = cfg().models[base_model(body.model)]
  if not model or shut_down(body.model) then
    return fail(404, "The model `" .. body.model .. "` does not exist or you do not have access "
      .. "to it.", nil, nil, "model_not_found")
  end
  if base_model(body.model):find("deep%-research") and not validate.has_source(body.tools) then
    return fail(400, "Deep research models require at least one of 'web_search_preview', 'mcp' "
      .. "or 'file_search' tools.", nil, "tools")
  end
  if body.stream == true then
    return fail(400, "Streaming is not supported by this simulator; poll with GET instead.",
      nil, "stream", "unsupported_value")
  end
  local r = type(body.reasoning) == "table" and body.reasoning or {}
  local task = { id = "resp_" .. common.hex(app, 50), msg_id = "msg_" .. common.hex(app, 50),
    seed = app:random(1, 2147483647), key = who.key, zdr = who.spec.zdr,
    model = body.model, snapshot = body.model == base_model(body.model) and model.snapshot
      or body.model,
    created = req.now, background = body.background == true, store = body.store ~= false,
    input_text = input_text(body.input), tools = common.copy(body.tools or {}),
    metadata = type(body.metadata) == "table" and common.copy(body.metadata) or {},
    instructions = type(body.instructions) == "string" and body.instructions or nil,
    max_output_tokens = math.tointeger(body.max_output_tokens),
    max_tool_calls = math.tointeger(body.max_tool_calls), reasoning = r,
    effort = r.effort ~= app.null and r.effort or nil,
    summary = r.summary ~= app.null and r.summary or nil }
  task.topic = text.topic(task.input_text)
  plan(task)
  st.tasks[#st.tasks + 1] = task
  st.by_id[task.id] = task
  app:count("openai.tasks_created")
  return 200, serialize(task, req.now)
end

local function get(req)
  local task = st.by_id[req.params.id]
  if gone(task, req.now) then return not_found(req.params.id) end
  return 200, serialize(task, req.now)
end

local function cancel(req)
  local task = st.by_id[req.params.id]
  if gone(task, req.now) then return not_found(req.params.id) end
  if not task.background then
    return fail(400, "Only responses created with background=true can be cancelled.")
  end
  local status = status_at(task, req.now)
  if status == "queued" or status == "in_progress" then
    app:count("openai.cancels")
    task.cancelled_at = req.now
    local body = serialize(task, req.now)
    if cfg().late_completion then -- the reported race: the run completes after all
      task.cancelled_at, task.finish, task.outcome = nil, req.now, "completed"
    end
    return 200, body
  end
  return 200, serialize(task, req.now)
end

local function delete(req)
  local task = st.by_id[req.params.id]
  if gone(task, req.now) then return not_found(req.params.id) end
  task.deleted = true
  app:count("openai.deletes")
  return 200, { id = task.id, object = "response", deleted = true }
end

local function no_list(req)
  return fail(404, "Invalid URL (" .. req.method .. " /v1/responses)")
end

local function expose()
  local now, tasks = app:now(), {}
  publish(now)
  for i, task in ipairs(st.tasks) do
    tasks[i] = { id = task.id, status = status_at(task, now), model = task.model,
      created_at = common.unix(task.created), background = task.background, store = task.store,
      deleted = task.deleted == true, expired = not task.deleted and gone(task, now),
      metadata = task.metadata, searches = task.searches, cost_usd = cost(task, now) }
  end
  return { tasks = app.array(tasks), creates = #st.tasks,
    webhooks = app.array(webhook.view(st.webhooks)) }
end

function M.install(a)
  app = a
  app.config.openai = common.copy(DEFAULTS)
  app:on_reset(function() st = { tasks = {}, by_id = {}, windows = {}, webhooks = {} } end)
  common.route(app, "POST", "/v1/responses", guarded("create", create))
  common.route(app, "GET", "/v1/responses", guarded("request", no_list))
  common.route(app, "GET", "/v1/responses/:id", guarded("request", get))
  common.route(app, "DELETE", "/v1/responses/:id", guarded("request", delete))
  common.route(app, "POST", "/v1/responses/:id/cancel", guarded("request", cancel))
  app:expose("openai", expose)
end

return M

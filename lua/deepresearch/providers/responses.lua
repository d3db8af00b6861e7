-- The Responses shape in background mode, for OpenAI (/v1/responses) and Perplexity's Agent
-- API (/v1/agent): create, get, wait, run, cancel, delete (OpenAI only). The descriptor on the
-- client says which; what differs (create options, defaults, cancel answer, retired ids) is
-- read from it or from the per-provider tables below. Neither API lists its responses nor takes
-- an idempotency key: a create is sent once, and one whose answer is lost is `ambiguous`.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local options = require "deepresearch.base.options"
local extruct = require "deepresearch.providers.extruct"
local shared = require "deepresearch.providers.descriptor.responses_shared"

local data = http.state
local M = { ops = {} }
local ops = M.ops

M.NONCE_KEY = "deepresearch_nonce"

-- Create options by each API's own names (openai.md A.3, perplexity-agent.md A.3 / A.3.1),
-- plus brief (the one way to ask) and output_schema.
local COMMON = { brief = "string", input = "string|table", instructions = "string",
  max_output_tokens = "number", max_tool_calls = "number", tools = "table", reasoning = "table",
  output_schema = "table", model = "string" }
local FILTERS = { "search_domain_filter", "search_recency_filter", "search_after_date_filter",
  "search_before_date_filter", "last_updated_after_filter", "last_updated_before_filter" }
M.FIELDS = {
  openai = options.extend(COMMON, { metadata = "table", service_tier = "string" }),
  perplexity = options.extend(COMMON, { preset = "string", models = "table",
    max_steps = "number", language_preference = "string", search_domain_filter = "table",
    search_recency_filter = "string", search_after_date_filter = "string",
    search_before_date_filter = "string", last_updated_after_filter = "string",
    last_updated_before_filter = "string" }),
}
local RUN_EXTRA = { on_progress = "function", timeout = "number", interval = "number",
  max_interval = "number" }
local UNION = options.extend(M.FIELDS.openai, M.FIELDS.perplexity)
local ASK = { "brief", "input" } -- one of them

M.accepts = {
  create = { opts = 1, required = true, fields = UNION, needs = { ASK } },
  run = { opts = 1, required = true, fields = options.extend(UNION, RUN_EXTRA),
    needs = { ASK } },
  wait = { id = true, opts = 2, fields = extruct.WAIT },
  cancel = { id = true },
  delete = { id = true },
}

local function provider(self) return data(self).provider end
local function kind_of(self) return provider(self).kinds.research end

local function whole(name, v, min, max)
  if v == nil then return true end
  if v % 1 ~= 0 or v < min or (max and v > max) then
    return nil, errors.invalid(string.format("%s must be a whole number in %d..%s, got %s", name,
      min, max and tostring(max) or "", tostring(v)), { field = name })
  end
  return true
end

-- The option another provider takes but this one does not: a clear local error.
local function foreign(D, p)
  local own = M.FIELDS[D.name] or {}
  local keys = {}
  for k in pairs(p) do
    if own[k] == nil and not RUN_EXTRA[k] then keys[#keys + 1] = tostring(k) end
  end
  if #keys == 0 then return nil end
  table.sort(keys)
  return errors.invalid(string.format("%s does not take the option '%s'", D.cli.name, keys[1]),
    { field = keys[1] })
end

local function schema_table(s)
  if type(s) == "table" and type(s.to_table) == "function" then return s:to_table() end
  return s
end

local function check_input(D, p)
  if p.brief ~= nil and p.input ~= nil then -- one rule for every provider (issue 16)
    return nil, errors.invalid("give brief or input, not both", { field = "input" })
  end
  local text = p.brief
  if text == nil and type(p.input) == "string" then text = p.input end
  if text ~= nil then return validate.text(p.brief ~= nil and "brief" or "input", text,
    D.limits.brief) end
  if #p.input == 0 then
    return nil, errors.invalid("input must not be empty", { field = "input" })
  end
  return true
end

local function check_common(D, p, min_output)
  local bad = foreign(D, p)
  if bad then return nil, bad end
  local ok, err = check_input(D, p)
  if not ok then return nil, err end
  ok, err = whole("max_output_tokens", p.max_output_tokens, min_output)
  if ok then ok, err = whole("max_tool_calls", p.max_tool_calls, 0) end
  if not ok then return nil, err end
  return true
end

-- metadata (openai.md A.3): at most 16 keys (one is our nonce), keys <= 64, string values <= 512.
local function check_metadata(meta)
  local n = 0
  for k, v in pairs(meta) do
    n = n + 1
    if type(k) ~= "string" or #k > 64 or type(v) ~= "string" or #v > 512 then
      return nil, errors.invalid("metadata holds string keys (at most 64 characters) and " ..
        "string values (at most 512)", { field = "metadata" })
    end
  end
  if n > 15 then
    return nil, errors.invalid(string.format("metadata holds %d keys; at most 15 (the client " ..
      "adds %s)", n, M.NONCE_KEY), { field = "metadata" })
  end
  return true
end

local function nonce()
  return string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

local function openai_body(D, p)
  local ok, err = check_common(D, p, 16)
  if not ok then return nil, err end
  if p.output_schema ~= nil then
    return nil, errors.invalid("OpenAI deep research does not take output_schema: whether its " ..
      "models honour a JSON schema is not documented; ask for the structure in the brief",
      { field = "output_schema" })
  end
  local meta = {}
  if p.metadata ~= nil then
    ok, err = check_metadata(p.metadata)
    if not ok then return nil, err end
    for k, v in pairs(p.metadata) do meta[k] = v end
  end
  local n = nonce()
  meta[M.NONCE_KEY] = n
  local tools = p.tools or D.defaults.tools
  if #tools == 0 then
    return nil, errors.invalid("tools must name at least one data source (web_search_preview, " ..
      "mcp or file_search): deep research refuses to run without one", { field = "tools" })
  end
  return { model = p.model or D.defaults.model, input = p.brief or p.input, background = true,
    store = true, tools = tools, instructions = p.instructions, reasoning = p.reasoning,
    max_tool_calls = p.max_tool_calls, max_output_tokens = p.max_output_tokens,
    service_tier = p.service_tier, metadata = meta }, n
end

local RECENCY = { "hour", "day", "week", "month", "year" }

local function check_filters(p)
  local ok, err = true, nil
  if p.search_recency_filter ~= nil then
    ok, err = validate.enum("search_recency_filter", p.search_recency_filter, RECENCY)
  end
  local domains = p.search_domain_filter
  if ok and domains ~= nil and #domains > 20 then
    ok, err = nil, errors.invalid(string.format("search_domain_filter holds %d domains; at " ..
      "most 20", #domains), { field = "search_domain_filter" })
  end
  for _, name in ipairs(FILTERS) do
    local v = p[name]
    if ok and name:find("date", 1, true) and v ~= nil and
       not v:match("^%d%d/%d%d/%d%d%d%d$") then
      ok, err = nil, errors.invalid(string.format("%s must be a date as MM/DD/YYYY, got %q",
        name, v), { field = name })
    end
  end
  return ok, err
end

-- The web_search tool carrying the filters: the caller's own one if listed, else a new one.
local function with_filters(p, tools)
  local filters
  for _, name in ipairs(FILTERS) do
    if p[name] ~= nil then
      filters = filters or {}
      filters[name] = p[name]
    end
  end
  if not filters then return tools end
  local out, found = {}, false
  for i, t in ipairs(tools or {}) do
    out[i] = t
    if type(t) == "table" and t.type == "web_search" and not found then
      local copy = {}
      for k, v in pairs(t) do copy[k] = v end
      copy.filters = filters
      out[i], found = copy, true
    end
  end
  if not found then out[#out + 1] = { type = "web_search", filters = filters } end
  return out
end

local function preset_of(D, p)
  if p.preset == nil then
    return (p.model == nil and p.models == nil) and D.defaults.preset or nil
  end
  local all = {}
  for _, v in ipairs(D.presets) do all[#all + 1] = v end
  for alias in pairs(D.preset_aliases) do all[#all + 1] = alias end
  table.sort(all)
  local ok, err = validate.enum("preset", p.preset, all)
  if not ok then return nil, err end
  return p.preset
end

local function response_format(schema)
  schema = schema_table(schema)
  if schema == nil then return nil end
  if schema.type ~= "object" then
    return nil, errors.invalid("output_schema: the root must have type = \"object\"",
      { field = "output_schema" })
  end
  return { type = "json_schema", json_schema = { name = "output", schema = schema } }
end

local function perplexity_body(D, p)
  local ok, err = check_common(D, p, 1)
  if ok then ok, err = whole("max_steps", p.max_steps, 1, 100) end
  if ok then ok, err = check_filters(p) end
  if not ok then return nil, err end
  local preset
  preset, err = preset_of(D, p)
  if err then return nil, err end
  local format
  format, err = response_format(p.output_schema)
  if err then return nil, err end
  local tools = p.tools
  -- A bare model searches nothing unless web_search is listed (A.3).
  if tools == nil and preset == nil then tools = { { type = "web_search" } } end
  return { preset = preset, model = p.model, models = p.models, input = p.brief or p.input,
    background = true, store = true, instructions = p.instructions, max_steps = p.max_steps,
    max_output_tokens = p.max_output_tokens, max_tool_calls = p.max_tool_calls,
    reasoning = p.reasoning, language_preference = p.language_preference,
    response_format = format, tools = with_filters(p, tools) }
end

local BODIES = { openai = openai_body, perplexity = perplexity_body }

--- Validates create parameters for descriptor D; returns the JSON body and the nonce put in
-- metadata (OpenAI; nil for Perplexity, whose metadata is outside its schema), or nil, err.
function M.create_body(D, p)
  validate.type("create", 1, p, "table")
  local build = BODIES[D.name]
  if not build then error("deepresearch.providers.responses: no create body for " ..
    tostring(D.name), 2) end
  if p.brief == nil and p.input == nil then
    return nil, errors.invalid("create needs brief (or input)", { field = "brief" })
  end
  local body, n = build(D, p)
  if not body then return nil, n end
  local encoded, text = pcall(json.encode, body)
  if not encoded then
    return nil, errors.invalid("cannot encode the request: " .. tostring(text))
  end
  return text, n
end

local function retired_message(D, model, info, said)
  return string.format("%s: the model %q was retired on %s; use %s instead%s", D.cli.name,
    model, tostring(info.shutdown), tostring(info.successor),
    said and (" (the API said: " .. said .. ")") or "")
end

-- Maps the answers the HTTP status alone reads wrongly: a retired surface (Perplexity's 403
-- chat_completions_not_available is not an auth failure), a shut-down model, and OpenAI's 429
-- insufficient_quota (out of credit: waiting does not help).
local function remap(D, err, model)
  local d = type(err.details) == "table" and err.details or {}
  local kind = d.type
  local code = type(d.code) == "string" and d.code or nil
  if kind == "chat_completions_not_available" or code == "chat_completions_not_available" then
    err.code, err.retryable = "retired", false
    err.message = D.cli.name .. " retired this API surface (Sonar chat completions); the " ..
      "client uses the Agent API (/v1/agent): " .. tostring(err.message)
  elseif code == "model_not_found" or kind == "invalid_model" then
    local info = model and D.retired_models and D.retired_models[model]
    err.code, err.retryable = info and "retired" or "invalid_request", false
    if info then err.message = retired_message(D, model, info, err.message) end
    err.model = model
  elseif code == "insufficient_quota" then
    err.code, err.retryable = "insufficient_credits", false
  end
  return err
end

local function call(runtime, self, req, model)
  local body, err = http.request(runtime, data(self), req)
  if err then return nil, remap(provider(self), err, model) end
  return body
end

local function check_created(t)
  if type(t.id) ~= "string" or t.id == "" then return "a create answer without an id" end
  return nil
end

-- A create that may have made a response: neither API can look it up (no list, no key).
local function ambiguous(D, cause, n)
  local what = cause.status and ("it was answered HTTP " .. cause.status .. ": " ..
    tostring(cause.message)) or ("its answer was lost: " .. tostring(cause.message))
  local trace = n and string.format("; it carried metadata.%s = %q, which a later GET or " ..
    "webhook of the response shows", M.NONCE_KEY, n) or "; it carried no nonce (the API " ..
    "cannot search metadata)"
  return errors.new("ambiguous", string.format("the create request was sent and %s. A " ..
    "response may exist and may be billed, and it cannot be looked up: %s has no list and no " ..
    "idempotency key, so it was not sent again%s", what, D.cli.name, trace),
    { retryable = false, attempts = cause.attempts, cause = cause, sent = true,
      status = cause.status, request_id = cause.request_id, nonce = n })
end

function ops.create(runtime, self, params)
  local D = provider(self)
  local body, n = M.create_body(D, params)
  if not body then return nil, n end
  local task, err = call(runtime, self, { method = "POST", path = kind_of(self).path, body = body,
    effect = "create", expect = "object", check = check_created }, params.model)
  if task then return task end
  if extruct.maybe_created(err) then return nil, ambiguous(D, err, n) end
  return nil, err
end

local function get(runtime, self, id, retries)
  local err
  id, err = validate.id("get", id)
  if not id then return nil, err end
  return call(runtime, self, { method = "GET", path = kind_of(self).path .. "/" ..
    http.escape(id), effect = "read", expect = "object", max_retries = retries })
end

function ops.get(runtime, self, id) return get(runtime, self, id) end

local function reason_of(task)
  local d = type(task.incomplete_details) == "table" and task.incomplete_details or {}
  return d.reason ~= nil and tostring(d.reason) or "no reason given"
end

--- The wait's verdict on a Responses task: incomplete is done when a report text exists (R's
-- dr.result marks it degraded), else failed with code "incomplete".
function M.verdict(task, state)
  local id = tostring(task.id)
  if state == "done" then
    local text = shared.report_text(task)
    if task.status == "incomplete" and (text == nil or text == "") then
      return errors.new("incomplete", string.format("response %s stopped early (%s) without a " ..
        "report", id, reason_of(task)), { reason = reason_of(task), task = task })
    end
    return "done"
  end
  if state == "failed" then
    local e = type(task.error) == "table" and task.error or {}
    local reason = e.message ~= nil and tostring(e.message) or "no reason given"
    return errors.new("task_failed", string.format("response %s failed: %s%s", id, reason,
      e.code ~= nil and (" (" .. tostring(e.code) .. ")") or ""),
      { reason = reason, server_code = e.code, task = task })
  end
  if state == "cancelled" then
    return errors.new("cancelled", "response " .. id .. " was cancelled", { task = task })
  end
  if state == nil then
    return errors.new("invalid_response", "response " .. id .. " has a status this client " ..
      "does not know: " .. tostring(task.status), { task = task })
  end
  return nil
end

function ops.wait(runtime, self, id_or_task, opts)
  local poll = function(r, c, id) return get(r, c, id, 0) end
  return extruct.wait_on(runtime, self, kind_of(self), id_or_task, opts, poll, M.verdict, "wait")
end

function ops.run(runtime, self, params)
  validate.type("run", 1, params, "table")
  local create = {}
  for k, v in pairs(params) do
    if not RUN_EXTRA[k] then create[k] = v end
  end
  return extruct.create_then_wait(ops, runtime, self, params, create)
end

local function unsupported(D, method)
  return errors.new("unsupported", string.format("%s has no '%s': its API offers no such " ..
    "operation", D.cli.name, method), { provider = D.name, method = method })
end

local function mutate(runtime, self, fname, id, method, suffix)
  local D = provider(self)
  if not D.operations[fname] then return nil, unsupported(D, fname) end
  local err
  id, err = validate.id(fname, id)
  if not id then return nil, err end
  return call(runtime, self, { method = method, path = kind_of(self).path .. "/" ..
    http.escape(id) .. suffix, effect = "mutate", expect = "object" })
end

--- OpenAI answers the cancelled Response; Perplexity {response_id, status = "cancelling"}
-- (the run shows cancelled a few polls later) and 400 for a run already over.
-- Perplexity answers one 400 for a run already over and for an unknown id (A.8): a GET says
-- which, so that the error names the run's final status.
function ops.cancel(runtime, self, id)
  local ack, err = mutate(runtime, self, "cancel", id, "POST", "/cancel")
  if ack or err.status ~= 400 or type(id) ~= "string" then return ack, err end
  local task = get(runtime, self, id)
  local final = task and provider(self).kinds.research.states[task.status]
  if final == "done" or final == "failed" or final == "cancelled" then
    err.message = string.format("response %s already ended (%s): nothing to cancel", id,
      tostring(task.status))
    err.task = task
  end
  return nil, err
end

--- OpenAI only: removes a stored response (a GET answers 404 afterwards).
function ops.delete(runtime, self, id) return mutate(runtime, self, "delete", id, "DELETE", "") end

M.methods = extruct.blocking_methods(ops, M.accepts)

-- create and run check the provider's own options first (the accepts tables hold both APIs'),
-- blaming the caller: an OpenAI client refuses Perplexity's preset with a suggestion.
for _, name in ipairs({ "create", "run" }) do
  local generic = M.methods[name]
  M.methods[name] = function(self, params)
    if type(params) == "table" then
      local own = M.FIELDS[provider(self).name]
      if own then
        options.check(name, params, name == "run" and options.extend(own, RUN_EXTRA) or own, 2)
      end
    end
    return generic(self, params)
  end
end

return M

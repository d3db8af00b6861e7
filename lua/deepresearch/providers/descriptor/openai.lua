-- OpenAI deep research (the Responses API in background mode): everything that differs, as data.
-- Pure Lua: no core, no CLI. Facts: ../shared/api/openai.md. Model ids and prices change:
-- they are data here, never code (the *-deep-research models were shut down on 2026-07-23).
local M = {} -- helpers the Perplexity descriptor shares (same Responses shape)

-- {"error": {"message", "type", "param", "code"}}; Perplexity adds an integer code and a
-- FastAPI {"detail": [...]} on 422. info.api stays nil on purpose: no error body of these APIs
-- is documented to mean "nothing was created" for a 5xx, so a failed create is never re-sent.
function M.parse_error(body)
  local info = {}
  if type(body) ~= "table" then return info end
  local e = body.error
  if type(e) == "table" then
    info.message = e.message ~= nil and tostring(e.message) or nil
    local code = e.code
    info.server_code = type(code) == "string" and code or (type(e.type) == "string" and e.type)
      or nil
    if type(e.param) == "string" then
      info.fields = { { field = e.param, message = info.message, type = info.server_code } }
    end
    info.details = e
  elseif type(body.detail) == "table" then
    local parts, fields = {}, {}
    for _, item in ipairs(body.detail) do
      local loc = type(item.loc) == "table" and item.loc or {}
      local name = loc[#loc] ~= nil and tostring(loc[#loc]) or "?"
      fields[#fields + 1] = { field = name, message = item.msg, type = item.type }
      parts[#parts + 1] = name .. ": " .. tostring(item.msg)
    end
    info.message = #parts > 0 and table.concat(parts, "; ") or nil
    info.fields = fields
    info.details = body.detail
  elseif type(body.error) == "string" then
    info.message = body.error
  end
  return info
end

-- The report text of a Responses-shaped task: the output_text parts of the last message
-- item, concatenated (the SDKs' output_text convenience is not on the wire). nil when there is
-- no message (a run still going, or one that stopped before writing).
function M.report_text(task)
  local output = type(task) == "table" and task.output
  if type(output) ~= "table" then return nil end
  for i = #output, 1, -1 do
    local item = output[i]
    if type(item) == "table" and item.type == "message" and type(item.content) == "table" then
      local parts = {}
      for _, c in ipairs(item.content) do
        if type(c) == "table" and c.type == "output_text" and type(c.text) == "string" then
          parts[#parts + 1] = c.text
        end
      end
      return table.concat(parts)
    end
  end
  return nil
end

--- Unix seconds (the Responses APIs' timestamps) as UTC "YYYY-MM-DD HH:MM", or nil.
function M.unix_time(t)
  if type(t) ~= "number" or t ~= t or t < 0 or t > 253402300799 then return nil end
  return os.date("!%Y-%m-%d %H:%M", math.floor(t))
end

-- Counts output items of a type (and, for web_search_call, an action type).
function M.count_items(task, kind, action)
  local n = 0
  for _, item in ipairs(type(task.output) == "table" and task.output or {}) do
    if type(item) == "table" and item.type == kind and (not action or
      (type(item.action) == "table" and item.action.type == action)) then
      n = n + 1
    end
  end
  return n
end

local D = {
  name = "openai",
  base_url = "https://api.openai.com",
  base_env = "OPENAI_BASE_URL",
  -- The SDKs' base URL carries the version (https://api.openai.com/v1); paths here keep it.
  base_suffixes = { "/v1" },
  token_env = "OPENAI_API_KEY",
  token_option = "api_key",
  auth_header = "Authorization",
  auth_prefix = "Bearer ",
  parse_error = M.parse_error,
  kinds = {
    research = {
      path = "/v1/responses",
      id_field = "id",
      -- incomplete is terminal with partial output: done here; the wait's verdict makes it
      -- failed (code "incomplete") when no report text came (PROVIDERS.md §3).
      states = { queued = "queued", in_progress = "running", completed = "done",
                 incomplete = "done", failed = "failed", cancelled = "cancelled" },
      progress = { "status", "#output" },
      failure_field = "error.message",
      label = "response",
    },
  },
}

D.module = "deepresearch.providers.responses"
D.limits = require("deepresearch.providers.limits").openai
D.operations = { cancel = true, delete = true }
D.has_list = false -- no endpoint lists responses
-- No idempotency key and no list: a create whose answer is lost cannot be found again. It is
-- sent once and reported ambiguous, with the nonce put in metadata (seen only on a later GET
-- or a webhook).
D.recovery = "none"
D.nonce_field = "metadata.deepresearch_nonce"

-- What create sends unless told otherwise (openai.md A.3): background, stored, and a data
-- source (deep research refuses to run without one).
D.defaults = { model = "gpt-5.5-pro", tools = { { type = "web_search" } } }
-- Models that answer model_not_found since their shutdown, and what replaced them (O5).
D.retired_models = {
  ["o3-deep-research"] = { shutdown = "2026-07-23", successor = "gpt-5.5-pro" },
  ["o3-deep-research-2025-06-26"] = { shutdown = "2026-07-23", successor = "gpt-5.5-pro" },
  ["o4-mini-deep-research"] = { shutdown = "2026-07-23", successor = "gpt-5.5-pro" },
  ["o4-mini-deep-research-2025-06-26"] = { shutdown = "2026-07-23", successor = "gpt-5.5-pro" },
  ["o3"] = { shutdown = "2026-12-11", successor = "gpt-5.5-pro" },
}

D.report = { text = "output[type=message].content[type=output_text].text",
  citations = "output[type=message].content[].annotations", citation_kind = "annotations_chars",
  extract = M.report_text }
-- No cost field: tokens x the price table + web searches x their price (openai.md A.5).
-- usd per million tokens; web_search per call. The model is echoed as a dated snapshot
-- (o4-mini-deep-research-2025-06-26): look it up without its date suffix.
D.cost = { source = "computed", model_field = "model", usage = "usage",
  input = "usage.input_tokens", cached = "usage.input_tokens_details.cached_tokens",
  output = "usage.output_tokens", searches = "tool_usage.web_search.num_requests",
  search_items = "web_search_call" }
D.prices = {
  as_of = "2026-12-07",
  ["o3-deep-research"] = { input = 10, cached_input = 2.50, output = 40, web_search = 0.01 },
  ["o4-mini-deep-research"] = { input = 2, cached_input = 0.50, output = 8, web_search = 0.01 },
  -- Secondary sources only (API resellers): unverified.
  ["gpt-5.5-pro"] = { input = 30, output = 180, web_search = 0.01 },
}
-- Polling (A.6): first poll after 10 s, back off to 60 s; no documented create limit (the
-- simulator's default: 60 a minute).
D.poll = { floor = 10, cap = 60 }
D.create_pace = 60
-- No D.webhook: OpenAI's project-level Standard Webhooks (webhook-id, webhook-timestamp,
-- base64 "v1,<sig>" over id.timestamp.body with a whsec_ key) are not a recipe dr.webhooks
-- verifies; declaring one would refuse genuine events.

--- Whether a bare task table is an OpenAI response: resp_ + 50 hex digits.
function D.detect(task)
  return type(task) == "table" and task.object == "response" and type(task.id) == "string" and
    #task.id == 55 and task.id:match("^resp_%x+$") ~= nil
end

local function describe(task)
  local parts = { "searches " .. M.count_items(task, "web_search_call"),
    "steps " .. (type(task.output) == "table" and #task.output or 0) }
  if type(task.model) == "string" then parts[#parts + 1] = "model " .. task.model end
  return { id = task.id, state = task.status == nil and "?" or tostring(task.status),
    parts = parts, done = 0 }
end

D.cli = {
  name = "OpenAI",
  flags = {}, -- the model is a create option (model = ...); the command uses the default
  describe = describe,
  columns = { { "ID", "id" }, { "STATUS", "status" }, { "MODEL", "model" } },
}

-- A --schema is passed on: create refuses it with a clear message (no structured output).
function D.cli.create(client, text, _, schema)
  return client:create{ brief = text, output_schema = schema }
end

function D.cli.summary(task)
  local err = type(task.error) == "table" and task.error or nil
  local inc = type(task.incomplete_details) == "table" and task.incomplete_details or nil
  local usage = type(task.usage) == "table" and task.usage or nil
  return {
    { "id", task.id }, { "status", task.status }, { "model", task.model },
    { "created", M.unix_time(task.created_at) }, { "completed", M.unix_time(task.completed_at) },
    { "searches", M.count_items(task, "web_search_call") },
    { "tokens", usage and usage.total_tokens or nil },
    { "incomplete", inc and inc.reason or nil },
    { "error", err and (tostring(err.code) .. ": " .. tostring(err.message)) or nil },
  }
end

-- The job id travels in metadata, so that a task seen later (GET, webhook) names its job.
D.worker = {
  id_field = "id",
  module = D.module,
  params = function(j)
    local p = {}
    for k, v in pairs(type(j.openai) == "table" and j.openai or {}) do p[k] = v end
    p.brief = j.brief
    -- Passed on so that validate refuses it clearly rather than dropping it.
    p.output_schema = p.output_schema or j.output_schema
    local meta = {}
    for k, v in pairs(p.metadata or {}) do meta[k] = v end
    meta.deepresearch_job = tostring(j.id)
    p.metadata = meta
    return p
  end,
  validate = function(p) return require(D.module).create_body(D, p) end,
  matches = function(task, j)
    local meta = type(task.metadata) == "table" and task.metadata or nil
    return meta ~= nil and meta.deepresearch_job == j.id
  end,
  progress = function(task)
    return { task_status = task.status, sources = M.count_items(task, "web_search_call"),
      iterations = type(task.output) == "table" and #task.output or nil }
  end,
}

D.shared = M -- the Responses helpers, for the Perplexity descriptor and the operations module

return D

-- OpenAI deep research (the Responses API in background mode): everything that differs, as data.
-- Pure Lua: no core, no CLI. Facts: ../shared/api/openai.md. Model ids and prices change:
-- they are data here, never code (the *-deep-research models were shut down on 2026-07-23).
local M = require "deepresearch.providers.descriptor.responses_shared"

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
  kinds = { research = M.research_kind("/v1/responses") },
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
-- context: the most input tokens one model turn can bill (the context window), which the
-- worst-case estimate before a create multiplies by the turns max_tool_calls allows (budget.lua).
D.prices = {
  as_of = "2026-12-07",
  ["o3-deep-research"] = { input = 10, cached_input = 2.50, output = 40, web_search = 0.01,
    context = 200000 },
  ["o4-mini-deep-research"] = { input = 2, cached_input = 0.50, output = 8, web_search = 0.01,
    context = 200000 },
  -- Secondary sources only (API resellers): unverified, context too.
  ["gpt-5.5-pro"] = { input = 30, output = 180, web_search = 0.01, context = 400000 },
}
-- The request fields that bound a run's worst case (budget.lua): output tokens, tool calls
-- (each tool call is one more model turn reading the context again).
D.budget = { recipe = "turns", output = "max_output_tokens", tools = "max_tool_calls",
  tool_price = "web_search" }
-- Polling (A.6): first poll after 10 s, back off to 60 s; no documented create limit (the
-- simulator's default: 60 a minute).
D.poll = { floor = 10, cap = 60 }
D.create_pace = 60
-- No D.webhook: OpenAI's project-level Standard Webhooks (webhook-id, webhook-timestamp,
-- base64 "v1,<sig>" over id.timestamp.body with a whsec_ key) are not a recipe dr.webhooks
-- verifies; declaring one would refuse genuine events.

--- Whether a bare task table is an OpenAI response: resp_ + hex digits (50 seen; Perplexity's
-- resp_<uuid> has hyphens, so the two never clash).
function D.detect(task)
  return type(task) == "table" and task.object == "response" and type(task.id) == "string" and
    #task.id >= 20 and task.id:match("^resp_%x+$") ~= nil -- the hex length is not documented
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
  columns = M.columns,
}

D.cli.create = M.cli_create

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
    local p = M.params(j, "openai")
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

return D

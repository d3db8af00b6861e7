-- Perplexity's Agent API in background mode: everything that differs, as data.
-- Pure Lua: no core, no CLI. Facts: ../shared/api/perplexity-agent.md (the legacy async surface
-- of perplexity.md is retired: its routes answer 403 chat_completions_not_available). The
-- Responses shape is OpenAI's; ids, citations, cost and cancel differ. Presets, their model
-- bindings and prices changed several times in 2026: they are data here.
local shared = require "deepresearch.providers.descriptor.responses_shared"

local D = {
  name = "perplexity",
  base_url = "https://api.perplexity.ai",
  base_env = "PERPLEXITY_BASE_URL",
  -- OpenAI SDKs pointed at Perplexity use https://api.perplexity.ai/v1: accept it too.
  base_suffixes = { "/v1" },
  token_env = "PERPLEXITY_API_KEY",
  token_option = "api_key",
  auth_header = "Authorization",
  auth_prefix = "Bearer ",
  parse_error = shared.parse_error,
  kinds = { research = shared.research_kind("/v1/agent") },
}

D.module = "deepresearch.providers.responses"
D.limits = require("deepresearch.providers.limits").perplexity
D.operations = { cancel = true } -- no delete, no list
D.has_list = false
-- No idempotency key, no list, and metadata cannot be searched (A.12): a create whose answer
-- is lost is reported ambiguous, never sent again.
D.recovery = "none"

-- The presets (A.4) and the legacy names the server still maps; the Sonar guide maps
-- sonar-deep-research to high, the default here.
D.presets = { "fast", "low", "medium", "high", "xhigh", "wide-research" }
D.preset_aliases = { ["fast-search"] = "fast", ["pro-search"] = "low",
  ["deep-research"] = "medium", ["advanced-deep-research"] = "high", ultra = "xhigh" }
D.defaults = { preset = "high" }
-- Retired Sonar model ids (the Agent API answers them invalid_model) and their presets.
D.retired_models = {
  ["sonar-deep-research"] = { shutdown = "2026-09-27", successor = "preset high" },
  ["sonar-reasoning-pro"] = { shutdown = "2026-09-27", successor = "preset medium" },
  ["sonar-pro"] = { shutdown = "2026-09-27", successor = "preset low" },
  ["sonar"] = { shutdown = "2026-09-27", successor = "preset fast" },
}

-- Markers [N] (fast) or [web:N] resolve against the ids of every search_results item's results
-- (ids unique per response, not in output order); annotations are always empty.
D.report = { text = "output[type=message].content[type=output_text].text",
  citations = "output[type=search_results].results", citation_kind = "search_results",
  extract = shared.report_text }
-- The run's cost, returned in USD once terminal (null on a cancelled run).
D.cost = { source = "returned", field = "usage.cost.total_cost", currency = "USD" }
-- The worst case before a create (budget.lua; cost is not known before create, A.7): model
-- token prices (USD per 1M, docs Models page, Aug 2026; context: the input one step can bill,
-- the sol rate's 272k tier, assumed for luna too), the dearest tool call (sandbox $0.03 a
-- session under xhigh, finance/people search $0.005 otherwise; A.7) and each preset's steps
-- and output cap (A.4, Aug 2026 column). max_tool_calls must be sent: nothing else bounds the
-- tool calls of a step.
D.prices = {
  as_of = "2026-12-07",
  ["openai/gpt-5.6-luna"] = { input = 0.20, output = 1.20, context = 272000 },
  ["openai/gpt-5.6-sol"] = { input = 5, output = 30, context = 272000 },
}
D.budget = { recipe = "steps", output = "max_output_tokens", tools = "max_tool_calls",
  steps = "max_steps", tool_call = 0.005,
  presets = {
    fast = { model = "openai/gpt-5.6-luna", steps = 1, output = 8192 },
    low = { model = "openai/gpt-5.6-luna", steps = 5, output = 32768 },
    medium = { model = "openai/gpt-5.6-luna", steps = 15, output = 128000 },
    high = { model = "openai/gpt-5.6-sol", steps = 15, output = 128000 },
    xhigh = { model = "openai/gpt-5.6-sol", steps = 100, output = 128000, tool_call = 0.03 },
  } }
-- Polling (A.8): first poll after 3 s, back off to 30 s. Tier 0 allows 50 requests a minute
-- and 1 a second (A.11).
D.poll = { floor = 3, cap = 30 }
D.create_pace = 50

--- Whether a bare task table is a Perplexity Agent API response: resp_ + a UUID.
function D.detect(task)
  return type(task) == "table" and task.object == "response" and type(task.id) == "string" and
    task.id:match("^resp_%x+%-%x+%-%x+%-%x+%-%x+$") ~= nil
end

local function searches(task)
  local n = 0
  for _, item in ipairs(type(task.output) == "table" and task.output or {}) do
    if type(item) == "table" and item.type == "search_results" and type(item.results) == "table"
    then
      n = n + #item.results
    end
  end
  return n
end

local function describe(task)
  local parts = { "sources " .. searches(task),
    "steps " .. (type(task.output) == "table" and #task.output or 0) }
  -- the preset name until completed, then the model that ran it (A.5)
  if type(task.model) == "string" then parts[#parts + 1] = "model " .. task.model end
  local cost = type(task.usage) == "table" and type(task.usage.cost) == "table" and
    task.usage.cost.total_cost
  if type(cost) == "number" then parts[#parts + 1] = string.format("cost $%.4f", cost) end
  return { id = task.id, state = task.status == nil and "?" or tostring(task.status),
    parts = parts, done = 0 }
end

D.cli = {
  name = "Perplexity",
  flags = {}, -- the preset is a create option (preset = ...); the command uses the default
  describe = describe,
  columns = shared.columns,
  -- created_at is rewritten on every GET (A.1): the progress clock cannot date the task by it.
  age_from = false,
}

D.cli.create = shared.cli_create

function D.cli.summary(task)
  local err = type(task.error) == "table" and task.error or nil
  local inc = type(task.incomplete_details) == "table" and task.incomplete_details or nil
  local usage = type(task.usage) == "table" and task.usage or nil
  local cost = usage and type(usage.cost) == "table" and usage.cost.total_cost or nil
  return {
    { "id", task.id }, { "status", task.status }, { "model", task.model },
    -- created_at is rewritten on every GET (A.1): only the completion time means anything.
    { "completed", shared.unix_time(task.completed_at) },
    { "sources", searches(task) },
    { "tokens", usage and usage.total_tokens or nil },
    { "cost", type(cost) == "number" and string.format("$%.4f", cost) or nil },
    { "incomplete", inc and inc.reason or nil },
    { "error", err and tostring(err.message) or nil },
  }
end

D.worker = {
  id_field = "id",
  module = D.module,
  params = function(j) return shared.params(j, "perplexity") end,
  validate = function(p) return require(D.module).create_body(D, p) end,
  progress = function(task)
    return { task_status = task.status, sources = searches(task),
      iterations = type(task.output) == "table" and #task.output or nil }
  end,
}

return D

-- Gemini Deep Research (the Interactions API, Deep Research agents): everything about it that
-- differs, as data. Pure Lua: no core, no CLI. The registry is deepresearch.providers.
-- Contract: shared/api/gemini.md (agent ids are previews: they are data here, never code).

-- Google's envelope: {"error": {code, message, status, details[]}}, sometimes wrapped in a
-- one-element list. An invalid key is a 400 whose ErrorInfo reason is API_KEY_INVALID: the
-- caller's credential, not a bad request. A 429's RetryInfo.retryDelay ("41s") is the wait.
local function detail_of(details, type_suffix)
  for _, d in ipairs(type(details) == "table" and details or {}) do
    if type(d) == "table" and type(d["@type"]) == "string" and
       d["@type"]:sub(-#type_suffix) == type_suffix then
      return d
    end
  end
  return nil
end

-- "41s", "0.5s" -> whole seconds as Retry-After text (policy.parse_retry_after reads it).
local function retry_delay(details)
  local info = detail_of(details, "google.rpc.RetryInfo")
  local n = info and type(info.retryDelay) == "string" and tonumber(info.retryDelay:match(
    "^%s*([%d.]+)s%s*$"))
  if not n then return nil end
  return string.format("%d", math.ceil(n))
end

local function gemini_error(body)
  local info = {}
  if type(body) == "table" and body[1] ~= nil then body = body[1] end
  local e = type(body) == "table" and body.error or nil
  if type(e) ~= "table" then return info end
  -- Only strings are read: a message or reason of another type is absent, never raised on.
  info.message = type(e.message) == "string" and e.message or nil
  info.server_code = type(e.status) == "string" and e.status or nil
  local reason = detail_of(e.details, "google.rpc.ErrorInfo")
  info.reason = reason and type(reason.reason) == "string" and reason.reason or nil
  if info.reason == "API_KEY_INVALID" then info.code = "unauthorized" end
  info.retry_after = retry_delay(e.details)
  info.details = e
  -- Never claims "nothing was made": no contract says a Google 503 to a create made nothing,
  -- so such an answer leaves the create ambiguous (see extruct.maybe_created).
  info.api = nil
  return info
end

local D = {
  name = "gemini",
  base_url = "https://generativelanguage.googleapis.com",
  base_env = "GEMINI_BASE_URL",
  base_suffixes = { "/v1beta" }, -- the SDKs' base URL carries the version; our paths do
  token_env = "GEMINI_API_KEY",
  token_option = "api_key",
  auth_header = "x-goog-api-key", -- never ?key=: it would leak into URLs and logs
  auth_prefix = "",
  parse_error = gemini_error,
  kinds = {
    research = {
      path = "/v1beta/interactions",
      id_field = "id",
      -- incomplete is terminal with partial results: done here; the wait's verdict makes it a
      -- failure (code incomplete) when no report text came back. requires_action stops the
      -- run until a new turn (previous_interaction_id): it needs the caller, never a poll.
      states = { queued = "queued", in_progress = "running", requires_action = "input_required",
                 completed = "done", incomplete = "done", failed = "failed",
                 budget_exceeded = "failed", cancelled = "cancelled" },
      progress = { "status", "#steps" },
      failure_field = "errors",
      label = "interaction",
    },
  },
}

D.module = "deepresearch.providers.gemini"
D.limits = require("deepresearch.providers.limits").gemini
-- Beyond create, get, wait: no list (Developer API, Vertex and both SDKs have none).
D.operations = { cancel = true, delete = true }
D.has_list = false
-- No idempotency key and no list: a lost create answer can only be reported (ambiguous),
-- with the nonce the client put in labels (visible to a GET by id only).
D.recovery = "none"
D.list_paging = "limit" -- unused: there is no list
D.nonce_label = "deepresearch_nonce"

-- The agents (gemini.md banner): the speed one (the default) and the thorough one.
D.agents = { "deep-research-preview-04-2026", "deep-research-max-preview-04-2026" }
D.default_agent = "deep-research-preview-04-2026"
-- Shut down agent ids and what replaces them: a create naming one fails with code retired.
D.retired_agents = {
  ["deep-research-pro-preview-12-2025"] = { shut_down = "2026-10-23",
    successor = "deep-research-preview-04-2026" },
}
-- Sent with every request: the revision whose answers carry steps[] (outputs[] is legacy).
D.api_revision = "2026-05-20"

-- Wait: polls every 10 s up to 60 s (the docs poll every 10 s); a run stops at 60 minutes, so
-- a wait with no timeout of its own gives up at 65 (runs have been seen stuck past the limit).
D.poll = { floor = 10, cap = 60 }
D.deadline = 65 * 60
D.create_pace = 10 -- creates per minute (the simulator's default bucket; Google's is per key)

-- The report: the text parts of the last model_output step (steps[], since 2026-06-08), or
-- the last text block of outputs[] (the legacy layout). Citations are url_citation
-- annotations on that text part with UTF-8 byte offsets, end exclusive. report/read.lua
-- reads it (dr.result, report.render, the wait's incomplete verdict).
D.report = {
  text = "steps[type=model_output][-1].content[type=text].text",
  legacy_text = "outputs[type=text][-1].text",
  citations = "annotations",
  citation_kind = "annotations_bytes",
}

-- Cost: no cost field on the wire. Computed from usage x the underlying model's token rates
-- plus grounding searches, always an estimate. Which model backs each agent is not published
-- (gemini.md D3): the rates below are Gemini 3 Pro's list prices (prompts <= 200k tokens),
-- an assumption, and $14 per 1,000 grounded search queries (secondary source). Thought
-- tokens bill as output. When usage holds no token counts, the midpoint of the agent's
-- published band (A.6: low..high USD per task) is the estimate.
D.prices = {
  as_of = "2026-12-07",
  ["deep-research-preview-04-2026"] = { input = 2.00, cached_input = 0.20, output = 12.00,
    web_search = 0.014, low = 1, high = 3 },
  ["deep-research-max-preview-04-2026"] = { input = 2.00, cached_input = 0.20, output = 12.00,
    web_search = 0.014, low = 3, high = 7 },
}
-- Where the counts are (dr.result's reader of computed costs reads these paths).
D.cost = {
  source = "computed",
  model_field = "agent",
  input = "usage.total_input_tokens",
  cached = "usage.total_cached_tokens",
  output = { "usage.total_output_tokens", "usage.total_thought_tokens" },
  search_types = { google_search = true }, -- usage.grounding_tool_count[].type counted
  currency = "USD",
}

--- Whether a bare table is a Gemini interaction: the wire's object word when present, else
-- its own fields (steps / outputs / agent with an interaction status).
function D.detect(task)
  if type(task) ~= "table" then return false end
  if task.object ~= nil then return task.object == "interaction" end
  if task.deepresearch_id ~= nil then return false end
  if type(task.agent) == "string" and type(task.status) == "string" then return true end
  return type(task.id) == "string" and (type(task.steps) == "table" or
    type(task.outputs) == "table") and task.report == nil
end

D.cli = {
  name = "Gemini",
  flags = {}, -- the agent is a create option (agent = ...); the command uses the default
  no_offset = "Gemini has no list: keep the id create prints",
  describe = function(task)
    local steps = type(task.steps) == "table" and #task.steps or nil
    return { id = task.id, state = tostring(task.status),
      parts = { steps and ("steps " .. steps) or nil } }
  end,
  columns = {
    { "ID", "id" }, { "STATUS", "status" }, { "AGENT", "agent" },
    { "CREATED", "created", "when" },
  },
}

function D.cli.create(client, text, _, schema)
  return client:create{ brief = text, output_schema = schema }
end

-- There is none: the client answers unsupported, the command says so.
function D.cli.list(client, opts)
  return client:list{ limit = opts.limit }
end

function D.cli.summary(task, fmt)
  local r = require("deepresearch.report.read").read(task, D)
  local errs = type(task.errors) == "table" and task.errors or {}
  local first = type(errs[1]) == "table" and errs[1] or nil
  return {
    { "id", task.id }, { "status", task.status }, { "agent", task.agent },
    { "created", fmt.when(task.created) }, { "updated", fmt.when(task.updated) },
    { "steps", type(task.steps) == "table" and #task.steps or nil },
    { "report", r.text and (#r.sources .. " sources") or nil },
    { "error", first and tostring(first.message or first.code) or nil },
  }
end

-- A job id as a label value (Google labels: lower-case letters, digits, - and _).
local function job_label(id)
  if id == nil then return nil end
  return (tostring(id):lower():gsub("[^%w_-]", "-"))
end

D.worker = {
  id_field = "id",
  module = D.module,
  params = function(j)
    local p = {}
    for k, v in pairs(type(j.gemini) == "table" and j.gemini or {}) do p[k] = v end
    p.brief = j.brief
    local labels = {}
    for k, v in pairs(p.labels or {}) do labels[k] = v end
    labels.deepresearch_job = job_label(j.id)
    p.labels = labels
    return p
  end,
  validate = function(p) return require(D.module).create_body(p) end,
  -- No list to search: a task is recognised only by the job id in its labels.
  matches = function(task, j)
    local labels = type(task.labels) == "table" and task.labels or {}
    return j.id ~= nil and labels.deepresearch_job == job_label(j.id)
  end,
  progress = function(task)
    return { task_status = task.status,
      iterations = type(task.steps) == "table" and #task.steps or nil }
  end,
}

return D

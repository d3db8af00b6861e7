-- Extruct (Deep Research and Deep Search): everything about it that differs, as data.
-- Pure Lua: no core, no CLI. The registry is deepresearch.providers (providers/init.lua).
local limits = require "deepresearch.providers.limits"

-- Extruct answers errors the FastAPI way: {"detail": string | object | [pydantic items]}.
local function fastapi_error(body)
  local info = {}
  local detail = type(body) == "table" and body.detail or nil
  if type(detail) == "string" then
    info.message = detail
  elseif type(detail) == "table" and type(detail.error) == "string" then
    info.message, info.server_code = detail.error, detail.error
    info.required_credits = detail.required_credits
    info.available_credits = detail.available_credits
  elseif type(detail) == "table" and detail[1] then
    local fields, msgs = {}, {}
    -- Items of the wrong type are skipped, fields of the wrong type read as absent: a hostile
    -- body never raises here.
    for _, item in ipairs(detail) do
      if type(item) == "table" then
        local loc = type(item.loc) == "table" and item.loc or {}
        local last = loc[#loc]
        local name = (type(last) == "string" or type(last) == "number") and tostring(last) or "?"
        local msg = type(item.msg) == "string" and item.msg or "invalid"
        fields[#fields + 1] = { field = name, message = msg,
          type = type(item.type) == "string" and item.type or nil, loc = loc }
        msgs[#msgs + 1] = name .. ": " .. msg
      end
    end
    info.fields = fields
    info.message = #msgs > 0 and table.concat(msgs, "; ") or nil
  end
  info.details = detail
  -- Only FastAPI's own shapes: a string detail, an object with an error code, pydantic items.
  info.api = info.message ~= nil or nil
  return info
end

local D = {
  name = "extruct",
  base_url = "https://api.extruct.ai",
  base_env = "EXTRUCT_BASE_URL",
  token_env = "EXTRUCT_API_TOKEN",
  token_option = "token",
  auth_header = "Authorization",
  auth_prefix = "Bearer ",
  parse_error = fastapi_error,
  kinds = {
    research = {
      path = "/v1/deep_research_tasks",
      id_field = "id",
      states = { created = "queued", in_progress = "running", done = "done", failed = "failed" },
      progress = { "status", "iterations", "agents", "sources" },
      failure_field = "failure_reason",
      label = "task",
    },
    discovery = {
      path = "/v1/discovery_tasks",
      id_field = "id",
      states = { created = "queued", in_progress = "running", done = "done", failed = "failed" },
      progress = { "status", "num_results_discovered", "num_results_enriched",
                   "num_results_evaluated", "num_results", "is_exhausted" },
      failure_field = "failure_reason",
      label = "discovery task",
    },
  },
}

-- Everything else that differs, as data (docs/providers.md lists each field).
D.module = "deepresearch.providers.extruct" -- the operations module (its `accepts` tables)
D.default = true -- the provider a client, the command and the worker use unless told otherwise
D.limits = limits.extruct
-- Beyond create, get, list, wait: Deep Search (the discover commands), on the discovery kind.
D.operations = { discover = "discovery" }

-- Whether a Deep Search row is a high fit (the discover results table).
function D.kinds.discovery.high_fit(row, criteria)
  return require("deepresearch.providers.discovery").high_fit(row, criteria)
end
D.recovery = "list_match" -- a lost create: list recent tasks, match brief, depth and schema
D.list_paging = "offset" -- list takes offset and limit
D.report = { text = "report.markdown", citations = "report.sources", citation_kind = "numbered" }
D.cost = { source = "credits", field = "agents", budgets = { medium = 25, high = 50, xhigh = 75 } }

--- Whether a bare task table is an Extruct Deep Research task (or its report on its own), for
-- dr.result and the report without a provider name: a report, or Extruct's own task fields.
function D.detect(task)
  if type(task) ~= "table" or task.object ~= nil then return false end
  if type(task.report) == "table" then return true end
  if (task.kind == "markdown" or task.kind == "schema") and
    (task.markdown ~= nil or task.fields ~= nil) then
    return true
  end
  return task.brief ~= nil and (task.depth ~= nil or task.agents ~= nil or
    task.iterations ~= nil)
end

-- The brief linter's account-research advice (brief.ADVICE): an Extruct brief says who asks,
-- about whom, and what it should help decide. Other providers' questions get none of it.
D.brief_advice = { "no_target", "no_context", "no_decision" }

-- What the command shows and which of its flags this provider takes.
D.cli = {
  name = "Extruct",
  flags = { depth = "Extruct tasks take --depth medium|high|xhigh" },
  describe = "extruct_research", describe_budgets = true,
  columns = {
    { "ID", "id" }, { "STATUS", "status" }, { "DEPTH", "depth" }, { "AGENTS", "agents" },
    { "SOURCES", "sources" }, { "CREATED", "created_at", "when" }, { "BRIEF", "brief", "words" },
  },
}

function D.cli.create(client, text, opts, schema)
  return client:create{ brief = text, depth = opts.depth, output_schema = schema }
end

function D.cli.list(client, opts)
  local tasks = {}
  if opts.all then
    for task, err in client:tasks{ limit = 50, offset = opts.offset } do
      if not task then return nil, err end
      tasks[#tasks + 1] = task
    end
    return tasks
  end
  return client:list{ limit = opts.limit or 20, offset = opts.offset }
end

-- The `get` summary: label, value rows; fmt holds the command's formatters (when, lines_of).
function D.cli.summary(task, fmt)
  local report = task.report
  local reasons = report and report.degradation_reasons
  return {
    { "id", task.id }, { "status", task.status }, { "depth", task.depth },
    { "created", fmt.when(task.created_at) }, { "updated", fmt.when(task.updated_at) },
    { "iterations", task.iterations }, { "agents", task.agents }, { "sources", task.sources },
    { "owner", task.owner and task.owner.email },
    { "schema", task.output_schema and "yes" or nil },
    { "report", report and (report.kind .. ((report.sources and (", " .. #report.sources ..
      " sources")) or ""))
      or nil },
    { "degraded", type(reasons) == "table" and #reasons > 0 and fmt.lines_of(reasons) or nil },
    { "failure", task.failure_reason },
    { "brief", task.brief },
  }
end

-- What the worker needs: create parameters from a job, recognising its task in a listing,
-- the counters it publishes.
D.worker = {
  id_field = "id",
  module = D.module,
  params = function(j) return { brief = j.brief, depth = j.depth,
  output_schema = j.output_schema } end,
  validate = function(p) return require(D.module).create_body(p, "create") end,
  -- Whether a listed task is what this job's create would have made.
  matches = function(task, j)
    return task.brief == j.brief and (task.depth or "medium") == (j.depth or "medium") and
      (type(task.output_schema) == "table") == (j.output_schema ~= nil)
  end,
  progress = function(task)
    return { task_status = task.status, agents = task.agents, sources = task.sources,
      iterations = task.iterations }
  end,
}

return D

-- Valyu DeepResearch: everything about it that differs, as data.
-- Pure Lua: no core, no CLI. The registry is deepresearch.providers (providers/init.lua).
local limits = require "deepresearch.providers.limits"

-- Valyu: {"success": false, "error": "..."} or {"error": "validation_failed", "message": ...,
-- "errors": [...]}.
local function valyu_error(body)
  local info = {}
  if type(body) ~= "table" then return info end
  -- Only strings are read: server data of another type is absent, never raised on.
  local function text(v) return type(v) == "string" and v or nil end
  local msg = text(body.message) or text(body.error)
  if type(body.errors) == "table" and #body.errors > 0 then
    local parts, fields = { msg or "validation failed" }, {}
    for _, item in ipairs(body.errors) do
      if type(item) == "table" then
        local key = text(item.key)
        local m = text(item.message) or text(item.code) or ""
        if key and not m:find(key, 1, true) then m = key .. ": " .. m end
        parts[#parts + 1] = m
        fields[#fields + 1] = { field = key, message = text(item.message),
          type = text(item.code) }
      end
    end
    msg = table.concat(parts, "; ")
    info.fields = fields
  end
  info.message = msg
  info.server_code = type(body.error) == "string" and body.error:match("^[%l_]+$") and body.error
    or nil
  info.details = body
  -- Valyu's documented error bodies say success = false, or name a snake_case error code
  -- (validation_failed); a gateway's {"error": "Service Unavailable"} is neither.
  info.api = (body.success == false or info.server_code ~= nil) or nil
  return info
end

local D = {
  name = "valyu",
  base_url = "https://api.valyu.ai",
  base_env = "VALYU_BASE_URL",
  token_env = "VALYU_API_KEY",
  token_option = "api_key",
  auth_header = "X-API-Key",
  auth_prefix = "",
  parse_error = valyu_error,
  kinds = {
    research = {
      path = "/v1/deepresearch/tasks",
      status_suffix = "/status",
      id_field = "deepresearch_id",
      states = { queued = "queued", running = "running", completed = "done", failed = "failed",
                 cancelled = "cancelled",
                 -- A checkpoint waits for a human (awaiting_input); unanswered for 5 minutes it
                 -- parks (paused) until someone responds: both need the caller, never a poll.
                 awaiting_input = "input_required", paused = "input_required" },
      progress = { "status", "progress.current_step", "progress.total_steps", "#messages" },
      failure_field = "error",
      label = "task",
    },
  },
}

D.module = "deepresearch.providers.valyu"
D.limits = limits.valyu
-- Beyond create, get, list, wait. Batches and assets live in their own modules (valyu.lua
-- merges them when installed).
D.operations = { cancel = true, delete = true, update = true, respond = true,
  batch_create = true, batch_add = true, batch_get = true, batch_tasks = true,
  batch_cancel = true, batch_list = true, batch_wait = true, download = true, set_public = true }

-- The research modes (CONTRACT B.1, docs key-terms): price in USD per task (instant: not
-- published, nil), the documented upper run time in seconds, progress.total_steps (instant:
-- not published). The client's default wait timeout and the CLI's cost display read them.
D.modes = {
  instant = { price = nil, runtime = 30, steps = nil },
  fast = { price = 0.10, runtime = 5 * 60, steps = 10 },
  standard = { price = 0.50, runtime = 20 * 60, steps = 15 },
  heavy = { price = 2.50, runtime = 90 * 60, steps = 15 },
  max = { price = 15.00, runtime = 180 * 60, steps = 25 },
}
D.mode_order = { "instant", "fast", "standard", "heavy", "max" }
-- The worst case before a create (budget.lua): the mode's price plus the surcharges a request
-- commits to (CONTRACT B.1 pricing, as of 2026-12-07): $0.10 per deliverable after the first;
-- code execution is $0.10 per execution and nothing caps the executions (unbounded).
-- Screenshots ($0.05 per URL captured) are not a create option here.
D.budget = { recipe = "modes", as_of = "2026-12-07", deliverable = 0.10, free_deliverables = 1,
  unbounded_flags = { code_execution = "code execution is billed per execution, uncapped" } }
D.mode_aliases = { lite = "standard" } -- the oldest API's default; the server answers standard
D.default_mode = "standard"
-- A lost create: list the newest (at most 100) and match the query, or the job id in metadata.
D.recovery = "list_match"
D.list_paging = "limit" -- list takes a limit only (at most 100), no offset
D.report = { text = "output", citations = "sources", citation_kind = "list" }
D.cost = { source = "returned", field = "cost", currency = "USD" }

--- Whether a bare task table is a Valyu DeepResearch task, for dr.result: its id field, or
-- the query and output_type only Valyu's tasks carry.
function D.detect(task)
  if type(task) ~= "table" or task.object ~= nil then return false end
  return task.deepresearch_id ~= nil or (task.output_type ~= nil and task.output ~= nil) or
    (task.query ~= nil and task.mode ~= nil)
end
-- Signed webhooks (CONTRACT B.11; the SDKs' Contents recipe, assumed for DeepResearch):
-- prefix .. hex(HMAC-SHA256(webhook_secret, timestamp .. "." .. raw body)). dr.webhooks reads it.
D.webhook = { header = "X-Webhook-Signature", timestamp_header = "X-Webhook-Timestamp",
  prefix = "sha256=", signed = "timestamp.body" }

D.cli = {
  name = "Valyu",
  flags = { mode = "Valyu tasks take --mode instant|fast|standard|heavy|max" },
  no_offset = "Valyu's list has no offset; use --limit N (1..100)",
  describe = "valyu_research",
  columns = {
    { "ID", "deepresearch_id" }, { "STATUS", "status" }, { "CREATED", "created_at", "when" },
    { "QUERY", "query", "words" },
  },
}

-- --checkpoint TYPE (repeatable) switches on hitl checkpoints; the hint for another provider's
-- flag stays the --mode one whichever flag next() meets first.
D.cli.flags.checkpoint = D.cli.flags.mode

local function hitl_of(types)
  if not types then return nil end
  local h = {}
  for _, t in ipairs(types) do h[t] = true end
  return h
end

function D.cli.create(client, text, opts, schema)
  return client:create{ query = text, mode = opts.mode,
    output_formats = schema and { schema } or nil, hitl = hitl_of(opts.checkpoint) }
end

function D.cli.list(client, opts)
  return client:list{ limit = opts.all and 100 or (opts.limit or 20) }
end

function D.cli.summary(task, fmt)
  local p = type(task.progress) == "table" and task.progress or nil
  return {
    { "id", task.deepresearch_id }, { "status", task.status }, { "mode", task.mode },
    -- A checkpoint waiting for an answer: its type and the id `respond` takes.
    { "checkpoint", type(task.interaction) == "table" and (tostring(task.interaction.type) ..
      " (interaction " .. tostring(task.interaction.interaction_id) .. ")") or nil },
    { "created", fmt.when(task.created_at) }, { "completed", fmt.when(task.completed_at) },
    { "step", p and p.current_step ~= nil and (fmt.shown(p.current_step) .. "/" ..
      fmt.shown(p.total_steps))
      or nil },
    { "messages", type(task.messages) == "table" and #task.messages or nil },
    { "output", task.output_type },
    { "sources", type(task.sources) == "table" and #task.sources or nil },
    { "cost", type(task.cost) == "number" and string.format("$%.2f", task.cost) or nil },
    { "pdf", task.pdf_url },
    { "error", task.error },
    { "query", task.query },
  }
end

D.worker = {
  id_field = "deepresearch_id",
  module = D.module,
  params = function(j)
    local p = {}
    for k, v in pairs(type(j.valyu) == "table" and j.valyu or {}) do p[k] = v end
    p.query = j.brief
    p.mode = p.mode or j.depth
    if j.output_schema and not p.output_formats then p.output_formats = { j.output_schema } end
    local meta = {}
    for k, v in pairs(p.metadata or {}) do meta[k] = v end
    meta.deepresearch_job = j.id
    p.metadata = meta
    return p
  end,
  validate = function(p) return require(D.module).create_body(p) end,
  matches = function(task, j)
    local meta = type(task.metadata) == "table" and task.metadata or nil
    if meta and meta.deepresearch_job ~= nil then return meta.deepresearch_job == j.id end
    return (task.query or task.input) == j.brief
  end,
  progress = function(task)
    local pr = type(task.progress) == "table" and task.progress or {}
    return { task_status = task.status, agents = pr.current_step,
      sources = type(task.sources) == "table"
      and #task.sources or nil, iterations = pr.total_steps }
  end,
}

-- The worker's --batch-size (docs/worker.md): a job joins a batch when every create parameter
-- it has is one a batch or a batch task takes (hitl, files, ... go alone); jobs whose batch
-- parameters agree share a batch. Returns the group key, batch_create's table and the job's
-- batch_add task (its id: the job's), or nil.
local BATCH_LEVEL = { mode = true, output_formats = true, search = true }
local TASK_LEVEL = { query = true, research_strategy = true, strategy = true,
  report_format = true, urls = true, metadata = true }
D.worker.batch = {
  group = function(p, j)
    for k in pairs(p) do
      if not BATCH_LEVEL[k] and not TASK_LEVEL[k] then return nil end
    end
    local json = require "deepresearch.base.json"
    local mode = D.mode_aliases and D.mode_aliases[p.mode] or p.mode
    local key = json.encode({ mode or "", p.output_formats or false, p.search or false })
    return key, { mode = mode, output_formats = p.output_formats, search = p.search },
      { id = j.id, query = p.query, research_strategy = p.research_strategy or p.strategy,
        report_format = p.report_format, urls = p.urls, metadata = p.metadata }
  end,
  -- A listed batch task is the job's when it carries the job's id.
  matches = function(task, j)
    local uid = task.batch_task_id or task.task_id
    if uid ~= nil then return uid == j.id end
    return D.worker.matches(task, j)
  end,
}

return D

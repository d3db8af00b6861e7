-- What differs between Extruct Deep Research and Valyu DeepResearch tasks, for the command:
-- how to create one, its id, the progress fields, the `get` summary, the `list` table, the report.
local output = require "deepresearch.cli.output"
local progress = require "deepresearch.cli.progress"
local limits = require "deepresearch.providers.limits"

local M = {}

local function when(iso)
  if type(iso) ~= "string" then return nil end
  local d, t = iso:match("^(%d%d%d%d%-%d%d%-%d%d)[T ](%d%d:%d%d)")
  return d and (d .. " " .. t) or iso
end
M.when = when

--- The report of a finished task as text, in one of report.render's styles.
local function render(task, style)
  local ok, report = pcall(require, "deepresearch.report")
  if not ok then return nil, "cannot load deepresearch.report: " .. tostring(report) end
  local text, err = report.render(task, { style = style or "footnotes" })
  if not text then return nil, err end
  return text
end

local extruct = {
  name = "extruct",
  max_brief = limits.brief("extruct"),
  label = "task",
}
M.extruct = extruct

function extruct.id(task) return task.id end
function extruct.describe(task)
  return progress.extruct_research(require("deepresearch.providers.extruct").BUDGETS)(task)
end
function extruct.failure(task) return task.failure_reason end

function extruct.create(client, text, opts, schema)
  return client:create{ brief = text, depth = opts.depth, output_schema = schema }
end

function extruct.summary(task)
  local report = task.report
  local reasons = report and report.degradation_reasons
  return {
    { "id", task.id }, { "status", task.status }, { "depth", task.depth },
    { "created", when(task.created_at) }, { "updated", when(task.updated_at) },
    { "iterations", task.iterations }, { "agents", task.agents }, { "sources", task.sources },
    { "owner", task.owner and task.owner.email },
    { "schema", task.output_schema and "yes" or nil },
    { "report", report and (report.kind .. ((report.sources and (", " .. #report.sources .. " sources")) or ""))
      or nil },
    { "degraded", type(reasons) == "table" and #reasons > 0 and output.lines_of(reasons) or nil },
    { "failure", task.failure_reason },
    { "brief", task.brief },
  }
end

function extruct.list(client, opts)
  local tasks = {}
  if opts.all then
    for task, err in client:tasks{ limit = 50, offset = opts.offset } do
      if not task then return nil, err end
      tasks[#tasks + 1] = task
    end
  else
    local page, err = client:list{ limit = opts.limit or 20, offset = opts.offset }
    if not page then return nil, err end
    tasks = page
  end
  return tasks
end

extruct.list_headers = { "ID", "STATUS", "DEPTH", "AGENTS", "SOURCES", "CREATED", "BRIEF" }
function extruct.list_row(task)
  return { task.id, task.status, task.depth, task.agents, task.sources, when(task.created_at),
    output.first_words(task.brief, 8, 48) }
end

function extruct.render(task, style) return render(task, style) end

local valyu = {
  name = "valyu",
  max_brief = limits.brief("valyu"),
  label = "task",
}
M.valyu = valyu

function valyu.id(task) return task.deepresearch_id end
function valyu.describe(task) return progress.valyu_research(task) end
function valyu.failure(task) return task.error end

function valyu.create(client, text, opts, schema)
  return client:create{ query = text, mode = opts.mode, output_formats = schema and { schema } or nil }
end

function valyu.summary(task)
  local p = type(task.progress) == "table" and task.progress or nil
  return {
    { "id", task.deepresearch_id }, { "status", task.status }, { "mode", task.mode },
    { "created", when(task.created_at) }, { "completed", when(task.completed_at) },
    { "step", p and p.current_step ~= nil and (progress.shown(p.current_step) .. "/" .. progress.shown(p.total_steps))
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

function valyu.list(client, opts)
  return client:list{ limit = opts.all and 100 or (opts.limit or 20) }
end

valyu.list_headers = { "ID", "STATUS", "CREATED", "QUERY" }
function valyu.list_row(task)
  return { task.deepresearch_id, task.status, when(task.created_at), output.first_words(task.query, 8, 48) }
end

function valyu.render(task, style) return render(task, style) end

--- The adapter for a provider name.
function M.for_provider(name)
  return M[name]
end

return M

-- Deep Search commands: discover QUERY, discover get/wait/results/resume/list (Extruct only).
local args = require "deepresearch.cli.args"
local output = require "deepresearch.cli.output"
local progress = require "deepresearch.cli.progress"
local task_util = require "deepresearch.cli.task"

local M = {}

-- The commands need a provider whose descriptor offers Deep Search (descriptor.operations.discover
-- names its kind of task).
local DISCOVER = { operation = "discover" }

local WAIT_OPTS = {
  { "timeout", value = "S", number = true,
  doc = "stop waiting after S seconds (exit 3; the task keeps running)" },
  { "interval", value = "S", number = true, positive = true,
  doc = "first poll delay in seconds (default 2)" },
  { "max-interval", value = "S", number = true, positive = true,
    doc = "longest delay between polls (default 30)" },
}

--- "key=name:text" into a criterion table, or nil, message.
function M.criterion(spec)
  local key, name, text = spec:match("^([^=]+)=([^:]+):(.+)$")
  if not key then
    return nil,
      string.format("--criterion wants key=name:text (e.g. size=Mid-market:Has 200-2000 " ..
      "employees), " ..
      "got '%s'", spec)
  end
  key = key:gsub("^%s+", ""):gsub("%s+$", "")
  if not key:match("^%a[%w_]*$") then
    return nil,
      string.format("--criterion key '%s' must start with a letter and hold only letters, " ..
      "digits and _",
      key)
  end
  return { key = key, name = (name:gsub("^%s+", ""):gsub("%s+$", "")),
    criterion = (text:gsub("^%s+", "")) }
end

local function summary(ctx, task)
  local crit = {}
  for _, c in ipairs(task.criteria or {}) do
    crit[#crit + 1] = string.format("%s (%s): %s", c.key, c.name, c.criterion)
  end
  output.fields(ctx.out, {
    { "id", task.id }, { "status", task.status }, { "created", task_util.when(task.created_at) },
    { "wanted", task.desired_num_results }, { "discovered", task.num_results_discovered },
    { "enriched", task.num_results_enriched }, { "evaluated", task.num_results_evaluated },
    { "high-fit", task.num_results }, { "exhausted", task.is_exhausted and "yes" or "no" },
    { "criteria", #crit > 0 and table.concat(crit, "\n") or nil },
    { "failure", task.failure_reason }, { "query", task.query },
  })
end

-- Every result row (or one page), with the task the results belong to.
local function fetch_results(client, id, opts)
  if opts.all then
    local rows, task = {}, nil
    for page, err in client:discovery_pages(id, { limit = 100, offset = opts.offset }) do
      if not page then return nil, err end
      task = page
      for _, r in ipairs(page.results) do rows[#rows + 1] = r end
    end
    if not task then
      local t, err = client:discovery_get(id)
      if not t then return nil, err end
      task = t
    end
    return rows, task
  end
  local page, err = client:discovery_results(id, { limit = opts.limit or 20, offset = opts.offset })
  if not page then return nil, err end
  return page.results, page
end

local function print_results(ctx, rows, task, as_json)
  if as_json then
    local copy = {}
    for k, v in pairs(task) do copy[k] = v end
    copy.results = rows
    ctx.out:write(output.json(copy), "\n")
    return 0
  end
  local d = require("deepresearch.providers").get(ctx:provider())
  local kind = d.kinds[d.operations.discover]
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = { output.clip(r.company_name or "?", 40), r.company_website or "", r.relevance or "",
      kind.high_fit(r, task.criteria) and "yes" or "no" }
  end
  output.table(ctx.out, { "COMPANY", "WEBSITE", "RELEVANCE", "HIGH-FIT" }, out)
  return 0
end

-- first: the task as created (create --wait), shown at once; else the line says it waits for
-- the first answer (a mistyped id or a slow server is not a blank screen).
local function wait_then_results(ctx, client, id, opts, first)
  ctx.waiting, ctx.waiting_cmd = id, "discover wait"
  local p = ctx:progress(progress.discovery, "discovery task")
  p:begin(first)
  local task, err = client:discovery_wait(id, { on_progress = function(t) p:update(t) end,
    timeout = opts.timeout, interval = opts.interval, max_interval = opts.max_interval })
  ctx:done_waiting()
  require("deepresearch.cli.history").finished(ctx, id, task, err)
  if not task then return ctx:fail(err) end
  local rows
  rows, err = fetch_results(client, id, { all = true })
  if not rows then return ctx:fail(err) end
  return print_results(ctx, rows, task, opts.json)
end

local function create(ctx, opts, words)
  if #words == 0 then return ctx:usage("missing QUERY: describe the companies to find") end
  local params = { query = table.concat(words, " "), desired_num_results = opts.results }
  if opts.criterion then
    params.criteria = {}
    for _, spec in ipairs(opts.criterion) do
      local c, why = M.criterion(spec)
      if not c then return ctx:usage(why) end
      params.criteria[#params.criteria + 1] = c
    end
  end
  if opts.results and (opts.results < 1 or opts.results > 250) then
    return ctx:usage("--results must be in 1..250")
  end
  local client, code = ctx:client()
  if not client then return code end
  local journal = require "deepresearch.cli.history"
  journal.begin(ctx, params.query, require("deepresearch.providers").get(ctx:provider())
    .operations.discover) -- the Deep Search kind's name
  ctx:begin_create(function(t) return t.id end, "discover")
  local task, err = client:discovery_create(params)
  if not task then
    journal.refused(ctx, err)
    ctx:end_create()
    return ctx:fail(err)
  end
  journal.created(ctx, task)
  if opts.wait then
    ctx.waiting = task.id
    ctx:end_create()
    ctx:note("deepresearch: created discovery task %s", task.id)
    return wait_then_results(ctx, client, task.id, opts, task)
  end
  ctx:created()
  ctx.out:write(opts.json and output.json(task) or task.id, "\n")
  ctx:end_create()
  return 0
end

local function get(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local task, err = client:discovery_get(id)
  if not task then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, task, function() summary(ctx, task) end)
end

local function wait(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  return wait_then_results(ctx, client, id, opts)
end

local function results(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local rows, task = fetch_results(client, id, opts)
  if not rows then return ctx:fail(task) end
  return print_results(ctx, rows, task, opts.json)
end

local function resume(ctx, opts, words)
  if opts.more and opts.more > 250 then return ctx:usage("--more must be in 0..250") end
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local task, err = client:discovery_resume(id, { desired_new_results = opts.more })
  if not task then return ctx:fail(err) end
  if opts.wait then return wait_then_results(ctx, client, id, opts) end
  return output.json_or(ctx.out, opts.json, task, function() summary(ctx, task) end)
end

local function list(ctx, opts, words)
  if #words > 0 then return ctx:usage("discover list takes no arguments") end
  local client, code = ctx:client()
  if not client then return code end
  local tasks, err = client:discovery_list{ limit = opts.limit or 20, offset = opts.offset }
  if not tasks then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, tasks, function()
    local rows = {}
    for i, t in ipairs(tasks) do
      rows[i] = { t.id, t.status, t.num_results or 0, t.desired_num_results or "",
        task_util.when(t.created_at),
        output.first_words(t.query, 8, 48) }
    end
    output.table(ctx.out, { "ID", "STATUS", "HIGH-FIT", "WANTED", "CREATED", "QUERY" }, rows)
  end, true)
end

local JSON = { "json", doc = "print JSON instead of a table" }
local function with(first, more)
  local out = {}
  for _, o in ipairs(first) do out[#out + 1] = o end
  for _, o in ipairs(more) do out[#out + 1] = o end
  return out
end

M.commands = {
  discover = {
    usage = "discover QUERY [--results N] [--criterion key=name:text ...] [--wait] [--json]",
    run = create, requires = DISCOVER,
    summary =
    "start a Deep Search for companies matching QUERY; print its id (or wait for the results)",
    description =
      "Each result is graded 1-5 on every criterion; high-fit means at least 75% of the " ..
      "criteria\n" ..
      "graded 4 or 5. Without --criterion the service generates criteria from the query.\n" ..
      "Sub-commands: discover get | wait | results | resume | list (deepresearch help discover " ..
        "results).",
    options = with({
      { "results", value = "N", number = true, integer = true,
      doc = "how many results to find (1..250, default 100)" },
      { "criterion", value = "key=name:text", multi = true,
      doc = "a grading criterion (repeat for more)" },
      { "wait", doc = "wait with live progress, then print the results table" },
      { "json", doc = "print the task (with --wait: and its results) as JSON" },
    }, WAIT_OPTS),
    examples =
      "  deepresearch discover \"B2B freight-visibility software vendors in Europe\" --results " ..
      "25 \\\n" ..
      "    --criterion size=Mid-market:\"Has between 50 and 1000 employees\" --wait",
  },
  ["discover get"] = {
    usage = "discover get ID [--json]", run = get, requires = DISCOVER,
    summary = "show a Deep Search task: status and counters", options = { JSON },
  },
  ["discover wait"] = {
    usage = "discover wait ID [options]", run = wait, requires = DISCOVER,
    summary = "wait for a Deep Search task with live progress, then print its results",
    options = with(WAIT_OPTS, { JSON }),
  },
  ["discover results"] = {
    usage = "discover results ID [--all] [--limit N] [--offset N] [--json]", run = results,
    requires = DISCOVER,
    summary = "results by relevance: company, website, relevance, high-fit",
    options = {
      { "all", doc = "every result, page after page" },
      args.limit_option("results to show: 1 to 100 (default 20)", 100),
      { "offset", value = "N", number = true, integer = true, doc = "skip the first N results" },
      JSON,
    },
  },
  ["discover resume"] = {
    usage = "discover resume ID [--more N] [--wait]", run = resume, requires = DISCOVER,
    summary = "ask a Deep Search task for more results",
    options = with({
      { "more", value = "N", number = true, integer = true,
      doc = "how many new results (0..250, default 25)" },
      { "wait", doc = "wait for them, then print the results table" },
      JSON,
    }, WAIT_OPTS),
  },
  ["discover list"] = {
    usage = "discover list [--limit N] [--offset N] [--json]", run = list, requires = DISCOVER,
    summary = "your Deep Search tasks",
    options = {
      args.limit_option("tasks to show: 1 to 100 (default 20)", 100),
      { "offset", value = "N", number = true, integer = true, doc = "skip the first N tasks" },
      JSON,
    },
  },
}

return M

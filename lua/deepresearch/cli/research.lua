-- Research commands: run, create, get, wait, list, report, cancel (Extruct or --provider valyu).
local input = require "deepresearch.cli.input"
local output = require "deepresearch.cli.output"
local adapters = require "deepresearch.cli.task"
local checkpoint = require "deepresearch.cli.checkpoint"
local providers = require "deepresearch.providers"
local history = require "deepresearch.cli.history"
local ids = require "deepresearch.cli.ids"

local M = {}

local STYLES = { "footnotes", "inline", "plain" }

-- The modes the registered providers offer (descriptor.mode_order, with prices for the help);
-- their aliases (lite) are accepted too. nil choices when no provider has modes.
local function modes()
  local shown, accepted, seen, owners = {}, {}, {}, {}
  for _, name in ipairs(providers.names()) do
    local d = providers.get(name)
    if d.mode_order then owners[#owners + 1] = "--provider " .. name end
    for _, m in ipairs(d.mode_order or {}) do
      if not seen[m] then
        local price = d.modes and d.modes[m] and d.modes[m].price
        local notes = { price and string.format("$%.2f", price) or nil,
          m == d.default_mode and "default" or nil }
        shown[#shown + 1] = m .. (#notes > 0 and (" (" .. table.concat(notes, ", ") .. ")") or "")
        accepted[#accepted + 1], seen[m] = m, true
      end
    end
    for alias in pairs(d.mode_aliases or {}) do
      if not seen[alias] then accepted[#accepted + 1], seen[alias] = alias, true end
    end
  end
  if #accepted == 0 then return nil, "the research mode" end
  return accepted, table.concat(shown, ", ") .. "; " .. table.concat(owners, ", ")
end
local MODES, MODES_DOC = modes()

local O = {
  file = { "file", short = "f", value = "FILE", doc = "read the brief from FILE ('-' for stdin)" },
  depth = { "depth", value = "LEVEL", choices = { "medium", "high", "xhigh" },
    doc = "medium (25 agents, default), high (50) or xhigh (75); Extruct" },
  mode = { "mode", value = "MODE", choices = MODES, doc = MODES_DOC },
  checkpoint = { "checkpoint", value = "TYPE", multi = true, choices = checkpoint.TYPES,
    doc = "stop for your input at TYPE (repeatable): planning_questions, plan_review, " ..
      "source_review or outline_review; --provider valyu (answered on a terminal, by --yes, " ..
      "or exit 5)" },
  schema = { "schema", value = "FILE",
    doc = "structured output: a JSON Schema file, or a .lua file returning a " ..
    "dr.schema value" },
  strict = { "strict",
  doc = "stop (exit 2) when the brief linter finds warnings, not only errors" },
  json = { "json", doc = "print the final task as JSON instead of the report" },
  timeout = { "timeout", value = "S", number = true,
    doc = "stop waiting after S seconds (exit 3; the task " ..
    "keeps running). Default 7200, or longer for a slow mode (Valyu max: 16200)" },
  interval = { "interval", value = "S", number = true, positive = true,
    doc = "first poll delay in seconds (default 2; grows x1.5 per poll)" },
  max_interval = { "max-interval", value = "S", number = true, positive = true,
    doc = "longest delay between polls (default 30)" },
  style = { "style", value = "STYLE", choices = STYLES,
    doc = "report citations: footnotes (default), inline " ..
    "or plain" },
}

local function ad_of(ctx) return adapters.for_provider(ctx:provider()) end

-- Flags that belong to some providers only (descriptor.cli.flags: flag -> what to take instead).
local function provider_check(ctx, opts)
  local mine = ad_of(ctx).descriptor.cli.flags
  for _, name in ipairs(providers.names()) do
    for flag in pairs(providers.get(name).cli.flags) do
      if opts[flag] ~= nil and not mine[flag] then
        local owner = name == providers.DEFAULT and providers.get(name).cli.name
          or ("--provider " .. name)
        local instead = next(mine) and ("; " .. mine[next(mine)]) or ""
        return ctx:usage("--" .. flag .. " is for " .. owner .. instead)
      end
    end
  end
  return nil
end

-- Prints a finished task: the rendered report, or its JSON.
local function print_result(ctx, ad, task, opts)
  if opts.json then
    ctx.out:write(output.json(task), "\n")
    return 0
  end
  local text, err = ad.render(task, opts.style)
  if not text then return ctx:fail(err) end
  ctx.out:write(text, text:sub(-1) == "\n" and "" or "\n")
  return 0
end

-- Waits with live progress, then prints the result. first = the task as created (optional).
local function wait_and_print(ctx, client, id, opts, first)
  local ad = ad_of(ctx)
  ctx.waiting = id
  local p = ctx:progress(ad.describe, ad.label, ad.descriptor.cli.age_from)
  p:begin(first)
  local ops = ad.descriptor.operations or {}
  local task, err = client:wait(id, {
    on_progress = function(t) p:update(t) end, timeout = opts.timeout, interval = opts.interval,
    max_interval = opts.max_interval, task = first,
    -- Checkpoints: --yes answers, a terminal asks, else the wait ends (exit 5).
    on_input = ops.respond and checkpoint.on_input(ctx) or nil,
  })
  ctx:done_waiting()
  if not task then
    history.finished(ctx, id, nil, err)
    if err.code == "input_required" then return checkpoint.stopped(ctx, id, err) end
    if opts.json and err.task and (err.code == "task_failed" or err.code == "cancelled") then
      ctx.out:write(output.json(err.task), "\n")
    end
    return ctx:fail(err)
  end
  local code = print_result(ctx, ad, task, opts)
  history.finished(ctx, id, task, nil, code == 0)
  require("deepresearch.cli.multi").print_cost(ctx, ad.name, task) -- dr.result(task).cost
  return code
end
M.wait_and_print = wait_and_print

-- " (mode fast, $0.10)" after "created task ID", from the descriptor's modes; "" without.
local function mode_note(d, task, opts)
  local m = task.mode or opts.mode or d.default_mode
  if not (d.modes and m) then return "" end
  local info = d.modes[(d.mode_aliases or {})[m] or m]
  local price = info and info.price
  return string.format(" (mode %s, %s)", tostring(m),
    price and string.format("$%.2f", price) or "price not published")
end

-- Reads, lints and creates. Returns client, task or nil, exit code.
local function create_task(ctx, opts, words)
  local bad = provider_check(ctx, opts)
  if bad then return nil, bad end
  local ad = ad_of(ctx)
  local text, schema = input.read_brief(ctx, opts, words, ad.max_brief)
  if not text then return nil, schema end -- (schema: the usage exit code)
  local client, code = ctx:client()
  if not client then return nil, code end
  history.begin(ctx, text)
  ctx:begin_create(ad.id)
  local task, err = ad.create(client, text, opts, schema)
  if not task then
    history.refused(ctx, err)
    ctx:end_create()
    return nil, ctx:fail(err)
  end
  history.created(ctx, task)
  if task.reconciled then
    -- The create's answer never came; the client found the task it made by listing.
    ctx:created()
    ctx:note("deepresearch: the create's answer was lost; found task %s by listing",
      tostring(ad.id(task)))
  end
  return client, task
end

local function run(ctx, opts, words)
  local client, task = create_task(ctx, opts, words)
  if not client then return task end
  local id = ad_of(ctx).id(task)
  ctx.waiting = id
  ctx:end_create()
  ctx:note("deepresearch: created task %s%s", id, mode_note(ad_of(ctx).descriptor, task, opts))
  return wait_and_print(ctx, client, id, opts, task)
end

local function create(ctx, opts, words)
  local client, task = create_task(ctx, opts, words)
  if not client then return task end
  ctx:created()
  local code = output.json_or(ctx.out, opts.json, task,
    function() ctx.out:write(ad_of(ctx).id(task), "\n") end)
  ctx:end_create()
  return code
end

local function get(ctx, opts, words)
  local id, client = ids.id_and_client(ctx, words)
  if not id then return client end
  local task, err = client:get(id)
  if not task then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, task, function() output.fields(ctx.out,
    ad_of(ctx).summary(task)) end)
end

local function wait(ctx, opts, words)
  if #words > 1 then return ids.wait_many(ctx, words, opts) end
  local id, client = ids.id_and_client(ctx, words)
  if not id then return client end
  return wait_and_print(ctx, client, id, opts)
end

local function list(ctx, opts, words)
  if #words > 0 then return ctx:usage("list takes no arguments, got '" .. words[1] .. "'") end
  local d = ad_of(ctx).descriptor
  if not require("deepresearch.providers").has_list(d) then
    return ctx:usage(string.format("%s cannot list tasks (its API has no list); keep the id " ..
      "that create prints, and use get ID or wait ID", d.cli.name))
  end
  local no_offset = ad_of(ctx).descriptor.cli.no_offset
  if no_offset and opts.offset then return ctx:usage(no_offset) end
  local client, code = ctx:client()
  if not client then return code end
  local ad = ad_of(ctx)
  local tasks, err = ad.list(client, opts)
  if not tasks then return ctx:fail(err) end
  tasks = ids.filter_status(tasks, opts.status, ctx:provider())
  return output.json_or(ctx.out, opts.json, tasks, function()
    if #tasks == 0 then return ctx.out:write("no tasks\n") end
    local rows = {}
    for i, t in ipairs(tasks) do rows[i] = ad.list_row(t) end
    ids.list_table(ctx.out, ad, tasks, rows)
  end, true)
end

local function report(ctx, opts, words)
  if opts.pdf then return require("deepresearch.cli.assets").report_pdf(ctx, opts, words) end
  local id, client = ids.id_and_client(ctx, words)
  if not id then return client end
  local task, err = client:get(id)
  if not task then return ctx:fail(err) end
  local dr = require "deepresearch"
  local state = dr.state(task)
  local ad = ad_of(ctx)
  if state == "done" then -- --format, -o, --check-links: cli/report_out.lua
    return require("deepresearch.cli.report_out").print(ctx, ad, task, opts, print_result)
  end
  if state == "failed" or state == "cancelled" then
    ctx.err:write(string.format("deepresearch: task %s %s: %s\n", id,
      state == "failed" and "failed" or
      "was cancelled", tostring(ad.failure(task) or "no reason given")))
    return 1
  end
  ctx.err:write(string.format("deepresearch: task %s has no report yet (status %s); wait for it " ..
    "with: %s\n",
    id, tostring(task.status), ctx:resume_command(id)))
  return 1
end

local function cancel(ctx, _, words)
  local id, client = ids.id_and_client(ctx, words)
  if not id then return client end
  -- A task that had ended before the cancel: nothing was cancelled (exit 1, as report of an
  -- unfinished task). OpenAI answers a cancel of an ended response with it unchanged (200):
  -- "cancelled: ID" for a completed task was false.
  local function ended(task)
    local state = providers.state(task)
    if state ~= "done" and state ~= "failed" then return nil end
    ctx.err:write(string.format("deepresearch: task %s had already ended (%s); nothing was " ..
      "cancelled\n", id, require("deepresearch.base.json").shown(task.status, state)))
    return 1
  end
  -- Read first: OpenAI and Perplexity answer a cancel of a cancelled task 200 with it unchanged,
  -- so only the task's state before the cancel tells "cancelled" from "already cancelled". A
  -- read that fails (404, network) leaves the answer to the cancel itself.
  local before = client:get(id)
  if before and providers.state(before) == "cancelled" then
    ctx.out:write("already cancelled: ", id, "\n")
    return 0
  end
  if before and ended(before) then return 1 end
  local res, err = client:cancel(id)
  if not res and err.status and err.status >= 400 and err.status < 500 then
    -- Refused: a task that is cancelled already is what the user asked for (exit 0).
    local task = client:get(id)
    if task and providers.state(task) == "cancelled" then
      ctx.out:write("already cancelled: ", id, "\n")
      return 0
    end
    if task and ended(task) then return 1 end
  end
  if not res then return ctx:fail(err) end
  if type(res) == "table" and ended(res) then return 1 end
  ctx.out:write(tostring(res.message or "cancelled"), ": ", id, "\n")
  return 0
end

local WAIT_OPTS = { O.timeout, O.interval, O.max_interval, O.json, O.style }
local function with(first, more)
  local out = {}
  for _, o in ipairs(first) do out[#out + 1] = o end
  for _, o in ipairs(more) do out[#out + 1] = o end
  return out
end

M.commands = {
  run = {
    usage = "run [BRIEF | -f FILE | -] [options]", run = run,
    summary = "lint a brief, create the task, wait with live progress, print the cited report",
    options = with(with({ O.file, O.depth, O.mode, O.checkpoint, O.schema, O.strict }, WAIT_OPTS),
      require("deepresearch.cli.multi").OPTIONS), -- across providers (cli/multi.lua)
    description =
      "The brief is the words after `run` (quote it), a file (-f FILE) or stdin (-).\n" ..
      "Lint findings go to stderr; errors stop the run (exit 2), warnings too with --strict.\n" ..
      "Progress goes to stderr, the report (or --json) to stdout: `deepresearch run -f b.txt > " ..
        "report.md`.\n" ..
      "Ctrl-C stops waiting (exit 130); the task keeps running: `deepresearch wait ID` " ..
        "resumes.\n" ..
      "Ctrl-C during the create first waits up to 5 s for its answer, then prints the task id\n" ..
      "(or, when the answer cannot be had, the `deepresearch list` command to check for it).",
    examples = "  deepresearch run -f brief.txt --depth high > report.md\n" ..
      "  deepresearch run --schema company.json --json - < brief.txt\n" ..
      "  deepresearch --provider valyu run --mode fast \"Research Flexport (flexport.com) ...\"",
  },
  create = {
    usage = "create [BRIEF | -f FILE | -] [options]", run = create,
    summary = "lint a brief and create the task; print its id",
    options = { O.file, O.depth, O.mode, O.checkpoint, O.schema, O.strict,
      { "json", doc = "print the created task as JSON instead of its id" } },
    examples = "  id=$(deepresearch create -f brief.txt) && deepresearch wait \"$id\" > report.md",
  },
  get = {
    usage = "get ID [--json]", run = get,
    summary = "show a task: status, counters, failure reason",
    options = { { "json", doc = "print the task as JSON" } },
  },
  wait = {
    usage = "wait ID [ID ...] [options]", run = wait,
    summary = "wait for a task with live progress, then print its report",
    options = WAIT_OPTS,
  },
  list = {
    usage = "list [--limit N] [--offset N] [--all] [--status STATE] [--json]", run = list,
    summary = "your tasks, newest first: id, status, depth, agents, sources, created, brief",
    options = {
      { "limit", value = "N", number = true, min = 1, max = 100,
      doc = "tasks per page: 1 to 100 (default 20)" },
      { "offset", value = "N", number = true, integer = true,
      doc = "skip the N newest tasks (Extruct)" },
      { "all", doc = "every task, fetching page after page" },
      { "status", value = "STATE", choices = ids.STATUS_NAMES,
        doc = "only tasks running (or queued), done, failed or cancelled, among those fetched" },
      { "json", doc = "print the tasks as a JSON array" },
    },
  },
  report = {
    usage = "report ID [--style footnotes|inline|plain] [--format md|html|json] [-o FILE] " ..
      "[--check-links] [--json] [--pdf FILE]", run = report,
    summary = "print a finished task's report with its citations resolved",
    options = with({ O.style, { "json", doc = "print the task as JSON" },
      { "pdf", value = "FILE", doc = "save the report's PDF to FILE instead (--provider valyu)" } },
      require("deepresearch.cli.report_out").OPTIONS),
  },
  cancel = {
    usage = "cancel ID", run = cancel, requires = { operation = "cancel" },
    summary =
    "cancel a queued or running task (--provider valyu; Extruct tasks cannot be cancelled)",
    options = {},
  },
}

return M

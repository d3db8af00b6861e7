-- Batch commands: batch create | add | get | tasks | cancel | list | wait, for a provider whose
-- client runs batches of research tasks (descriptor.operations.batch_create).
local args = require "deepresearch.cli.args"
local output = require "deepresearch.cli.output"
local task_util = require "deepresearch.cli.task"
local input = require "deepresearch.cli.input"
local json = require "deepresearch.base.json"

local M = {}

local BATCH = { operation = "batch_create" }
M.MAX_PER_ADD = 100 -- tasks per add request: longer lists go in several requests

local JSON = { "json", doc = "print JSON instead of a table" }
local WAIT_OPTS = {
  { "timeout", value = "S", number = true,
    doc = "stop waiting after S seconds (exit 3; the batch keeps running)" },
  { "interval", value = "S", number = true, positive = true,
    doc = "first poll delay in seconds (default 2)" },
  { "max-interval", value = "S", number = true, positive = true,
    doc = "longest delay between polls (default 30)" },
  JSON,
}

local function counts_of(b)
  return type(b.counts) == "table" and b.counts or {}
end

-- "3/5 done, 1 failed": finished tasks out of all, and the failures.
local function counts_text(b)
  local c = counts_of(b)
  local finished = (c.completed or 0) + (c.failed or 0) + (c.cancelled or 0)
  local parts = { string.format("%d/%d done", finished, c.total or 0) }
  for _, k in ipairs({ "running", "queued", "failed", "cancelled" }) do
    if (c[k] or 0) > 0 then parts[#parts + 1] = string.format("%d %s", c[k], k) end
  end
  return table.concat(parts, ", ")
end
M.counts_text = counts_text

local function cost_text(v)
  return type(v) == "number" and string.format("$%.2f", v) or nil
end

local function summary(ctx, b)
  local c = counts_of(b)
  output.fields(ctx.out, {
    { "id", b.batch_id }, { "name", b.name }, { "status", b.status }, { "mode", b.mode },
    { "tasks", c.total }, { "queued", c.queued }, { "running", c.running },
    { "completed", c.completed }, { "failed", c.failed }, { "cancelled", c.cancelled },
    { "cost", cost_text(b.cost) }, { "created", task_util.when(b.created_at) },
    { "completed at", task_util.when(b.completed_at) }, { "webhook", b.webhook_url },
  })
end

local function create(ctx, opts, words)
  if #words > 0 then
    return ctx:usage("batch create takes no arguments (add tasks with batch add)")
  end
  local client, code = ctx:client()
  if not client then return code end
  local b, err = client:batch_create{ name = opts.name, mode = opts.mode,
    webhook_url = opts.webhook_url }
  if not b then return ctx:fail(err) end
  if opts.json then
    ctx.out:write(output.json(b), "\n")
    return 0
  end
  ctx.out:write(b.batch_id, "\n")
  -- Returned once, at create: the only chance to keep it.
  if b.webhook_secret then
    ctx.err:write("deepresearch: webhook secret (shown once, keep it): ", b.webhook_secret, "\n")
  end
  return 0
end

-- One task per non-empty line; a line starting with '{' is a JSON object (query, id, ...).
local function tasks_from_text(text, name)
  local tasks = {}
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    line = line:gsub("\r$", ""):gsub("^%s+", ""):gsub("%s+$", "")
    if line:sub(1, 1) == "{" then
      local ok, t = pcall(json.decode, line)
      if not ok or type(t) ~= "table" then
        return nil, string.format("%s:%d: not a JSON object: %s", name, n, tostring(t))
      end
      tasks[#tasks + 1] = t
    elseif line ~= "" then
      tasks[#tasks + 1] = line
    end
  end
  return tasks
end
M.tasks_from_text = tasks_from_text

local function read_tasks(ctx, opts, words)
  if opts.file and #words > 0 then
    return nil, "give the briefs either as arguments or with -f FILE, not both"
  end
  if opts.file or (#words == 1 and words[1] == "-") then
    local path = opts.file or "-"
    local text, err = input.file_text(ctx, path)
    if not text then return nil, err end
    return tasks_from_text(text, path == "-" and "<stdin>" or path)
  end
  if #words == 0 then
    return nil, "no briefs: give them as arguments (one per argument), with -f FILE (one per " ..
      "line) or '-' to read stdin"
  end
  return words
end

local function added_rows(answers)
  local rows = {}
  for _, a in ipairs(answers) do
    for _, t in ipairs(type(a.tasks) == "table" and a.tasks or {}) do
      rows[#rows + 1] = { t.deepresearch_id or "", t.status or "", t.task_id or "" }
    end
  end
  return rows
end

-- Sends the tasks, at most MAX_PER_ADD per request; each request is atomic on the server, so a
-- failure leaves the earlier requests' tasks added and the later ones not sent.
local function add_all(ctx, client, id, tasks)
  local answers, done = {}, 0
  while done < #tasks do
    local chunk = {}
    for i = done + 1, math.min(#tasks, done + M.MAX_PER_ADD) do chunk[#chunk + 1] = tasks[i] end
    local a, err = client:batch_add(id, chunk)
    if not a then
      if done > 0 then
        ctx.err:write(string.format("deepresearch: %d of %d tasks were added before this " ..
          "error; the rest were not sent\n", done, #tasks))
      end
      return nil, err
    end
    answers[#answers + 1] = a
    done = done + #chunk
  end
  return answers
end

local function add(ctx, opts, words)
  local id = table.remove(words, 1)
  if not id then return ctx:usage("missing batch ID") end
  local tasks, why = read_tasks(ctx, opts, words)
  if not tasks then return ctx:usage(why) end
  if #tasks == 0 then return ctx:usage("no briefs in the input") end
  local client, code = ctx:client()
  if not client then return code end
  local ok, answers, err = pcall(add_all, ctx, client, id, tasks)
  if not ok then return ctx:usage((tostring(answers):gsub("^.-:%d+: ", ""))) end
  if not answers then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, answers, function()
    output.table(ctx.out, { "ID", "STATUS", "TASK ID" }, added_rows(answers))
  end, true)
end

local function get(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local b, err = client:batch_get(id)
  if not b then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, b, function() summary(ctx, b) end)
end

local function tasks(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local rows, list = {}, {}
  local page = opts.limit and math.min(opts.limit, 100) or 100
  for t, err in client:batch_tasks(id, { status = opts.status, limit = page }) do
    if not t then return ctx:fail(err) end
    list[#list + 1] = t
    rows[#rows + 1] = { t.deepresearch_id or "", t.status or "", t.batch_task_id or "",
      output.first_words(t.query, 8, 48) }
    if opts.limit and #list >= opts.limit then break end
  end
  return output.json_or(ctx.out, opts.json, list, function()
    output.table(ctx.out, { "ID", "STATUS", "TASK ID", "QUERY" }, rows)
  end, true)
end

local function cancel(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local ack, err = client:batch_cancel(id)
  if not ack then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, ack, function()
    ctx.out:write(string.format("batch %s cancelled (%s tasks stopped)\n", id,
      tostring(ack.cancelled_count or "?")))
  end)
end

local function list(ctx, opts, words)
  if #words > 0 then return ctx:usage("batch list takes no arguments") end
  local client, code = ctx:client()
  if not client then return code end
  local batches, err = client:batch_list{ limit = opts.limit or 20 }
  if not batches then return ctx:fail(err) end
  return output.json_or(ctx.out, opts.json, batches, function()
    local rows = {}
    for i, b in ipairs(batches) do
      rows[i] = { b.batch_id or "", b.status or "", b.mode or "", counts_text(b),
        task_util.when(b.created_at) or "", output.clip(b.name or "", 40) }
    end
    output.table(ctx.out, { "ID", "STATUS", "MODE", "TASKS", "CREATED", "NAME" }, rows)
  end, true)
end

-- What the progress line shows for a batch.
local function describe(b)
  local c = counts_of(b)
  return { id = b.batch_id, state = tostring(b.status), parts = { counts_text(b) },
    total = c.total, done = (c.completed or 0) + (c.failed or 0) + (c.cancelled or 0) }
end

local function wait(ctx, opts, words)
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  ctx.waiting, ctx.waiting_cmd = id, "batch wait"
  local p = ctx:progress(describe, "batch")
  p:begin() -- "waiting for first answer…" until a poll answers (not a blank line)
  local b, err = client:batch_wait(id, { on_progress = function(x) p:update(x) end,
    timeout = opts.timeout, interval = opts.interval, max_interval = opts.max_interval })
  ctx:done_waiting()
  if not b then return ctx:fail(err) end
  output.json_or(ctx.out, opts.json, b, function() summary(ctx, b) end)
  local failed = counts_of(b).failed or 0
  if failed > 0 then
    ctx.err:write(string.format("deepresearch: %d of %d tasks failed (%s)\n", failed,
      counts_of(b).total or 0, ctx:command_line("batch tasks " .. id .. " --status failed")))
    return 1
  end
  return 0
end

local DESCRIPTION = "A batch runs many research tasks with one mode, output formats and search\n" ..
  "settings. Create it, add tasks (1..100 per request; each request is atomic and reserves\n" ..
  "their cost), then wait. Sub-commands: batch create | add | get | tasks | cancel | list |\n" ..
  "wait (deepresearch help batch add)."

M.commands = {
  ["batch create"] = {
    usage = "batch create [--name NAME] [--mode MODE] [--webhook-url URL] [--json]",
    run = create, requires = BATCH,
    summary = "create an empty batch of research tasks; print its id",
    description = DESCRIPTION .. "\nA lost answer is looked up by a nonce in the batch's " ..
      "metadata; an empty batch costs nothing.",
    options = {
      { "name", value = "NAME", doc = "the batch's name" },
      { "mode", value = "MODE", doc = "the research mode of every task (default: standard)" },
      { "webhook-url", value = "URL", doc = "POSTed to when the batch ends (https)" },
      JSON,
    },
    examples = "  id=$(deepresearch --provider valyu batch create --name q3-accounts --mode fast)",
  },
  ["batch add"] = {
    usage = "batch add ID [BRIEF ...] [-f FILE] [--json]", run = add, requires = BATCH,
    summary = "add research tasks to a batch (each BRIEF argument is one task)",
    description = "With -f FILE (or '-' for stdin) each non-empty line is one task: a brief, " ..
      "or a JSON object\n" ..
      "{\"query\": ..., \"id\": ..., \"research_strategy\": ..., \"report_format\": ..., " ..
      "\"urls\": [...]}.\n" ..
      "Every task gets an id (yours, or one the client makes) so that a lost answer is checked\n" ..
      "against the batch's task list instead of adding (and paying) twice. More than 100 tasks\n" ..
      "go in several requests.",
    options = {
      { "file", short = "f", value = "FILE", doc = "one task per line ('-' reads stdin)" },
      JSON,
    },
    examples = "  deepresearch --provider valyu batch add $id \"Research Acme\" " ..
      "\"Research Globex\"\n" ..
      "  deepresearch --provider valyu batch add $id -f briefs.txt",
  },
  ["batch get"] = {
    usage = "batch get ID [--json]", run = get, requires = BATCH,
    summary = "show a batch: status, task counts, cost", options = { JSON },
  },
  ["batch tasks"] = {
    usage = "batch tasks ID [--status S] [--limit N] [--json]", run = tasks, requires = BATCH,
    summary = "a batch's tasks: id, status, your task id, query",
    options = {
      { "status", value = "S", choices = { "queued", "running", "completed", "failed",
        "cancelled" }, doc = "only tasks in status S" },
      args.limit_option("at most N tasks: 1 or more (default all)"),
      JSON,
    },
  },
  ["batch cancel"] = {
    usage = "batch cancel ID [--json]", run = cancel, requires = BATCH,
    summary = "cancel an open or processing batch and its unfinished tasks", options = { JSON },
  },
  ["batch list"] = {
    usage = "batch list [--limit N] [--json]", run = list, requires = BATCH,
    summary = "your batches, newest first",
    options = {
      args.limit_option("batches to show: 1 to 100 (default 20)", 100),
      JSON,
    },
  },
  ["batch wait"] = {
    usage = "batch wait ID [options]", run = wait, requires = BATCH,
    summary = "wait for a batch with live counts, then show it (exit 1 if a task failed)",
    options = WAIT_OPTS,
  },
}

return M

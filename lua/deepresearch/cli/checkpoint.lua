-- Checkpoints (a task waiting for a human) in the command: the prompts on a terminal, --yes,
-- the exit-5 explanation with the exact `respond` command to run, and the `respond` command.
-- Checkpoint data is read loosely: the real API and older simulators differ in shape (a domain
-- is a string or an object, an outline a string or a list), and a wrong guess must not raise.
local json = require "deepresearch.base.json"
local reading = require "deepresearch.checkpoint"
local output = require "deepresearch.cli.output"
local progress = require "deepresearch.cli.progress"

local M = {}

-- What a checkpoint asks, read loosely (deepresearch.checkpoint, shared with the editor).
M.TYPES = reading.TYPES
M.NO_PREFERENCE = reading.NO_PREFERENCE
M.proposed = reading.proposed

local function exit_code(name)
  return require("deepresearch.cli").EXIT[name]
end

local function data_of(interaction)
  return type(interaction) == "table" and type(interaction.data) == "table" and interaction.data
    or {}
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

local questions, domains, proposal_text = reading.questions, reading.domains, reading.proposal
local type_of, label = reading.type_of, reading.label

-- A response to edit, for the printed respond command.
local function template(interaction)
  return reading.proposed(interaction, "YOUR ANSWER")
end

-- What the response may hold, per type (shown with the respond command).
local SHAPES = {
  planning_questions = '{"answers": [{"question": "...", "answer": "..."}, ...]}',
  plan_review = '{"approved": true|false, "modifications": "optional changes"}',
  outline_review = '{"approved": true|false, "modifications": "optional changes"}',
  source_review = '{"included_domains": ["a.com"], "excluded_domains": ["b.com"]}, ' ..
    'both [] to accept the AI picks',
}

--- Writes what the checkpoint asks (questions, plan, outline or domains) to a stream.
function M.show(stream, interaction)
  local t = type_of(interaction)
  if t == "planning_questions" then
    for i, q in ipairs(questions(interaction)) do
      stream:write(string.format("  %d. %s\n", i, q.question))
      if q.context then stream:write("     (", q.context, ")\n") end
    end
  elseif t == "plan_review" or t == "outline_review" then
    local text = proposal_text(interaction)
    stream:write("  ", (text:gsub("\n", "\n  ")), "\n")
  elseif t == "source_review" then
    for _, d in ipairs(domains(interaction)) do
      local facts = {}
      if type(d.count) == "number" then
        facts[#facts + 1] = progress.shown(d.count) .. (d.count == 1 and " source" or " sources")
      end
      if type(d.score) == "number" then
        facts[#facts + 1] = string.format("relevance %.2f", d.score)
      end
      stream:write(string.format("  %-8s %s%s\n", type(d.pick) == "string" and d.pick or "",
        d.domain, #facts > 0 and ("  (" .. table.concat(facts, ", ") .. ")") or ""))
    end
  else
    stream:write("  ", output.json(data_of(interaction)):gsub("\n", "\n  "), "\n")
  end
end

---------------------------------------------------------------------------------------------------
-- Asking on a terminal.

--- Whether the command may ask: stdin and stderr are terminals (DEEPRESEARCH_TTY=1|0 forces
-- both, as it does for the progress line).
function M.interactive(ctx)
  if ctx.stdin_tty == nil then
    local forced = os.getenv("DEEPRESEARCH_TTY")
    if forced == "1" or forced == "0" then
      ctx.stdin_tty = forced == "1"
    else
      local ok = os.execute("test -t 0")
      ctx.stdin_tty = ok == true or ok == 0
    end
  end
  return ctx.stdin_tty and ctx:stderr_tty()
end

-- One line from stdin after a prompt on stderr; nil at end of input.
local function ask(ctx, prompt)
  ctx.err:write(prompt)
  ctx.err:flush()
  local line = ctx.stdin:read("*l")
  if line == nil then
    ctx.err:write("\n")
    return nil
  end
  return (line:gsub("^%s+", ""):gsub("%s+$", ""))
end

local PROMPT = {}

function PROMPT.planning_questions(ctx, interaction)
  local answers = json.array()
  for i, q in ipairs(questions(interaction)) do
    ctx.err:write(q.question, "\n")
    if q.context then ctx.err:write("(", q.context, ")\n") end
    local a = ask(ctx, "> ")
    if a == nil then return nil end
    answers[i] = { question = q.question, answer = a ~= "" and a or M.NO_PREFERENCE }
  end
  return { answers = answers }
end

local function review(ctx, interaction)
  M.show(ctx.err, interaction)
  local yes = ask(ctx, "Approve? [Y/n] ")
  if yes == nil then return nil end
  local approved = not yes:lower():match("^n")
  local changes = ask(ctx, approved and "Anything to change (Enter for nothing)? "
    or "What should change? ")
  if changes == nil then return nil end
  return { approved = approved, modifications = changes ~= "" and changes or nil }
end
PROMPT.plan_review = review
PROMPT.outline_review = review

function PROMPT.source_review(ctx, interaction)
  M.show(ctx.err, interaction)
  ctx.err:write("Enter accepts the AI's picks; or type domains: +a.com to include, " ..
    "-b.com to exclude.\n")
  local line = ask(ctx, "> ")
  if line == nil then return nil end
  local inc, exc = json.array(), json.array()
  for word in line:gmatch("[^%s,]+") do
    local sign, domain = word:match("^([+-]?)(.+)$")
    if sign == "-" then exc[#exc + 1] = domain else inc[#inc + 1] = domain end
  end
  return { included_domains = inc, excluded_domains = exc }
end

-- A type the command does not know: show its data, take the response as a JSON object.
local function prompt_json(ctx, interaction)
  M.show(ctx.err, interaction)
  local line = ask(ctx, "Response as one JSON object (Enter to stop waiting): ")
  if line == nil or line == "" then return nil end
  local v = require("deepresearch").core.decode(line)
  if type(v) ~= "table" then
    ctx.err:write("deepresearch: not a JSON object\n")
    return nil
  end
  return v
end

local function prompt(ctx, task, interaction)
  local p = ctx.current_progress
  if p then p:abort() end -- the questions start on a clean line
  local t = type_of(interaction)
  ctx.err:write(string.format("deepresearch: task %s needs your input: %s\n",
    tostring(ctx.waiting or ""), label(interaction)))
  local response = (PROMPT[t] or prompt_json)(ctx, interaction, task)
  -- Until the next poll shows the task moving, the redrawn line says the answer went out.
  if response and p and p.info then p.info.state = "answered, resuming" end
  return response
end

--- The wait's on_input: --yes answers with the proposal, a terminal asks, else nil (the wait
-- ends with input_required and the command explains how to answer; see M.stopped).
function M.on_input(ctx)
  return function(task, interaction)
    if type(interaction) ~= "table" or interaction.interaction_id == nil then return nil end
    if ctx.g.yes then
      local r = M.proposed(interaction)
      if r then
        ctx:note("deepresearch: %s: accepted as proposed (--yes)",
          label(interaction))
        return r
      end
    end
    if M.interactive(ctx) then return prompt(ctx, task, interaction) end
    return nil
  end
end

--- A wait ended at a checkpoint nobody answered: prints what it asks, the respond command to
-- run and how to go on waiting. Returns exit code 5.
function M.stopped(ctx, id, err)
  local interaction = err.interaction
  local t = type_of(interaction)
  local status = type(err.task) == "table" and err.task.status or nil
  ctx.err:write(string.format("deepresearch: task %s needs your input (%s%s)%s\n", id,
    tostring(t or "checkpoint"), status and (", status " .. tostring(status)) or "",
    M.interactive(ctx) and "" or " and there is no terminal to ask on"))
  if interaction then M.show(ctx.err, interaction) end
  local iid = type(interaction) == "table" and interaction.interaction_id or nil
  local response = interaction and template(interaction)
  if iid and response then
    ctx.err:write("Answer with:\n  ", ctx:command_line("respond " .. id .. " " ..
      tostring(iid) .. " " .. shell_quote(json.encode(response))), "\n")
    if SHAPES[t] then ctx.err:write("  (the response: ", SHAPES[t], ")\n") end
  else
    ctx.err:write("Answer with:\n  ", ctx:command_line("respond " .. id ..
      " INTERACTION_ID 'JSON'"), "\n  (see: " .. ctx:command_line("get " .. id .. " --json") ..
      ")\n")
  end
  ctx.err:write("then go on waiting with:\n  ", ctx:resume_command(id), "\n",
    "(or add --wait to the respond command; --approve instead of the JSON accepts the\n" ..
    "proposal; --yes on run and wait accepts every checkpoint's proposal)\n")
  return exit_code("input_required")
end

---------------------------------------------------------------------------------------------------
-- The respond command.

local function read_response(ctx, opts, text)
  local raw = text
  if text == "-" or opts.file == "-" then
    raw = ctx.stdin:read("*a")
  elseif opts.file then
    local f, err = io.open(opts.file, "rb")
    if not f then return nil, "cannot read response: " .. tostring(err) end
    raw = f:read("*a")
    f:close()
  end
  local v, derr = require("deepresearch").core.decode(raw or "")
  if type(v) ~= "table" or json.is_sequence(v) and next(v) ~= nil then
    return nil, "the response must be a JSON object" ..
      (v == nil and (": " .. tostring(derr)) or "")
  end
  return v
end

-- ID [INTERACTION_ID] [JSON | -]: id, interaction id, response text; or nil, usage message.
local function split_words(words)
  local id, iid, text = words[1], nil, nil
  if not id then return nil, "missing task ID" end
  for i = 2, #words do
    local w = words[i]
    if w == "-" or w:match("^%s*[{%[]") then
      if text then return nil, "give one response, got two" end
      text = w
    elseif iid == nil and text == nil then
      iid = w
    else
      return nil, "unexpected argument '" .. w .. "'"
    end
  end
  return id, iid, text
end

-- The interaction to answer: the task's current one (its type validates the response), or
-- the id the user named. interaction (table or id) or nil, exit code.
local function target(ctx, client, id, iid)
  local task, err = client:get(id)
  if not task then return nil, ctx:fail(err) end
  local current = type(task.interaction) == "table" and task.interaction or nil
  if current and (iid == nil or current.interaction_id == iid) then return current end
  if iid then return iid end
  ctx.err:write(string.format("deepresearch: task %s is not waiting for input (status %s)\n", id,
    tostring(task.status)))
  return nil, exit_code("failed")
end

local function respond(ctx, opts, words)
  local id, iid, text = split_words(words)
  if not id then return ctx:usage(iid) end
  local ways = (text and 1 or 0) + (opts.approve and 1 or 0) + (opts.file and 1 or 0)
  if ways == 0 then return ctx:usage("no response: give JSON, --approve or --file FILE") end
  if ways > 1 then return ctx:usage("give the response one way: JSON, --approve or --file FILE") end
  local response, why
  if not opts.approve then
    response, why = read_response(ctx, opts, text)
    if not response then return ctx:usage(why) end
  end
  local client, code = ctx:client()
  if not client then return code end
  local interaction, c2 = target(ctx, client, id, iid)
  if not interaction then return c2 end
  if opts.approve then
    response = M.proposed(interaction)
    if not response then
      return ctx:usage("--approve needs a checkpoint of a known type; give the response as JSON")
    end
  end
  local ack, err = client:respond(id, interaction, response)
  if not ack then return ctx:fail(err) end
  if opts.wait then
    ctx:note("deepresearch: answered; task %s is %s", id, tostring(ack.status or "running"))
    return require("deepresearch.cli.research").wait_and_print(ctx, client, id, opts)
  end
  return output.json_or(ctx.out, opts.json, ack, function()
    ctx.out:write("answered: task ", id, " is ", tostring(ack.status or "running"), "\n")
    ctx:note("deepresearch: wait for it with: %s", ctx:resume_command(id))
  end)
end

M.commands = {
  respond = {
    usage = "respond ID [INTERACTION_ID] [JSON | - | --file FILE | --approve] [--wait]",
    run = respond, requires = { operation = "respond" },
    summary = "answer a task's checkpoint (questions, plan, sources, outline); --provider valyu",
    options = {
      { "approve", doc = "accept the proposal: approve the plan or outline, keep the AI's " ..
        "source picks, leave questions to the agent" },
      { "file", short = "f", value = "FILE",
        doc = "read the response (JSON) from FILE ('-': stdin)" },
      { "wait", doc = "then wait for the task (asking again at the next checkpoint)" },
      { "json", doc = "print the server's answer as JSON (with --wait: the final task)" },
      { "timeout", value = "S", number = true, doc = "with --wait: stop waiting after S seconds" },
      { "interval", value = "S", number = true, positive = true, doc = "with --wait: first poll " ..
        "delay" },
      { "max-interval", value = "S", number = true, positive = true,
        doc = "with --wait: longest delay between polls" },
      { "style", value = "STYLE", choices = { "footnotes", "inline", "plain" },
        doc = "with --wait: report citations" },
    },
    description =
      "The task's current checkpoint is read first (its type checks the response before it is\n" ..
      "sent; a bad response exits 2 and sends nothing). INTERACTION_ID defaults to it.\n" ..
      "Responses by checkpoint type:\n" ..
      "  planning_questions  " .. SHAPES.planning_questions .. "\n" ..
      "  plan_review         " .. SHAPES.plan_review .. "\n" ..
      "  outline_review      " .. SHAPES.outline_review .. "\n" ..
      "  source_review       " .. SHAPES.source_review .. "\n" ..
      "A checkpoint nobody answers pauses the task after 5 minutes; it can be answered any time.",
    examples = "  deepresearch --provider valyu respond ID --approve --wait > report.md\n" ..
      "  deepresearch --provider valyu respond ID '{\"approved\": false, " ..
      "\"modifications\": \"focus on Europe\"}'",
  },
}

return M

-- The `deepresearch` command: global options, dispatch, exit codes, Ctrl-C.
-- Results go to stdout, everything else (progress, findings, errors) to stderr.
local args = require "deepresearch.cli.args"
local help = require "deepresearch.cli.help"
local progress = require "deepresearch.cli.progress"

-- The journal's global flag (cli/history.lua): keep whole briefs, not their first 80 characters.
args.GLOBAL[#args.GLOBAL + 1] = { "journal-briefs",
  doc = "keep each created task's whole brief in the journal (default: its first 80 characters)" }

local M = {}

M.EXIT = { ok = 0, failed = 1, usage = 2, timeout = 3, api = 4, input_required = 5,
  interrupted = 130, internal = 70 }
local EXIT = M.EXIT

local providers = require "deepresearch.providers"

-- "a", "a or b", "a, b or c".
local function one_of(names)
  if #names < 2 then return names[1] or "" end
  return table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
end

-- Whether a provider's descriptor has what a command requires: a kind of task (requires.kind)
-- or an operation (requires.operation, from descriptor.operations).
local function provides(d, requires)
  if requires.kind and not d.kinds[requires.kind] then return false end
  if requires.operation and not (d.operations and d.operations[requires.operation]) then
    return false
  end
  return true
end

-- Every command, by name ("brief render" for a sub-command).
local COMMANDS = {}
for _, modname in ipairs({ "deepresearch.cli.research", "deepresearch.cli.discover",
  "deepresearch.cli.brief", "deepresearch.cli.checkpoint", "deepresearch.cli.batch",
  "deepresearch.cli.assets", "deepresearch.cli.history" }) do
  for name, cmd in pairs(require(modname).commands) do
    cmd.name = name
    COMMANDS[name] = cmd
  end
end
M.COMMANDS = COMMANDS
help.commands = COMMANDS

local Ctx = {}
Ctx.__index = Ctx

--- Prints a usage error and returns exit code 2.
function Ctx:usage(msg)
  local name = self.cmd and self.cmd.name
  self.err:write("deepresearch: ", msg, "\n", "Try 'deepresearch help", name and (" " ..
    name) or "", "'.\n")
  return EXIT.usage
end

--- A line on stderr unless --quiet.
function Ctx:note(fmt, ...)
  if not self.g.quiet then self.err:write(string.format(fmt, ...), "\n") end
end

function Ctx:provider()
  return self.g.provider or providers.DEFAULT
end

-- What to do about an API error, after its one-line message.
local HINTS = {
  plan_required = "this API needs a paid (Pro) plan",
  payment_failed = "the account's last payment failed; fix billing, then retry",
  forbidden = "the token may not read this task (it belongs to another organisation)",
}

local function hint(ctx, e)
  if e.required_credits or e.available_credits then
    return string.format("; this needs %s credits and %s are available (a lower depth may fit)",
      tostring(e.required_credits or "?"), tostring(e.available_credits or "?"))
  end
  if e.code == "unauthorized" then
    local p = require("deepresearch").providers[ctx:provider()]
    return "; check " .. p.token_env
  end
  -- An https:// URL on a port that speaks plain HTTP: curl's TLS handshake fails ("wrong
  -- version number") or hangs (an SSL connect timeout). The likely fix is the scheme.
  local http = require "deepresearch.runtime.http"
  local base = ctx.handle and http.state(ctx.handle).base_url or ctx.g.base_url
  local msg = tostring(e.message or ""):lower()
  if e.status == nil and type(base) == "string" and base:match("^https://") and
     (msg:find("ssl", 1, true) or msg:find("tls", 1, true) or msg:find("wrong version number",
       1, true)) then
    return "; if the server speaks plain HTTP, try " ..
      http.redact_url(base:gsub("^https://", "http://", 1)) .. " instead"
  end
  return HINTS[e.code] and ("; " .. HINTS[e.code]) or ""
end

--- Exit code for an error object (see docs/cli.md "Exit codes").
function M.exit_code(e)
  if e.code == "task_failed" or e.code == "cancelled" then return EXIT.failed end
  -- A checkpoint nobody answered: the task waits on the server for a `respond`.
  if e.code == "input_required" then return EXIT.input_required end
  -- The wait's own deadline (not a request timeout, which carries the attempts made).
  if e.code == "timeout" and e.attempts == nil then return EXIT.timeout end
  -- Refused before anything was sent: the input is wrong, not the service.
  if e.code == "invalid_request" and e.status == nil then return EXIT.usage end
  -- A method the provider's API lacks (list on one that cannot list): a usage error.
  if e.code == "unsupported" then return EXIT.usage end
  return EXIT.api
end

--- Prints an error (task failures with their reason, 402 with the credits) and returns its exit
--- code.
function Ctx:fail(e)
  if type(e) ~= "table" then
    self.err:write("deepresearch: ", tostring(e), "\n")
    return EXIT.api
  end
  local code = M.exit_code(e)
  if e.code == "task_failed" then
    self.err:write("deepresearch: ", tostring(e.message), "\n")
  elseif e.code == "cancelled" then
    self.err:write("deepresearch: ", tostring(e.message), "\n")
  elseif code == EXIT.timeout then
    local id = e.task and (e.task.id or e.task.deepresearch_id) or self.waiting
    self.err:write("deepresearch: ", tostring(e.message), "\n")
    -- A task no poll ever answered with is not known to run: no resume hint for it.
    if id and not e.never_seen then self.err:write(self:resume_hint(id), "\n") end
  else
    self.err:write(tostring(e), hint(self, e), "\n")
  end
  return code
end

--- A command line with the same provider and base URL as this one: "deepresearch [flags] WORDS".
function Ctx:command_line(words)
  local flags = self:provider() ~= providers.DEFAULT and (" --provider " .. self:provider()) or ""
  -- A password in the URL is never printed: the user types it again (user:***@).
  if self.g.base_url then
    flags = flags .. " --base-url " ..
      require("deepresearch.runtime.http").redact_url(self.g.base_url)
  end
  return (self.program or "deepresearch") .. flags .. " " .. words
end

--- The command as the user invoked it, for the command lines it prints: arg[0]
-- ("bin/deepresearch" from a source tree), or its bare name when arg[0]'s directory is on PATH
-- (an installed command run by name); "deepresearch" when there is no arg[0].
function M.program_name(arg0, path)
  if type(arg0) ~= "string" or arg0 == "" then return "deepresearch" end
  local dir, base = arg0:match("^(.*)/([^/]+)$")
  if dir then
    for p in (path or ""):gmatch("[^:]+") do
      if (p:gsub("/+$", "")) == dir then return base end
    end
  end
  if arg0:find("[^%w%./_%-+,:@]") then return "'" .. arg0:gsub("'", "'\\''") .. "'" end
  return arg0
end

--- The command line that resumes waiting on a task (same provider and base URL).
function Ctx:resume_command(id)
  return self:command_line((self.waiting_cmd or "wait") .. " " .. id)
end

function Ctx:resume_hint(id)
  return "The task keeps running on the server. Resume with: " .. self:resume_command(id)
end

local function real_sleep(core, ctx)
  return function(sec)
    local deadline = core.now() + sec
    while true do
      local left = deadline - core.now()
      if left <= 0 then return true end
      local slice = ctx.ticking and math.min(left, 0.1) or left
      local full = core.sleep(slice)
      if ctx.ticking then ctx.ticking:tick() end
      if not full then return false end
    end
  end
end

--- The one task ID a command takes, and a client: id, client; or nil, exit code.
function Ctx:id_and_client(words)
  if #words ~= 1 then
    return nil, self:usage(#words == 0 and "missing task ID" or "expected one task ID, got " ..
      #words .. " words")
  end
  local client, code = self:client()
  if not client then return nil, code end
  return words[1], client
end

--- The client for the chosen provider; token and base URL from the environment.
-- Returns client or nil, exit code (after printing why).
function Ctx:client()
  if self.handle then return self.handle end
  local dr = require "deepresearch"
  local name = self:provider()
  local p = dr.providers[name]
  local token = os.getenv(p.token_env)
  if not token or token == "" then
    self.err:write("deepresearch: no API token: set ", p.token_env, " in the environment ",
      "(there is no token flag, so the token stays out of shell history and process lists)\n")
    return nil, EXIT.api
  end
  local clock = { now = dr.core.now, sleep = real_sleep(dr.core, self) }
  local ok, c = pcall(dr.client, { provider = name, base_url = self.g.base_url, clock = clock })
  if not ok then return nil, self:usage(tostring(c):gsub("^.-:%d+: ", "")) end
  self.handle = c
  return c
end

--- Before the brief is read from standard input: on a terminal, says what the command waits
-- for (else it looks hung).
function Ctx:reading_stdin()
  if self.stdin ~= io.stdin then return end
  local ok = os.execute("test -t 0")
  if ok == true or ok == 0 then
    self.err:write("deepresearch: reading the brief from standard input; end with Ctrl-D\n")
    self.err:flush()
  end
end

--- Whether stderr is a terminal: checked once.
function Ctx:stderr_tty()
  if self.tty == nil then
    local forced = os.getenv("DEEPRESEARCH_TTY")
    if forced == "1" or forced == "0" then
      self.tty = forced == "1"
    else
      local ok = os.execute("test -t 2")
      self.tty = ok == true or ok == 0
    end
  end
  return self.tty
end

local function terminal_width()
  local cols = tonumber(os.getenv("COLUMNS") or "")
  if cols then return cols end
  local f = io.popen("stty size < /dev/tty 2>/dev/null")
  local line = f and f:read("*l")
  if f then f:close() end
  return tonumber(line and line:match("%d+%s+(%d+)") or "") or 80
end

--- The server's clock now, in epoch seconds: the Date of the client's last answer (a task's
-- created time is the server's), else this machine's clock.
function Ctx:server_now()
  local http = require "deepresearch.runtime.http"
  local res = self.handle and http.state(self.handle).last_response
  local t = res and require("deepresearch.base.dates").parse_http_date(http.headers(res).date)
  return t or os.time()
end

--- A progress reporter for a wait; describe turns a task into the fields shown. age_from: the
-- descriptor's cli.age_from (where a task's created time is; false: nowhere stable).
function Ctx:progress(describe, label, age_from)
  local mode = self.g.quiet and "none" or (self:stderr_tty() and "tty" or "lines")
  local dr = require "deepresearch"
  local p = progress.new{ mode = mode, stream = self.err, now = dr.core.now, describe = describe,
    label = label, width = mode == "tty" and terminal_width() or 80,
    age = function(task) return progress.task_age(task, age_from, self:server_now()) end }
  self.ticking = mode == "tty" and p or nil
  self.current_progress = p
  return p
end

--- A create is about to be sent: shows "creating…" and marks it, so that Ctrl-C before its
-- answer is in hand waits for that answer (see interrupted_create). id_of(task) gives the id;
-- group "discover" resumes and lists with the discover commands ("discover wait", "discover list").
function Ctx:begin_create(id_of, group)
  if group then self.waiting_cmd = group .. " wait" end
  self.creating = { id_of = id_of, list = group and (group .. " list") or "list" }
  if self.g.quiet then return end
  local text = "deepresearch: creating" .. (progress.utf8_locale() and "…" or "...")
  if self:stderr_tty() then
    self.err:write(text)
    self.creating.drawn = true
  else
    self.err:write(text, "\n")
  end
  self.err:flush()
end

--- The create's answer is in hand: erases the "creating…" line (before any output).
function Ctx:created()
  local c = self.creating
  if c and c.drawn then
    self.err:write("\r\27[K")
    c.drawn = false
  end
end

--- The create's outcome has been shown (or handed to a wait): Ctrl-C no longer waits for it.
function Ctx:end_create()
  self:created()
  self.creating = nil
end

--- Ends the progress display of a wait.
function Ctx:done_waiting()
  if self.current_progress then self.current_progress:finish() end
  self.ticking, self.current_progress, self.waiting = nil, nil, nil
end

-- How long Ctrl-C during a create waits for the create's answer.
M.SETTLE_SECONDS = 5

-- Ctrl-C came while a create was in flight: the task may exist (and be billed) though its id
-- never arrived, and the natural re-run would pay twice. Waits a few seconds for the answer
-- (a second Ctrl-C gives up at once), then shows the id and how to resume, or how to check.
local function interrupted_create(ctx)
  local c = ctx.creating
  ctx.creating = nil
  local core = require("deepresearch").core
  local http = require "deepresearch.runtime.http"
  local secs = M.SETTLE_SECONDS
  ctx.err:write(string.format("deepresearch: interrupted; waiting up to %g s for the create's " ..
    "answer so the " ..
    "task id is not lost (Ctrl-C again to give up)\n", secs))
  ctx.err:flush()
  -- lua.c restored SIGINT's default action: without the trap a second Ctrl-C would end the
  -- process before it could print the list hint.
  core.trap_interrupt(true)
  local ok, task, unknown = pcall(http.settle_interrupted, ctx.handle, secs, core.interrupted)
  local again = core.interrupted()
  core.trap_interrupt(false)
  if not ok then task, unknown = nil, true end
  local id = task and c.id_of(task)
  local journalled = require "deepresearch.cli.history"
  if id then
    journalled.created(ctx, task)
    ctx.err:write("deepresearch: created task ", tostring(id), ". ", ctx:resume_hint(id), "\n")
  elseif unknown and not providers.has_list(providers.get(ctx:provider())) then
    -- No list to look in: say so instead of pointing at a command that cannot work.
    ctx.err:write("deepresearch: ", again and "gave up waiting (second Ctrl-C)" or
      string.format("no readable answer to the create within %g s", secs), "; a task may " ..
      "exist (and be billed) and this provider's API cannot list tasks to find it; check the " ..
      "provider's dashboard before creating it again\n")
  elseif unknown then
    ctx.err:write("deepresearch: ", again and "gave up waiting (second Ctrl-C)" or
      string.format("no readable answer to the create within %g s",
        secs), "; a task may exist (and be " ..
      "billed). Check before creating it again: ", ctx:command_line(c.list), "\n")
  else
    journalled.not_created(ctx, "interrupted")
    ctx.err:write("deepresearch: no task was created\n")
  end
end

local function version_text()
  local ok, dr = pcall(require, "deepresearch")
  if not ok then return "deepresearch (C module not loadable: " .. tostring(dr) .. ")" end
  return string.format("deepresearch %s (%s, libcurl %s)", dr.version, _VERSION,
    dr.core.curl_version or "?")
end

-- Finds the command named by argv[i] (and argv[i + 1] for sub-commands).
local function find_command(argv, i)
  local w = argv[i]
  local sub = argv[i + 1]
  if sub and COMMANDS[w .. " " .. sub] then return COMMANDS[w .. " " .. sub], i + 2 end
  return COMMANDS[w], i + 1
end

local function run(ctx, argv)
  local g, i = args.leading_globals(argv)
  if not g then return ctx:usage(i) end
  ctx.g = g
  if g.version then
    ctx.out:write(version_text(), "\n")
    return EXIT.ok
  end
  if not i then
    if g.help then
      ctx.out:write(help.general(), "\n")
      return EXIT.ok
    end
    ctx.err:write(help.general(), "\n")
    return EXIT.usage
  end
  local word = argv[i]
  if word == "help" then
    local topic = argv[i + 1] and (argv[i + 2] and COMMANDS[argv[i + 1] .. " " .. argv[i + 2]] and
      argv[i + 1] .. " " .. argv[i + 2] or argv[i + 1])
    local text = help.text(topic)
    if not text then
      return ctx:usage("no command '" .. tostring(topic) .. "'" .. help.suggest(tostring(topic)))
    end
    ctx.out:write(text, "\n")
    return EXIT.ok
  end
  local cmd, rest = find_command(argv, i)
  if not cmd then
    local groups = help.group(word)
    if groups then
      local sub = argv[i + 1]
      if sub and sub:sub(1, 1) ~= "-" then
        ctx.err:write("deepresearch: unknown command '", word, " ", sub, "'",
          help.suggest(word .. " " .. sub), "\n")
      end
      ctx.err:write(groups, "\n")
      return EXIT.usage
    end
    return ctx:usage("unknown command '" .. word .. "'" .. help.suggest(word))
  end
  ctx.cmd = cmd
  local opts, words = args.parse(argv, rest, { args.GLOBAL, cmd.options or {} })
  if not opts then return ctx:usage(words) end
  for k, v in pairs(opts) do
    if g[k] == nil then g[k] = v end
  end
  if opts.help then
    ctx.out:write(help.text(cmd.name), "\n")
    return EXIT.ok
  end
  if g.version then
    ctx.out:write(version_text(), "\n")
    return EXIT.ok
  end
  -- run across providers: --provider a,b,c, --fallback, --budget, --dry-run (cli/multi.lua)
  if cmd.name == "run" and require("deepresearch.cli.multi").wants(g, opts) then
    return require("deepresearch.cli.multi").run(ctx, opts, words)
  end
  if g.provider and not providers.get(g.provider) then
    return ctx:usage("--provider must be " .. one_of(providers.names()) .. ", got '" ..
      g.provider .. "'")
  end
  if g.base_url and not g.base_url:match("^https?://[^/%s]+") then
    return ctx:usage("--base-url must be an http:// or https:// URL, got '" ..
      require("deepresearch.runtime.http").redact_url(g.base_url) .. "'")
  end
  -- `cancel PREFIX` (any command on a task id that needs an operation): the journal knows
  -- whose task it is, so ask that provider, not the default, whether it has the command.
  if cmd.requires and cmd.requires.operation and not g.provider and words[1] then
    local j = require("deepresearch.cli.history").journal(ctx)
    local entry = j and j:resolve(words[1], nil, "research")
    if entry and entry.provider and providers.get(entry.provider) then
      g.provider = entry.provider
    end
  end
  if cmd.requires and not provides(providers.get(ctx:provider()), cmd.requires) then
    return ctx:usage(string.format("'%s' is not available for --provider %s", cmd.name,
      ctx:provider()))
  end
  if g.verbose then require("deepresearch.runtime.http").set_debug(true) end
  return cmd.run(ctx, opts, words)
end

--- Runs the command line; returns the exit code. io = { out, err, stdin } for tests.
function M.main(argv, io_)
  io_ = io_ or {}
  local ctx = setmetatable({ out = io_.out or io.stdout, err = io_.err or io.stderr,
    stdin = io_.stdin or io.stdin, g = {},
    program = M.program_name(argv[0], os.getenv("PATH")) }, Ctx)
  local trace
  -- A closure: PUC Lua 5.1's xpcall passes no arguments to the function it calls.
  local ok, code = xpcall(function() return run(ctx, argv) end, function(e)
    if type(e) == "string" and e:find("interrupted!$") then return "interrupted" end
    trace = debug.traceback(tostring(e), 2)
    return e
  end)
  if ok then
    if ctx.handle then ctx.handle:close() end
    return code or EXIT.ok
  end
  if code == "interrupted" then
    local p = ctx.current_progress
    if p and p.drawn then
      p:abort()
    elseif ctx.tty then
      ctx.err:write("\n") -- after the terminal's ^C
    end
    if ctx.creating and ctx.handle then
      interrupted_create(ctx)
      return EXIT.interrupted
    end
    ctx.err:write("deepresearch: interrupted")
    if ctx.waiting then
      ctx.err:write("; stopped waiting for ", ctx.waiting, "\n", ctx:resume_hint(ctx.waiting), "\n")
    else
      ctx.err:write("\n")
    end
    return EXIT.interrupted
  end
  if ctx.current_progress then ctx.current_progress:abort() end
  ctx.err:write("deepresearch: internal error: ", tostring(code), "\n")
  if ctx.g.verbose then ctx.err:write(trace or "", "\n") end
  return EXIT.internal
end

return M

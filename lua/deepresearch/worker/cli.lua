-- deepresearch-worker's command line: options in, a running worker out.
local M = {}

M.USAGE = [[
usage: deepresearch-worker [options]
       deepresearch-worker respond JOB_ID 'ANSWER_JSON' [--interaction ID] [--redis-url URL] [--queue NAME]
       deepresearch-worker resume JOB_ID [--redis-url URL] [--queue NAME]
       deepresearch-worker status [--json] [--redis-url URL] [--queue NAME]

Takes deep-research jobs from a Redis list, runs them and writes the results back.
A job is JSON: {"id": "...", "brief": "...", "depth": "medium|high|xhigh", "output_schema": {...}}
and may name its provider: {"provider": "NAME", "NAME": {...its create options}, ...}, so that
one queue mixes providers.

  --redis-url URL       redis://[:password@]host[:port][/db]   (default $DEEPRESEARCH_REDIS_URL
                        or redis://127.0.0.1:6379/0)
  --queue NAME          the list jobs are pushed to; every key starts with it (default deepresearch)
  --concurrency N       jobs in flight at once (default 4)
  --provider NAME       the provider of jobs that name none (default @DEFAULT@), one of
                        @PROVIDERS@
  --base-url URL        that provider's API base URL (default its variable, else its own:
                        @BASE_ENVS@); a job naming another provider uses that one's
  --timeout S           seconds one HTTP request may take (default the library's)
  --interval S          first delay between polls of a task (default 2)
  --max-interval S      longest delay between polls (default 30)
  --wait-timeout S      give up one wait after S seconds and start another (default 7200)
  --worker-id ID        this worker's name (default <hostname>-<pid>); restart a killed worker
                        with the same id to resume its jobs at once instead of after its lease
  --lease S             seconds a dead worker keeps its jobs before others take them (default 10)
  --reconcile-grace S   seconds after an interrupted create before looking for its task: longer
                        than the API may take to act on a create (default 10)
  --search-window S     how long the task of a create that may have made one is searched for
                        (at least 3 searches that succeed) before the job is set aside as
                        ambiguous; such a job is never created again (default 600)
  --batch-size N        group up to N new jobs into one batch of the provider (valyu); 0 or 1:
                        one create per job (default)
  --input-recheck S     a job whose task waits for input (a checkpoint) leaves the worker;
                        it is looked at again after S seconds (default 300)
  --rate PROVIDER=N/min at most N creates a minute of that provider, shared by every worker on
                        this Redis and queue (a token bucket in Redis; repeatable)
  --budget-usd-per-day N  spend cap shared by every worker: a job's worst-case cost is reserved
                        before its create and settled to the real cost when its task ends; a
                        job that would cross the cap waits (status waiting_budget). Day in UTC
  --budget-window S     the budget's window in seconds (default 86400: UTC days)
  --once                exit when the queue is empty and no worker holds a job; exit 4 when
                        Redis does not answer for one lease
  --watch-pid PID       exit (as if killed) when process PID is gone (for supervisors and tests)
  --quiet               no status line or log on stderr
  --verbose             one log line per job step
  --help, --version

The API tokens come from the environment only: @TOKEN_ENVS@.
Ctrl-C or SIGTERM: no more jobs are taken; creates already sent get up to 5 s to be answered
and recorded; the jobs held keep their lease (a worker started next on this host resumes them at
once, others after the lease); one line, exit status 0. A second signal quits at once.
Exit status: 0; 1 another process took this worker id; 2 usage; 4 no API token, or (--once,
status) Redis unreachable.

A job whose task waits for a person (status input_required; its hash holds the interaction):
  respond JOB_ID 'ANSWER_JSON'   records the answer (e.g. '{"approved": true}') and hands the job
                                 back to the workers, which send it and go on waiting
  resume JOB_ID                  hands the job back after you answered through the API yourself
Exit status 0, or 1 when the job does not wait for input (or for that interaction).

  status                         queue length, jobs by status, workers with their leases, dead
                                 letters (--json: the same as one JSON object)
]]

-- The providers' words, from the registry (a provider registered later is listed too).
do
  local providers = require "deepresearch.providers"
  local names, bases, tokens = providers.names(), {}, {}
  for _, n in ipairs(names) do
    local d = providers.get(n)
    bases[#bases + 1] = "$" .. d.base_env
    tokens[#tokens + 1] = d.token_env .. " (" .. n .. ")"
  end
  -- A list as lines of at most 100 columns, the next ones indented by indent spaces.
  local function wrap(items, sep, first, indent)
    local lines, line = {}, ""
    for i, item in ipairs(items) do
      local piece = item .. (i < #items and sep or "")
      local width = #lines == 0 and (100 - first) or (100 - indent)
      if line ~= "" and #line + #piece > width then
        lines[#lines + 1] = line:gsub("%s+$", "")
        line = ""
      end
      line = line .. piece
    end
    lines[#lines + 1] = line
    return table.concat(lines, "\n" .. string.rep(" ", indent))
  end
  M.USAGE = M.USAGE:gsub("@(%u+[_%u]*)@", {
    PROVIDERS = wrap(names, " | ", 24, 24), DEFAULT = tostring(providers.DEFAULT),
    BASE_ENVS = wrap(bases, ", ", 24, 24), TOKEN_ENVS = wrap(tokens, ", ", 48, 2) })
end

local NUMBERS = { concurrency = true, timeout = true, interval = true, ["max-interval"] = true,
  ["wait-timeout"] = true, lease = true, ["reconcile-grace"] = true, ["search-window"] = true,
  ["watch-pid"] = true, ["batch-size"] = true, ["input-recheck"] = true }
NUMBERS["budget-usd-per-day"], NUMBERS["budget-window"] = true, true
local STRINGS = { ["redis-url"] = true, queue = true, provider = true, ["base-url"] = true,
  ["worker-id"] = true, interaction = true }
local LISTS = { rate = true } -- repeatable
local FLAGS = { once = true, quiet = true, verbose = true, help = true, version = true,
  json = true }

local COMMANDS = { respond = 2, resume = 1, status = 0 } -- command -> its positional arguments

--- Reads --rate PROVIDER=N/min; returns provider, creates per second, or nil, message.
function M.parse_rate(v)
  local name, n, unit = v:match("^([%w_%-]+)=([%d%.]+)/(%a+)$")
  n = tonumber(n)
  if not name or not n or n <= 0 or unit ~= "min" then
    return nil, "--rate needs PROVIDER=N/min (N > 0), got " .. v
  end
  if not require("deepresearch.worker.job").providers[name] then
    return nil, "--rate: unknown provider " .. name .. " (" ..
      table.concat(require("deepresearch.providers").names(), ", ") .. ")"
  end
  return name, n / 60
end

-- An option's value: after "=" (inline) or the next word (taken: i moves on); nil when
-- missing. Returns the value and the new i. One rule for --rate and the plain options.
local function option_value(argv, i, inline)
  if inline then return inline, i end
  return argv[i + 1], i + 1
end

--- Parses argv; returns options (keys with dashes; o.command and o.args for respond and
-- resume) or nil, message.
function M.parse(argv)
  local o = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if not name and i == 1 and COMMANDS[a] then
      o.command, o.args = a, {}
    elseif not name and o.command and #o.args < COMMANDS[o.command] then
      o.args[#o.args + 1] = a
    elseif not name then
      return nil, "unexpected argument " .. a
    elseif LISTS[name] then
      local v
      v, i = option_value(argv, i, inline)
      if v == nil then return nil, "missing value for --" .. name end
      local p, per_second = M.parse_rate(v)
      if not p then return nil, per_second end
      o.rate = o.rate or {}
      o.rate[p] = per_second
    elseif FLAGS[name] then
      if inline then return nil, "--" .. name .. " takes no value" end
      o[name] = true
    elseif NUMBERS[name] or STRINGS[name] then
      local v
      v, i = option_value(argv, i, inline)
      if v == nil then return nil, "missing value for --" .. name end
      if NUMBERS[name] then
        local n = tonumber(v)
        if not n or n < 0 or n ~= n then
          return nil, "--" .. name .. " needs a number >= 0, got " .. v
        end
        v = n
      end
      o[name] = v
    else
      local known = {}
      for _, set in ipairs({ NUMBERS, STRINGS, LISTS, FLAGS }) do
        for k in pairs(set) do known[#known + 1] = k end
      end
      table.sort(known) -- the same suggestion every run
      return nil, "unknown option --" .. name ..
        require("deepresearch.cli.args").did_you_mean(name, known, "--")
    end
    i = i + 1
  end
  if o.command and #o.args < COMMANDS[o.command] then
    return nil, o.command .. " needs " .. (o.command == "respond" and "JOB_ID and ANSWER_JSON"
      or "JOB_ID")
  end
  if o.interaction and o.command ~= "respond" then
    return nil, "--interaction goes with respond only"
  end
  if o.json and o.command ~= "status" then return nil, "--json goes with status only" end
  if o["budget-usd-per-day"] == 0 then return nil, "--budget-usd-per-day needs a number > 0" end
  if o["budget-window"] and o["budget-window"] < 1 then
    return nil, "--budget-window needs at least 1 second"
  end
  if o["budget-window"] and not o["budget-usd-per-day"] then
    return nil, "--budget-window goes with --budget-usd-per-day"
  end
  if (o.rate or o["budget-usd-per-day"]) and (o["batch-size"] or 0) > 1 then
    return nil, "--rate and --budget-usd-per-day take single creates: not with --batch-size"
  end
  if o["batch-size"] and (o["batch-size"] % 1 ~= 0 or o["batch-size"] > 100) then
    return nil, "--batch-size needs a whole number from 0 to 100"
  end
  if o.concurrency and (o.concurrency < 1 or o.concurrency % 1 ~= 0) then
    return nil, "--concurrency needs a whole number >= 1"
  end
  if o.lease and o.lease < 0.5 then return nil, "--lease must be at least 0.5 seconds" end
  if o.queue and (o.queue == "" or o.queue:find("[%s%c]")) then
    return nil, "--queue needs a name without spaces"
  end
  return o
end

--- Worker options from parsed command-line options.
function M.worker_options(o)
  return {
    redis_url = o["redis-url"] or os.getenv("DEEPRESEARCH_REDIS_URL") or nil,
    queue = o.queue, concurrency = o.concurrency, provider = o.provider, worker_id = o["worker-id"],
    lease = o.lease, reconcile_grace = o["reconcile-grace"], search_window = o["search-window"],
    once = o.once, batch_size = o["batch-size"], input_recheck = o["input-recheck"],
    quiet = o.quiet, rate = o.rate, budget_usd = o["budget-usd-per-day"],
    budget_window = o["budget-window"],
    verbose = o.verbose, watch_pid = o["watch-pid"],
    client = { base_url = o["base-url"], timeout = o.timeout },
    wait = { interval = o.interval, max_interval = o["max-interval"], timeout = o["wait-timeout"] },
  }
end

local function fail(msg, code)
  io.stderr:write("deepresearch-worker: ", msg, "\n")
  return code or 2
end

local function say(fmt, ...) io.stdout:write(string.format(fmt, ...), "\n") end

-- What the respond script's refusals mean, for a person.
local REFUSED = {
  not_waiting = "job %s is not waiting for input (status: %s)",
  stale = "job %s waits for another checkpoint now (interaction %s): read its hash again",
  pending = "job %s has an answer for checkpoint %s already; a worker is sending it",
}

--- respond / resume: the consumer's side of a checkpoint (docs/worker.md "Answering a
-- checkpoint"). Writes to Redis only; a worker sends the answer.
function M.answer(o)
  local answer
  if o.command == "respond" then
    local json = require "deepresearch.base.json"
    local v = json.decode(o.args[2])
    if type(v) ~= "table" or v[1] ~= nil or json.is_array_marked(v) then
      return fail("the answer must be a JSON object, e.g. '{\"approved\": true}'")
    end
    answer = json.encode(v)
  end
  local url = o["redis-url"] or os.getenv("DEEPRESEARCH_REDIS_URL") or
    require("deepresearch.worker").defaults.redis_url
  local conn, err = require("deepresearch.worker.redis").new{ url = url, timeout = 5 }
  if not conn then return fail(tostring(err)) end
  local store = require("deepresearch.worker.store").new(conn, o.queue or "deepresearch", "cli")
  local r, v = store:respond(o.args[1], answer, o.interaction)
  conn:close()
  if not r then return fail("redis: " .. tostring(v), 1) end
  if r == "not_waiting" and (v == nil or v == "") then -- no hash: a mistyped id or queue
    return fail(string.format("job %s is not waiting for input: queue %s has no such job " ..
      "(check the id and --queue)", o.args[1], o.queue or "deepresearch"), 1)
  end
  if r ~= "ok" then return fail(string.format(REFUSED[r] or r, o.args[1], tostring(v)), 1) end
  if answer then
    say("job %s: answer to checkpoint %s recorded; a worker sends it", o.args[1], v)
  else
    say("job %s: handed back to the workers", o.args[1])
  end
  return 0
end

--- Runs the command; returns the exit status.
function M.main(argv)
  local o, err = M.parse(argv)
  -- One line and where the help is (the whole help after a typo buried the line that matters).
  if not o then return fail(err .. "\nTry 'deepresearch-worker --help'.") end
  if o.help then io.stdout:write(M.USAGE) return 0 end
  if o.command == "status" then return require("deepresearch.worker.status").main(o) end
  if o.command then return M.answer(o) end
  local dr = require "deepresearch"
  if o.version then io.stdout:write("deepresearch-worker ", dr.version, "\n") return 0 end
  local provider = dr.providers[o.provider or dr.providers.DEFAULT]
  if type(provider) ~= "table" or not provider.kinds then
    return fail("unknown provider " .. tostring(o.provider) .. " (" ..
      table.concat(dr.providers.names(), " or ") .. ")")
  end
  local token = os.getenv(provider.token_env)
  if not token or token == "" then
    return fail("no API token: set " .. provider.token_env .. " in the environment", 4)
  end
  -- Ctrl-C and SIGTERM only set a flag from here on: the loop stops cleanly (stop.lua).
  dr.core.trap_interrupt(true, true)
  local worker = require "deepresearch.worker"
  local wopts = M.worker_options(o)
  wopts.tty = os.execute("test -t 2") == true
  wopts.trap_signals = true
  local ok, w, werr = pcall(worker.new, wopts)
  if not ok then return fail(tostring(w)) end
  if not w then return fail(tostring(werr)) end
  local _, code = w:run()
  return code
end

return M

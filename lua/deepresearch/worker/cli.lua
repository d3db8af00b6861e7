-- deepresearch-worker's command line: options in, a running worker out.
local M = {}

M.USAGE = [[
usage: deepresearch-worker [options]

Takes deep-research jobs from a Redis list, runs them and writes the results back.
A job is JSON: {"id": "...", "brief": "...", "depth": "medium|high|xhigh", "output_schema": {...}}

  --redis-url URL       redis://[:password@]host[:port][/db]   (default $DEEPRESEARCH_REDIS_URL
                        or redis://127.0.0.1:6379/0)
  --queue NAME          the list jobs are pushed to; every key starts with it (default deepresearch)
  --concurrency N       jobs in flight at once (default 4)
  --provider NAME       extruct | valyu (default extruct)
  --base-url URL        API base URL (default the provider's, or $EXTRUCT_BASE_URL / $VALYU_BASE_URL)
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
  --once                exit when the queue is empty and no worker holds a job
  --watch-pid PID       exit (as if killed) when process PID is gone (for supervisors and tests)
  --quiet               no status line or log on stderr
  --verbose             one log line per job step
  --help, --version

The API token comes from the environment only: EXTRUCT_API_TOKEN (extruct) or VALYU_API_KEY (valyu).
Ctrl-C: no more jobs are taken; creates already sent get up to 5 s to be answered and recorded;
exit status 130. A second Ctrl-C quits at once.
]]

local NUMBERS = { concurrency = true, timeout = true, interval = true, ["max-interval"] = true,
  ["wait-timeout"] = true, lease = true, ["reconcile-grace"] = true, ["search-window"] = true,
  ["watch-pid"] = true }
local STRINGS = { ["redis-url"] = true, queue = true, provider = true, ["base-url"] = true,
  ["worker-id"] = true }
local FLAGS = { once = true, quiet = true, verbose = true, help = true, version = true }

--- Parses argv; returns options (keys with dashes) or nil, message.
function M.parse(argv)
  local o = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if not name then return nil, "unexpected argument " .. a end
    if FLAGS[name] then
      if inline then return nil, "--" .. name .. " takes no value" end
      o[name] = true
    elseif NUMBERS[name] or STRINGS[name] then
      local v = inline
      if not v then
        i = i + 1
        v = argv[i]
      end
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
      return nil, "unknown option --" .. name
    end
    i = i + 1
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
    once = o.once,
    quiet = o.quiet,
    verbose = o.verbose, watch_pid = o["watch-pid"],
    client = { base_url = o["base-url"], timeout = o.timeout },
    wait = { interval = o.interval, max_interval = o["max-interval"], timeout = o["wait-timeout"] },
  }
end

local function fail(msg, code)
  io.stderr:write("deepresearch-worker: ", msg, "\n")
  return code or 2
end

--- Runs the command; returns the exit status.
function M.main(argv)
  local o, err = M.parse(argv)
  if not o then return fail(err .. "\n" .. M.USAGE) end
  if o.help then io.stdout:write(M.USAGE) return 0 end
  local dr = require "deepresearch"
  if o.version then io.stdout:write("deepresearch-worker ", dr.version, "\n") return 0 end
  local provider = dr.providers[o.provider or dr.providers.DEFAULT]
  if type(provider) ~= "table" or not provider.kinds then
    return fail("unknown provider " .. tostring(o.provider) .. " (" ..
      table.concat(dr.providers.names(), " or ") .. ")")
  end
  local token = os.getenv(provider.token_env)
  if not token or token == "" then
    return fail("no API token: set " .. provider.token_env .. " in the environment")
  end
  local worker = require "deepresearch.worker"
  local wopts = M.worker_options(o)
  wopts.tty = os.execute("test -t 2") == true
  local ok, w, werr = pcall(worker.new, wopts)
  if not ok then
    if require("deepresearch.worker.redis").is_interrupt(w) then return worker.EXIT_INTERRUPTED end
    return fail(tostring(w))
  end
  if not w then return fail(tostring(werr)) end
  local _, code = w:run()
  return code
end

return M

-- bin/deepresearch-worker as separate processes against a real redis-server, for specs:
-- a temporary directory, a Redis, workers started in the background and stopped by PID.
--   local fixture = require "support.worker"
--   if not fixture.enabled() then ... pending(fixture.NEEDS) ... end
--   local f = fixture.new()              -- before_each: f.R (support.redis), f.tmp
--   local w = f:start(q, sim_url, { "--concurrency", "4" })   -- or f:start_valyu(...)
--   assert.are.equal(0, f:exit_status(w, 60), f:log_of(w))
--   f:teardown()                         -- after_each: workers killed, Redis and directory removed
local socket = require "socket"
local sim = require "support.sim"
local cjson = require("cjson").new()

local M = {}

local ROOT = (debug.getinfo(1, "S").source:sub(2):match("^(.*)/spec/support/worker%.lua$")) or "."
M.WORKER = ROOT .. "/bin/deepresearch-worker"

-- Loaded on first use: support.redis needs lua-redis, which only the enabled runs have.
local function redis() return require "support.redis" end

local quote = sim.shell_quote

--- Whether the worker can run here: Lua 5.4, redis-server, lua-redis, and no sanitizer run
-- (the worker runs in its own lua5.4 processes; those runs have nothing to add).
function M.enabled()
  return _VERSION == "Lua 5.4" and not os.getenv("ASAN_OPTIONS") and not os.getenv("DR_VALGRIND")
    and os.execute("command -v redis-server >/dev/null 2>&1") == true
    and (pcall(require, "deepresearch.worker.redis"))
end

-- What a worker spec's pending line says when enabled() is false (the one wording).
M.NEEDS = "needs Lua 5.4, redis-server and lua-redis (scripts/deps redis), and no sanitizer run"

--- Polls fn every 50 ms until it returns a true value (returned), or raises after timeout seconds.
function M.wait_until(what, timeout, fn)
  local deadline = socket.gettime() + timeout
  while true do
    local v = fn()
    if v then return v end
    if socket.gettime() > deadline then
      error("timed out after " .. timeout .. "s waiting for " .. what, 2)
    end
    socket.sleep(0.05)
  end
end

local Fixture = {}
Fixture.__index = Fixture

function M.new()
  local p = assert(io.popen("mktemp -d /tmp/deepresearch-worker-spec.XXXXXX"))
  local tmp = p:read("*l")
  p:close()
  return setmetatable({ tmp = tmp, R = redis().start(), workers = {}, seq = 0 }, Fixture)
end

function Fixture:teardown()
  for _, w in ipairs(self.workers) do
    if redis().running(w.pid) then
      os.execute("kill -CONT " .. w.pid .. " 2>/dev/null")
      redis().kill(w.pid, "KILL", 5)
    end
  end
  self.R:destroy()
  if os.getenv("DR_KEEP_WORKER_LOGS") then
    io.stderr:write("worker logs kept in ", self.tmp, "\n")
  else
    os.execute("rm -rf " .. quote(self.tmp))
  end
end

function Fixture.log_of(_, w)
  local f = io.open(w.log, "r")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

--- Starts bin/deepresearch-worker in the background with exactly `args` and `env`, a list of
-- { name, value } pairs set for it alone; returns { pid, log, rc_file }. name names its log
-- (worker<n> unless given).
function Fixture:spawn(args, env, name)
  name = name or ("worker" .. (#self.workers + 1))
  local w = { log = self.tmp .. "/" .. name .. ".log", rc_file = self.tmp .. "/" .. name .. ".rc" }
  local quoted, vars = {}, {}
  for i, a in ipairs(args) do quoted[i] = quote(a) end
  for i, kv in ipairs(env or {}) do vars[i] = kv[1] .. "=" .. quote(kv[2]) end
  -- The subshell reports the worker's own pid, then records its exit status.
  local cmd = string.format("( %s %s %s </dev/null >>%s 2>&1 & w=$!; echo $w; wait $w; " ..
    "echo $? >%s ) 2>/dev/null &", table.concat(vars, " "), quote(M.WORKER),
    table.concat(quoted, " "), quote(w.log), quote(w.rc_file))
  local p = assert(io.popen(cmd, "r"))
  w.pid = tonumber(p:read("*l"))
  p:close()
  self.workers[#self.workers + 1] = w
  return w
end

-- The options of every spec worker on queue q against base_url (short polls, grace and search
-- window; it stops when this process does), then extra (which may override them).
function Fixture:args(q, base_url, extra)
  local args = {
    "--redis-url", self.R.url, "--queue", q, "--base-url", base_url, "--interval", "0.05",
    "--max-interval", "0.2", "--reconcile-grace", "0.5", "--search-window", "2", "--verbose",
    "--watch-pid", tostring(sim.own_pid()) }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return args
end

--- Starts an Extruct worker (--once) in the background on queue q against base_url; returns
-- { pid, log, rc_file }. Options in extra come after the defaults, so they override them.
function Fixture:start(q, base_url, extra)
  local args = self:args(q, base_url, { "--once" })
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return self:spawn(args, { { "EXTRUCT_API_TOKEN", "test-token" } })
end

--- Starts a Valyu worker (with VALYU_API_KEY=valyu-key; no --once unless extra says so).
function Fixture:start_valyu(q, base_url, extra)
  local args = self:args(q, base_url, { "--provider", "valyu" })
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return self:spawn(args, { { "VALYU_API_KEY", "valyu-key" } })
end

--- The worker's exit status, waiting for it at most timeout seconds (default 120).
function Fixture:exit_status(w, timeout)
  return tonumber(
    M.wait_until("worker " .. w.pid .. " to exit:\n" .. self:log_of(w), timeout or 120, function()
    local f = io.open(w.rc_file, "r")
    if not f then return nil end
    local rc = f:read("*l")
    f:close()
    return rc ~= "" and rc
  end))
end

--- Sends a signal to a worker (by PID); "KILL" also waits until it has exited.
function Fixture:signal(w, sig)
  if sig == "KILL" then
    assert(redis().kill(w.pid, "KILL", 10), "worker " .. w.pid .. " survived SIGKILL")
    self:exit_status(w, 10)
    return
  end
  os.execute(string.format("kill -%s %d 2>/dev/null", sig, w.pid))
end

--- Pushes n jobs with unique briefs onto q; returns them in push order.
-- opts: prefix (of the ids), depth, twice (the first N pushed twice, as a producer retrying).
function Fixture:push_jobs(q, n, opts)
  opts = opts or {}
  local list = {}
  for i = 1, n do
    self.seq = self.seq + 1
    local seq = self.seq
    local job = { id = string.format("%s-%d", opts.prefix or "job", seq), depth = opts.depth,
      brief = string.format("We are deciding whether to partner with Example %d Corp " ..
        "(example%d-%d.com). Research its products, pricing and leadership changes over the " ..
        "last 12 months.", seq, seq, i) }
    list[#list + 1] = job
    local raw = cjson.encode(job)
    assert(self.R:call("LPUSH", q, raw))
    if i <= (opts.twice or 0) then assert(self.R:call("LPUSH", q, raw)) end
  end
  return list
end

function Fixture:hash(key) return self.R:hash(key) end

function Fixture:job(q, id) return self.R:hash(q .. ":job:" .. id) end

function Fixture:count_status(q, list, status)
  local n = 0
  for _, job in ipairs(list) do
    if self.R:call("HGET", q .. ":job:" .. job.id, "status") == status then n = n + 1 end
  end
  return n
end

--- The event stream as a list of field tables.
function Fixture:events(q)
  local out = {}
  for _, e in ipairs(assert(self.R:call("XRANGE", q .. ":events", "-", "+"))) do
    local f = {}
    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
    out[#out + 1] = f
  end
  return out
end

--- Simulator tasks per brief.
function M.tasks_per_brief(S)
  local per = {}
  for _, t in ipairs(S:tasks()) do per[t.brief] = (per[t.brief] or 0) + 1 end
  return per
end

return M

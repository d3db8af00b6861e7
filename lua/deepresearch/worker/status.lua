-- deepresearch-worker status: what a queue holds, read from Redis (nothing written).
--   queued, jobs by status, workers with their leases and the jobs they hold, dead letters,
--   jobs waiting for input; --json prints the same as one object.
local M = {}

M.EXIT_UNREACHABLE = 4

local function fail(msg, code)
  io.stderr:write("deepresearch-worker: ", msg, "\n")
  return code
end

-- A lease field as shown: a string or number; anything else (a lease value another program
-- wrote into Redis) is left out, so no value of the wrong shape makes status raise.
local function scalar(v)
  return (type(v) == "string" or type(v) == "number") and v or nil
end

-- A worker's lease as shown: pid, host, started, stopped (never its token).
local function lease_of(w)
  local ok, v = pcall(function() return w.value and require("deepresearch.worker.job")
    .decode(w.value) end)
  v = ok and type(v) == "table" and v or {}
  return { id = w.worker, lease_seconds = w.ttl and math.floor(w.ttl * 10 + 0.5) / 10 or nil,
    holds = w.held, pid = scalar(v.pid), host = scalar(v.host), started = scalar(v.started),
    stopped = scalar(v.stopped) }
end

--- The report as a table (store:status_report with the workers' leases read), or nil, err.
function M.collect(store)
  local r, err = store:status_report()
  if not r then return nil, err end
  local workers = {}
  for _, w in ipairs(r.workers) do workers[#workers + 1] = lease_of(w) end
  r.workers = workers
  return r
end

--- The report as lines of text.
function M.text(r)
  local names = {}
  for k in pairs(r.jobs) do names[#names + 1] = k end
  table.sort(names)
  local by = {}
  for _, k in ipairs(names) do
    by[#by + 1] = string.format("%s %d", k ~= "" and k or "(no status)", r.jobs[k])
  end
  local lines = {
    string.format("queue %s: %d queued", r.queue, r.queued),
    "jobs: " .. (#by > 0 and table.concat(by, ", ") or "none"),
    string.format("workers: %d", #r.workers),
  }
  for _, w in ipairs(r.workers) do
    lines[#lines + 1] = string.format("  %s  %s  holds %d%s", w.id,
      w.lease_seconds and string.format("lease %.1fs", w.lease_seconds) or "lease expired",
      w.holds, w.stopped and ("  stopped " .. w.stopped) or "")
  end
  lines[#lines + 1] = string.format("dead letters: %d", r.dead)
  lines[#lines + 1] = string.format("waiting for input: %d", r.input)
  if r.budget_spent_usd then
    lines[#lines + 1] = string.format("budget spent this UTC day: $%.2f", r.budget_spent_usd)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- The status command; returns the exit status (4: Redis unreachable).
function M.main(o)
  local url = o["redis-url"] or os.getenv("DEEPRESEARCH_REDIS_URL") or
    require("deepresearch.worker").defaults.redis_url
  local conn, err = require("deepresearch.worker.redis").new{ url = url, timeout = 5 }
  if not conn then return fail(tostring(err), 2) end
  local store = require("deepresearch.worker.store").new(conn, o.queue or "deepresearch", "status")
  local r, e = M.collect(store)
  conn:close()
  if not r then
    return fail("redis " .. url:gsub("//[^@/]*@", "//***@") .. ": " .. tostring(e),
      M.EXIT_UNREACHABLE)
  end
  if o.json then
    local json = require "deepresearch.base.json"
    local out = {}
    for k, v in pairs(r) do out[k] = v end
    out.workers = json.array and json.array(r.workers) or r.workers
    io.stdout:write(json.encode(out), "\n")
  else
    io.stdout:write(M.text(r))
  end
  return 0
end

return M

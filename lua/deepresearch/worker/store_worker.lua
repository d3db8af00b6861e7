-- The Redis side of a worker's own life beyond store.lua: a lease marked "stopped" on a
-- signal, a restart taking a stopped worker's jobs at once, the reads of the status command,
-- and a duplicate of an ended job noted once. Methods of the store, added by M.install as
-- store_checkpoint.lua's are.
local M = {}

local Store = {} -- copied onto store.lua's Store
local S = {}

-- The lease keeps its expiry (KEEPTTL): others still wait for it to run out. Only this
-- process's own value is marked.
local MARK_STOPPED = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
]]

--- Marks this process's lease "stopped" (the value gains stopped = Redis's time).
function Store:mark_stopped(lease_value)
  local json = require "deepresearch.base.json"
  local v = json.decode(lease_value)
  if type(v) ~= "table" then return nil, "unreadable lease" end
  v.stopped = require("deepresearch.worker.store").timestamp()
  local stopped = json.encode(v)
  return self.conn:eval(MARK_STOPPED, { self:lease_key() }, { lease_value, stopped })
end

-- Every worker in Q:workers with its lease value (false when expired), its remaining
-- milliseconds and the length of its processing list.
local LEASES = [[
local out = {}
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. ':worker:' .. w
  out[#out + 1] = { w, redis.call('GET', k) or '', redis.call('PTTL', k),
    redis.call('LLEN', ARGV[1] .. ':processing:' .. w) }
end
return out
]]

--- { { worker, value (nil when expired), ttl (seconds, nil when expired), held } ... } or nil, err.
function Store:leases()
  local r, err = self.conn:eval(LEASES, { self:key("workers") }, { self.q })
  if not r then return nil, err end
  local list = {}
  for _, e in ipairs(r) do
    local ttl = tonumber(e[3]) or -2
    list[#list + 1] = { worker = e[1], value = e[2] ~= "" and e[2] or nil,
      ttl = ttl >= 0 and ttl / 1000 or nil, held = tonumber(e[4]) or 0 }
  end
  table.sort(list, function(a, b) return a.worker < b.worker end)
  return list
end

-- A stopped worker's jobs, moved at once, only while its lease still holds the value read (a
-- second worker doing this at the same time finds it gone).
local ADOPT_STOPPED = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  local t = redis.call('TIME')
  return { {}, t[1], t[2] }
end
local moved = {}
while true do
  local v = redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT')
  if not v then break end
  moved[#moved + 1] = v
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[2])
local t = redis.call('TIME')
return { moved, t[1], t[2] }
]]

--- Returns the moved job texts and Redis's time, or nil, err.
function Store:adopt_stopped(wid, value)
  local r, err = self.conn:eval(ADOPT_STOPPED, { self:lease_key(wid), self:processing(wid),
    self:processing(), self:key("workers") }, { value, wid })
  if not r then return nil, err end
  return r[1] or {}, tonumber(r[2]) + tonumber(r[3]) / 1e6
end

-- A copy of an ended job pushed again: counted on the job hash; the first one is logged.
local DUPLICATE = [[
return redis.call('HINCRBY', KEYS[1], 'duplicates', 1)
]]

--- How many copies of an ended job were dropped so far (this one included), or nil, err.
function Store:duplicate(id)
  return self.conn:eval(DUPLICATE, { self:job_key(id) }, {})
end

-- The lint findings of a job's brief, written before its first create (never refusing it).
local LINT = [[
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'lint', ARGV[2])
return 1
]]

function Store:lint(id, findings_json)
  return self.conn:eval(LINT, { self:job_key(id) }, { id, findings_json })
end

-- Jobs by status: every Q:job:* hash's status, counted in Redis (SCAN, so a large keyspace is
-- walked in steps inside the script without blocking for long per call).
local BY_STATUS = [[
local counts, cursor = {}, ARGV[2]
local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
for _, k in ipairs(r[2]) do
  local st = redis.call('HGET', k, 'status') or 'new'
  counts[st] = (counts[st] or 0) + 1
end
local flat = {}
for k, n in pairs(counts) do flat[#flat + 1] = k flat[#flat + 1] = n end
return { r[1], flat }
]]

--- The status report: queue length, jobs by status, workers with their leases, dead letters,
-- parked jobs. Returns a table or nil, err.
function Store:status_report()
  local conn = self.conn
  local queued, err = conn:call("LLEN", self.q)
  if not queued then return nil, err end
  local by, cursor = {}, "0"
  repeat
    local r, e = conn:eval(S.BY_STATUS, {}, { self.q:gsub("[%*%?%[%]\\]", "\\%0") .. ":job:*",
      cursor })
    if not r then return nil, e end
    cursor = r[1]
    for i = 1, #r[2], 2 do by[r[2][i]] = (by[r[2][i]] or 0) + tonumber(r[2][i + 1]) end
  until cursor == "0"
  local leases, le = self:leases()
  if not leases then return nil, le end
  local dead = conn:call("LLEN", self:key("dead"))
  local input = conn:call("ZCARD", self:key("input"))
  -- The shared budget's spend in the current UTC day (store_budget.lua), when there is one.
  local spent = self.budget_spent and self:budget_spent()
  return { queue = self.q, queued = queued, jobs = by, workers = leases, dead = dead or 0,
    input = input or 0, budget_spent_usd = spent and spent > 0 and spent / 1e6 or nil }
end

--- Adds these steps to store.lua's Store.
function M.install(class)
  S.BY_STATUS = BY_STATUS
  for k, v in pairs(Store) do class[k] = v end
end

return M

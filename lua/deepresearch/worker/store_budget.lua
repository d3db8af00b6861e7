-- The Redis side of the shared budget and rate (budget.lua): one script, run with EVALSHA
-- (EVAL when Redis answers NOSCRIPT), that takes a create's token from its provider's bucket
-- and reserves the job's worst-case cost in the spend counter of the current window, both or
-- neither; and one that settles a reservation to the real cost, or releases it.
-- Keys, for queue Q (beside those store.lua lists):
--   Q:rate:<provider>      hash   token bucket: tokens, ts (Redis's time, seconds)
--   Q:budget:<window>      string micro-USD reserved or spent in that window (UTC day:
--                                 Q:budget:2026-12-07); expires two windows after it ends
-- The job hash gains budget_reserved (micro-USD), budget_key (the window's key) while a
-- reservation stands, budget_window (the window's name, kept) and budget_cost (micro-USD)
-- once settled. Window keys are built inside
-- the script from Redis's clock (one Redis, not a cluster).
local M = {}
local Store = {}
local S = {} -- the scripts, complete once installed (they start with store.lua's iso())

M.MICRO = 1e6 -- money in the scripts: whole micro-USD (integers survive Redis's Lua numbers)

local RESERVE = [[
local h = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local est, cap, win = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rate, burst = tonumber(ARGV[5]), tonumber(ARGV[6])
local fresh, wkey, name = false, nil, nil
if cap and not redis.call('HGET', h, 'budget_reserved') then
  local start = math.floor(now / win) * win
  name = iso(start, 0)
  if win == 86400 then name = string.sub(name, 1, 10) end
  wkey = ARGV[7] .. ':' .. name
  local spent = tonumber(redis.call('GET', wkey) or '0')
  if spent + est > cap then
    -- Waits: shown on the job while this worker holds it and no create of it is under way.
    local st = redis.call('HGET', h, 'status')
    if redis.call('LPOS', KEYS[3], ARGV[8]) and not redis.call('HGET', h, 'task_id') and
       st ~= 'creating' and st ~= 'ambiguous' and st ~= 'done' and st ~= 'failed' then
      redis.call('HSET', h, 'id', ARGV[1], 'status', 'waiting_budget', 'worker', ARGV[9],
        'updated_at', iso(t[1], t[2]))
    end
    return { 'budget', tostring(spent), tostring(start + win - now) }
  end
  fresh = true
end
if rate then
  local b = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
  local tokens, ts = tonumber(b[1]) or burst, tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens < 1 then
    return { 'rate', '', tostring((1 - tokens) / rate) }
  end
  redis.call('HSET', KEYS[2], 'tokens', string.format('%.6f', tokens - 1),
    'ts', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[2], math.floor((burst / rate + 60) * 1000))
end
if fresh then
  redis.call('INCRBY', wkey, est)
  redis.call('EXPIREAT', wkey, math.floor(now / win) * win + 3 * win)
  redis.call('HSET', h, 'id', ARGV[1], 'budget_reserved', tostring(est), 'budget_key', wkey,
    'budget_window', name)
  return { 'ok', 'fresh' }
end
return { 'ok', '' }
]]

--- One create's turn: lim = { estimate (micro-USD), cap (micro-USD), window (seconds), rate
-- (creates a second), burst, provider }; cap or rate may be nil. Returns "ok", fresh (true
-- when this call reserved) | "budget", spent, seconds left in the window | "rate", "", seconds
-- until a token | nil, err.
function Store:reserve(job, lim)
  local r, err = self.conn:evalsha(S.RESERVE,
    { self:job_key(job.id), self:key("rate", lim.provider or ""), self:processing() },
    { job.id, lim.estimate and string.format("%d", lim.estimate) or "",
      lim.cap and string.format("%d", lim.cap) or "", lim.window or 86400,
      lim.rate and string.format("%.9f", lim.rate) or "", lim.burst or 1, self:key("budget"),
      job.raw, self.wid })
  if not r then return nil, err end
  if r[1] == "ok" then return "ok", r[2] == "fresh" end
  return r[1], tonumber(r[2]), tonumber(r[3])
end

-- A reservation settled to the real cost (ARGV[1] micro-USD) or released (ARGV[1] empty: the
-- create made nothing). Only once: the reservation fields go.
local SETTLE = [[
local h = KEYS[1]
local est = tonumber(redis.call('HGET', h, 'budget_reserved'))
local wkey = redis.call('HGET', h, 'budget_key')
if not est or not wkey then return 0 end
local real = tonumber(ARGV[1]) or 0
if ARGV[1] == 'keep' then real = est end
if redis.call('EXISTS', wkey) == 1 then redis.call('INCRBY', wkey, real - est) end
redis.call('HDEL', h, 'budget_reserved', 'budget_key')
if ARGV[1] ~= '' then redis.call('HSET', h, 'budget_cost', tostring(real)) end
return 1
]]

--- real: the task's cost in micro-USD; "keep" (a task whose cost is unknown: the reservation
-- counts as spent); nil to release the reservation (nothing was made). 1 when a reservation
-- was settled, 0 when there was none, or nil, err.
function Store:settle_budget(job, real)
  return self.conn:evalsha(SETTLE, { self:job_key(job.id) },
    { real == "keep" and "keep" or real and string.format("%d", real) or "" })
end

--- The current window's spend (micro-USD) and its key, for the status command and specs.
function Store:budget_spent(window)
  local t, err = self:time()
  if not t then return nil, err end
  window = window or 86400
  local name = require("deepresearch.worker.store").iso(math.floor(t / window) * window, 0)
  if window == 86400 then name = name:sub(1, 10) end
  local key = self:key("budget", name)
  local v, e = self.conn:call("GET", key)
  if e then return nil, e end
  return tonumber(v) or 0, key
end

--- Adds these steps to store.lua's Store; iso_source: its iso() as script text.
function M.install(class, iso_source)
  S.RESERVE = iso_source .. RESERVE
  for k, v in pairs(Store) do class[k] = v end
end

return M

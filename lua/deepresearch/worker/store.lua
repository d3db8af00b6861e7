-- The job state in Redis: key names and the atomic steps of a job's life.
-- Every step that must not be torn in half is one EVAL (Redis runs a script
-- atomically); every step is idempotent, so repeating it after a crash or a
-- lost reply is safe.
--
-- Keys, for queue Q:
--   Q                      list   pending jobs (JSON); producers LPUSH, workers take from the right
--   Q:processing:<worker>  list   jobs a worker holds (moved there atomically by LMOVE)
--   Q:worker:<worker>      string the worker's lease, with a TTL, refreshed while it lives
--   Q:workers              set    workers that may hold jobs (takeover looks here)
--   Q:job:<id>             hash   status, task_id, task, report, error, progress, timestamps
--   Q:tasks                hash   task id -> job id (one task belongs to one job)
--   Q:events               stream one entry per status change (job_id, status, task_id, error)
--   Q:dead                 list   jobs that can never run (JSON: job, error, worker, at)
--   Q:stats                hash   done, failed, dead, ambiguous counts
--   Q:meta                 hash   last_created_at: newest server creation time recorded
local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore

-- A job id that reached one of these is never run again. "dead" is not among them: a
-- dead job never made a task, so its producer may push a corrected job with the same id.
M.TERMINAL = { done = true, failed = true, ambiguous = true }

local Store = {}
Store.__index = Store

function M.new(conn, queue, worker_id, opts)
  opts = opts or {}
  return setmetatable({ conn = conn, q = queue, wid = worker_id, events_max = opts.events_max or 100000 },
    Store)
end

function Store:key(...) return table.concat({ self.q, ... }, ":") end
function Store:job_key(id) return self:key("job", id) end
function Store:processing(wid) return self:key("processing", wid or self.wid) end
function Store:lease_key(wid) return self:key("worker", wid or self.wid) end

-- Shared by the scripts: Redis time as "seconds.micros", and XADD of an event.
local PRELUDE = [[
local function now() local t = redis.call('TIME') return t[1] .. '.' .. string.format('%06d', t[2]) end
local function event(stream, max, id, status, task_id, err)
  redis.call('XADD', stream, 'MAXLEN', '~', max, '*', 'job_id', id, 'status', status,
    'task_id', task_id or '', 'error', err or '')
end
local TERMINAL = { done = true, failed = true, ambiguous = true }
]]

--- Takes one job from the queue into this worker's processing list (never blocks).
function Store:take()
  return self.conn:call("LMOVE", self.q, self:processing(), "RIGHT", "LEFT")
end

function Store:processing_items(wid)
  return self.conn:call("LRANGE", self:processing(wid), 0, -1)
end

function Store:queued()
  return self.conn:call("LLEN", self.q)
end

--- The job hash as a table ({} when absent).
function Store:load(id)
  local flat, err = self.conn:call("HGETALL", self:job_key(id))
  if not flat then return nil, err end
  if flat[1] == nil and next(flat) ~= nil then return flat end -- redis-lua may map it already
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

function Store:time()
  local t, err = self.conn:call("TIME")
  if not t then return nil, err end
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

-- Lease -----------------------------------------------------------------------------------------

-- Returns 0 when the lease had lapsed: others may have taken this worker's jobs.
local HEARTBEAT = [[
local had = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return had
]]

function Store:heartbeat(info, lease_seconds)
  return self.conn:eval(HEARTBEAT, { self:lease_key(), self:key("workers") },
    { info, math.floor(lease_seconds * 1000), self.wid })
end

-- Moves the jobs of every worker whose lease has expired into mine, atomically
-- per worker: a second worker running this at the same time finds the list empty.
local REAP = [[
local moved, dead = {}, {}
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if w ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. ':worker:' .. w) == 0 then
    local src = ARGV[1] .. ':processing:' .. w
    while true do
      local v = redis.call('LMOVE', src, KEYS[2], 'RIGHT', 'LEFT')
      if not v then break end
      moved[#moved + 1] = v
    end
    redis.call('SREM', KEYS[1], w)
    dead[#dead + 1] = w
  end
end
return { moved, dead }
]]

--- Takes over the jobs of dead workers. Returns moved job texts and the dead worker ids.
function Store:reap()
  local r, err = self.conn:eval(REAP, { self:key("workers"), self:processing() }, { self.q, self.wid })
  if not r then return nil, err end
  return r[1] or {}, r[2] or {}
end

-- True when no job is queued and no worker holds one (for --once).
local ALL_EMPTY = [[
if redis.call('LLEN', KEYS[1]) > 0 then return 0 end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('LLEN', ARGV[1] .. ':processing:' .. w) > 0 then return 0 end
end
return 1
]]

function Store:all_empty()
  local r, err = self.conn:eval(ALL_EMPTY, { self.q, self:key("workers") }, { self.q })
  if r == nil then return nil, err end
  return r == 1
end

--- Leaves the worker set (clean exit with an empty processing list).
function Store:retire()
  self.conn:call("SREM", self:key("workers"), self.wid)
  return self.conn:call("DEL", self:lease_key())
end

-- Job steps -------------------------------------------------------------------------------------

-- Marks a job "creating" before its create is sent, with the Redis time and the
-- newest server creation time seen so far: a task made by this create can only be
-- newer than that, which is how a lost answer is found again (see reconcile).
local MARK_CREATING = PRELUDE .. [[
local h = KEYS[1]
local tid = redis.call('HGET', h, 'task_id')
if tid then return { 'task', tid } end
local st = redis.call('HGET', h, 'status')
if st and TERMINAL[st] then return { 'terminal', st } end
if st == 'creating' and ARGV[4] ~= '1' then return { 'creating', '' } end
local t = now()
redis.call('HSET', h, 'id', ARGV[1], 'status', 'creating', 'creating_at', t,
  'creating_floor', redis.call('HGET', KEYS[2], 'last_created_at') or '', 'worker', ARGV[2],
  'brief', ARGV[3], 'updated_at', t)
redis.call('HINCRBY', h, 'creates', 1)
return { 'ok', t }
]]

--- Returns "ok" | "task", id | "terminal", status | "creating" (someone else is creating).
function Store:mark_creating(job, force)
  local r, err = self.conn:eval(MARK_CREATING, { self:job_key(job.id), self:key("meta") },
    { job.id, self.wid, job.brief or "", force and "1" or "0" })
  if not r then return nil, err end
  return r[1], r[2]
end

-- Records the task behind a job, once: a job has one task and a task one job.
local RECORD_TASK = PRELUDE .. [[
local h = KEYS[1]
local cur = redis.call('HGET', h, 'task_id')
if cur and cur ~= ARGV[1] then return { 'other', cur } end
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[2] then return { 'claimed', owner } end
local st = redis.call('HGET', h, 'status')
if st == 'done' or st == 'failed' then return { 'terminal', st } end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local t = now()
redis.call('HSET', h, 'id', ARGV[2], 'task_id', ARGV[1], 'status', 'running', 'task_status', ARGV[4],
  'reconciled', ARGV[5], 'updated_at', t, 'worker', ARGV[6])
redis.call('HDEL', h, 'error')
local created = tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[3], 'last_created_at') or '')
if created and (not last or created > last) then redis.call('HSET', KEYS[3], 'last_created_at', ARGV[3]) end
if not cur then event(KEYS[4], ARGV[7], ARGV[2], 'running', ARGV[1], '') end
return { 'ok', ARGV[1] }
]]

--- Returns "ok" | "other", recorded_id | "claimed", other_job | "terminal", status.
function Store:record_task(job, task_id, created_epoch, task_status, reconciled)
  local r, err = self.conn:eval(RECORD_TASK,
    { self:job_key(job.id), self:key("tasks"), self:key("meta"), self:key("events") },
    { task_id, job.id, created_epoch and string.format("%.3f", created_epoch) or "", task_status or "",
      reconciled and "1" or "0", self.wid, self.events_max })
  if not r then return nil, err end
  return r[1], r[2]
end

local PROGRESS = [[
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
]]

--- Per-job progress counters for other processes to show (only while running).
function Store:progress(job, fields)
  local args = {}
  for k, v in pairs(fields) do
    args[#args + 1] = k
    args[#args + 1] = tostring(v)
  end
  if #args == 0 then return true end
  return self.conn:eval(PROGRESS, { self:job_key(job.id) }, args)
end

--- Notes a transient problem on the job (it stays with this worker and is retried).
function Store:note(job, status, err_json, extra)
  local fields = { "error", err_json, "updated_at", tostring(os.time()) }
  if status then fields[#fields + 1] = "status"; fields[#fields + 1] = status end
  for k, v in pairs(extra or {}) do fields[#fields + 1] = k; fields[#fields + 1] = v end
  return self.conn:call("HSET", self:job_key(job.id), unpack(fields))
end

-- The end of a job: result and event written, job released, in one step. A job
-- already ended (by another worker that held it too) only leaves this worker's list.
local FINISH = PRELUDE .. [[
local removed = redis.call('LREM', KEYS[2], 1, ARGV[1])
local st = redis.call('HGET', KEYS[1], 'status')
if st and TERMINAL[st] then return { 0, removed } end
local t = now()
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'status', ARGV[3], 'task', ARGV[4], 'report', ARGV[5],
  'error', ARGV[6], 'updated_at', t, 'finished_at', t, 'worker', ARGV[8])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'task_status', ARGV[9]) end
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
event(KEYS[3], ARGV[10], ARGV[2], ARGV[3], ARGV[7], ARGV[6])
return { 1, removed }
]]

--- Returns written (true when this call ended the job), or nil, err.
function Store:finish(job, status, fields)
  local r, err = self.conn:eval(FINISH,
    { self:job_key(job.id), self:processing(), self:key("events"), self:key("stats") },
    { job.raw, job.id, status, fields.task or "", fields.report or "", fields.error or "",
      fields.task_id or "", self.wid, fields.task_status or "", self.events_max })
  if not r then return nil, err end
  return r[1] == 1
end

--- Drops a copy of a job this worker holds without touching its hash (a duplicate).
function Store:release(raw)
  return self.conn:call("LREM", self:processing(), 1, raw)
end

-- A job that can never run: into the dead-letter list, out of the processing list.
local DEAD = PRELUDE .. [[
local removed = redis.call('LREM', KEYS[2], 1, ARGV[1])
if removed == 0 then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[4], 'dead', 1)
if ARGV[3] ~= '' then
  local h = ARGV[5] .. ':job:' .. ARGV[3]
  local st = redis.call('HGET', h, 'status')
  if not (st and TERMINAL[st]) then
    local t = now()
    redis.call('HSET', h, 'id', ARGV[3], 'status', 'dead', 'error', ARGV[4], 'updated_at', t, 'finished_at', t)
  end
end
event(KEYS[3], ARGV[6], ARGV[3], 'dead', '', ARGV[4])
return 1
]]

function Store:dead(raw, entry_json, job_id, err_json)
  return self.conn:eval(DEAD, { self:key("dead"), self:processing(), self:key("events"), self:key("stats") },
    { raw, entry_json, job_id or "", err_json, self.q, self.events_max })
end

--- The shared counters (done, failed, dead, ambiguous) as a table.
function Store:stats()
  local flat = self.conn:call("HGETALL", self:key("stats"))
  local s = {}
  if type(flat) == "table" then
    if flat[1] == nil then return flat end
    for i = 1, #flat, 2 do s[flat[i]] = tonumber(flat[i + 1]) end
  end
  return s
end

return M

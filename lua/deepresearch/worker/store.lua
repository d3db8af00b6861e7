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
--   Q:input                zset   jobs waiting for a person's answer (store_checkpoint.lua)
-- Every time written is ISO 8601 UTC with milliseconds ("2026-12-07T18:04:05.123Z"); the
-- scripts take it from Redis's clock (TIME), so all workers' times in one hash agree.
local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore

-- ISO 8601 UTC from seconds and microseconds since the epoch, in plain arithmetic: Redis's
-- Lua has no os.date. The same text runs inside the scripts and here (M.iso).
local ISO = [[
local function iso(sec, usec)
  sec = math.floor(tonumber(sec))
  local days = math.floor(sec / 86400)
  local rem = sec - days * 86400
  local z = days + 719468 -- days since 0000-03-01 (proleptic Gregorian; H. Hinnant's civil_from_days)
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, math.floor(rem / 3600),
    math.floor(rem % 3600 / 60), rem % 60, math.floor(tonumber(usec or 0) / 1000))
end
]]

M.ISO_SOURCE = ISO
-- loadstring on Lua 5.1/LuaJIT, whose load takes a function, not a string.
local load_text = rawget(_G, "loadstring") or load
M.iso = assert(load_text(ISO .. " return iso", "=iso"))()

--- ISO 8601 UTC text of t seconds since the epoch (fractions kept to the millisecond).
function M.iso_of(t)
  local sec = math.floor(t)
  local usec = math.floor((t - sec) * 1e6 + 0.5)
  -- .9999997 rounds into the next second
  if usec >= 1000000 then sec, usec = sec + 1, usec - 1000000 end
  return M.iso(sec, usec)
end

--- This machine's time as ISO 8601 UTC (for what is written outside the scripts: dead letters).
function M.timestamp()
  return M.iso_of(require("socket").gettime())
end

-- A job id that reached one of these is never run again. "dead" is not among them: a
-- dead job never made a task, so its producer may push a corrected job with the same id.
M.TERMINAL = { done = true, failed = true, ambiguous = true }

--- The status a job hash (as loaded) ended with for good, or nil: done, failed, or ambiguous
-- and set aside for a person (finished_at set). An "ambiguous" job without finished_at is held
-- by a worker that keeps searching for its task.
function M.ended(h)
  if h.status == "done" or h.status == "failed" then return h.status end
  if h.status == "ambiguous" and h.finished_at then return h.status end
  return nil
end

local Store = {}
Store.__index = Store

function M.new(conn, queue, worker_id, opts)
  opts = opts or {}
  return setmetatable({ conn = conn, q = queue, wid = worker_id,
    events_max = opts.events_max or 100000 },
    Store)
end

function Store:key(...) return table.concat({ self.q, ... }, ":") end
function Store:job_key(id) return self:key("job", id) end
function Store:processing(wid) return self:key("processing", wid or self.wid) end
function Store:lease_key(wid) return self:key("worker", wid or self.wid) end

-- Shared by the scripts: Redis time as ISO text, and XADD of an event.
local PRELUDE = ISO .. [[
local function now() local t = redis.call('TIME') return iso(t[1], t[2]) end
local function event(stream, max, id, status, task_id, err)
  redis.call('XADD', stream, 'MAXLEN', '~', max, '*', 'job_id', id, 'status', status,
    'task_id', task_id or '', 'error', err or '')
end
local TERMINAL = { done = true, failed = true, ambiguous = true }
-- Whether the job has ended for good: done, failed, or ambiguous and set aside for a person
-- ("ambiguous" without finished_at: a worker still holds it and keeps searching for its task).
local function ended(h)
  local st = redis.call('HGET', h, 'status')
  if st == 'done' or st == 'failed' then return st end
  if st == 'ambiguous' and redis.call('HEXISTS', h, 'finished_at') == 1 then return st end
  return nil
end
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

-- The lease's value is this process's own (see worker/init.lua), so a second process
-- under the same worker id is told apart. Returns { state, pttl_before, sec, usec }: state 1
-- mine, 0 lapsed (others may have taken this worker's jobs), 2 another process's; in mode
-- "renew" a lease of another process is left alone (that process now owns the id).
local HEARTBEAT = [[
local cur = redis.call('GET', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
local state = 0
if cur == ARGV[1] then state = 1 elseif cur then state = 2 end
local t = redis.call('TIME')
if state == 2 and ARGV[4] ~= 'start' then return { 2, pttl, t[1], t[2] } end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return { state, pttl, t[1], t[2] }
]]

--- mode: "start" (take the id over from an earlier process) or "renew".
-- Returns state (1 mine, 0 lapsed, 2 another process's), the earlier lease's remaining
-- seconds (negative when there was none) and Redis's time, or nil, err.
function Store:heartbeat(value, lease_seconds, mode)
  local r, err = self.conn:eval(HEARTBEAT, { self:lease_key(), self:key("workers") },
    { value, math.floor(lease_seconds * 1000), self.wid, mode or "renew" })
  if not r then return nil, err end
  return r[1], r[2] / 1000, tonumber(r[3]) + tonumber(r[4]) / 1e6
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
local t = redis.call('TIME')
return { moved, dead, t[1], t[2] }
]]

--- Takes over the jobs of dead workers. Returns moved job texts, the dead worker ids and
-- Redis's time (every lease behind a moved job had expired by then).
function Store:reap()
  local r, err = self.conn:eval(REAP, { self:key("workers"), self:processing() }, { self.q,
    self.wid })
  if not r then return nil, err end
  return r[1] or {}, r[2] or {}, tonumber(r[3]) + tonumber(r[4]) / 1e6
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

-- The create gate: runs right before a job's create request is handed to libcurl (when it
-- has a connection, not while it waits for one). In one script: this worker still holds the
-- job (it is in this worker's processing list and the lease is this process's own), the lease
-- is renewed, and the job is marked "creating" with Redis's time and the newest server
-- creation time recorded so far (a task made by this create can only be newer: see
-- reconcile). A worker paused after this sends nothing once the renewed lease could have run
-- out (the poller's send_by), so whoever takes the job over next knows when to look.
local CLAIM_SEND = PRELUDE .. [[
if redis.call('GET', KEYS[4]) ~= ARGV[6] then return { 'lease', '' } end
if not redis.call('LPOS', KEYS[3], ARGV[5]) then return { 'lost', '' } end
redis.call('SET', KEYS[4], ARGV[6], 'PX', ARGV[7])
local h = KEYS[1]
local tid = redis.call('HGET', h, 'task_id')
if tid then return { 'task', tid } end
local st = ended(h)
if st then return { 'terminal', st } end
-- A create of this job may have made a task: nothing is sent until it is found or a person
-- clears the job (docs/worker.md).
if redis.call('HGET', h, 'ambiguous') == '1' then return { 'ambiguous', '' } end
st = redis.call('HGET', h, 'status')
if st == 'creating' and ARGV[4] ~= '1' then return { 'creating', '' } end
local t = now()
redis.call('HSET', h, 'id', ARGV[1], 'status', 'creating', 'creating_at', t,
  'creating_floor', redis.call('HGET', KEYS[2], 'last_created_at') or '', 'worker', ARGV[2],
  'brief', ARGV[3], 'updated_at', t)
redis.call('HINCRBY', h, 'creates', 1)
-- The batch this create adds the job to: its task is searched for there (docs/worker.md).
if (ARGV[8] or '') ~= '' then redis.call('HSET', h, 'batch_id', ARGV[8]) else redis.call('HDEL', h, 'batch_id') end
return { 'ok', t }
]]

--- Returns "ok" (send it) | "task", id | "terminal", status | "ambiguous" | "creating" (an
-- earlier create may be in flight) | "lost" (another worker took the job) | "lease" (the
-- lease is not this process's now), or nil, err when Redis failed. batch_id: the batch the
-- create adds the job to (recorded with the marker), or nil for a create of its own.
function Store:claim_send(job, force, lease_value, lease_seconds, batch_id)
  local r, err = self.conn:eval(CLAIM_SEND,
    { self:job_key(job.id), self:key("meta"), self:processing(), self:lease_key() },
    { job.id, self.wid, job.brief or "", force and "1" or "0", job.raw, lease_value,
      math.floor(lease_seconds * 1000), batch_id or "" })
  if not r then return nil, err end
  return r[1], r[2]
end

-- Records the task behind a job, once: a job has one task and a task one job. Any worker
-- may record it (a create answered after its job was taken over still tells where the task is).
local RECORD_TASK = PRELUDE .. [[
local h = KEYS[1]
local cur = redis.call('HGET', h, 'task_id')
if cur and cur ~= ARGV[1] then return { 'other', cur } end
local st = redis.call('HGET', h, 'status')
if st == 'done' or st == 'failed' then return { 'terminal', st } end
if cur then return { 'ok', cur } end -- recorded already (by this worker, or the one it took over from)
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner and owner ~= ARGV[2] then return { 'claimed', owner } end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local t = now()
redis.call('HSET', h, 'id', ARGV[2], 'task_id', ARGV[1], 'status', 'running', 'task_status', ARGV[4],
  'reconciled', ARGV[5], 'updated_at', t, 'worker', ARGV[6])
redis.call('HDEL', h, 'error', 'ambiguous', 'finished_at')
-- Same-format ISO texts compare like the times they name.
local last = redis.call('HGET', KEYS[3], 'last_created_at')
if ARGV[3] ~= '' and (not last or ARGV[3] > last) then redis.call('HSET', KEYS[3], 'last_created_at', ARGV[3]) end
event(KEYS[4], ARGV[7], ARGV[2], 'running', ARGV[1], '')
return { 'ok', ARGV[1] }
]]

--- Returns "ok" | "other", recorded_id | "claimed", other_job | "terminal", status.
function Store:record_task(job, task_id, created_epoch, task_status, reconciled)
  local r, err = self.conn:eval(RECORD_TASK,
    { self:job_key(job.id), self:key("tasks"), self:key("meta"), self:key("events") },
    { task_id, job.id, created_epoch and M.iso_of(created_epoch) or "", task_status or "",
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

-- A problem noted on a job that goes on. "ambiguous": a create may have made a task; the job
-- is never created again until that task is found or a person clears it. Noted even by a
-- worker that no longer holds the job: it is a fact about the job, and keeps its new owner
-- from creating blindly. With ARGV[5] (a creating_at), only while that very create marker
-- stands ('changed' otherwise: its writer cleared it meanwhile). "retrying" (a create that
-- made nothing) and "waiting" (a failed poll) only by the worker holding it.
local NOTE = PRELUDE .. [[
local h = KEYS[1]
if ended(h) then return 'settled' end
if ARGV[2] ~= 'waiting' and redis.call('HGET', h, 'task_id') then return 'settled' end
if ARGV[2] ~= 'ambiguous' and not redis.call('LPOS', KEYS[2], ARGV[1]) then return 'lost' end
if ARGV[5] ~= '' and (redis.call('HGET', h, 'status') ~= 'creating' or
    redis.call('HGET', h, 'creating_at') ~= ARGV[5]) then
  return 'changed'
end
local t = now()
redis.call('HSET', h, 'id', ARGV[4], 'error', ARGV[3], 'updated_at', t)
if ARGV[2] == 'ambiguous' then
  redis.call('HSET', h, 'status', 'ambiguous', 'ambiguous', '1', 'ambiguous_at', t)
elseif ARGV[2] == 'retrying' and redis.call('HGET', h, 'ambiguous') ~= '1' then
  redis.call('HSET', h, 'status', 'retrying')
end
return 'ok'
]]

--- kind: "ambiguous" | "retrying" | "waiting"; marker (optional, with "ambiguous"): the
-- creating_at of the create marker this note is about. Returns "ok", "settled" (the job has
-- its task or has ended), "lost" (no longer held here), "changed" (the marker is gone), or nil,
-- err.
function Store:note(job, kind, err_json, marker)
  return self.conn:eval(NOTE, { self:job_key(job.id), self:processing() },
    { job.raw, kind, err_json, job.id, marker or "" })
end

-- The process whose gate wrote a create marker knows that create made nothing: its last
-- request never left (the transport says so), and any earlier request of the same create was
-- answered "nothing made" (the library sends again only then). Only while that marker is the
-- job's latest (creating_at unchanged: no create has passed a gate since, and any "ambiguous"
-- is about it) is the job set back to "retrying", so whoever holds it may create it again.
-- Written whether or not this worker still holds the job: it is a fact about the job.
local CLEAR_MARKER = PRELUDE .. [[
local h = KEYS[1]
if ended(h) or redis.call('HGET', h, 'task_id') then return 'settled' end
local st = redis.call('HGET', h, 'status')
if redis.call('HGET', h, 'creating_at') == ARGV[2] and (st == 'creating' or st == 'ambiguous') then
  local t = now()
  redis.call('HSET', h, 'status', 'retrying', 'error', ARGV[3], 'updated_at', t)
  redis.call('HDEL', h, 'ambiguous', 'ambiguous_at')
end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then return 'lost' end
return 'ok'
]]

--- marker: the creating_at this process's gate wrote. Returns "ok", "settled", "lost" (the
-- marker was cleared, but another worker holds the job now), or nil, err.
function Store:clear_marker(job, marker, err_json)
  return self.conn:eval(CLEAR_MARKER, { self:job_key(job.id), self:processing() }, { job.raw,
    marker, err_json })
end

-- The end of a job: result and event written, job released, in one step. A job
-- already ended (by another worker that held it too) only leaves this worker's list.
-- finished_at on an "ambiguous" job means it is set aside for a person.
local FINISH = PRELUDE .. [[
local removed = redis.call('LREM', KEYS[2], 1, ARGV[1])
if ended(KEYS[1]) then return { 0, removed } end
-- Set aside as ambiguous while another copy of the job found its task: that copy goes on.
if ARGV[3] == 'ambiguous' and redis.call('HGET', KEYS[1], 'task_id') then return { 0, removed } end
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
  return self.conn:eval(DEAD, { self:key("dead"), self:processing(), self:key("events"),
    self:key("stats") },
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

-- Checkpoints (a task waiting for a person's answer): park, take_due, waiting_input, answered,
-- unparked, respond.
require("deepresearch.worker.store_checkpoint").install(Store, PRELUDE)
-- A stopped worker's lease, the status command's reads, duplicates and lint notes.
require("deepresearch.worker.store_worker").install(Store)
-- The shared budget and rate (worker/budget.lua).
require("deepresearch.worker.store_budget").install(Store, ISO)

return M

-- The Redis side of checkpoints (checkpoint.lua): a job whose task waits for a person's
-- answer parked in Q:input, the consumer's answer written to its hash, the job woken up again.
-- Keys, for queue Q (beside those store.lua lists):
--   Q:input                zset   parked jobs (their text), scored by the next look at the task
-- These are methods of the store: store.lua adds them (M.install) and hands over the prelude
-- its scripts share (Redis time, events, ended), which the scripts here start with too.
local M = {}

local Store = {} -- copied onto store.lua's Store
local S = {} -- the scripts that start with the prelude, complete (M.install)

-- A job whose task waits for input leaves the worker: out of its processing list, into the
-- sorted set Q:input (the job text, scored by when a worker looks at the task again), so it
-- holds no slot and no connection for the hours a person may take. The interaction is
-- written to the job hash (and an event added once per checkpoint) for the consumer to
-- answer. 'answer': an answer arrived meanwhile (the respond command wrote it while this
-- worker held the job): the worker sends it instead of parking.
local PARK = [[
local h = KEYS[1]
if ended(h) then return 'settled' end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then return 'lost' end
if redis.call('HEXISTS', h, 'answer') == 1 then return 'answer' end
local t = now()
local fresh = redis.call('HGET', h, 'status') ~= 'input_required' or
  redis.call('HGET', h, 'interaction_id') ~= ARGV[4]
redis.call('HSET', h, 'id', ARGV[2], 'status', 'input_required', 'interaction', ARGV[3],
  'interaction_id', ARGV[4], 'interaction_type', ARGV[5], 'task_status', ARGV[6], 'job', ARGV[1],
  'worker', ARGV[8], 'updated_at', t)
if fresh then redis.call('HSET', h, 'input_at', t) end
redis.call('LREM', KEYS[2], 1, ARGV[1])
local tt = redis.call('TIME')
redis.call('ZADD', KEYS[3], tonumber(tt[1]) + tonumber(ARGV[7]), ARGV[1])
if fresh then event(KEYS[4], ARGV[9], ARGV[2], 'input_required', redis.call('HGET', h, 'task_id'), '') end
return 'ok'
]]

--- Parks a job whose task waits for input. interaction: { json, id, type }; recheck: seconds
-- until a worker looks at the task again. Returns "ok", "answer" (send the answer that
-- arrived), "settled", "lost", or nil, err.
function Store:park(job, interaction, task_status, recheck)
  return self.conn:eval(S.PARK,
    { self:job_key(job.id), self:processing(), self:key("input"), self:key("events") },
    { job.raw, job.id, interaction.json, interaction.id or "", interaction.type or "",
      task_status or "", math.floor(recheck), self.wid, self.events_max })
end

-- Parked jobs whose re-check is due move into this worker's processing list; ZREM decides
-- which of several workers doing this at once gets each one.
local TAKE_DUE = [[
local t = redis.call('TIME')
local out = {}
for _, raw in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t[1], 'LIMIT', 0, ARGV[1])) do
  if redis.call('ZREM', KEYS[1], raw) == 1 then
    redis.call('LPUSH', KEYS[2], raw)
    out[#out + 1] = raw
  end
end
return out
]]

--- How many jobs wait for a person's answer (for the status line).
function Store:waiting_input()
  return self.conn:call("ZCARD", self:key("input"))
end

--- Takes up to n parked jobs due for a look at their task. Returns their texts, or nil, err.
function Store:take_due(n)
  return self.conn:eval(TAKE_DUE, { self:key("input"), self:processing() }, { n })
end

-- The answer left the job: sent (or found consumed: the task moved on), or refused by the API
-- (ARGV[2]: the error, kept for the consumer, who answers again). The job runs again.
local ANSWERED = [[
local h = KEYS[1]
if ARGV[3] ~= '' and redis.call('HGET', h, 'answer_interaction') ~= ARGV[3] then return 'changed' end
redis.call('HDEL', h, 'answer', 'answer_interaction', 'answered_at')
if ARGV[2] ~= '' then
  redis.call('HSET', h, 'error', ARGV[2], 'updated_at', now())
  event(KEYS[2], ARGV[4], ARGV[1], 'input_required', redis.call('HGET', h, 'task_id'), ARGV[2])
  return 'refused'
end
if redis.call('HGET', h, 'status') == 'input_required' then
  local t = now()
  redis.call('HSET', h, 'status', 'running', 'responded_at', t, 'updated_at', t)
  redis.call('HDEL', h, 'interaction', 'interaction_id', 'interaction_type', 'error')
  event(KEYS[2], ARGV[4], ARGV[1], 'running', redis.call('HGET', h, 'task_id'), '')
end
return 'ok'
]]

--- answered: the job's answer went (err_json nil) or was refused (err_json: why). interaction:
-- the interaction the answer was for (it is left alone when a newer answer replaced it).
function Store:answered(job, interaction_id, err_json)
  return self.conn:eval(S.ANSWERED, { self:job_key(job.id), self:key("events") },
    { job.id, err_json or "", interaction_id or "", self.events_max })
end

--- A task found running again after a checkpoint (answered through the API itself): the job
-- is "running" again.
function Store:unparked(job)
  return self:answered(job, "", nil)
end

-- The consumer's side: an answer for a job waiting for input, written to its hash; the job
-- goes back to the right end of the queue (taken next), where any worker picks it up and sends
-- the answer. Refused unless the job waits for input, for that interaction, and has no answer
-- pending. ARGV[1] '' (no answer): only re-queued, for a task answered through the API itself.
local RESPOND = [[
local h = KEYS[1]
local st = redis.call('HGET', h, 'status')
if st ~= 'input_required' then return { 'not_waiting', st or '' } end
local iid = redis.call('HGET', h, 'interaction_id') or ''
if ARGV[2] ~= '' and ARGV[2] ~= iid then return { 'stale', iid } end
if ARGV[1] ~= '' then
  if redis.call('HEXISTS', h, 'answer') == 1 then
    return { 'pending', redis.call('HGET', h, 'answer_interaction') or '' }
  end
  local t = now()
  redis.call('HSET', h, 'answer', ARGV[1], 'answer_interaction', iid, 'answered_at', t,
    'updated_at', t)
end
local raw = redis.call('HGET', h, 'job')
if raw and redis.call('ZREM', KEYS[2], raw) == 1 then redis.call('RPUSH', KEYS[3], raw) end
return { 'ok', iid }
]]

--- Writes an answer for job id (answer_json; nil: only wake the job up). interaction_id:
-- optional, the checkpoint answered. Returns "ok", id | "not_waiting", status | "stale",
-- current id | "pending", id, or nil, err.
function Store:respond(id, answer_json, interaction_id)
  local r, err = self.conn:eval(S.RESPOND, { self:job_key(id), self:key("input"), self.q },
    { answer_json or "", interaction_id or "" })
  if not r then return nil, err end
  return r[1], r[2]
end

--- Adds the checkpoint steps to store.lua's Store; prelude: the text its scripts start with.
function M.install(class, prelude)
  S.PARK, S.ANSWERED, S.RESPOND = prelude .. PARK, prelude .. ANSWERED, prelude .. RESPOND
  for k, v in pairs(Store) do class[k] = v end
end

return M

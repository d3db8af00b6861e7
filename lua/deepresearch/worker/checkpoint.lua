-- Checkpoints (mixed into Worker beside flow.lua): a task that waits for a person's answer
-- (input_required). Its job is parked: out of the worker, the interaction recorded, until the
-- respond command (cli.lua) writes an answer and re-queues it; then the worker sends that
-- answer once the task is seen waiting for exactly that interaction, and the wait goes on
-- (flow.lua). The Redis side is store_checkpoint.lua; docs/worker.md tells the whole story.
local jobs = require "deepresearch.worker.job"
local policy = require "deepresearch.base.policy"
local flow = require "deepresearch.worker.flow"
local is_interrupt = require("deepresearch.worker.redis").is_interrupt
local task_state = require("deepresearch").state

local M = {}

local WAIT_AGAIN = policy.WAIT_AGAIN -- an answer that failed this way is sent again later
local backoff = flow.backoff

-- Whether interaction i is the one the job's answer was written for (an answer written while
-- the interaction had no id is for whichever the task shows).
local function answers(h, i)
  local wanted = h.answer_interaction
  return wanted == nil or wanted == "" or tostring(i.interaction_id) == wanted
end

local function interaction_of(task, interaction)
  local i = interaction
  if type(i) ~= "table" and type(task) == "table" then i = task.interaction end
  if type(i) ~= "table" then return { json = "null" } end
  return { json = jobs.encode(i), id = i.interaction_id and tostring(i.interaction_id),
    type = i.type and tostring(i.type) }
end

--- The task waits for a person (a checkpoint): the job leaves this worker, interaction recorded,
-- until the respond command brings it back (or a rare re-check finds the task moved on).
function M:park(job, task, interaction)
  local info = interaction_of(task, interaction)
  local r, e = self.store:park(job, info, type(task) == "table" and task.status or nil,
    self.opts.input_recheck)
  if not r then return nil, e end
  if r == "lost" then return self:lost(job) end
  if r == "settled" then return self:resume(job) end
  if r == "answer" then
    local h, err = self.store:load(job.id)
    if not h then return nil, err end
    return self:answer(job, h, type(task) == "table" and task or nil)
  end
  if not job.parked then
    self:log("job %s: task %s waits for input (%s %s); parked until answered", job.id,
      tostring(job.task_id), tostring(info.type), tostring(info.id))
  end
  self.stats.input = (self.stats.input or 0) + 1
  self:forget(job)
  return true
end

--- Sends the answer the consumer left in the job hash (h.answer), once the task is seen
-- waiting for exactly that interaction. A task that no longer waits for it got the answer
-- already (a worker stopped after sending it) or was answered another way: the answer is
-- dropped and the wait goes on. task: the task as just polled, if any.
function M:answer(job, h, task)
  job.task_id = h.task_id
  job.parked = true
  if not task then
    self:lane(job).poller:get(h.task_id, function(t, err)
      self:try(job, function()
        if not t then return self:answer_later(job, err) end
        return self:answer(job, h, t)
      end)
    end)
    return true
  end
  local i = task.interaction
  if task_state(task) ~= "input_required" or type(i) ~= "table" or not answers(h, i) then
    self:debug("job %s: task %s no longer waits for interaction %s; its answer went", job.id,
      h.task_id, tostring(h.answer_interaction))
    local r, e = self.store:answered(job, h.answer_interaction)
    if not r then return nil, e end
    if r == "changed" then return self:resume(job) end
    job.parked = false
    return self:wait(job, h.task_id)
  end
  local response = jobs.decode(h.answer)
  local poller = self:lane(job).poller
  local ok, err = pcall(poller.add, poller, "respond", function(ack, rerr)
    self:try(job, function() return self:responded(job, h, ack, rerr) end)
  end, h.task_id, i, response) -- the table: its type selects the shape checked
  if not ok then
    if is_interrupt(err) then error(err, 0) end
    return self:refused(job, h, task, { code = "invalid_request", message = tostring(err) })
  end
  return true
end

function M:answer_later(job, err)
  job.attempts = (job.attempts or 0) + 1
  local delay = backoff(job.attempts)
  self:log("job %s: answering its checkpoint failed (%s); again in %.1fs", job.id, tostring(err),
    delay)
  return self:later(job, delay, flow.resume)
end

function M:responded(job, h, ack, err)
  if ack then
    local r, e = self.store:answered(job, h.answer_interaction)
    if not r then return nil, e end
    if r == "changed" then return self:resume(job) end
    self:log("job %s: checkpoint %s answered; task %s goes on", job.id,
      tostring(h.answer_interaction), tostring(h.task_id))
    job.parked = false
    return self:wait(job, h.task_id)
  end
  if err.retryable or WAIT_AGAIN[err.code] then return self:answer_later(job, err) end
  -- Refused: by this library (a bad shape) or by the API. The API also refuses an answer it
  -- already has (a respond sent twice), so the task decides: still waiting for this
  -- interaction means the answer itself was refused.
  self:lane(job).poller:get(h.task_id, function(t, gerr)
    self:try(job, function()
      if not t then return self:answer_later(job, gerr) end
      local i = t.interaction
      if task_state(t) == "input_required" and type(i) == "table" and answers(h, i) then
        return self:refused(job, h, t, err)
      end
      return self:answer(job, h, t) -- moved on: the answer went
    end)
  end)
  return true
end

--- The answer was refused: the error is kept on the job for the consumer, who answers again.
function M:refused(job, h, task, err)
  self:log("job %s: its answer to checkpoint %s was refused: %s", job.id,
    tostring(h.answer_interaction), tostring(err.message or err))
  local r, e = self.store:answered(job, h.answer_interaction, jobs.error_json(err))
  if not r then return nil, e end
  if r == "changed" then return self:resume(job) end
  return self:park(job, task, task.interaction)
end

return M

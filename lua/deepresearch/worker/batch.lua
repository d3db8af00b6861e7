-- Batches (--batch-size; mixed into Worker beside flow.lua): jobs whose batch parameters agree
-- are created together, as one batch of tasks, instead of one create each. Each job still
-- passes the create gate and has its answer recorded as a create's would be (flow.lua); a job
-- a batch cannot take, or one a batch refused, is created on its own.
local core = require "deepresearch.core"
local dr = require "deepresearch"
local jobs = require "deepresearch.worker.job"
local flow = require "deepresearch.worker.flow"
local is_interrupt = require("deepresearch.worker.redis").is_interrupt

local M = {}

local backoff = flow.backoff

--- The blocking client batches are sent and listed with (its own connections: the poller's
-- transfers are not disturbed while a batch call runs).
function M:batch_client()
  if not self.bclient then self.bclient = dr.client(self.client_opts) end
  return self.bclient
end

--- The job waits in a group of jobs whose batch parameters agree; the loop sends each group as
-- one batch (send_batch) at the end of the turn that filled it. False when the job cannot go
-- in a batch (it is created on its own).
function M:join_batch(job)
  local key, opts, task = self.provider.batch.group(job.params, job)
  if not key then return false end
  job.attempts = job.attempts + 1
  local g = self.groups[key]
  if not g then
    g = { opts = opts, jobs = {}, tasks = {} }
    self.groups[key] = g
  end
  g.jobs[#g.jobs + 1], g.tasks[#g.tasks + 1] = job, task
  job.group = g
  if #g.jobs >= self.opts.batch_size then
    self.groups[key] = nil
    self.full[#self.full + 1] = g
  end
  self:debug("job %s: waits for its batch (%d so far)", job.id, #g.jobs)
  return true
end

--- Sends every group waiting: full ones, then the rest (nothing more came this turn).
function M:flush_batches()
  local list = self.full
  self.full = {}
  for key, g in pairs(self.groups) do
    list[#list + 1] = g
    self.groups[key] = nil
  end
  for _, g in ipairs(list) do
    local ok, err = pcall(self.send_batch, self, g)
    if not ok then
      if is_interrupt(err) then error(err, 0) end
      self:log("internal error sending a batch: %s", tostring(err))
      for _, job in ipairs(g.jobs) do
        job.sending = nil -- a job marked meanwhile is searched for, never sent blindly
        if not job.gone and not job.step and not job.task_id then
          self:later(job, 1, flow.create)
        end
      end
    end
  end
end

--- One group as one batch: batch_create (a batch costs nothing by itself), the create gate for
-- each job (marked "creating" with the batch id, lease renewed), then one batch_add whose tasks
-- carry the jobs' ids. Its answer is recorded per job as a create's would be; an add that may
-- have made tasks leaves the jobs ambiguous, searched for in the batch's task list, never
-- added again. The batch calls go through a blocking client of their own: the add leaves at
-- once after the gates, well within the renewed lease.
function M:send_batch(g)
  local live, tasks = {}, {}
  for i, job in ipairs(g.jobs) do
    if not job.gone and job.group == g then
      job.group = nil
      live[#live + 1], tasks[#tasks + 1] = job, g.tasks[i]
    end
  end
  if not live[1] or self.draining then return end
  local client = self:batch_client()
  local batch, err = client:batch_create(g.opts)
  if not batch then
    local delay = backoff(live[1].attempts)
    self:log("a batch for %d job(s) was not created (%s); again in %.1fs", #live, tostring(err),
      delay)
    for _, job in ipairs(live) do self:later(job, delay, flow.create) end
    return
  end
  local bid = batch.batch_id
  local t0 = core.now()
  local ready, sent = {}, {}
  for i, job in ipairs(live) do
    local r, v = self.store:claim_send(job, false, self.lease_value, self.opts.lease, bid)
    if r == "ok" then
      job.gate = { marker = v, r = "ok" }
      job.sending = true
      ready[#ready + 1], sent[#sent + 1] = job, tasks[i]
    else
      local gate = { r = r, v = v }
      self:try(job, function()
        return self:not_sent(job, gate, { message = "create gate: " .. tostring(r or v) })
      end)
    end
  end
  if not ready[1] then return end
  local function each(fn)
    for i, job in ipairs(ready) do
      job.sending = nil
      self:try(job, function() return fn(job, i) end)
    end
  end
  if core.now() > t0 + self.opts.lease - self.send_margin then
    -- The gates took longer than the lease allows: nothing is sent; this process wrote the
    -- markers and knows, so it clears them.
    return each(function(job)
      return self:not_sent(job, job.gate, { message = "the batch's gates outlasted the lease" })
    end)
  end
  self:debug("batch %s: adding %d job(s)", bid, #ready)
  local added, aerr = client:batch_add(bid, sent)
  if added then return self:batch_added(added, each) end
  if aerr.code == "invalid_request" and #ready > 1 then
    -- Refused whole (the add is atomic): each job is created on its own instead, so that
    -- only a bad one is dead-lettered.
    self:log("batch %s refused its tasks (%s); creating each job on its own", bid,
      tostring(aerr))
    return each(function(job) return self:solo(job, aerr) end)
  end
  return each(function(job) return self:created(job, job.gate, nil, aerr) end)
end

function M:batch_added(added, each)
  local by_id = {}
  for _, t in ipairs(type(added.tasks) == "table" and added.tasks or {}) do
    local uid = t.task_id or t.batch_task_id
    if uid ~= nil then by_id[uid] = t end
  end
  local id_field = self.provider.id_field
  return each(function(job)
    local t = by_id[job.id]
    if t and t[id_field] then
      job.answered = t[id_field]
      return self:record(job, t, added.reconciled)
    end
    return self:ambiguous(job, jobs.error_json({ code = "ambiguous",
      message = "the batch's add answer does not name this job's task" }))
  end)
end

--- The batch refused the tasks as a whole: this job's marker is cleared (nothing was made) and
-- it is created on its own.
function M:solo(job, err)
  local c, e = self.store:clear_marker(job, job.gate.marker, jobs.error_json(err))
  if not c then return nil, e end
  if c == "settled" then return self:resume(job) end
  if c == "lost" then return self:lost(job) end
  job.solo = true
  return self:later(job, 0, flow.create)
end

--- Every task of a batch (all its cursor pages), or nil, err.
function M:batch_listing(batch_id)
  local list = {}
  for t, err in self:batch_client():batch_tasks(batch_id, { limit = 100 }) do
    if not t then return nil, err end
    list[#list + 1] = t
  end
  return list
end

return M

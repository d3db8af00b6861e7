-- A job's life, as steps of the worker (mixed into Worker). Each step reads or
-- writes Redis first and returns true, or nil, err when Redis failed: the same
-- step then runs again a little later. Steps are idempotent (the scripts in
-- store.lua check the job's recorded state), so running one twice is harmless.
--
--   admit -> resume -> create -> gate -> created -> record -> wait -> waited -> finish
--                 \-> reconcile (a create that may have made a task: searched for, never
--                     created again) --/ or -> finish "ambiguous" (set aside for a person)
--   wait -> waited -> park (the task waits for a person's answer: the job leaves the worker)
--   ... the respond command re-queues it -> resume -> answer -> responded -> wait
-- This file holds one job's create and wait; beside it, mixed into Worker the same way:
-- reconcile.lua (the search for a task a create may have made), checkpoint.lua (park, answer,
-- responded) and batch.lua (--batch-size: creates sent as batches).
local core = require "deepresearch.core"
local jobs = require "deepresearch.worker.job"
local policy = require "deepresearch.base.policy"
local is_interrupt = require("deepresearch.worker.redis").is_interrupt
local task_state = require("deepresearch").state
local intake = require "deepresearch.worker.intake"

local flow = {}

-- Which failures allow what, and the backoff: written once, in base/policy.lua.
-- A create is sent again only after an answer in CREATE_NOTHING_MADE (or a request that never
-- left): any other failure may have made a task, and so may a "creating" marker whose answer was
-- never recorded: such a job is searched for, and never created again by a worker (reconcile.lua).
local NOTHING_MADE = policy.CREATE_NOTHING_MADE
local RESEND = policy.CREATE_RESEND -- of those, the ones worth sending again after a while
local WAIT_AGAIN = policy.WAIT_AGAIN -- a failed wait is started again (a poll creates nothing)

-- Job steps: attempt 1 waits about 0.5 s, doubling up to cap (30 s unless given). Shared with
-- the steps beside this file.
function flow.backoff(attempt, cap)
  return policy.backoff(attempt, { base_delay = 0.5, max_delay = cap or 30 })
end
local backoff = flow.backoff

local function nothing_sent(err)
  return err.sent == false or err.not_sent == true
end

--- Whether a failed create may have made a task.
function flow.maybe_created(err)
  return not nothing_sent(err) and not NOTHING_MADE[err.code]
end

--- Whether a job hash (as loaded) says a create of it may have made a task that is not
-- recorded: a create marker without its answer, or an ambiguous answer.
function flow.may_have_task(h)
  return h.task_id == nil and (h.status == "creating" or h.status == "ambiguous"
    or h.ambiguous == "1")
end

--- Runs a step now; reschedules it when Redis failed or it raised. Ctrl-C (lua.c's
-- "interrupted!") is never swallowed: it is noted for the loop, and the step kept to finish.
function flow:try(job, fn)
  if job.gone then return end
  local ok, res, err = pcall(fn, self, job)
  if ok and res then return end
  if not ok then
    if is_interrupt(res) then
      self.interrupted = true
      return self:later(job, 0, fn)
    end
    self:log("job %s: internal error: %s", job.id, tostring(res))
    return self:later(job, 1, fn)
  end
  self:debug("job %s: redis: %s (will retry)", job.id, tostring(err))
  return self:later(job, 0.2, fn)
end

function flow:later(job, delay, fn)
  job.due, job.step = self.now() + delay, fn
  return true
end

-- A side effect for a job the worker does not track (bad or duplicate entries).
function flow:effect(fn)
  if self.pending_ops[1] or not fn() then self.pending_ops[#self.pending_ops + 1] = fn end
end

function flow:forget(job)
  if job.gone then return end
  job.gone = true
  self.jobs[job.id] = nil
  self.count = self.count - 1
end

--- Another worker took the job over (this one was paused or cut off past its lease).
function flow:lost(job)
  self:log("job %s was taken over by another worker; this one lets it go", job.id)
  self:forget(job)
  return true
end

--- The client and poller of a job's provider (its "provider" field, else --provider): made on
-- the first job that names it, with the same client options except --base-url (the worker's
-- own provider's): another provider's base URL comes from its descriptor or environment.
-- A worker made without lanes (one provider) has the one.
function flow:lane(job)
  if not self.lanes then
    return { name = self.provider_name, provider = self.provider, poller = self.poller,
      descriptor = require("deepresearch.providers").get(self.provider_name) }
  end
  local name = job and job.provider or self.provider_name
  local lane = self.lanes[name]
  if lane then return lane end
  local copts = {}
  for k, v in pairs(self.client_opts) do copts[k] = v end
  copts.provider, copts.base_url = name, nil
  local client = require("deepresearch").client(copts)
  lane = { name = name, provider = jobs.providers[name], client = client,
    poller = client:poller{ max_connections = math.min(self.opts.concurrency, 16) },
    descriptor = require("deepresearch.providers").get(name) }
  self.lanes[name] = lane
  return lane
end

--- A job text just moved into this worker's processing list. not_before: the Redis time
-- before which a create an earlier holder may have sent is not searched for (its lease
-- expiry plus the reconcile grace).
function flow:admit(raw, not_before)
  local job, err = jobs.parse(raw, self.provider_name)
  if not job then return self:dead_letter(raw, err, err.job_id) end
  if self.jobs[job.id] then
    self:debug("job %s: duplicate entry dropped (already in progress here)", job.id)
    return self:effect(function() return self.store:release(raw) end)
  end
  self.jobs[job.id] = job
  self.count = self.count + 1
  job.attempts = 0
  job.not_before = not_before
  self:try(job, flow.resume)
end

--- Where a job stands in Redis decides what happens next.
function flow:resume(job)
  local h, err = self.store:load(job.id)
  if not h then return nil, err end
  if h.status == "done" or h.status == "failed" then return self:duplicate(job, h.status) end
  if h.task_id then
    local elsewhere, e = self:held_elsewhere(job, h)
    if elsewhere == nil then return nil, e end
    if elsewhere then return self:drop(job) end
    job.parked = h.status == "input_required"
    if h.answer then return self:answer(job, h) end
    return self:wait(job, h.task_id)
  end
  -- A create may have been sent (its holder stopped before recording the answer), or may have
  -- made a task (ambiguous; pushed again after it was set aside: it is searched for once more).
  if flow.may_have_task(h) then return self:reconcile(job) end
  if not job.linted then -- this copy's brief (a corrected job may reuse a dead job's id)
    local ok, e = self:lint(job)
    if not ok then return nil, e end
    job.linted = true
  end
  return self:create(job)
end

-- A second copy of a job (a producer that pushed it twice) while another worker's
-- processing list holds the first: that worker, or whoever takes over its list, runs
-- it. Returns true, false, or nil, err.
function flow:held_elsewhere(job, h)
  if not h.worker or h.worker == self.wid then return false end
  local pos, err, kind = self.store.conn:call("LPOS", self.store:processing(h.worker), job.raw)
  if pos == nil and kind then return nil, err end
  if pos ~= nil then
    self:debug("job %s: another copy is held by worker %s; dropping this one", job.id, h.worker)
    return true
  end
  return false
end

function flow:drop(job)
  local ok, err = self.store:release(job.raw)
  if not ok then return nil, err end
  self:forget(job)
  return true
end

--- Seconds until the job's provider takes another create (its descriptor's create_pace:
-- creates per minute), 0 when one may go now (and it is counted).
function flow:create_delay(job)
  local lane = self:lane(job)
  local pace = lane.descriptor and lane.descriptor.create_pace
  if type(pace) ~= "number" or pace <= 0 then return 0 end
  local now, sent = self.now(), lane.sent or {}
  lane.sent = sent
  while sent[1] and sent[1] <= now - 60 do table.remove(sent, 1) end
  if #sent < pace then
    sent[#sent + 1] = now
    return 0
  end
  return sent[1] + 60 - now
end

--- Queues the create. Nothing is written to Redis yet: the job is marked "creating" by the
-- gate, when the request has its connection and is about to leave. g.marker: the creating_at
-- that gate wrote (the marker this create owns).
function flow:create(job)
  if self.draining then return true end
  -- --budget-usd-per-day / --rate: a job they can never let through is dead-lettered.
  local lim, lerr = self:limits_for(job)
  if lim == nil then return self:dead_job(job, lerr) end
  local delay = self:create_delay(job)
  if delay > 0 then
    self:debug("job %s: %s's create pace reached; create in %.1fs", job.id,
      tostring(self:lane(job).name), delay)
    return self:later(job, delay, flow.create)
  end
  -- Batches are the worker's own provider's (--provider); a job naming another goes alone.
  if self.batching and not job.solo and self:lane(job).name == self.provider_name and
    self:join_batch(job) then
    return true
  end
  job.attempts = job.attempts + 1
  local g = {}
  job.gate = g
  self:debug("job %s: create queued (attempt %d)", job.id, job.attempts)
  self:lane(job).poller:create(job.params, function(task, err)
    if job.gone then return self:late_answer(job, g, task, err) end
    self:try(job, function()
      if task then job.answered = task[self:lane(job).provider.id_field] end
      local ok, e = self:created(job, g, task, err)
      if ok then job.sending = nil end -- its outcome is in Redis now
      return ok, e
    end)
  end, { gate = function() return self:gate(job, g) end })
  return true
end

--- The create gate (run by the poller right before the request is handed to libcurl): one
-- script checks that this worker still holds the job, renews the lease and marks the job
-- "creating". send_by (the poller's clock, read before the script) ends before that renewed
-- lease can run out: a worker paused past it sends nothing, so a worker that takes the job
-- over after the lease expired knows every create of this one was written before then.
-- A marker is passed over (forced) only when this same create wrote it: the library sends a
-- create's request again only after an answer that proves nothing was made.
function flow:gate(job, g)
  -- A signal that came since this turn began: nothing more leaves (stop.lua).
  if job.gone or self.draining or job.gate ~= g or self:poll_signal() then
    g.r = "dropped"
    return false, "the worker no longer runs this job"
  end
  -- The shared rate and budget first (budget.lua): nothing is marked for a create they hold.
  if job.lim and not self:take_turn(job, g) then
    return false, "create gate: " .. tostring(g.r)
  end
  local t0 = core.now()
  local ok, r, v = pcall(self.store.claim_send, self.store, job, g.marker ~= nil, self.lease_value,
    self.opts.lease)
  if not ok then
    if is_interrupt(r) then self.interrupted = true end
    g.r, g.v = "error", r
    return false, tostring(r)
  end
  g.r, g.v = r or "redis", v
  if r ~= "ok" then return false, "create gate: " .. tostring(r or v) end
  g.marker = v
  job.sending = true
  self:debug("job %s: creating (attempt %d)", job.id, job.attempts)
  return true, t0 + self.opts.lease - self.send_margin
end

function flow:created(job, g, task, err)
  if task then return self:record(job, task) end
  if nothing_sent(err) then return self:not_sent(job, g, err) end
  if flow.maybe_created(err) then
    -- The task may exist: never create again blindly. The job is "ambiguous" until a search
    -- finds the task (then it is waited on) or finds nothing (then it is set aside for a person).
    self:log("job %s: %s; ambiguous until its task is found", job.id, tostring(err))
    return self:ambiguous(job, jobs.error_json(err))
  end
  -- Nothing was made: a reservation of this job goes back.
  if job.lim then
    local ok, e = self:release_budget(job)
    if not ok then return nil, e end
  end
  if err.code == "invalid_request" then
    local ok, e = self.store:dead(job.raw, intake.dead_entry(self, job.raw, err, job.id), job.id,
      jobs.error_json(err))
    if ok == nil then return nil, e end
    self.stats.dead = self.stats.dead + 1
    self:log("job %s: rejected by the API, dead-lettered: %s", job.id, err.message)
    self:forget(job)
    return true
  end
  if RESEND[err.code] or err.retryable then
    local r, e = self.store:note(job, "retrying", jobs.error_json(err))
    if not r then return nil, e end
    if r == "lost" then return self:lost(job) end
    if r == "settled" then return self:resume(job) end
    local delay = backoff(job.attempts)
    self:log("job %s: create refused, nothing made (%s); again in %.1fs", job.id, tostring(err),
      delay)
    return self:later(job, delay, flow.create)
  end
  return self:finish(job, "failed", { error = jobs.error_json(err) })
end

--- Notes that a create may have made a task, then searches for it.
function flow:ambiguous(job, err_json)
  local r, e = self.store:note(job, "ambiguous", err_json)
  if not r then return nil, e end
  if r == "settled" then return self:resume(job) end
  return self:reconcile(job)
end

--- Nothing of this create left: the gate refused it, or its request was never written.
function flow:not_sent(job, g, err)
  if g.marker then
    -- Its gate had marked the job "creating": this process alone can prove that create made
    -- nothing, so it clears its own marker before anything else (for whoever holds the job).
    local c, e = self.store:clear_marker(job, g.marker, jobs.error_json(err))
    if not c then return nil, e end
    g.marker = nil
    if c == "settled" then return self:resume(job) end
    if c == "lost" then return self:lost(job) end
  end
  local r, v = g.r, g.v
  if r == "budget" or r == "rate" then return self:wait_turn(job, g) end
  -- A reservation made for a create that never left goes back (budget.lua).
  if job.lim and (g.fresh or r == "ok") then
    local ok, e = self:release_budget(job)
    if not ok then return nil, e end
    g.fresh = nil
  end
  if r == "task" then return self:wait(job, v) end
  if r == "terminal" then return self:drop(job) end
  if r == "ambiguous" or r == "creating" then return self:reconcile(job) end
  if r == "lost" then return self:lost(job) end
  if r == "dropped" then return true end
  -- Redis failed or the lease was not this process's at that moment (the gate refused), or
  -- the request did not leave in time: it is queued again, through the gate again.
  local delay = r == "ok" and backoff(job.attempts, 2) or 0.2
  self:debug("job %s: create not sent (%s); again in %.1fs", job.id, tostring(err.message), delay)
  return self:later(job, delay, flow.create)
end

--- The answer to a create whose job this worker let go meanwhile (taken over while it was
-- paused or cut off). It still tells the job's new owner where the task is, that one may
-- exist, or that this create made nothing (its marker cleared: the new owner may create).
function flow:late_answer(job, g, task, err)
  if task then
    self:log("job %s: its create answered (task %s) after the job was taken over; recording it",
      job.id,
      tostring(task[self:lane(job).provider.id_field]))
  end
  local function write()
    if task then
      local id = task[self:lane(job).provider.id_field]
      local r, v = self.store:record_task(job, id, jobs.created_epoch(task), task.status,
        task.reconciled)
      if r == "other" then
        self:log("job %s: task %s is recorded for it already; task %s, answered late, is a " ..
          "duplicate " ..
          "(paid for: use or cancel it by hand)", job.id, tostring(v), tostring(id))
      elseif r == "claimed" then
        self:log("job %s: task %s, answered late, is recorded for job %s", job.id, tostring(id),
          tostring(v))
      end
      return r
    end
    if flow.maybe_created(err) then
      return self.store:note(job, "ambiguous", jobs.error_json(err))
    end
    if g.marker then return self.store:clear_marker(job, g.marker, jobs.error_json(err)) end
    return true
  end
  -- Replayed until Redis takes it: the new owner needs this fact.
  self:effect(function()
    local ok, r = pcall(write)
    if ok then return r end
    if is_interrupt(r) then self.interrupted = true return false end
    self:log("job %s: internal error recording a late answer: %s", job.id, tostring(r))
    return true
  end)
end

--- Records the task id against the job, then waits on it.
function flow:record(job, task, reconciled)
  local id = task[self:lane(job).provider.id_field]
  local r, v = self.store:record_task(job, id, jobs.created_epoch(task), task.status,
    reconciled or task.reconciled)
  if not r then return nil, v end
  if r == "ok" then
    self:debug("job %s: task %s%s", job.id,
      id, (reconciled or task.reconciled) and " (reconciled)" or "")
    return self:wait(job, id)
  end
  if r == "other" then
    self:log("job %s: task %s was already recorded; task %s is a duplicate", job.id, v, id)
    return self:wait(job, v)
  end
  if r == "terminal" then return self:drop(job) end
  -- "claimed": the create's own search handed back another job's task (two jobs, one brief):
  -- this job's task may still exist.
  return self:ambiguous(job, jobs.error_json({ code = "ambiguous",
    message = "the task found for this job (" .. id .. ") belongs to job " .. tostring(v) }))
end

--- Waits on the task through the poller; progress goes to the job hash as it changes.
function flow:wait(job, task_id)
  job.task_id = task_id
  if self.draining then return true end
  local w = self.opts.wait or {}
  local opts = { interval = w.interval, max_interval = w.max_interval, timeout = w.timeout,
    on_progress = function(t)
      if job.gone then return end
      local ok, e = pcall(self.progress, self, job, t)
      if not ok and is_interrupt(e) then self.interrupted = true end
    end }
  self:lane(job).poller:wait(task_id, opts, function(task, err)
    self:try(job, function() return self:waited(job, task, err) end)
  end)
  return true
end

-- Progress counters; a parked job whose task runs again (answered through the API itself, not
-- through the respond command) is "running" again first.
function flow:progress(job, t)
  if job.parked and task_state(t) ~= "input_required" then
    if self.store:unparked(job) then job.parked = false end
  end
  return self.store:progress(job, self:lane(job).provider.progress(t))
end

function flow:waited(job, task, err)
  if err and err.code == "input_required" then
    return self:park(job, err.task, err.interaction)
  end
  if task or ((err.code == "task_failed" or err.code == "cancelled") and err.task) then
    -- Its reservation becomes its real cost (budget.lua).
    local ok, e = self:settle(job, task or err.task)
    if not ok then return nil, e end
  end
  if task then
    return self:finish(job, "done", { task = jobs.encode_task(task), report = self:render(task),
      task_id = job.task_id, task_status = task.status })
  end
  if err.code == "task_failed" then
    return self:finish(job, "failed", { task = err.task and jobs.encode_task(err.task) or nil,
      error = jobs.error_json(err), task_id = job.task_id, task_status = err.task
        and err.task.status })
  end
  if WAIT_AGAIN[err.code] or err.retryable then
    job.attempts = job.attempts + 1
    local r, e = self.store:note(job, "waiting", jobs.error_json(err))
    if not r then return nil, e end
    if r == "lost" then return self:lost(job) end
    if r == "settled" then return self:resume(job) end
    local delay = backoff(job.attempts)
    self:log("job %s: waiting on task %s failed (%s); again in %.1fs", job.id, job.task_id,
      tostring(err), delay)
    return self:later(job, delay, function() return self:wait(job, job.task_id) end)
  end
  return self:finish(job, "failed", { error = jobs.error_json(err), task_id = job.task_id })
end

function flow:render(task)
  local ok, text = pcall(jobs.render, task)
  if ok then return text end
  if is_interrupt(text) then self.interrupted = true end
  return ""
end

function flow:finish(job, status, fields)
  fields.task_id = fields.task_id or job.task_id
  local wrote, err = self.store:finish(job, status, fields)
  if wrote == nil then return nil, err end
  self:forget(job)
  if wrote then
    self.stats[status] = (self.stats[status] or 0) + 1
    self:debug("job %s: %s%s", job.id, status, job.task_id and (" (task " .. job.task_id ..
      ")") or "")
  end
  return true
end

return flow

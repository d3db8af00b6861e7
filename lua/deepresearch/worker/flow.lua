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
local core = require "deepresearch.core"
local dates = require "deepresearch.base.dates"
local jobs = require "deepresearch.worker.job"
local policy = require "deepresearch.base.policy"
local store_mod = require "deepresearch.worker.store"
local is_interrupt = require("deepresearch.worker.redis").is_interrupt
local task_state = require("deepresearch").state

local flow = {}

local LIST_LIMIT = 50
local MAX_PAGES = 20
local SKEW = 300 -- seconds of server clock disorder tolerated when matching a lost create
flow.MAX_SEARCH_DELAY = 30 -- seconds: the longest pause between searches for a task that may exist
flow.MIN_SEARCHES = 3 -- searches that must succeed (and find nothing) before a job is set aside

-- Which failures allow what, and the backoff: written once, in base/policy.lua.
-- A create is sent again only after an answer in CREATE_NOTHING_MADE (or a request that never
-- left): any other failure may have made a task, and so may a "creating" marker whose answer was
-- never recorded: such a job is searched for, and never created again by a worker (F.reconcile).
local NOTHING_MADE = policy.CREATE_NOTHING_MADE
local RESEND = policy.CREATE_RESEND -- of those, the ones worth sending again after a while
local WAIT_AGAIN = policy.WAIT_AGAIN -- a failed wait is started again (a poll creates nothing)

-- Job steps: attempt 1 waits about 0.5 s, doubling up to cap (30 s unless given).
local function backoff(attempt, cap)
  return policy.backoff(attempt, { base_delay = 0.5, max_delay = cap or 30 })
end

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

-- A time the job hash holds (ISO 8601; "seconds.micros" from before that) as epoch seconds.
local function epoch(text)
  return dates.parse_iso(text) or tonumber(text)
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

local function dead_entry(self, raw, err)
  return jobs.encode({ job = raw, error = { code = err.code, message = err.message },
    worker = self.wid,
    at = store_mod.timestamp() })
end

function flow:dead_letter(raw, err, job_id)
  self.stats.dead = self.stats.dead + 1
  self:log("dead letter%s: %s", job_id and (" (job " .. job_id .. ")") or "",
    err.message or tostring(err))
  local entry = dead_entry(self, raw, err)
  return self:effect(function() return self.store:dead(raw, entry, job_id,
    jobs.error_json(err)) end)
end

--- Where a job stands in Redis decides what happens next.
function flow:resume(job)
  local h, err = self.store:load(job.id)
  if not h then return nil, err end
  if h.status == "done" or h.status == "failed" then
    self:debug("job %s: already %s; dropping this copy", job.id, h.status)
    return self:drop(job)
  end
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

--- Queues the create. Nothing is written to Redis yet: the job is marked "creating" by the
-- gate, when the request has its connection and is about to leave. g.marker: the creating_at
-- that gate wrote (the marker this create owns).
function flow:create(job)
  if self.draining then return true end
  if self.batching and not job.solo and self:join_batch(job) then return true end
  job.attempts = job.attempts + 1
  local g = {}
  job.gate = g
  self:debug("job %s: create queued (attempt %d)", job.id, job.attempts)
  self.poller:create(job.params, function(task, err)
    if job.gone then return self:late_answer(job, g, task, err) end
    self:try(job, function()
      if task then job.answered = task[self.provider.id_field] end
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
  if job.gone or self.draining or job.gate ~= g then
    g.r = "dropped"
    return false, "the worker no longer runs this job"
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
  if err.code == "invalid_request" then
    local ok, e = self.store:dead(job.raw, dead_entry(self, job.raw, err), job.id,
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
      tostring(task[self.provider.id_field]))
  end
  local function write()
    if task then
      local id = task[self.provider.id_field]
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
  local id = task[self.provider.id_field]
  local r, v = self.store:record_task(job, id, jobs.created_epoch(task), task.status,
    reconciled or task.reconciled)
  if not r then return nil, v end
  if r == "ok" then
    -- While stopping after Ctrl-C the id is shown whatever the verbosity: the task is paid for.
    local say = self.draining and self.log or self.debug
    say(self, "job %s: task %s%s", job.id,
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

--- A create that may have made a task whose id is not recorded: a "creating" marker left by a
-- worker that stopped (killed, paused past its lease, Ctrl-C) before recording the answer, or
-- an ambiguous answer. The marker is written just before the request leaves, so it never
-- proves the create did not: such a job is never created again by a worker (only the process
-- that wrote the marker may clear it, see F.not_sent). Its task is searched for (a task with
-- the same brief made after the marker, not claimed by another job) repeatedly with backoff:
-- found, it is recorded and waited on; after --search-window seconds and at least
-- MIN_SEARCHES searches that succeeded without finding it, the job is set aside "ambiguous"
-- for a person. The first search waits until any create in flight has surely landed: the
-- reconcile grace after the marker, after the ambiguous answer, and after the lease of the
-- worker this one took the job from had expired.
function flow:reconcile(job)
  if self.draining then return true end
  local h, err = self.store:load(job.id)
  if not h then return nil, err end
  if h.status == "done" or h.status == "failed" then return self:drop(job) end
  if h.task_id then return self:wait(job, h.task_id) end
  local elsewhere, e = self:held_elsewhere(job, h)
  if elsewhere == nil then return nil, e end
  if elsewhere then return self:drop(job) end
  if not flow.may_have_task(h) then
    -- The process that wrote the marker cleared it: that create is known to have made nothing.
    self:log("job %s: its earlier create is known to have made nothing; creating", job.id)
    job.search = nil
    return self:create(job)
  end
  local s = job.search
  if not s then
    local now
    now, err = self.store:time()
    if not now then return nil, err end
    local grace = self.opts.reconcile_grace
    local ready = math.max((epoch(h.creating_at) or 0) + grace, (epoch(h.ambiguous_at)
      or 0) + grace,
      job.not_before or 0)
    if h.ambiguous ~= "1" then
      -- A marker without its answer: recorded as ambiguous, so that every worker and person
      -- sees a task may exist (and the gate refuses every create), as long as that marker stands.
      local r, e2 = self.store:note(job, "ambiguous", jobs.error_json({ code = "ambiguous",
        message =
          string.format("a create was about to be sent at %s by worker %s and its answer was " ..
          "never " ..
          "recorded; a task may exist and may be billed", tostring(h.creating_at),
            tostring(h.worker)) }),
        h.status == "creating" and h.creating_at or nil)
      if not r then return nil, e2 end
      if r ~= "ok" then return self:resume(job) end -- settled or changed meanwhile
      self:log("job %s: its create (%s) may have made a task; searching for it, never creating " ..
        "it again",
        job.id, tostring(h.creating_at))
    end
    s = { ok = 0, failed = 0 }
    job.search = s
    if ready > now then return self:later(job, ready - now, flow.reconcile) end
  end
  s.from = s.from or self.now()
  local floor = epoch(h.creating_floor)
  -- A provider whose list pages by offset is searched page by page; others list the newest only.
  local paged = require("deepresearch.providers").get(self.provider_name).list_paging == "offset"
  local matches = {}
  local counted = false
  -- A job added to a batch is looked for in that batch's task list (complete, by the job's id).
  local batch = h.batch_id and self.provider.batch or nil
  local match = batch and batch.matches or self.provider.matches
  local page
  local function got(list, lerr, offset, n)
        if not list then
          if not counted then
            counted = true
            s.failed = s.failed + 1
          end
          local delay = backoff(s.failed, flow.MAX_SEARCH_DELAY)
          self:log("job %s: listing tasks to find its task failed (%s); again in %.1fs", job.id,
            tostring(lerr),
            delay)
          return self:later(job, delay, flow.reconcile)
        end
        local older = false
        for _, t in ipairs(list) do
          local at = jobs.created_epoch(t)
          if floor and at and at < floor - SKEW then
            older = true
          elseif match(t, job) then
            matches[#matches + 1] = t
          end
        end
        if older or not paged or #list < LIST_LIMIT or n >= MAX_PAGES then
          if not counted then
            counted = true
            s.ok = s.ok + 1
          end
          return self:reconciled(job, matches)
        end
        page(offset + #list, n + 1)
        return true
  end
  page = function(offset, n)
    local opts = paged and { offset = offset, limit = LIST_LIMIT } or { limit = 100 }
    self.poller:list(opts, function(list, lerr)
      self:try(job, function() return got(list, lerr, offset, n) end)
    end)
  end
  if batch then
    local list, lerr = self:batch_listing(h.batch_id)
    return got(list, lerr, 0, MAX_PAGES)
  end
  page(0, 1)
  return true
end

function flow:reconciled(job, matches)
  -- Oldest first: the task nearest after the marker is the one this job's first create made.
  table.sort(matches, function(a,
    b) return (jobs.created_epoch(a) or 0) < (jobs.created_epoch(b) or 0) end)
  for _, t in ipairs(matches) do
    local id = t[self.provider.id_field]
    local r, v = self.store:record_task(job, id, jobs.created_epoch(t), t.status, true)
    if not r then return nil, v end
    if r == "ok" then
      self:log("job %s: found its task %s; resuming", job.id, id)
      return self:wait(job, id)
    end
    if r == "other" then return self:wait(job, v) end
    if r == "terminal" then return self:drop(job) end
  end
  local h, err = self.store:load(job.id)
  if not h then return nil, err end
  if h.task_id then return self:wait(job, h.task_id) end
  -- its marker was cleared meanwhile
  if not flow.may_have_task(h) then return self:reconcile(job) end
  local s, window = job.search, self.opts.search_window
  local now = self.now()
  if s.ok >= flow.MIN_SEARCHES and now >= s.from + window then
    self:log("job %s: no task found in %d searches over %.0fs after a create that may have made " ..
      "one; set aside " ..
      "as ambiguous for a person (docs/worker.md)", job.id, s.ok, now - s.from)
    return self:finish(job, "ambiguous", { error = h.error })
  end
  local delay = backoff(s.ok, math.min(flow.MAX_SEARCH_DELAY, math.max(0.25, window / 4)))
  self:debug("job %s: search %d found no task; again in %.1fs", job.id, s.ok, delay)
  return self:later(job, delay, flow.reconcile)
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
  self.poller:wait(task_id, opts, function(task, err)
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
  return self.store:progress(job, self.provider.progress(t))
end

function flow:waited(job, task, err)
  if err and err.code == "input_required" then
    return self:park(job, err.task, err.interaction)
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

-- Checkpoints ------------------------------------------------------------------------------------

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
function flow:park(job, task, interaction)
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
function flow:answer(job, h, task)
  job.task_id = h.task_id
  job.parked = true
  if not task then
    self.poller:get(h.task_id, function(t, err)
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
  local ok, err = pcall(self.poller.add, self.poller, "respond", function(ack, rerr)
    self:try(job, function() return self:responded(job, h, ack, rerr) end)
  end, h.task_id, i, response) -- the table: its type selects the shape checked
  if not ok then
    if is_interrupt(err) then error(err, 0) end
    return self:refused(job, h, task, { code = "invalid_request", message = tostring(err) })
  end
  return true
end

function flow:answer_later(job, err)
  job.attempts = (job.attempts or 0) + 1
  local delay = backoff(job.attempts)
  self:log("job %s: answering its checkpoint failed (%s); again in %.1fs", job.id, tostring(err),
    delay)
  return self:later(job, delay, flow.resume)
end

function flow:responded(job, h, ack, err)
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
  self.poller:get(h.task_id, function(t, gerr)
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
function flow:refused(job, h, task, err)
  self:log("job %s: its answer to checkpoint %s was refused: %s", job.id,
    tostring(h.answer_interaction), tostring(err.message or err))
  local r, e = self.store:answered(job, h.answer_interaction, jobs.error_json(err))
  if not r then return nil, e end
  if r == "changed" then return self:resume(job) end
  return self:park(job, task, task.interaction)
end

-- Batches (--batch-size) -------------------------------------------------------------------------

--- The job waits in a group of jobs whose batch parameters agree; the loop sends each group as
-- one batch (send_batch) at the end of the turn that filled it. False when the job cannot go
-- in a batch (it is created on its own).
function flow:join_batch(job)
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
function flow:flush_batches()
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
function flow:send_batch(g)
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

function flow:batch_added(added, each)
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
function flow:solo(job, err)
  local c, e = self.store:clear_marker(job, job.gate.marker, jobs.error_json(err))
  if not c then return nil, e end
  if c == "settled" then return self:resume(job) end
  if c == "lost" then return self:lost(job) end
  job.solo = true
  return self:later(job, 0, flow.create)
end

--- Every task of a batch (all its cursor pages), or nil, err.
function flow:batch_listing(batch_id)
  local list = {}
  for t, err in self:batch_client():batch_tasks(batch_id, { limit = 100 }) do
    if not t then return nil, err end
    list[#list + 1] = t
  end
  return list
end

return flow

-- A job's life, as steps of the worker (mixed into Worker). Each step reads or
-- writes Redis first and returns true, or nil, err when Redis failed: the same
-- step then runs again a little later. Steps are idempotent (the scripts in
-- store.lua check the job's recorded state), so running one twice is harmless.
--
--   admit -> resume -> create -> created -> record -> wait -> waited -> finish
--                 \-> reconcile (a "creating" marker without a task id) -/
local jobs = require "deepresearch.worker.job"
local store_mod = require "deepresearch.worker.store"

local F = {}

local LIST_LIMIT = 50
local MAX_PAGES = 20
local SKEW = 300 -- seconds of server clock disorder tolerated when matching a lost create

-- Errors after which the same request may simply be sent again later.
local TRANSIENT = { network = true, timeout = true, rate_limited = true, unavailable = true,
  server_error = true, invalid_response = true, unauthorized = true, forbidden = true }

local function backoff(attempt)
  return math.min(30, 0.25 * 2 ^ math.min(attempt, 8)) * (0.75 + 0.25 * math.random())
end

--- Runs a step now; reschedules it when Redis failed or it raised.
function F:try(job, fn)
  if job.gone then return end
  local ok, res, err = pcall(fn, self, job)
  if ok and res then return end
  if not ok then
    self:log("job %s: internal error: %s", job.id, tostring(res))
    return self:later(job, 1, fn)
  end
  self:debug("job %s: redis: %s (will retry)", job.id, tostring(err))
  return self:later(job, 0.2, fn)
end

function F:later(job, delay, fn)
  job.due, job.step = self.now() + delay, fn
  return true
end

-- A side effect for a job the worker does not track (bad or duplicate entries).
function F:effect(fn)
  if self.pending_ops[1] or not fn() then self.pending_ops[#self.pending_ops + 1] = fn end
end

function F:forget(job)
  if job.gone then return end
  job.gone = true
  self.jobs[job.id] = nil
  self.count = self.count - 1
end

--- A job text just moved into this worker's processing list.
function F:admit(raw)
  local job, err = jobs.parse(raw, self.provider_name)
  if not job then return self:dead_letter(raw, err, err.job_id) end
  if self.jobs[job.id] then
    self:debug("job %s: duplicate entry dropped (already in progress here)", job.id)
    return self:effect(function() return self.store:release(raw) end)
  end
  self.jobs[job.id] = job
  self.count = self.count + 1
  job.attempts = 0
  self:try(job, F.resume)
end

function F:dead_letter(raw, err, job_id)
  self.stats.dead = self.stats.dead + 1
  self:log("dead letter%s: %s", job_id and (" (job " .. job_id .. ")") or "", err.message or tostring(err))
  local entry = jobs.encode({ job = raw, error = { code = err.code, message = err.message },
    worker = self.wid, at = os.time() })
  return self:effect(function() return self.store:dead(raw, entry, job_id, jobs.error_json(err)) end)
end

--- Where a job stands in Redis decides what happens next.
function F:resume(job)
  local h, err = self.store:load(job.id)
  if not h then return nil, err end
  if store_mod.TERMINAL[h.status] then
    self:debug("job %s: already %s; dropping this copy", job.id, h.status)
    return self:drop(job)
  end
  if h.status == "creating" then return self:reconcile(job) end
  if h.task_id then
    local elsewhere, e = self:held_elsewhere(job, h)
    if elsewhere == nil then return nil, e end
    if elsewhere then return self:drop(job) end
    return self:wait(job, h.task_id)
  end
  return self:create(job)
end

-- A second copy of a job (a producer that pushed it twice) while another worker's
-- processing list holds the first: that worker, or whoever takes over its list, runs
-- it. Returns true, false, or nil, err.
function F:held_elsewhere(job, h)
  if not h.worker or h.worker == self.wid then return false end
  local pos, err, kind = self.store.conn:call("LPOS", self.store:processing(h.worker), job.raw)
  if pos == nil and kind then return nil, err end
  if pos ~= nil then
    self:debug("job %s: another copy is held by worker %s; dropping this one", job.id, h.worker)
    return true
  end
  return false
end

function F:drop(job)
  local ok, err = self.store:release(job.raw)
  if not ok then return nil, err end
  self:forget(job)
  return true
end

--- Marks the job "creating" (with a timestamp) and only then sends the create.
function F:create(job, force)
  local r, v = self.store:mark_creating(job, force)
  if not r then return nil, v end
  if r == "task" then return self:wait(job, v) end
  if r == "terminal" then return self:drop(job) end
  if r == "creating" then return self:reconcile(job) end
  job.attempts = job.attempts + 1
  self:debug("job %s: creating (attempt %d)", job.id, job.attempts)
  self.poller:create(job.params, function(task, err)
    self:try(job, function() return self:created(job, task, err) end)
  end)
  return true
end

function F:created(job, task, err)
  if task then return self:record(job, task) end
  if err.code == "invalid_request" then
    local ok, e = self.store:dead(job.raw, jobs.encode({ job = job.raw, error = { code = err.code,
      message = err.message }, worker = self.wid, at = os.time() }), job.id, jobs.error_json(err))
    if ok == nil then return nil, e end
    self.stats.dead = self.stats.dead + 1
    self:log("job %s: rejected by the API, dead-lettered: %s", job.id, err.message)
    self:forget(job)
    return true
  end
  if err.code == "ambiguous" or (err.code == "server_error" and err.status ~= 503) then
    -- The task may exist: never create blindly. Look for it; if it is not there, the job ends "ambiguous".
    self:log("job %s: %s; reconciling", job.id, tostring(err))
    local ok, e = self.store:note(job, nil, jobs.error_json(err), { ambiguous = "1" })
    if not ok then return nil, e end
    return self:reconcile(job)
  end
  if TRANSIENT[err.code] or err.retryable then
    local ok, e = self.store:note(job, "retrying", jobs.error_json(err))
    if not ok then return nil, e end
    local delay = backoff(job.attempts)
    self:log("job %s: create failed (%s); retrying in %.1fs", job.id, tostring(err), delay)
    return self:later(job, delay, F.create)
  end
  return self:finish(job, "failed", { error = jobs.error_json(err) })
end

--- Records the task id against the job, then waits on it.
function F:record(job, task, reconciled)
  local id = task[self.provider.id_field]
  local r, v = self.store:record_task(job, id, jobs.created_epoch(task), task.status,
    reconciled or task.reconciled)
  if not r then return nil, v end
  if r == "ok" then
    self:debug("job %s: task %s%s", job.id, id, (reconciled or task.reconciled) and " (reconciled)" or "")
    return self:wait(job, id)
  end
  if r == "other" then
    self:log("job %s: task %s was already recorded; task %s is a duplicate", job.id, v, id)
    return self:wait(job, v)
  end
  if r == "terminal" then return self:drop(job) end
  -- "claimed": the create's own reconcile handed back another job's task.
  return self:finish(job, "ambiguous", { error = jobs.error_json({ code = "ambiguous",
    message = "the task found for this job (" .. id .. ") belongs to job " .. tostring(v) }) })
end

--- A job marked "creating" without a task id: its create may have reached the
-- server. Look for a task with the same brief made after the marker, once the
-- marker is old enough for any create in flight to have landed.
function F:reconcile(job)
  local h, err = self.store:load(job.id)
  if not h then return nil, err end
  if store_mod.TERMINAL[h.status] then return self:drop(job) end
  if h.task_id then return self:wait(job, h.task_id) end
  local elsewhere, e = self:held_elsewhere(job, h)
  if elsewhere == nil then return nil, e end
  if elsewhere then return self:drop(job) end
  local now
  now, err = self.store:time()
  if not now then return nil, err end
  local wait = (tonumber(h.creating_at) or 0) + self.opts.reconcile_grace - now
  if wait > 0 then return self:later(job, wait, F.reconcile) end
  local floor = tonumber(h.creating_floor)
  local paged = self.provider_name == "extruct"
  local matches = {}
  local function page(offset, n)
    local opts = paged and { offset = offset, limit = LIST_LIMIT } or { limit = 100 }
    self.poller:list(opts, function(list, lerr)
      self:try(job, function()
        if not list then
          job.attempts = job.attempts + 1
          self:debug("job %s: listing for reconcile failed (%s)", job.id, tostring(lerr))
          return self:later(job, backoff(job.attempts), F.reconcile)
        end
        local older = false
        for _, t in ipairs(list) do
          local at = jobs.created_epoch(t)
          if floor and at and at < floor - SKEW then
            older = true
          elseif self.provider.matches(t, job) then
            matches[#matches + 1] = t
          end
        end
        if older or not paged or #list < LIST_LIMIT or n >= MAX_PAGES then
          return self:reconciled(job, h, matches)
        end
        page(offset + #list, n + 1)
        return true
      end)
    end)
  end
  page(0, 1)
  return true
end

function F:reconciled(job, h, matches)
  -- Oldest first: the task nearest after the marker is the one this job's first create made.
  table.sort(matches, function(a, b) return (jobs.created_epoch(a) or 0) < (jobs.created_epoch(b) or 0) end)
  for _, t in ipairs(matches) do
    local id = t[self.provider.id_field]
    local r, v = self.store:record_task(job, id, jobs.created_epoch(t), t.status, true)
    if not r then return nil, v end
    if r == "ok" then
      self:log("job %s: found its task %s after a lost create; resuming", job.id, id)
      return self:wait(job, id)
    end
    if r == "other" then return self:wait(job, v) end
    if r == "terminal" then return self:drop(job) end
  end
  if h.ambiguous == "1" then
    self:log("job %s: no task found after an ambiguous create; left as ambiguous", job.id)
    return self:finish(job, "ambiguous", { error = h.error })
  end
  self:debug("job %s: the interrupted create made no task; creating", job.id)
  return self:create(job, true)
end

--- Waits on the task through the poller; progress goes to the job hash as it changes.
function F:wait(job, task_id)
  job.task_id = task_id
  local w = self.opts.wait or {}
  local opts = { interval = w.interval, max_interval = w.max_interval, timeout = w.timeout,
    on_progress = function(t)
      if job.gone then return end
      pcall(self.store.progress, self.store, job, self.provider.progress(t))
    end }
  self.poller:wait(task_id, opts, function(task, err)
    self:try(job, function() return self:waited(job, task, err) end)
  end)
  return true
end

function F:waited(job, task, err)
  if task then
    return self:finish(job, "done", { task = jobs.encode(task), report = jobs.render(task),
      task_id = job.task_id, task_status = task.status })
  end
  if err.code == "task_failed" then
    return self:finish(job, "failed", { task = err.task and jobs.encode(err.task) or nil,
      error = jobs.error_json(err), task_id = job.task_id, task_status = err.task and err.task.status })
  end
  if TRANSIENT[err.code] or err.retryable then
    job.attempts = job.attempts + 1
    local ok, e = self.store:note(job, nil, jobs.error_json(err))
    if not ok then return nil, e end
    local delay = backoff(job.attempts)
    self:log("job %s: waiting on task %s failed (%s); again in %.1fs", job.id, job.task_id, tostring(err), delay)
    return self:later(job, delay, function() return self:wait(job, job.task_id) end)
  end
  return self:finish(job, "failed", { error = jobs.error_json(err), task_id = job.task_id })
end

function F:finish(job, status, fields)
  fields.task_id = fields.task_id or job.task_id
  local wrote, err = self.store:finish(job, status, fields)
  if wrote == nil then return nil, err end
  self:forget(job)
  if wrote then
    self.stats[status] = (self.stats[status] or 0) + 1
    self:debug("job %s: %s%s", job.id, status, job.task_id and (" (task " .. job.task_id .. ")") or "")
  end
  return true
end

return F

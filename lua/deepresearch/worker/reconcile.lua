-- Finding the task of a create that may have made one (mixed into Worker beside flow.lua): a
-- job whose create was marked "creating" and never answered, or answered ambiguously, is
-- searched for in the provider's task list (or its batch's), never created again blindly.
-- Found, it is recorded and waited on (flow.lua); not found after --search-window, the job is
-- set aside "ambiguous" for a person (docs/worker.md).
local dates = require "deepresearch.base.dates"
local jobs = require "deepresearch.worker.job"
local flow = require "deepresearch.worker.flow"

local M = {}

local LIST_LIMIT = 50
local MAX_PAGES = 20
local SKEW = 300 -- seconds of server clock disorder tolerated when matching a lost create
M.MAX_SEARCH_DELAY = 30 -- seconds: the longest pause between searches for a task that may exist
M.MIN_SEARCHES = 3 -- searches that must succeed (and find nothing) before a job is set aside

local backoff = flow.backoff

-- A time the job hash holds (ISO 8601; "seconds.micros" from before that) as epoch seconds.
local function epoch(text)
  return dates.parse_iso(text) or tonumber(text)
end

--- A create that may have made a task whose id is not recorded: a "creating" marker left by a
-- worker that stopped (killed, paused past its lease, Ctrl-C) before recording the answer, or
-- an ambiguous answer. The marker is written just before the request leaves, so it never
-- proves the create did not: such a job is never created again by a worker (only the process
-- that wrote the marker may clear it, see flow.not_sent). Its task is searched for (a task with
-- the same brief made after the marker, not claimed by another job) repeatedly with backoff:
-- found, it is recorded and waited on; after --search-window seconds and at least
-- MIN_SEARCHES searches that succeeded without finding it, the job is set aside "ambiguous"
-- for a person. The first search waits until any create in flight has surely landed: the
-- reconcile grace after the marker, after the ambiguous answer, and after the lease of the
-- worker this one took the job from had expired.
function M:reconcile(job)
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
    if ready > now then return self:later(job, ready - now, M.reconcile) end
  end
  s.from = s.from or self.now()
  -- A provider that cannot list its tasks cannot find this one: set aside for a person now.
  if not require("deepresearch.providers").has_list(self:lane(job).descriptor) and
    not h.batch_id then
    self:log("job %s: its create may have made a task and this provider cannot list tasks " ..
      "to find it; set aside as ambiguous for a person (docs/worker.md)", job.id)
    local h2 = self.store:load(job.id) or h
    return self:finish(job, "ambiguous", { error = h2.error or h.error })
  end
  local floor = epoch(h.creating_floor)
  -- A provider whose list pages by offset is searched page by page; others list the newest only.
  local lane = self:lane(job)
  local paged = lane.descriptor.list_paging == "offset"
  local matches = {}
  local counted = false
  -- A job added to a batch is looked for in that batch's task list (complete, by the job's id).
  local batch = h.batch_id and lane.provider.batch or nil
  local match = batch and batch.matches or lane.provider.matches
  local page
  local function got(list, lerr, offset, n)
        if not list then
          if not counted then
            counted = true
            s.failed = s.failed + 1
          end
          local delay = backoff(s.failed, M.MAX_SEARCH_DELAY)
          self:log("job %s: listing tasks to find its task failed (%s); again in %.1fs", job.id,
            tostring(lerr),
            delay)
          return self:later(job, delay, M.reconcile)
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
    lane.poller:list(opts, function(list, lerr)
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

function M:reconciled(job, matches)
  -- Oldest first: the task nearest after the marker is the one this job's first create made.
  table.sort(matches, function(a,
    b) return (jobs.created_epoch(a) or 0) < (jobs.created_epoch(b) or 0) end)
  for _, t in ipairs(matches) do
    local id = t[self:lane(job).provider.id_field]
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
  if s.ok >= M.MIN_SEARCHES and now >= s.from + window then
    self:log("job %s: no task found in %d searches over %.0fs after a create that may have made " ..
      "one; set aside " ..
      "as ambiguous for a person (docs/worker.md)", job.id, s.ok, now - s.from)
    return self:finish(job, "ambiguous", { error = h.error })
  end
  local delay = backoff(s.ok, math.min(M.MAX_SEARCH_DELAY, math.max(0.25, window / 4)))
  self:debug("job %s: search %d found no task; again in %.1fs", job.id, s.ok, delay)
  return self:later(job, delay, M.reconcile)
end

return M

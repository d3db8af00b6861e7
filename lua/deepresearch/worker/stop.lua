-- Stopping on Ctrl-C or SIGTERM, and a restart that resumes at once (mixed into Worker).
--
-- Stopping takes no more jobs and sends no more creates, gives the creates already sent a few
-- seconds to be answered and recorded, and keeps the leases of the jobs held: they stay in this
-- worker's processing list. The lease's value is marked "stopped" (its expiry unchanged), so
-- that a worker started next on this host, once this process is gone, takes those jobs at once
-- (it can prove nothing of this process is still sending: the process is gone); workers on
-- other hosts take them after the lease, as after any death. One line on stderr, exit 0.
local core = require "deepresearch.core"
local jobs = require "deepresearch.worker.job"
local is_interrupt = require("deepresearch.worker.redis").is_interrupt

local stop = {}

stop.DRAIN_SECONDS = 5 -- the longest wait for creates in flight to be answered

--- Whether a trapped signal came (the command line traps SIGINT and SIGTERM, see cli.lua):
-- notes its name for the loop. Library users without the trap get lua.c's "interrupted!".
function stop:poll_signal()
  if self.interrupted or not self.opts.trap_signals then return self.interrupted end
  local hit, name = core.interrupted()
  if hit then self.interrupted = name or "INT" end
  return self.interrupted
end

local function sending(self)
  local list = {}
  for _, job in pairs(self.jobs) do
    if job.sending then list[#list + 1] = job end
  end
  return list
end

-- One turn while stopping: the lease kept, the answers of creates in flight taken and recorded;
-- nothing new starts (the gate refuses every create not yet sent).
function stop:drain_turn()
  local now = self.now()
  self:keep_lease(now)
  self:replay_ops()
  for _, job in pairs(self.jobs) do
    if job.sending and job.step and job.due <= now then
      local fn = job.step
      job.step = nil
      self:try(job, fn)
    end
  end
  if not self:step_pollers(50) then core.sleep(0.05) end
end

-- A second signal while draining quits at once (safe: a create left unanswered stays
-- "creating" and is searched for, never sent again).
local function again(self)
  if not self.opts.trap_signals then return false end
  local _, _, n = core.interrupted()
  return (n or 0) >= 2
end

--- After Ctrl-C or SIGTERM: drains, marks the lease stopped, prints one line; returns 0.
function stop:stop_interrupted()
  self.draining = true
  local deadline = core.now() + stop.DRAIN_SECONDS
  while (sending(self)[1] or self.pending_ops[1]) and core.now() < deadline and not again(self) do
    local ok, err = pcall(self.drain_turn, self)
    if not ok and not is_interrupt(err) then
      self:log("internal error while stopping: %s", tostring(err))
    end
  end
  local unanswered = 0
  for _, job in ipairs(sending(self)) do
    if job.answered then
      -- Paid for and not in Redis: the one thing a person must be told, whatever else.
      self:log("job %s: its task is %s (created; not recorded: redis unavailable); the next " ..
        "worker to hold the job finds it by listing before creating anything", job.id,
        job.answered)
    else
      unanswered = unanswered + 1
    end
  end
  if self.count > 0 then
    pcall(self.store.mark_stopped, self.store, self.lease_value)
  elseif not self.pending_ops[1] then
    pcall(self.store.retire, self.store) -- nothing held: nothing to keep a lease for
  end
  local signal = type(self.interrupted) == "string" and self.interrupted or "INT"
  local line
  if self.count == 0 then
    line = "no job held"
  else
    line = string.format("%d job(s) keep their lease: a worker started next on this host (or " ..
      "--worker-id %s anywhere) resumes them at once, others after %gs", self.count, self.wid,
      self.opts.lease)
    if unanswered > 0 then
      line = line .. string.format("; %d create(s) unanswered after %gs stay \"creating\": " ..
        "searched for, never sent again", unanswered, stop.DRAIN_SECONDS)
    end
  end
  self:log("stopped on SIG%s: took no more jobs; %s", signal, line)
  self:close_pollers()
  self.conn:close()
  return 0
end

-- Restart ---------------------------------------------------------------------------------------

local function running(pid)
  local f = io.open(string.format("/proc/%d/stat", tonumber(pid) or -1), "r")
  if not f then return false end
  local state = (f:read("*a") or ""):match("^%d+ %b() (%a)")
  f:close()
  return state ~= nil and state ~= "Z"
end

--- On start: the jobs of workers that stopped on a signal on this host and whose process is
-- gone are taken at once (their leases have not run out yet). Returns true, or nil on a Redis
-- failure (tried again next turn).
function stop:adopt_stopped()
  local leases = self.store:leases()
  if not leases then return nil end
  for _, l in ipairs(leases) do
    local v = type(l.value) == "string" and jobs.decode(l.value) or nil
    if l.worker ~= self.wid and type(v) == "table" and v.stopped and v.host == self.host and
       not running(v.pid) then
      local moved, t = self.store:adopt_stopped(l.worker, l.value)
      if not moved then return nil end
      if #moved > 0 then
        self:log("resuming %d job(s) of worker %s, stopped on this host", #moved, l.worker)
      end
      -- Its creates left before it stopped: they have landed by now plus the grace.
      for i = #moved, 1, -1 do self:admit(moved[i], t + self.opts.reconcile_grace) end
    end
  end
  return true
end

return stop

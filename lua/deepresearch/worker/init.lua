-- A worker: takes deep-research jobs from a Redis list, creates their tasks,
-- waits on all of them at once through one poller, and writes each result back.
-- Every step is recorded in Redis before the next one starts, so a worker killed
-- at any moment is resumed (by itself or by another worker once its lease runs
-- out) without losing a job or creating a second task for it. See docs/worker.md.
local dr = require "deepresearch"
local jobs = require "deepresearch.worker.job"
local store_mod = require "deepresearch.worker.store"
local redis = require "deepresearch.worker.redis"
local flow = require "deepresearch.worker.flow"
local reconcile = require "deepresearch.worker.reconcile"
local checkpoint = require "deepresearch.worker.checkpoint"
local batch = require "deepresearch.worker.batch"
local stop = require "deepresearch.worker.stop"
local intake = require "deepresearch.worker.intake"
local budget = require "deepresearch.worker.budget"

local core = dr.core
local is_interrupt = redis.is_interrupt
local M = {}

M.DRAIN_SECONDS = stop.DRAIN_SECONDS -- after a signal: the longest wait for creates in flight
M.EXIT_UNREACHABLE = 4 -- --once and Redis never answered within the bound (M.once_give_up)

M.defaults = {
  queue = "deepresearch", concurrency = 4, provider = dr.providers.DEFAULT, lease = 10,
  reconcile_grace = 10,
  search_window = 600, redis_url = "redis://127.0.0.1:6379/0", idle_poll = 0.1, busy_poll = 0.05,
  -- A job whose task waits for a person is looked at again this rarely (seconds): the
  -- respond command brings it back at once; this catches answers given through the API itself.
  input_recheck = 300,
}

-- A job's steps, by job: one job's create and wait, the search for a task a create may have
-- made, checkpoints, batches. Their names do not overlap.
local Worker = {}
for _, steps in ipairs({ flow, reconcile, checkpoint, batch, stop, intake, budget }) do
  for k, v in pairs(steps) do Worker[k] = v end
end
Worker.__index = Worker

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname", "r")
  local h = f and f:read("l")
  if f then f:close() end
  return (h and h ~= "") and h or (os.getenv("HOSTNAME") or "host")
end

local function own_pid()
  local f = io.open("/proc/self/stat", "r")
  local pid = f and f:read("n")
  if f then f:close() end
  return pid or 0
end

--- opts: redis_url, queue, concurrency, provider, worker_id, lease, reconcile_grace, search_window,
--- once,
-- client (options for dr.client), wait (options for the waits: interval, max_interval, timeout),
-- stderr (a file, default io.stderr), quiet, verbose, now (clock, for tests)
function M.new(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  if not jobs.providers[o.provider] then
    return nil, "unknown provider: " .. tostring(o.provider)
  end
  local pid = own_pid()
  local w = setmetatable({
    opts = o, provider = jobs.providers[o.provider], provider_name = o.provider,
    wid = o.worker_id or (hostname() .. "-" .. pid), pid = pid, host = hostname(),
    now = o.now or core.now, out = o.stderr or io.stderr,
    jobs = {}, count = 0, pending_ops = {}, stats = { done = 0, failed = 0, dead = 0,
    ambiguous = 0 },
    next_heartbeat = 0, next_reap = 0, no_reap_until = 0, next_once_check = 0, next_status = 0,
    adopted = false,
    -- A create's request is not written later than this before its renewed lease runs out
    -- (clock rates differ a little between this machine and Redis's).
    send_margin = math.max(0.05, math.min(1, o.lease / 10)),
  }, Worker)
  -- The lease's value: this process's own, so that a second process under the same worker id
  -- (a restart while the first was only paused) is told apart from this one.
  w.lease_value = jobs.encode({ pid = pid, host = hostname(), started = store_mod.timestamp(),
    token = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff)) })
  local client_opts = { provider = o.provider, user_agent = "deepresearch-worker" }
  for k, v in pairs(o.client or {}) do client_opts[k] = v end
  w.client = dr.client(client_opts)
  w.client_opts = client_opts
  w.lanes = {}
  if (o.batch_size or 0) > 1 then
    if not w.provider.batch then
      return nil, "--batch-size: provider " .. tostring(o.provider) .. " has no batches"
    end
    w.batching, w.groups, w.full = true, {}, {}
  end
  w.poller = w.client:poller{ max_connections = math.min(o.concurrency, 16) }
  w.lanes[o.provider] = { name = o.provider, provider = w.provider, client = w.client,
    poller = w.poller, descriptor = dr.providers.get(o.provider) }
  -- No Redis call may block longer than a fraction of the lease, or others would take over.
  local conn, err = redis.new{ url = o.redis_url, max_backoff = math.min(2, o.lease / 3),
    timeout = math.max(0.5, math.min(5, o.lease / 3)),
    on_state = function(up, msg) w:redis_state(up, msg) end }
  if not conn then return nil, err end
  w.conn = conn
  w.store = store_mod.new(conn, o.queue, w.wid)
  w.tty = o.tty
  return w
end

-- Each lane's poller, the worker's own first (a fixed order, whatever pairs does).
function Worker:pollers()
  local list, names = { self.poller }, {}
  for name in pairs(self.lanes) do
    if self.lanes[name].poller ~= self.poller then names[#names + 1] = name end
  end
  table.sort(names)
  for _, name in ipairs(names) do list[#list + 1] = self.lanes[name].poller end
  return list
end

--- Steps the pollers with work, for at most ms milliseconds in all; false when none has any.
function Worker:step_pollers(ms)
  local busy = {}
  for _, p in ipairs(self:pollers()) do
    if p:pending() > 0 then busy[#busy + 1] = p end
  end
  if #busy == 0 then return false end
  local each = math.max(1, math.floor(ms / #busy))
  for _, p in ipairs(busy) do p:step(math.min(p:next_timeout() or each, each)) end
  return true
end

function Worker:close_pollers()
  for _, p in ipairs(self:pollers()) do p:close() end
end

function Worker:log(fmt, ...)
  if self.opts.quiet then return end
  if self.status_shown then self.out:write("\r\27[K") self.status_shown = false end
  self.out:write(string.format("deepresearch-worker %s: " .. fmt .. "\n", self.wid, ...))
  self.out:flush()
end

function Worker:debug(fmt, ...)
  if self.opts.verbose then self:log(fmt, ...) end
end

function Worker:redis_state(up, msg)
  if up then
    self:log("redis is back")
  else
    self:log("redis unavailable (%s); retrying with backoff", tostring(msg))
  end
end

-- Redis side of the loop -------------------------------------------------------------------------

-- Refreshes the lease; after Redis comes back (its leases may all have expired
-- meanwhile) holds off takeovers for one lease so live workers can renew theirs.
function Worker:keep_lease(now)
  if self.conn.reconnected then
    self.conn.reconnected = false
    self.no_reap_until = now + self.opts.lease
    self.next_heartbeat = 0
  end
  if now < self.next_heartbeat then return self.conn:up() end
  if self.opts.watch_pid then
    local f = io.open(string.format("/proc/%d/stat", self.opts.watch_pid), "r")
    if not f then
      self:log("process %d is gone; exiting", self.opts.watch_pid)
      os.exit(3)
    end
    f:close()
  end
  local first = not self.lease_taken
  local state, left, t = self.store:heartbeat(self.lease_value, self.opts.lease,
    first and "start" or "renew")
  if not state then
    self.next_heartbeat = now + 0.05
    return false
  end
  if state == 2 and not first then
    self:log("worker id %s is now used by another process; this one lets its jobs go and stops",
      self.wid)
    self.usurped = true
    for _, job in pairs(self.jobs) do self:forget(job) end
    return false
  end
  if first then
    -- An earlier process under this id may still be sending (paused, not dead): its creates were
    -- written before its lease ran out, so they are searched for only after that plus the grace.
    self.lease_taken = true
    self.adopt_not_before = t + math.max(0, left) + self.opts.reconcile_grace
  end
  self.next_heartbeat = now + self.opts.lease / 3
  if state == 0 and self.count > 0 then self:check_ownership() end
  return true
end

-- The lease lapsed (this process stalled, or Redis was away): jobs no longer in this
-- worker's processing list were taken over by another worker, which now owns them.
function Worker:check_ownership()
  local items = self.store:processing_items()
  if not items then return end
  local held = {}
  for _, raw in ipairs(items) do held[raw] = true end
  for _, job in pairs(self.jobs) do
    if not held[job.raw] then
      self:log("job %s was taken over by another worker while this one was unreachable", job.id)
      self:forget(job)
    end
  end
end

-- On start: the jobs this worker id already holds (it was killed and restarted), then those of
-- workers stopped on a signal on this host whose process is gone (stop.lua).
function Worker:adopt_own()
  if not self.adopted_own then
    local items = self.store:processing_items()
    if not items then return false end
    if #items > 0 then self:log("resuming %d job(s) held before a restart", #items) end
    for i = #items, 1, -1 do self:admit(items[i], self.adopt_not_before) end
    self.adopted_own = true
  end
  if not self:adopt_stopped() then return false end
  self.adopted = true
  return true
end

function Worker:reap(now)
  if now < self.next_reap or now < self.no_reap_until then return end
  local moved, dead, t = self.store:reap()
  if not moved then return end
  self.next_reap = now + self.opts.lease / 2
  for _, w in ipairs(dead) do self:log("worker %s lost its lease; took over %d job(s)", w,
    #moved) end
  -- Their leases had expired by t: a create they sent has landed by t + grace.
  for _, raw in ipairs(moved) do self:admit(raw, t + self.opts.reconcile_grace) end
end

-- Parked jobs (tasks waiting for input) due for a rare look, at most once a second.
function Worker:recheck(now)
  if now < (self.next_recheck or 0) or self.count >= self.opts.concurrency then return end
  self.next_recheck = now + 1
  local due = self.store:take_due(self.opts.concurrency - self.count)
  for _, raw in ipairs(type(due) == "table" and due or {}) do self:admit(raw) end
end

function Worker:fill()
  self:recheck(self.now())
  while self.count < self.opts.concurrency and not self:poll_signal() do
    local raw = self.store:take()
    if not raw then return end
    self:admit(raw)
  end
end

-- Side effects that failed while Redis was away, replayed in order.
function Worker:replay_ops()
  while self.pending_ops[1] do
    if not self.pending_ops[1]() then return end
    table.remove(self.pending_ops, 1)
  end
end

function Worker:run_due(now)
  for _, job in pairs(self.jobs) do
    if job.step and job.due <= now then
      local fn = job.step
      job.step = nil
      self:try(job, fn)
    end
  end
end

-- Status line ----------------------------------------------------------------------------------

function Worker:status(now, force)
  if self.opts.quiet or (now < self.next_status and not force) then return end
  self.next_status = now + 1
  local line
  if not self.conn:up() then
    line = string.format("redis down, retrying | running %d", self.count)
  else
    local queued = self.store:queued() or "?"
    local s = self.store:stats() or {}
    line = string.format("queued %s | running %d | done %d | failed %d | dead %d | ambiguous %d" ..
      " | input %s", tostring(queued), self.count, s.done or 0, s.failed or 0, s.dead or 0,
      s.ambiguous or 0, tostring(self.store:waiting_input() or "?"))
  end
  if self.tty then
    self.out:write("\r\27[K", line)
    self.status_shown = true
  elseif line ~= self.last_line or now >= (self.next_plain or 0) then
    self.out:write(line, "\n")
    self.next_plain = now + 10
  end
  self.last_line = line
  self.out:flush()
end

-- The loop -------------------------------------------------------------------------------------

--- One turn: lease, takeovers, new jobs, due steps, network. Returns false when --once is done.
function Worker:turn()
  local now = self.now()
  if self:poll_signal() then return true end
  local up = self:keep_lease(now)
  if self:unreachable(now, up) then return false end
  if up then
    if not self.adopted then self:adopt_own() end
    if self.adopted then
      self:replay_ops()
      self:reap(now)
      self:fill()
    end
  end
  if self.usurped then return false end
  self:run_due(now)
  if self.batching and not self.draining then self:flush_batches() end
  if self.opts.once and self.adopted and self.count == 0 and not self.pending_ops[1] and
     now >= self.next_once_check then
    self.next_once_check = now + 0.2
    if self.store:all_empty() then return false end
  end
  local ms = math.floor(self.opts.busy_poll * 1000)
  local ok, stepped = pcall(self.step_pollers, self, ms)
  if not ok then
    if is_interrupt(stepped) then
      self.interrupted = true
    else
      self:log("internal error in a callback: %s", tostring(stepped))
    end
  elseif not stepped then
    core.sleep(self.count > 0 and self.opts.busy_poll or self.opts.idle_poll)
  end
  self:poll_signal()
  self:status(self.now())
  return true
end

--- With --once: true when Redis has not answered for M.once_give_up seconds, before it ever
-- answered or while this worker holds nothing (a batch run must not hang on a wrong URL).
-- Jobs held are never given up: their tasks are still waited on until Redis returns.
function Worker:unreachable(now, up)
  if up or self.usurped then
    self.down_since = nil
    return false
  end
  if not self.opts.once then return false end
  self.down_since = self.down_since or now
  if self.count > 0 or self.pending_ops[1] then return false end
  if now - self.down_since < M.once_give_up(self.opts) then return false end
  self.gave_up = now - self.down_since
  return true
end

--- Seconds --once waits for an unreachable Redis: one lease (at least 1 s).
function M.once_give_up(o) return math.max(1, o.lease) end

--- Runs until --once finds nothing left (or forever), or Ctrl-C / SIGTERM. Returns the local
-- counters and the exit status: 0 (also after a signal), 1 when another process took over this
-- worker id, 4 when --once found Redis unreachable.
function Worker:run()
  self:log("queue %q, concurrency %d, lease %gs, redis %s", self.opts.queue, self.opts.concurrency,
    self.opts.lease, self.opts.redis_url:gsub("//[^@/]*@", "//***@"))
  self:warn_unbounded()
  while true do
    local ok, more = pcall(self.turn, self)
    if not ok then
      if not is_interrupt(more) then error(more, 0) end
      self.interrupted = true
    end
    if self.interrupted then return self.stats, self:stop_interrupted() end
    if not more then break end
  end
  if self.gave_up then
    self:log("redis %s did not answer for %gs; giving up (--once)",
      (self.opts.redis_url:gsub("//[^@/]*@", "//***@")), math.floor(self.gave_up * 10 + 0.5) / 10)
    self:close_pollers()
    self.conn:close()
    return self.stats, M.EXIT_UNREACHABLE
  end
  self:status(self.now(), true)
  if self.tty and not self.opts.quiet then self.out:write("\n") end
  if not self.usurped then self.store:retire() end
  self:close_pollers()
  self.conn:close()
  return self.stats, self.usurped and 1 or 0
end

M.Worker = Worker
return M

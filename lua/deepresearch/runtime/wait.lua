-- The polling loop every provider and task kind shares.
local errors = require "deepresearch.base.errors"
local retry = require "deepresearch.base.policy"

local M = {}

M.defaults = {
  interval = 2,        -- first poll delay, seconds
  growth = 1.5,        -- each delay is the last one times this ...
  max_interval = 30,   -- ... up to this cap
  timeout = 7200,      -- deep research runs 10-90 minutes
  max_failures = 5,    -- transient failures in a row that end the wait
  -- Seconds after a wait starts during which a 404 means "not visible yet": only for a task
  -- this client created (or the caller handed in), as a new task may take a moment to be
  -- readable. Any other id's 404 is final at the first poll: a mistyped id ends at once.
  not_found_grace = 30,
}

-- Ids a client's creates returned, for the grace above: two generations of up to CREATED_KEEP
-- each, so a long-running worker keeps the recent ones without growing without bound.
M.CREATED_KEEP = 256

--- Records the ids in a create's answer (state: the client's state; body: the decoded object):
-- "id" and every "*_id" field holding a string, which covers every kind's id field.
function M.note_created(state, body)
  if type(state) ~= "table" or type(body) ~= "table" then return end
  local set = state.created_ids
  if not set or state.created_count >= M.CREATED_KEEP then
    state.created_before, set = set, {}
    state.created_ids, state.created_count = set, 0
  end
  for k, v in pairs(body) do
    if type(v) == "string" and type(k) == "string" and (k == "id" or k:sub(-3) == "_id") then
      set[v] = true
      state.created_count = state.created_count + 1
    end
  end
end

--- Whether this client's creates returned id (see note_created).
function M.created_here(state, id)
  if type(state) ~= "table" then return false end
  local a, b = state.created_ids, state.created_before
  return (a ~= nil and a[id] == true) or (b ~= nil and b[id] == true)
end

--- The delays a wait sleeps between polls when nothing goes wrong.
function M.schedule(opts)
  opts = opts or {}
  local d = opts.interval or M.defaults.interval
  local growth = opts.growth or M.defaults.growth
  local cap = opts.max_interval or M.defaults.max_interval
  return function()
    local now = d
    d = math.min(cap, d * growth)
    return math.min(now, cap)
  end
end

--- opts with the provider's poll pace (descriptor poll = { floor = s, cap = s }, on the client
-- state) as the first interval and max_interval where the caller gave none: an API with low
-- rate limits is polled no sooner than its floor by default. A fresh table when it changes.
function M.with_poll(opts, poll)
  if type(poll) ~= "table" or (opts.interval and opts.max_interval) then return opts end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.interval = o.interval or math.max(M.defaults.interval, poll.floor or 0)
  o.max_interval = o.max_interval or math.max(poll.cap or M.defaults.max_interval, o.interval)
  return o
end

local function field(task, path)
  if path:sub(1, 1) == "#" then
    local t = task[path:sub(2)]
    return type(t) == "table" and #t or 0
  end
  local v = task
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

-- A fingerprint of what on_progress reports, to call it only on change.
local function progress_key(task, kind)
  local parts = {}
  for i, path in ipairs(kind.progress) do parts[i] = tostring(field(task, path)) end
  return table.concat(parts, "\0")
end
M.progress_key = progress_key

-- Poll failures worth another poll: the one list, in base/policy.lua.
local TRANSIENT = retry.POLL_TRANSIENT

-- A waiter is the polling loop as a state machine, so the blocking wait and the
-- poller's many concurrent waits share one set of rules.
local Waiter = {}
Waiter.__index = Waiter

--- The 404 grace of a wait on id: the caller's not_found_grace when given; else the default
-- for a task this client created or the caller handed in (opts.task); else none. A waiter
-- whose ctx carries no client state (ctx.policy) keeps the default grace.
function M.grace_for(ctx, id, opts)
  if opts.not_found_grace then return opts.not_found_grace end
  local state = ctx.policy
  if opts.task ~= nil or type(state) ~= "table" or state.provider == nil or
     M.created_here(state, id) then
    return M.defaults.not_found_grace
  end
  return 0
end

--- ctx = { clock = {now, sleep}, verdict = fn(task, state, opts) -> "done" | err | nil,
--   policy = the client's retry settings (max_retry_after, base_delay, max_delay),
--   timeout_for = optional fn(task) -> seconds: the default timeout a task's own fields imply
--   (Valyu: its mode), used when the caller gave none }
function M.waiter(ctx, kind, id, opts)
  opts = M.with_poll(opts or {}, ctx.policy and ctx.policy.poll)
  return setmetatable({
    ctx = ctx, kind = kind, id = id, opts = opts, start = ctx.clock.now(),
    timeout = opts.timeout or M.defaults.timeout, next_delay = M.schedule(opts),
    timeout_open = opts.timeout == nil and ctx.timeout_for ~= nil,
    cap = opts.max_interval or M.defaults.max_interval,
    failures = 0, last = opts.task, polls = 0,
    grace = M.grace_for(ctx, id, opts), seen = opts.task ~= nil,
  }, Waiter)
end

-- The first task seen settles a timeout the caller left open (a max task runs 3 hours).
function Waiter:settle_timeout(task)
  local t = self.ctx.timeout_for(task)
  if t then self.timeout, self.timeout_open = t, false end
end

--- Feeds one poll's outcome. Returns "done", task | "error", err | "sleep", seconds.
-- pace: the server's Retry-After on a status answer, in seconds: the next poll comes no
-- sooner (a floor), yet never later than max_interval.
-- on_progress runs here; an error it raises propagates to the caller.
function Waiter:observe(task, err, pace)
  local clock, opts = self.ctx.clock, self.opts
  self.polls = self.polls + 1
  local delay
  if task then
    self.failures = 0
    self.last, self.seen = task, true
    if self.timeout_open then self:settle_timeout(task) end
    local key = progress_key(task, self.kind)
    if key ~= self.last_key then
      self.last_key = key
      if opts.on_progress then opts.on_progress(task) end
    end
    local verdict = self.ctx.verdict(task, self.kind.states[task.status], opts)
    if verdict == "done" then return "done", task end
    if verdict then return "error", verdict end
    delay = self.next_delay()
    if type(pace) == "number" then delay = math.min(math.max(delay, pace), self.cap) end
  else
    local early_404 = err.code == "not_found" and clock.now() - self.start < self.grace
    if not early_404 and not TRANSIENT[err.code] then
      if err.code == "not_found" and not self.seen then
        -- Name the id: the server's own text ("Task not found") does not.
        err.message = string.format("no %s %s: %s", self.kind.label, tostring(self.id),
          tostring(err.message))
      end
      return "error", err
    end
    self.failures = self.failures + 1
    if self.failures >= (opts.max_failures or M.defaults.max_failures) then
      err.message = string.format("%s (%d polls in a row failed)", err.message, self.failures)
      return "error", err
    end
    delay = math.max(retry.delay(self.failures, err, self.ctx.policy or retry.defaults),
      self.next_delay())
  end
  local remaining = self.timeout - (clock.now() - self.start)
  if remaining <= 0 then
    if not self.seen then
      -- No poll ever answered with the task: nothing says it exists, let alone runs.
      return "error", errors.new("timeout", string.format(
        "%s %s was never seen within %gs: no poll answered with it (last error: %s)",
        self.kind.label, self.id, self.timeout, tostring(err and err.message or "none")),
        { never_seen = true, retryable = true })
    end
    return "error", errors.new("timeout", string.format(
      "%s %s did not finish within %gs; it keeps running on the server (wait again to resume)",
      self.kind.label, self.id, self.timeout), { task = self.last, retryable = true })
  end
  return "sleep", math.min(delay, remaining)
end

--- Polls ctx.get(id) until the task ends, sleeping on ctx.clock between polls.
function M.run(ctx, kind, id, opts)
  local w = M.waiter(ctx, kind, id, opts)
  while true do
    local action, v = w:observe(ctx.get(id))
    if action == "done" then return v, nil, w.polls end
    if action == "error" then return nil, v, w.polls end
    ctx.clock.sleep(v)
  end
end

return M

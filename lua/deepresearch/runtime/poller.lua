-- Many requests and waits at once on one curl multi handle, without threads:
-- client:poller() for event loops, wait_all and create_all on top of it.
-- Each operation runs as a coroutine over the same code the blocking client
-- uses; its runtime's send and sleep yield here instead of blocking.
local core = require "deepresearch.core"
local errors = require "deepresearch.base.errors"
local validate = require "deepresearch.base.validate"
local options = require "deepresearch.base.options"

local data = require("deepresearch.runtime.http").state
local client_closed = core.client_methods.closed
local unpack = table.unpack or unpack -- luacheck: ignore
local M = {}

M.DEFAULT_MAX_CONNECTIONS = 8 -- the client's default (src/engine.c)
M.MAX_CONNECTIONS = 1024
-- step() hands libcurl at most this many milliseconds at a time, so that control comes back
-- to Lua often enough for lua.c's Ctrl-C hook (it runs only between Lua instructions).
M.SLICE_MS = 100

-- What the poller's own yields carry first: any other yield comes from user code running
-- inside an operation (on_progress, a token function) and cannot be resumed sensibly.
-- SLICE: the guard (below) hands control back between slices of a wait.
local SEND, SLEEP, SLICE = {}, {}, {}
local FOREIGN_YIELD =
  "on_progress (or a token function) yielded inside a deepresearch poller operation; " ..
  "callbacks must not yield"

local Poller = {}
Poller.__index = Poller
Poller.__name = "deepresearch.poller"

-- The provider's operations and what each accepts (see base/options.lua).
-- The client's modules (init.lua, from its descriptor); a kind's module that is not installed
-- adds none.
local function provider_ops(self)
  local ops, accepts = {}, {}
  for _, modname in ipairs(data(self).modules) do
    local ok, mod = pcall(require, modname)
    if ok and mod.ops then
      for k, v in pairs(mod.ops) do ops[k] = v end
      for k, v in pairs(mod.accepts or {}) do accepts[k] = v end
    end
  end
  return ops, accepts
end

-- A claimed id (below) is kept at least this many seconds: a lost create reconciles against
-- tasks made after it started less extruct.RECONCILE_SKEW (300 s), within its own timeouts and
-- SIBLING_WAIT (600 s) of starting; an hour covers both with room.
M.CLAIM_KEEP = 3600

-- The ids a poller's creates returned (rt.claimed), read and written as a plain set: two lost
-- creates never get the same task. Two generations by age, so that a long-lived poller (a
-- worker's) holds the last CLAIM_KEEP to 2 * CLAIM_KEEP seconds of ids, not one per create
-- for its lifetime.
local function claimed_set(now)
  local old, cur, born = {}, {}, now()
  return setmetatable({}, {
    __index = function(_, id) return cur[id] or old[id] end,
    __newindex = function(_, id, v)
      local t = now()
      if t - born >= M.CLAIM_KEEP then old, cur, born = cur, {}, t end
      if v == nil then old[id] = nil end
      cur[id] = v
    end,
  })
end

-- Timers: a binary heap on (at, seq), so that adding or taking one costs O(log n) whatever the
-- number of pending waits, and timers due at the same moment run in the order they were set.
local function timer_before(a, b) return a.at < b.at or (a.at == b.at and a.seq < b.seq) end

local function heap_push(h, t)
  local i = #h + 1
  h[i] = t
  while i > 1 do
    local parent = (i - i % 2) / 2
    if not timer_before(h[i], h[parent]) then break end
    h[i], h[parent] = h[parent], h[i]
    i = parent
  end
end

local function heap_pop(h)
  local n = #h
  local top, last = h[1], h[n]
  h[n] = nil
  n = n - 1
  if n == 0 then return top end
  h[1] = last
  local i = 1
  while true do
    local l = 2 * i
    local m = i
    if l <= n and timer_before(h[l], h[m]) then m = l end
    if l + 1 <= n and timer_before(h[l + 1], h[m]) then m = l + 1 end
    if m == i then break end
    h[i], h[m] = h[m], h[i]
    i = m
  end
  return top
end

-- max_connections: any type here; check_max_connections says what it must be.
local POLLER_OPTIONS = { max_connections = "any", now = "function" }

-- Runs fn(a, b) in a coroutine of its own and returns its one result. lua.c's Ctrl-C hook is
-- set on the main thread only (PUC Lua's hooks are per thread), so it cannot fire half-way
-- through the poller's bookkeeping (a result taken from libcurl and not yet handed to its
-- operation, a request yielded and not yet queued): it fires where the guard gives control
-- back, between slices of a wait (fn yields SLICE at a point where nothing is half-done) and
-- when fn returns. The poller's state stays whole; the next step goes on from it.
local function guarded(fn, ...)
  local co = coroutine.create(fn)
  local ok, r = coroutine.resume(co, ...)
  while ok and coroutine.status(co) == "suspended" do ok, r = coroutine.resume(co) end
  if not ok then error(r, 0) end
  return r
end

--- Raises unless v is nil or an integer in 1..MAX_CONNECTIONS; level 3 is the public caller.
local function check_max_connections(fname, v)
  if v == nil then return end
  if type(v) ~= "number" or v % 1 ~= 0 or v < 1 or v > M.MAX_CONNECTIONS then
    error(string.format("bad option 'max_connections' to '%s' (an integer from 1 to %d " ..
      "expected, got %s)",
      fname, M.MAX_CONNECTIONS, type(v) == "number" and tostring(v) or type(v)), 3)
  end
end

-- The client's own max_connections (checked when the client was made), kept in range.
local function client_max_connections(state)
  local v = tonumber(state.options and state.options.max_connections) or M.DEFAULT_MAX_CONNECTIONS
  if v ~= v then return M.DEFAULT_MAX_CONNECTIONS end
  return math.max(1, math.min(M.MAX_CONNECTIONS, math.floor(v)))
end

--- client:poller{ max_connections = 8, now = fn }
function M.poller(self, opts)
  options.table_arg("poller", 1, opts, true, 2)
  opts = opts or {}
  options.check("poller", opts, POLLER_OPTIONS, 2)
  check_max_connections("poller", opts.max_connections)
  local state = data(self)
  if client_closed(state.handle) then
    error("attempt to make a poller on a closed deepresearch.client", 2)
  end
  local max = opts.max_connections or client_max_connections(state)
  local ops_of, accepts = provider_ops(self)
  local p = setmetatable({
    client = self,
    cp = core.new_poller(state.handle, max),
    max = max,       -- transfers handed to libcurl at once
    active = 0,      -- transfers libcurl has now
    now = opts.now or core.now,
    ops_of = ops_of,
    accepts = accepts, -- method -> what its arguments must be, checked as each is added
    inflight = {}, -- transfer id -> operation
    queue = {},    -- { op, spec } waiting for a free slot, first in first out: qhead..qtail
    qhead = 1,
    qtail = 0,
    timers = {},   -- a heap of sleeping operations on (op.at, op.seq)
    seq = 0,
    -- results libcurl gave back, kept until their operations have them (see _deliver)
    arrived = {},
    ended_ops = setmetatable({}, { __mode = "k" }), -- coroutines of operations ended by an error
    ready = {},    -- finished operations whose callbacks have not run yet: rhead..rtail
    rhead = 1,
    rtail = 0,
    -- Work per step, counted (p:stats()): operations resumed (touched), timers that came due,
    -- transfers that completed; the largest touched of any step.
    counts = { steps = 0, touched = 0, due = 0, completed = 0, touched_max = 0 },
    raised = {},   -- errors to raise at the end of this step
    count = 0,     -- operations whose callbacks have not run, or whose error was not raised yet
    failed = 0,    -- of these, operations ended by an error in raised
  }, Poller)
  p.rt = {
    send = function(spec) return coroutine.yield(SEND, spec) end,
    sleep = function(sec) return coroutine.yield(SLEEP, sec) end,
    now = p.now,
    claimed = nil, -- task ids its creates returned (claimed_set, below)
    -- Whether the operation running as coroutine co has ended without its code unwinding (its
    -- coroutine raised, or the poller ended it: an error, a yield, a closed client): extruct's
    -- lost creates do not wait for such a sibling's answer.
    ended = function(co)
      return p.ended_ops[co] == true or (type(co) == "thread" and coroutine.status(co) == "dead")
    end,
  }
  p.rt.claimed = claimed_set(p.now)
  -- Closing the client ends its pollers' operations (init.lua); weak, so a dropped poller goes.
  state.pollers = state.pollers or setmetatable({}, { __mode = "k" })
  state.pollers[p] = true
  return p
end

-- An operation sleeps in at most one timer at a time: the op itself is the heap's entry.
function Poller:_add_timer(at, op)
  self.seq = self.seq + 1
  op.at, op.seq = at, self.seq
  heap_push(self.timers, op)
end

-- Queues a finished operation's callback (and its results) for the next run of callbacks.
function Poller:_ready(cb, r)
  self.rtail = self.rtail + 1
  self.ready[self.rtail] = { cb = cb, r = r }
end

-- Ends op without its callback: err is raised from the end of the current (or next) step,
-- and op counts as pending until then (so that a driver steps to see the error).
function Poller:_fail(op, err)
  if op.ended then return end
  op.ended = true
  self.ended_ops[op.co] = true
  self.failed = self.failed + 1
  self.raised[#self.raised + 1] = err
end

-- Ends op with nil, err for its callback, delivered by the next run of callbacks.
function Poller:_finish(op, err)
  if op.ended then return end
  op.ended = true
  self.ended_ops[op.co] = true
  self:_ready(op.cb, { nil, err })
end

local function closed_error(spec)
  local in_flight = spec ~= nil
  local msg = "the client was closed; this operation was cancelled"
  if in_flight and spec.effect == "create" then
    msg = msg ..
      " while its create request was in flight: a task may exist (check with client:list)"
  elseif not in_flight then
    msg = msg .. " before its next request was sent"
  end
  local err = errors.new("closed", msg, { retryable = false })
  if not in_flight then err.sent = false end -- in flight: libcurl may have sent it, or not
  return err
end

function Poller:_client_gone()
  if not self.client_closed and client_closed(data(self.client).handle) then
    self:_client_closed()
  end
  return self.client_closed
end

-- What an operation yielded: a request to send, a sleep, or something foreign.
function Poller:_yielded(op, what, arg)
  if op.ended then return end -- failed meanwhile (its gate raised): drop what it asks for
  if what ~= SEND and what ~= SLEEP then return self:_fail(op, FOREIGN_YIELD) end
  if self:_client_gone() then return self:_finish(op, closed_error()) end
  if what == SEND then
    self.qtail = self.qtail + 1
    self.queue[self.qtail] = { op = op, spec = arg }
    self:_pump()
  else
    self:_add_timer(self.now() + arg, op)
  end
end

-- Runs op until it yields a request or a sleep, or ends. An error in it (say,
-- from on_progress) ends that operation only; step raises it once its other
-- work is done.
function Poller:_resume(op, ...)
  self.counts.touched = self.counts.touched + 1
  local ok, what, arg = coroutine.resume(op.co, ...)
  if not ok then return self:_fail(op, what) end
  if coroutine.status(op.co) == "dead" then return end
  return self:_yielded(op, what, arg)
end

local function is_create(spec)
  if spec.effect ~= nil then return spec.effect == "create" end
  return spec.method == "POST" and spec.fresh == true
end

-- A refused or failed request's result: the operation's own code unwinds as for any request
-- that never left (a create that was not sent is neither retried nor reconciled).
local function refused(reason)
  return { error = "cancelled", sent = false,
    message = "create not sent: " .. (reason ~= nil and tostring(reason) or "the gate refused it") }
end

-- Asks op's gate whether its create may leave now. Returns the spec to send, or nil when
-- the operation was resumed with a refusal or failed.
function Poller:_gate(op, spec)
  local ok, go, arg = pcall(op.gate)
  if ok and go == true and arg ~= nil and type(arg) ~= "number" then
    ok, go = false, "the create gate returned a send_by that is not a number (" .. type(arg) .. ")"
  end
  if not ok then
    -- Unwind the operation as if refused (its bookkeeping runs), but end it with the error.
    self:_fail(op, go)
    self:_resume(op, refused("the gate raised an error"))
    return nil
  end
  if go ~= true then
    self:_resume(op, refused(arg))
    return nil
  end
  if arg == nil then return spec end
  local copy = {}
  for k, v in pairs(spec) do copy[k] = v end
  copy.send_by = arg
  return copy
end

-- Hands queued requests to libcurl while it has fewer than max: a request's timeout starts
-- when it gets its slot, never while it waits here. A create's gate runs right before.
function Poller:_pump()
  if self.pumping then return end -- a resume below queued more: this loop takes it
  self.pumping = true
  -- self.queue is read afresh each time: a client closed meanwhile empties it.
  while self.active < self.max and self.queue[self.qhead] do
    local item = self.queue[self.qhead]
    self.queue[self.qhead] = nil
    self.qhead = self.qhead + 1
    local op, spec = item.op, item.spec
    if op.gate and is_create(spec) then spec = self:_gate(op, spec) end
    if spec and not op.ended then
      if self:_client_gone() then
        self:_finish(op, closed_error())
      else
        local ok, id = pcall(self.cp.add, self.cp, spec)
        if ok then
          self.inflight[id] = op
          op.spec = spec
          self.active = self.active + 1
        else -- a request the transport refuses (out of memory): end op, unwinding it first
          self:_fail(op, id)
          self:_resume(op, { error = "cancelled", sent = false, message = "not sent: " ..
            tostring(id) })
        end
      end
    end
  end
  if self.qhead > self.qtail then self.queue, self.qhead, self.qtail = {}, 1, 0 end
  self.pumping = false
end

-- The body of every operation's coroutine, one function for all: no closure and no argument
-- table per operation (thousands may be pending at once).
local function run_op(self, op, op_fn, args)
  local r = { op_fn(self.rt, self.client, unpack(args, 1, args.n)) }
  if not op.ended then
    op.ended = true
    self:_ready(op.cb, r)
  end
end

--- Starts op(rt, client, ...); cb receives its results inside a later step.
-- Argument type errors raise here, at once. extra: { gate = fn } (create only).
function Poller:_spawn(name, cb, extra, ...)
  if self.closed then error("attempt to use a closed deepresearch.poller", 3) end
  if self:_client_gone() then
    error("attempt to use a deepresearch.poller whose client is closed", 3)
  end
  local op_fn = self.ops_of[name]
  if not op_fn then error("this provider has no operation '" .. name .. "'", 3) end
  validate.type(name, 2, cb, "function", true)
  local op = { cb = cb, gate = extra and extra.gate }
  op.co = coroutine.create(run_op)
  guarded(Poller._start, self, op, op_fn, { n = select("#", ...), ... })
  return self
end

-- Runs a new operation up to its first request, so that argument errors raise from _spawn.
-- Its arguments go to run_op on the first resume: they live on the coroutine's own stack.
function Poller:_start(op, op_fn, args)
  self.count = self.count + 1
  local ok, what, arg = coroutine.resume(op.co, self, op, op_fn, args)
  if not ok then
    self.count = self.count - 1
    error(what, 0)
  end
  if coroutine.status(op.co) ~= "dead" then self:_yielded(op, what, arg) end
end

--- p:create(params, cb[, opts]); opts.gate() runs right before each create request leaves
-- (see docs/event-loops.md): true[, send_by] lets it go, false, reason cancels it.
-- Each method checks its arguments against the provider's accepts (level 2: its caller) before
-- _spawn; _spawn (level 3) then raises for the poller's own state only.
local CREATE_EXTRA = { gate = "function" }
function Poller:create(params, cb, opts)
  local sig = self.accepts.create
  if sig then options.check_call("create", sig, 2, params) end
  options.table_arg("create", 3, opts, true, 2)
  if opts then options.check("create", opts, CREATE_EXTRA, 2) end
  return self:_spawn("create", cb, opts, params)
end
function Poller:get(id, cb) return self:_spawn("get", cb, nil, id) end
function Poller:list(opts, cb)
  local sig = self.accepts.list
  if sig then options.check_call("list", sig, 2, opts) end
  return self:_spawn("list", cb, nil, opts)
end
--- Watches a task until it ends: cb(task, err); opts as for client:wait.
function Poller:wait(id, opts, cb)
  if type(opts) == "function" then opts, cb = nil, opts end
  local sig = self.accepts.wait
  if sig then options.check_call("wait", sig, 2, id, opts) end
  return self:_spawn("wait", cb, nil, id, opts)
end
--- Any other operation of the provider, e.g. p:add("discovery_wait", cb, id, opts).
function Poller:add(name, cb, ...)
  local sig = self.accepts[name]
  if sig then options.check_call(name, sig, 2, ...) end
  return self:_spawn(name, cb, nil, ...)
end

local function run_due_timers(self)
  local now = self.now()
  local timers, counts = self.timers, self.counts
  while timers[1] and timers[1].at <= now do
    local op = heap_pop(timers)
    counts.due = counts.due + 1
    self:_resume(op)
    timers = self.timers -- a closed client replaces it
  end
end

--- Milliseconds until step() next has work to do; nil when idle.
function Poller:next_timeout()
  if self.ready[self.rhead] or self.raised[1] then return 0 end
  local ms
  if self.active > 0 then ms = self.cp:next_timeout() end
  if self.timers[1] then
    local t = math.max(0, math.ceil((self.timers[1].at - self.now()) * 1000))
    ms = ms and math.min(ms, t) or t
  end
  return ms
end

local function run_callbacks(self)
  while self.ready[self.rhead] do
    local done = self.ready[self.rhead]
    self.ready[self.rhead] = nil
    self.rhead = self.rhead + 1
    self.count = self.count - 1
    if done.cb then
      local ok, e = pcall(done.cb, unpack(done.r, 1, 3))
      if not ok then self.raised[#self.raised + 1] = e end
    end
  end
  if self.rhead > self.rtail then self.ready, self.rhead, self.rtail = {}, 1, 0 end
end

-- A result whose body the C step could not decode because an error cut the decoder's call
-- short (lua.c's Ctrl-C hook fires on calls): decoded here, as the C step would have.
local function decode_late(res)
  local body, err = core.decode(res.raw)
  if err ~= nil then
    res.decode_error = err
  else
    res.body, res.raw = body, nil
  end
  res.undecoded = nil
end

-- Hands each result in self.arrived to its operation; returns how many there were. The C step
-- appends results there (never into a value an error could drop as it returns); each stays
-- until its operation has been resumed with it, arrived.done counting those handed over.
function Poller:_deliver()
  local arrived = self.arrived
  local i = (arrived.done or 0) + 1
  local first, res = i, arrived[i]
  while res ~= nil do
    if res.undecoded then decode_late(res) end
    local op = self.inflight[res.id]
    self.counts.completed = self.counts.completed + 1
    if op then
      self.inflight[res.id] = nil
      self.active = self.active - 1
      op.spec = nil
      self:_resume(op, res)
    end
    arrived.done = i
    i = i + 1
    res = arrived[i]
  end
  if i > 1 then self.arrived = {} end -- every one handed over: start afresh (C appends at #t + 1)
  return i - first
end

-- Lets libcurl work for up to wait_ms, in slices of at most SLICE_MS, until a transfer ends.
-- Between slices the guard hands control back to the caller's thread, so Ctrl-C can land.
local function transfer(self, wait_ms)
  local deadline = core.now() + wait_ms / 1000
  local slice = math.min(wait_ms, M.SLICE_MS)
  while true do
    self.cp:step(math.floor(slice), self.arrived)
    local n = self:_deliver()
    self:_pump()
    if n > 0 or self.active == 0 then return end
    local left = (deadline - core.now()) * 1000
    if left < 1 then return end
    coroutine.yield(SLICE)
    slice = math.min(left, M.SLICE_MS)
  end
end

local function nap(wait_ms)
  local deadline = core.now() + wait_ms / 1000
  while true do
    core.sleep(math.max(0, math.min(deadline - core.now(), M.SLICE_MS / 1000)))
    if core.now() >= deadline then return end
    coroutine.yield(SLICE)
  end
end

-- The part of step that changes the poller's state, run guarded.
function Poller:_step(max_ms)
  self:_client_gone()
  -- Results an interrupted step left (an error raised in the guard itself: LuaJIT's hooks are
  -- global) are handed over first.
  if self.arrived[1] ~= nil then
    self:_deliver()
    self:_pump()
  end
  run_due_timers(self)
  local wait_ms = (self.ready[self.rhead] or self.raised[1]) and 0 or max_ms
  local nt = self.timers[1] and math.max(0, math.ceil((self.timers[1].at - self.now()) * 1000))
  if nt and nt < wait_ms then wait_ms = nt end
  if self.active > 0 then
    transfer(self, wait_ms)
  elseif wait_ms > 0 and self.count > 0 then
    nap(wait_ms)
  end
  run_due_timers(self)
end

--- Does the network work that is ready, waiting at most max_ms (0: never blocks).
-- Callbacks run here. Returns the number of operations still pending. An error
-- raised by a callback or on_progress is raised from here after every other
-- ready reply has been handed over, and the poller stays usable.
function Poller:step(max_ms)
  if self.closed then error("attempt to use a closed deepresearch.poller", 2) end
  max_ms = max_ms or 0
  if type(max_ms) ~= "number" or max_ms < 0 or max_ms ~= max_ms then
    error("bad argument #1 to 'step' (non-negative number of milliseconds expected)", 2)
  end
  local counts = self.counts
  counts.steps, counts.touched, counts.due, counts.completed = counts.steps + 1, 0, 0, 0
  guarded(Poller._step, self, max_ms)
  if counts.touched > counts.touched_max then counts.touched_max = counts.touched end
  run_callbacks(self)
  if self.raised[1] then
    local e = self.raised[1]
    self.raised, self.count, self.failed = {}, self.count - self.failed, 0
    error(e, 0)
  end
  return self.count
end

function Poller:pending() return self.count end

--- What the poller holds and what its last step did (counts, for specs and benchmarks):
-- pending operations, timers, transfers in flight and queued, steps so far, and in the last
-- step the operations resumed (touched), timers that came due and transfers that completed,
-- with touched_max the most touched by any one step. Work per step follows due timers and
-- completed transfers, never the number of pending operations.
function Poller:stats()
  local c = self.counts
  return { pending = self.count, timers = #self.timers, inflight = self.active,
    queued = self.qtail - self.qhead + 1, steps = c.steps, touched = c.touched, due = c.due,
    completed = c.completed, touched_max = c.touched_max }
end
--- The sockets to watch (integers), and fd -> "r" | "w" | "rw" for what to watch them for.
function Poller:fds() return self.cp:fds() end

--- Steps until every operation has ended (the plain while-loop driver).
function Poller:run()
  while self.count > 0 do
    self:step(math.min(self:next_timeout() or 1000, 1000))
  end
end

--- Called when the poller's client closes: every operation not finished ends with a `closed`
-- error, delivered by the next step; nothing more is sent.
function Poller:_client_closed()
  if self.client_closed then return end
  self.client_closed = true
  if self.closed then return end
  for id, op in pairs(self.inflight) do
    self.cp:cancel(id)
    self:_finish(op, closed_error(op.spec))
  end
  for i = self.qhead, self.qtail do self:_finish(self.queue[i].op, closed_error()) end
  for _, op in ipairs(self.timers) do self:_finish(op, closed_error()) end
  self.inflight, self.queue, self.qhead, self.qtail, self.timers, self.active = {}, {}, 1, 0, {}, 0
end

function Poller:close()
  if self.closed then return end
  self.closed = true
  self.cp:close()
  local pollers = data(self.client).pollers
  if pollers then pollers[self] = nil end
  self.inflight, self.queue, self.qhead, self.qtail, self.timers = {}, {}, 1, 0, {}
  self.ready, self.rhead, self.rtail = {}, 1, 0
  self.raised, self.count, self.failed, self.active, self.arrived = {}, 0, 0, 0, {}
end
Poller.__close = Poller.close
Poller.__gc = Poller.close

--- Waits on many tasks at once. Returns id -> task, and id -> err for those that did not finish.
-- opts: what the operation run on each id (op, default wait) accepts, and max_connections.
function M.wait_all(self, ids, opts)
  options.table_arg("wait_all", 1, ids, false, 2)
  options.table_arg("wait_all", 2, opts, true, 2)
  opts = opts or {}
  check_max_connections("wait_all", opts.max_connections)
  local _, accepts = provider_ops(self)
  local sig = accepts[opts.op or "wait"]
  if sig and sig.fields then
    options.check("wait_all", opts, options.extend(sig.fields, { max_connections = "any",
      op = "string" }), 2)
  end
  for i, item in ipairs(ids) do
    if sig and sig.id and type(item) ~= "string" and (type(item) ~= "table" or
       type(item.id or item.deepresearch_id) ~= "string") then
      error(string.format("bad argument #1 to 'wait_all' (ids[%d]: a task id or task expected, " ..
        "got %s)", i, type(item)), 2)
    end
  end
  local p = M.poller(self, { max_connections = opts.max_connections })
  local done, errs = {}, {}
  for _, item in ipairs(ids) do
    local id = type(item) == "table" and (item.id or item.deepresearch_id) or item
    p:_spawn(opts.op or "wait", function(task, err)
      if task then done[id] = task else errs[id] = err end
    end, nil, item, opts)
  end
  local ok, e = pcall(p.run, p)
  p:close()
  if not ok then error(e, 0) end
  return done, errs
end

--- Creates many tasks concurrently, each with create's duplicate-safety rules.
-- Returns tasks in the order given, and index -> err for those that failed.
local CREATE_ALL_OPTIONS = { max_connections = "any", depth = "string", budget = "table" }
function M.create_all(self, list, opts)
  options.table_arg("create_all", 1, list, false, 2)
  options.table_arg("create_all", 2, opts, true, 2)
  opts = opts or {}
  options.check("create_all", opts, CREATE_ALL_OPTIONS, 2)
  check_max_connections("create_all", opts.max_connections)
  local _, accepts = provider_ops(self)
  local fields = accepts.create and accepts.create.fields
  for i, params in ipairs(list) do
    if type(params) == "table" then
      if fields then options.check("create_all", params, fields, 2) end
    elseif type(params) ~= "string" then
      error(string.format("bad argument #1 to 'create_all' (list[%d]: a table or string " ..
        "expected, " ..
        "got %s)", i, type(params)), 2)
    end
  end
  -- A total budget (budget.lua): the worst cases summed, checked before anything is sent.
  if opts.budget ~= nil then
    local budget = require "deepresearch.budget"
    budget.check_arg("create_all", opts.budget, 2)
    local items = {}
    for i, params in ipairs(list) do
      items[i] = { data(self).provider, type(params) == "string" and
        { brief = params, depth = opts.depth } or params }
    end
    local total, err = budget.check_total(items, opts.budget)
    if not total then
      local over = {}
      for i = 1, #list do over[i] = err end
      return {}, over
    end
  end
  local p = M.poller(self, { max_connections = opts.max_connections })
  local items, sig = {}, accepts.create
  for i, params in ipairs(list) do
    if type(params) == "string" then params = { brief = params, depth = opts.depth } end
    -- Every argument error raises here, before anything is sent (as p:create would).
    if sig then options.check_call("create", sig, 2, params) end
    items[i] = params
  end
  -- Creates are started a window at a time (twice the connections), the next as each ends:
  -- libcurl sends at most max_connections at once anyway, and N operations alive at once (a
  -- coroutine and a request body each) cost memory and allocation for nothing.
  local tasks, errs = {}, {}
  local nexti, window = 1, 2 * p.max
  local function start_next()
    local i = nexti
    if items[i] == nil then return end
    if p:_client_gone() then -- closed meanwhile: the rest were never sent
      for k = i, #items do errs[k] = closed_error() end
      nexti = #items + 1
      return
    end
    nexti = i + 1
    p:create(items[i], function(task, err)
      if task then tasks[i] = task else errs[i] = err end
      items[i] = nil
      start_next()
    end)
  end
  for _ = 1, window do start_next() end
  local ok, e = pcall(p.run, p)
  p:close()
  if not ok then error(e, 0) end
  return tasks, errs
end

M.methods = { poller = M.poller, wait_all = M.wait_all, create_all = M.create_all }

return M

-- Many requests and waits at once on one curl multi handle, without threads:
-- client:poller() for event loops, wait_all and create_all on top of it.
-- Each operation runs as a coroutine over the same code the blocking client
-- uses; its runtime's send and sleep yield here instead of blocking.
local core = require "deepresearch.core"
local V = require "deepresearch.validate"

local data = core.client_methods.data
local M = {}

local Poller = {}
Poller.__index = Poller
Poller.__name = "deepresearch.poller"

local function provider_ops(self)
  local name = data(self).provider.name
  if name == "valyu" then return require("deepresearch.valyu").ops end
  local ops = {}
  for k, v in pairs(require("deepresearch.extruct").ops) do ops[k] = v end
  local ok, disc = pcall(require, "deepresearch.discovery")
  if ok then for k, v in pairs(disc.ops) do ops[k] = v end end
  return ops
end

--- client:poller{ max_connections = 8, clock = {now = ...} }
function M.poller(self, opts)
  V.type("poller", 1, opts, "table", true)
  opts = opts or {}
  local p = setmetatable({
    client = self,
    cp = core.new_poller(self, opts.max_connections),
    now = opts.now or core.now,
    ops_of = provider_ops(self),
    inflight = {}, -- transfer id -> coroutine
    timers = {},   -- sorted by .at: { at = seconds, co = coroutine }
    ready = {},    -- finished operations whose callbacks have not run yet
    raised = {},   -- errors to raise at the end of this step
    count = 0,     -- operations whose callbacks have not run
  }, Poller)
  p.rt = {
    send = function(spec) return coroutine.yield("send", spec) end,
    sleep = function(sec) return coroutine.yield("sleep", sec) end,
    now = p.now,
    claimed = {}, -- task ids its creates returned: two lost creates never get the same task
  }
  return p
end

function Poller:_add_timer(at, co)
  local t = self.timers
  local i = #t + 1
  while i > 1 and t[i - 1].at > at do i = i - 1 end
  table.insert(t, i, { at = at, co = co })
end

-- Runs co until it yields a request or a sleep, or ends. An error in it (say,
-- from on_progress) ends that operation only; step raises it once its other
-- work is done.
function Poller:_resume(co, ...)
  local ok, what, arg = coroutine.resume(co, ...)
  if not ok then
    self.count = self.count - 1
    self.raised[#self.raised + 1] = what
    return
  end
  if coroutine.status(co) == "dead" then return end
  if what == "send" then
    self.inflight[self.cp:add(arg)] = co
  elseif what == "sleep" then
    self:_add_timer(self.now() + arg, co)
  end
end

--- Starts op(rt, client, ...); cb receives its results inside a later step.
-- Argument type errors raise here, at once.
function Poller:_spawn(name, cb, ...)
  if self.closed then error("attempt to use a closed deepresearch.poller", 3) end
  local op = self.ops_of[name]
  if not op then error("this provider has no operation '" .. name .. "'", 3) end
  V.type(name, 2, cb, "function", true)
  local args = { n = select("#", ...), ... }
  local unpack = table.unpack or unpack -- luacheck: ignore
  local co = coroutine.create(function()
    local r = { op(self.rt, self.client, unpack(args, 1, args.n)) }
    self.ready[#self.ready + 1] = { cb = cb, r = r }
  end)
  self.count = self.count + 1
  -- Run up to the first request now, so that argument errors raise here.
  local ok, what, arg = coroutine.resume(co)
  if not ok then
    self.count = self.count - 1
    error(what, 0)
  end
  if coroutine.status(co) ~= "dead" then
    if what == "send" then
      self.inflight[self.cp:add(arg)] = co
    else
      self:_add_timer(self.now() + arg, co)
    end
  end
  return self
end

function Poller:create(params, cb) return self:_spawn("create", cb, params) end
function Poller:get(id, cb) return self:_spawn("get", cb, id) end
function Poller:list(opts, cb) return self:_spawn("list", cb, opts) end
--- Watches a task until it ends: cb(task, err); opts as for client:wait.
function Poller:wait(id, opts, cb)
  if type(opts) == "function" then opts, cb = nil, opts end
  return self:_spawn("wait", cb, id, opts)
end
--- Any other operation of the provider, e.g. p:add("discovery_wait", cb, id, opts).
function Poller:add(name, cb, ...) return self:_spawn(name, cb, ...) end

local function run_due_timers(self)
  local now = self.now()
  while self.timers[1] and self.timers[1].at <= now do
    local t = table.remove(self.timers, 1)
    self:_resume(t.co)
  end
end

--- Milliseconds until step() next has work to do; nil when idle.
function Poller:next_timeout()
  local ms
  if next(self.inflight) then ms = self.cp:next_timeout() end
  if self.timers[1] then
    local t = math.max(0, math.ceil((self.timers[1].at - self.now()) * 1000))
    ms = ms and math.min(ms, t) or t
  end
  return ms
end

local function run_callbacks(self)
  while self.ready[1] do
    local done = table.remove(self.ready, 1)
    self.count = self.count - 1
    if done.cb then
      local unpack = table.unpack or unpack -- luacheck: ignore
      local ok, e = pcall(done.cb, unpack(done.r, 1, 3))
      if not ok then self.raised[#self.raised + 1] = e end
    end
  end
end

--- Does the network work that is ready, waiting at most max_ms (0: never blocks).
-- Callbacks run here. Returns the number of operations still pending. An error
-- raised by a callback or on_progress is raised from here after every other
-- ready reply has been handed over, and the poller stays usable.
function Poller:step(max_ms)
  if self.closed then error("attempt to use a closed deepresearch.poller", 2) end
  max_ms = max_ms or 0
  if type(max_ms) ~= "number" or max_ms < 0 then
    error("bad argument #1 to 'step' (non-negative number of milliseconds expected)", 2)
  end
  run_due_timers(self)
  local wait_ms = #self.ready > 0 and 0 or max_ms
  local nt = self.timers[1] and math.max(0, math.ceil((self.timers[1].at - self.now()) * 1000))
  if nt and nt < wait_ms then wait_ms = nt end
  if next(self.inflight) then
    for _, res in ipairs(self.cp:step(math.floor(wait_ms))) do
      local co = self.inflight[res.id]
      self.inflight[res.id] = nil
      if co then self:_resume(co, res) end
    end
  elseif wait_ms > 0 and self.count > 0 then
    core.sleep(wait_ms / 1000)
  end
  run_due_timers(self)
  run_callbacks(self)
  if self.raised[1] then
    local e = table.remove(self.raised, 1)
    self.raised = {}
    error(e, 0)
  end
  return self.count
end

function Poller:pending() return self.count end
--- The sockets to watch (integers), and fd -> "r" | "w" | "rw" for what to watch them for.
function Poller:fds() return self.cp:fds() end

--- Steps until every operation has ended (the plain while-loop driver).
function Poller:run()
  while self.count > 0 do
    self:step(#self.ready > 0 and 0 or math.min(self:next_timeout() or 1000, 1000))
  end
end

function Poller:close()
  if self.closed then return end
  self.closed = true
  self.cp:close()
  self.inflight, self.timers, self.ready, self.count = {}, {}, {}, 0
end
Poller.__close = Poller.close
Poller.__gc = Poller.close

--- Waits on many tasks at once. Returns id -> task, and id -> err for those that did not finish.
function M.wait_all(self, ids, opts)
  V.type("wait_all", 1, ids, "table")
  V.type("wait_all", 2, opts, "table", true)
  opts = opts or {}
  local p = M.poller(self, { max_connections = opts.max_connections })
  local done, errs = {}, {}
  for _, item in ipairs(ids) do
    local id = type(item) == "table" and (item.id or item.deepresearch_id) or item
    p:_spawn(opts.op or "wait", function(task, err)
      if task then done[id] = task else errs[id] = err end
    end, item, opts)
  end
  local ok, e = pcall(p.run, p)
  p:close()
  if not ok then error(e, 0) end
  return done, errs
end

--- Creates many tasks concurrently, each with create's duplicate-safety rules.
-- Returns tasks in the order given, and index -> err for those that failed.
function M.create_all(self, list, opts)
  V.type("create_all", 1, list, "table")
  opts = opts or {}
  local p = M.poller(self, { max_connections = opts.max_connections })
  local tasks, errs = {}, {}
  for i, params in ipairs(list) do
    if type(params) == "string" then params = { brief = params, depth = opts.depth } end
    p:create(params, function(task, err)
      if task then tasks[i] = task else errs[i] = err end
    end)
  end
  local ok, e = pcall(p.run, p)
  p:close()
  if not ok then error(e, 0) end
  return tasks, errs
end

M.methods = { poller = M.poller, wait_all = M.wait_all, create_all = M.create_all }

return M

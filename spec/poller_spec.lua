-- The poller: non-blocking stepping for event loops (client:poller{}), against the shared
-- simulator. Slow replies come from the simulator's delay_ms fault; "step(0) does not block"
-- is shown by counting calls that return while the request is still pending, not by timing.
local dr = require "deepresearch"
local env = require "support.env"

local math_type = rawget(math, "type") -- 5.3+: integers are their own subtype

local function is_integer(v)
  return type(v) == "number" and v % 1 == 0 and (not math_type or math_type(v) == "integer")
end

-- Steps until cond() holds or max_steps steps of up to 50 ms went by.
local function step_until(p, cond, max_steps)
  for _ = 1, max_steps or 200 do
    if cond() then return true end
    p:step(50)
  end
  return cond()
end

describe("poller", function()
  local s, client, task
  local pollers = {}
  -- A poller closed after the test even when the test fails, so its sockets never leak into
  -- the next test's connection counts.
  local function new_poller(opts)
    local p = client:poller(opts)
    pollers[#pollers + 1] = p
    return p
  end
  setup(function()
    s = env.sim()
    s:reset()
  end)
  before_each(function()
    s:reset()
    client = dr.client{
      base_url = s.url, token = "test-token", base_delay = 0.01, max_delay = 0.02 }
    task = dr.assert(client:create{ brief = env.BRIEF })
  end)
  after_each(function()
    for _, p in ipairs(pollers) do p:close() end
    pollers = {}
    client:close()
  end)

  it("step(0) returns at once while a slow reply is still on its way", function()
    s:fault{ method = "GET", path = "/v1/deep_research_tasks/.*", delay_ms = 2000 }
    local p = new_poller()
    local got, err
    p:get(task.id, function(t, e) got, err = t, e end)
    local t0 = dr.core.now()
    for _ = 1, 20 do
      assert.equals(1, p:step(0))
    end
    local elapsed = dr.core.now() - t0
    -- 20 calls done, and the reply (held 2 s by the simulator) has not arrived: none blocked.
    assert.is_nil(got)
    assert.is_nil(err)
    assert.equals(1, p:pending())
    assert.truthy(elapsed < 1.5, "20 calls of step(0) took " .. elapsed .. " s")
    -- The reply does arrive, through step, with nothing lost.
    assert.is_true(step_until(p, function() return got ~= nil or err ~= nil end, 100))
    assert.is_nil(err)
    assert.equals(task.id, got.id)
    assert.equals(0, p:pending())
    p:close()
  end)

  it("runs callbacks only inside step, even for requests that fail before anything is " ..
    "sent", function()
    local p = new_poller()
    local calls = {}
    p:get(task.id, function(t, e) calls[#calls + 1] = { t, e } end)
    p:get("", function(t, e) calls[#calls + 1] = { t, e } end) -- invalid: no request is needed
    p:list({ limit = -1 }, function(t, e) calls[#calls + 1] = { t, e } end)
    assert.equals(0, #calls)
    assert.equals(3, p:pending())
    p:run()
    assert.equals(3, #calls)
    assert.equals(0, p:pending())
    p:close()
  end)

  it("gives create, get and list callbacks (value, err)", function()
    local p = new_poller()
    local created, got, listed, missing
    p:create({ brief = env.BRIEF .. " Second angle." }, function(t, e) created = { t, e } end)
    p:get(task.id, function(t, e) got = { t, e } end)
    p:list({ limit = 1 }, function(t, e) listed = { t, e } end)
    p:get("00000000-0000-4000-8000-000000000000", function(t, e) missing = { t, e } end)
    p:run()
    assert.is_string(created[1].id)
    assert.is_nil(created[2])
    assert.equals(task.id, got[1].id)
    assert.is_nil(got[2])
    assert.equals(1, #listed[1])
    assert.is_nil(listed[2])
    assert.is_nil(missing[1])
    assert.equals("not_found", missing[2].code)
    assert.equals(2, s:counter("extruct.tasks_created"))
    p:close()
  end)

  it("waits on a task with on_progress, each poll driven by step", function()
    s:set_speed(600)
    local p = new_poller()
    local seen, done, err = {}, nil, nil
    p:wait(
      task.id,
      { interval = 0.05, max_interval = 0.05,
      on_progress = function(t) seen[#seen + 1] = t.status end },
      function(t, e) done, err = t, e end)
    p:run()
    assert.is_nil(err)
    assert.equals("done", done.status)
    assert.equals("done", seen[#seen])
    assert.truthy(#seen >= 2)
    p:close()
  end)

  it("returns the pending count from step and reports next_timeout in milliseconds, nil when " ..
    "idle", function()
    local p = new_poller()
    assert.is_nil(p:next_timeout())
    assert.equals(0, p:step(0))
    local done
    p:wait(task.id, { interval = 5 }, function(t, e) done = t or e end)
    local ms = p:next_timeout()
    assert.truthy(is_integer(ms) and ms >= 0, "next_timeout: " .. tostring(ms))
    -- After the first poll the wait sleeps 5 s: the next work is about 5000 ms away.
    assert.is_true(step_until(p, function()
      local t = p:next_timeout()
      return t ~= nil and t > 1000
    end, 100))
    ms = p:next_timeout()
    assert.truthy(ms <= 5000 and ms > 4000, "next_timeout: " .. tostring(ms))
    assert.equals(1, p:step(0))
    assert.equals(1, p:pending())
    p:close()
    assert.is_nil(done)
  end)

  it("lists its sockets as integer file descriptors", function()
    local p = new_poller()
    assert.same({}, p:fds())
    s:fault{ method = "GET", path = "/v1/deep_research_tasks/.*", delay_ms = 300 }
    p:get(task.id, function() end)
    local fds
    assert.is_true(step_until(p, function()
      p:step(0)
      fds = p:fds()
      return #fds > 0
    end, 20))
    for _, fd in ipairs(fds) do
      assert.truthy(is_integer(fd) and fd >= 0, "fd: " .. tostring(fd))
    end
    local _, modes = p:fds()
    for _, fd in ipairs(p:fds()) do
      assert.truthy(modes[fd] == "r" or modes[fd] == "w" or modes[fd] == "rw", tostring(modes[fd]))
    end
    p:run()
    p:close()
  end)

  -- Steps (bounded, never p:run(): a lost reply would make it spin) until nothing is pending;
  -- returns the errors raised out of step on the way.
  local function drain(p, max_steps)
    local raised = {}
    for _ = 1, max_steps or 200 do
      if p:pending() == 0 then break end
      local ok, e = pcall(p.step, p, 20)
      if not ok then raised[#raised + 1] = tostring(e) end
    end
    return raised
  end

  it("raises a callback's error out of step and stays usable", function()
    local p = new_poller()
    local second, third
    p:get(task.id, function() error("boom from a callback") end)
    p:get(task.id, function(t) second = t end)
    p:list({ limit = 1 }, function(l) third = l end)
    local raised = drain(p)
    assert.equals(1, #raised)
    assert.matches("boom from a callback", raised[1])
    -- The replies that came with the failing one are not lost, and the count stays right.
    assert.equals(task.id, second and second.id)
    assert.equals(1, third and #third)
    assert.equals(0, p:pending())
    -- and it takes new work
    local again
    p:get(task.id, function(t) again = t end)
    assert.same({}, drain(p))
    assert.equals(task.id, again and again.id)
    p:close()
  end)

  it("does not lose replies that arrive in the same step as a failing callback", function()
    local p = new_poller()
    local got = 0
    p:get(task.id, function() error("first fails") end)
    for _ = 1, 5 do p:get(task.id, function() got = got + 1 end) end
    -- Start every transfer, then give the replies time to arrive so one step hands back several.
    local raised = {}
    for _ = 1, 3 do
      local ok, e = pcall(p.step, p, 0)
      if not ok then raised[#raised + 1] = e end
    end
    dr.core.sleep(0.3)
    for _, e in ipairs(drain(p)) do raised[#raised + 1] = e end
    assert.equals(1, #raised)
    assert.matches("first fails", tostring(raised[1]))
    assert.equals(5, got)
    assert.equals(0, p:pending())
    p:close()
  end)

  it("raises an error from on_progress out of step and ends only that wait", function()
    s:set_speed(600)
    local p = new_poller()
    local other
    p:wait(task.id, { interval = 0.05, on_progress = function() error("progress failed") end })
    p:get(task.id, function(t) other = t end)
    local raised = drain(p)
    assert.equals(1, #raised)
    assert.matches("progress failed", raised[1])
    assert.equals(task.id, other and other.id)
    assert.equals(0, p:pending())
    p:close()
  end)

  it("keeps at most max_connections sockets open", function()
    s:clear_requests()
    local before = s:connections().open -- the client's own, from the create
    local p = new_poller{ max_connections = 2 }
    local n = 0
    for _ = 1, 12 do p:get(task.id, function(t) if t then n = n + 1 end end) end
    p:run()
    assert.equals(12, n)
    local max_open = s:connections().max_open
    assert.truthy(
      max_open - before <= 2, string.format("%d open at once, %d before", max_open, before))
    p:close()
  end)

  it("raises when used after close; close is idempotent", function()
    local p = new_poller()
    p:close()
    p:close()
    assert.has_error(function() p:step(0) end, "attempt to use a closed deepresearch.poller")
    assert.has_error(function() p:get(task.id, function() end) end)
    assert.has_error(function() p:create({ brief = env.BRIEF }, function() end) end)
    assert.has_error(function() p:wait(task.id, function() end) end)
  end)

  it("raises on wrong argument types", function()
    local p = new_poller()
    assert.has_error(function() client:poller(5) end)
    assert.has_error(function() p:get(task.id, "not a function") end)
    assert.has_error(function() p:step(-1) end)
    p:close()
  end)
end)

-- The drivers of docs/event-loops.md, verbatim, each running waits and gets to the end.
describe("poller drivers (docs/event-loops.md)", function()
  local has_luv, uv = pcall(require, "luv")
  local s, client, task
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    s:set_speed(600)
    client = dr.client{ base_url = s.url, token = "test-token" }
    task = dr.assert(client:create{ brief = env.BRIEF })
  end)
  after_each(function() client:close() end)

  local function start_work(p)
    local r = { gets = 0 }
    p:wait(
      task.id, { interval = 0.05, max_interval = 0.05 }, function(t, e) r.done, r.err = t, e end)
    for _ = 1, 3 do
      p:get(task.id, function(t) if t then r.gets = r.gets + 1 end end)
    end
    return r
  end

  local function check(p, r)
    assert.is_nil(r.err)
    assert.equals("done", r.done and r.done.status)
    assert.equals(3, r.gets)
    assert.equals(0, p:pending())
  end

  -- uv.run() with a watchdog that cannot keep the loop alive by itself.
  local function run_loop()
    local watchdog = uv.new_timer()
    local fired = false
    watchdog:start(30000, 0, function() fired = true uv.stop() end)
    watchdog:unref()
    uv.run()
    watchdog:close()
    uv.run("nowait")
    assert.is_false(fired, "the loop was stopped by the watchdog")
  end

  -- The work on a new poller, driven by drive(p) on the luv loop, then checked.
  local function on_luv_loop(drive)
    local p = client:poller()
    local r = start_work(p)
    drive(p)
    run_loop()
    check(p, r)
    p:close()
  end

  it("a plain while loop", function()
    local p = client:poller()
    local r = start_work(p)
    while p:pending() > 0 do
      p:step(math.min(p:next_timeout() or 1000, 1000))
    end
    check(p, r)
    p:close()
  end)

  it("select on the poller's sockets", function()
    local socket = require "socket"
    local p = client:poller()
    local r = start_work(p)

    local function fd_object(fd) return { getfd = function() return fd end } end

    while p:pending() > 0 do
      local watch = {}
      for _, fd in ipairs(p:fds()) do watch[#watch + 1] = fd_object(fd) end
      local wait = math.min(p:next_timeout() or 50, 50) / 1000
      if #watch > 0 then socket.select(watch, nil, wait) else socket.sleep(wait) end
      p:step(0)
    end
    check(p, r)
    p:close()
  end)

  it("a luv timer", function()
    if not has_luv then return pending("luv is not installed for this Lua") end
    local function drive_with_timer(p, tick_ms)
      local timer = uv.new_timer()
      timer:start(0, tick_ms or 50, function()
        local ok, err = pcall(p.step, p, 0)
        if not ok then io.stderr:write("deepresearch: ", tostring(err), "\n") end
        if p:pending() == 0 then
          timer:stop()
          timer:close()
        end
      end)
    end
    on_luv_loop(drive_with_timer)
  end)

  it("luv poll handles on fds() and a next_timeout timer", function()
    if not has_luv then return pending("luv is not installed for this Lua") end
    local function drive_with_polls(p)
      local polls, timer = {}, uv.new_timer()
      local tick
      local function rearm()
        for fd, h in pairs(polls) do
          h:close()
          polls[fd] = nil
        end
        if p:pending() == 0 then
          timer:close()
          return
        end
        local fds, modes = p:fds()
        for _, fd in ipairs(fds) do
          local h = uv.new_poll(fd)
          -- a socket still connecting waits to write: watch what curl asks for
          h:start(modes[fd] or "r", tick)
          polls[fd] = h
        end
        timer:start(math.min(p:next_timeout() or 50, 50), 0, tick)
      end
      tick = function()
        timer:stop()
        local ok, err = pcall(p.step, p, 0)
        if not ok then io.stderr:write("deepresearch: ", tostring(err), "\n") end
        rearm()
      end
      tick()
    end
    on_luv_loop(drive_with_polls)
  end)
end)

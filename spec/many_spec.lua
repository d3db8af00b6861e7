-- wait_all and create_all: many tasks at once on one curl multi handle, against a private
-- simulator running fast (speed 600: one real second is ten virtual minutes). Timing is asserted
-- on the simulator's virtual clock, counts and its connection accounting, never on wall-clock.
local dr = require "deepresearch"
local sim = require "support.sim"
local env = require "support.env"
local dates = require "deepresearch.base.dates"

local EPOCH = 1767225600 -- the simulator's virtual time 0 (2026-01-01T00:00:00Z)
-- Under valgrind the client runs some 30x slower: slow the simulator down as much, so that a
-- round of 200 polls still fits in a poll interval of virtual time.
local SLOW = os.getenv("DR_VALGRIND") and 20 or 1
local SPEED = 600 / SLOW
local INTERVAL = 0.05 * SLOW -- real seconds between two polls of one task: 30 virtual seconds

local function virtual(iso) return dates.parse_iso(iso) - EPOCH end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function brief(i)
  return env.BRIEF .. " (angle " .. i .. ")"
end

describe("many", function()
  local s, client
  setup(function() s = sim.start{ speed = SPEED, seed = 11 } end)
  teardown(function() if s then s:stop() end end)
  before_each(function()
    s:reset{ speed = SPEED }
    client = dr.client{
      base_url = s.url, token = "test-token", base_delay = 0.01, max_delay = 0.02 }
  end)
  after_each(function() client:close() end)

  local function create(n, make)
    local params = {}
    for i = 1, n do params[i] = { brief = (make or brief)(i) } end
    local tasks, errs = client:create_all(params, { max_connections = 8 })
    assert.same({}, errs)
    assert.equals(n, #tasks)
    return tasks
  end

  describe("wait_all", function()
    it("waits on 200 tasks in about the time of the slowest plus one poll interval", function()
      -- The clock stands still until every task has been seen once: a task runs some 0.4 real
      -- seconds at this speed, and on a loaded machine creating 200 and one round of polls took
      -- longer, so some were first seen done (one on_progress, not two). Frozen, each task is
      -- first seen `created`; the clock starts once all 200 have been, and they finish later.
      s:set_speed(0)
      local tasks = create(200)
      local ids, brief_of = {}, {}
      for i, t in ipairs(tasks) do
        ids[i] = t.id
        brief_of[t.id] = brief(i)
      end
      s:clear_requests() -- also restarts connections.max_open from the sockets open now
      local start = s:state()
      assert.equals(0, start.connections.open) -- create_all closed its connections
      -- (creates each take a fresh connection on purpose: libcurl re-sends a request whose
      -- reused connection turns out dead, which for a create could make a second task)
      local progress, seen = {}, 0
      local done, errs = client:wait_all(ids, { interval = INTERVAL, max_interval = INTERVAL,
        max_connections = 4, on_progress = function(task)
          progress[task.id] = (progress[task.id] or 0) + 1
          if progress[task.id] == 1 then
            seen = seen + 1
            if seen == #ids then s:set_speed(SPEED) end
          end
        end })
      local st = s:state()

      assert.same({}, errs)
      assert.equals(200, count(done))
      local slowest = 0
      for _, id in ipairs(ids) do
        local task = done[id]
        assert.equals("done", task.status)
        assert.equals(id, task.id)
        assert.equals(brief_of[id], task.brief)
        assert.equals("markdown", task.report.kind)
        assert.matches("%[%d+%]", task.report.markdown)
        assert.truthy(task.agents > 0)
        assert.truthy(progress[id] and progress[id] >= 2, "on_progress for every task")
        slowest = math.max(slowest, virtual(task.updated_at))
      end

      -- Concurrent: the wait ends about one poll interval (30 virtual s) after the slowest task
      -- finished, plus the time one round of 200 polls takes; waiting one task after the
      -- other would take about 200 intervals longer. The simulator's clock runs on real time
      -- here, so a loaded machine (two cores, other runs) stretches a round of polls: the bound
      -- is 20 intervals, still ten times below what waiting one by one would take.
      local interval_v = INTERVAL * SPEED
      local late = st.now - slowest
      assert.truthy(late >= 0)
      assert.truthy(
        late <= 20 * interval_v, string.format("noticed %.1f virtual s after the slowest", late))
      assert.truthy(st.now - start.now <= (slowest - start.now) + 20 * interval_v)

      -- Bounded: never more sockets than max_connections; reused: far fewer sockets than requests.
      local polls = 0
      for _, r in ipairs(st.requests) do
        if r.method == "GET" then polls = polls + 1 end
      end
      assert.truthy(polls >= 400, "polls: " .. polls)
      assert.truthy(st.connections.max_open <= 4, "max_open: " .. st.connections.max_open)
      assert.truthy(st.connections.max_open >= 2, "polls ran concurrently")
      local opened = st.connections.accepted - start.connections.accepted
      assert.truthy(
        opened * 10 <= polls, string.format("%d connections for %d polls", opened, polls))
    end)

    it("lands a rejected task in the errors table while the others finish", function()
      s:config{ extruct = { duration = { medium = 60, high = 60, xhigh = 900 }, jitter = 0 } }
      local good = create(4)
      local long = dr.assert(client:create{ brief = brief(99), depth = "xhigh" })
      local bad = dr.assert(
        client:create{ brief = "please research the general market for things like this" })
      s:clear_requests()
      local ids = { good[1].id, good[2], bad.id, good[3].id, long, good[4].id }
      local done, errs = client:wait_all(ids, { interval = INTERVAL, max_interval = INTERVAL })
      assert.equals(5, count(done))
      assert.equals(1, count(errs))
      local err = errs[bad.id]
      assert.equals("task_failed", err.code)
      assert.matches("no identifiable research target", err.message)
      assert.equals("failed", err.task.status)
      assert.is_nil(done[bad.id])
      for _, t in ipairs(good) do assert.equals("done", done[t.id].status) end
      assert.equals("done", done[long.id].status)
      -- Each task on its own schedule: the rejected and the short ones stop being polled
      -- when they end; the long one goes on.
      local log = s:requests()
      local function polls_of(id)
        local n = 0
        for _, r in ipairs(log) do
          if r.method == "GET" and r.path == "/v1/deep_research_tasks/" .. id then n = n + 1 end
        end
        return n
      end
      assert.truthy(polls_of(long.id) > 2 * polls_of(bad.id),
        string.format("long %d, rejected %d", polls_of(long.id), polls_of(bad.id)))
      assert.truthy(polls_of(long.id) > polls_of(good[1].id))
    end)

    it("ends one task's wait on its own timeout without ending the others", function()
      s:config{ extruct = { duration = { medium = 60, high = 60, xhigh = 3000 }, jitter = 0 } }
      local short = create(3)
      local long = dr.assert(client:create{ brief = brief(50), depth = "xhigh" })
      local ids = { long.id }
      for _, t in ipairs(short) do ids[#ids + 1] = t.id end
      -- 0.5 real s = 300 virtual s: enough for the medium tasks, not for the xhigh one.
      local done, errs = client:wait_all(ids, { interval = INTERVAL, max_interval = INTERVAL,
        timeout = 0.5 * SLOW })
      assert.equals(3, count(done))
      assert.equals("timeout", errs[long.id].code)
      assert.equals(long.id, errs[long.id].task.id)
      for _, t in ipairs(short) do assert.equals("done", done[t.id].status) end
    end)

    it("reports an unknown id as not_found and still finishes the rest", function()
      local tasks = create(2)
      local done, errs = client:wait_all({
        tasks[1].id, "00000000-0000-4000-8000-000000000000", tasks[2] },
        { interval = INTERVAL, max_interval = INTERVAL, not_found_grace = 0 })
      assert.equals(2, count(done))
      assert.equals("not_found", errs["00000000-0000-4000-8000-000000000000"].code)
    end)

    it("returns two empty tables for an empty list and raises on wrong argument types", function()
      local done, errs = client:wait_all({})
      assert.same({}, done)
      assert.same({}, errs)
      assert.has_error(function() client:wait_all("id") end)
      assert.has_error(function() client:wait_all({}, 5) end)
    end)
  end)

  describe("create_all", function()
    it("creates many tasks concurrently, one each, in the order given", function()
      s:clear_requests()
      -- Sockets an earlier spec's client may still hold idle count in max_open from the start
      -- (clear_requests starts the window from the sockets open now): only create_all's own
      -- connections are bounded by its max_connections.
      local already = s:state().connections.open
      local tasks = create(30)
      for i, t in ipairs(tasks) do
        assert.equals(brief(i), t.brief)
        assert.equals("created", t.status)
      end
      assert.equals(30, s:counter("extruct.tasks_created"))
      -- Every create runs on a fresh socket that the client closes when its answer is in; the
      -- simulator may accept the next socket before it reads the last one's close, so its count
      -- can run ahead by the sockets closed in the same turn (at most max_connections). The
      -- client's own bound, counted exactly, is in scale_spec ("create_all keeps at most...").
      local st = s:state()
      assert.truthy(st.connections.max_open <= 8 + 8 + already,
        string.format("max_open %d, %d open before", st.connections.max_open, already))
    end)

    it("retries a create answered 503 and still makes exactly one task each", function()
      s:fault{
        method = "POST", path = "/v1/deep_research_tasks", status = 503, skip = 4, count = 1 }
      local tasks = create(10)
      assert.equals(10, s:counter("extruct.tasks_created"))
      local seen = {}
      for i, t in ipairs(tasks) do
        assert.equals(brief(i), t.brief)
        assert.is_nil(seen[t.id])
        seen[t.id] = true
      end
      assert.equals(11, #s:requests_to("POST", "^/v1/deep_research_tasks$"))
    end)

    it("finds a task whose create answer was lost instead of creating it twice", function()
      s:fault{
        method = "POST", path = "/v1/deep_research_tasks", kind = "drop", after = true, skip = 2 }
      local tasks = create(5)
      assert.equals(5, s:counter("extruct.tasks_created"))
      assert.is_true(tasks[3].reconciled)
      assert.equals(brief(3), tasks[3].brief)
    end)

    it("never repeats a create that may have made a task", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", kind = "drop", skip = 1 }
      local params = {}
      for i = 1, 4 do params[i] = { brief = brief(i) } end
      local tasks, errs = client:create_all(params)
      assert.equals(3, count(tasks))
      assert.equals("ambiguous", errs[2].code)
      assert.equals(3, s:counter("extruct.tasks_created"))
    end)

    it("returns a validation error at its index and creates the others", function()
      local tasks, errs = client:create_all({ { brief = brief(1) }, { brief = "   " }, brief(3) },
        { depth = "high" })
      assert.equals("invalid_request", errs[2].code)
      assert.equals(brief(1), tasks[1].brief)
      assert.equals("high", tasks[3].depth)
      assert.is_nil(tasks[2])
      assert.equals(2, s:counter("extruct.tasks_created"))
    end)
  end)
end)

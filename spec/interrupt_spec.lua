-- Issue 13 items 7 and 6: Ctrl-C is never ignored while a request is in flight, and Ctrl-C
-- during a create never loses the task it made (so the natural re-run does not pay twice).
-- lua.c's Ctrl-C handler sets a hook that raises "interrupted!" the next time Lua code runs;
-- here a count hook does the same the first time it runs once the simulator holds the
-- request (its connection accounting has seen it), so nothing is timed.
local dr = require "deepresearch"
local http = require "deepresearch.runtime.http"
local env = require "support.env"
local sim = require "support.sim"

local core = dr.core
-- The client's private state (its handle, records): a test-only accessor, not on the client.
local data = http.state
local c_methods = core.client_methods
local q = sim.shell_quote

local TASKS = "/v1/deep_research_tasks"
local HELD = 600000 -- ms: a reply the simulator holds for the whole run

-- Sockets this process has open (/proc/self/fd links "socket:[...]").
local function sockets()
  local p = assert(io.popen("ls -l /proc/" .. sim.own_pid() .. "/fd 2>/dev/null"))
  local n = 0
  for line in p:lines() do
    if line:find("socket:%[") then n = n + 1 end
  end
  p:close()
  return n
end

describe("interrupts (issue 13)", function()
  local s
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    s:clear_requests() -- a new accounting window: accepted = 0
  end)
  after_each(function() debug.sethook() end)

  -- Runs fn() with a hook that raises "interrupted!" (as lua.c's does) the first time it runs
  -- after the simulator has accepted an API connection; returns the error fn raised.
  local function interrupt_when_held(fn)
    local last = -1
    debug.sethook(function()
      local now = core.now()
      if now - last < 0.01 then return end -- ask the simulator at most every 10 ms
      last = now
      if s:connections().accepted > 0 then
        debug.sethook()
        error("interrupted!", 0)
      end
    end, "", 1)
    local ok, err = pcall(fn)
    debug.sethook()
    assert.is_false(ok, "the call returned instead of being interrupted")
    return err
  end

  -- A task made by another client, so that the next request opens a connection of its own.
  local function new_task()
    local other = env.client(s)
    local task = assert(other:create{ brief = env.BRIEF })
    other:close()
    s:clear_requests()
    return task
  end

  describe("item 7: Ctrl-C while a request is in flight", function()
    it("item 7: a GET held by the server returns control to Lua: the interrupt arrives while " ..
      "the reply is still held, the transfer is recorded, cancelled before the next request, " ..
      "and no socket stays open",
    function()
      local task = new_task()
      local none = sockets()
      local c = env.client(s, { timeout = 30 })
      local before = sockets() -- libcurl may keep a socket pair of its own per multi handle
      s:fault{ method = "GET", path = TASKS .. "/[^/]+", delay_ms = HELD }
      local err = interrupt_when_held(function() return c:get(task.id) end)
      assert.equals("interrupted!", err)
      -- the simulator still holds the reply: its handler has not run, nothing was answered
      assert.same({}, s:requests_to("GET", "^/v1/deep_research_tasks/"))
      assert.equals(1, s:connections().accepted)
      local rec = data(c).interrupted
      assert.is_table(rec, "the interrupted request is recorded on the client")
      assert.is_number(rec.id)
      assert.is_false(rec.create)
      assert.equals("GET", rec.req.method)
      assert.equals(before + 1, sockets(), "the held connection is still open")
      -- the client is usable afterwards; the leftover transfer (and its socket) is gone
      s:clear_faults()
      local again = assert(c:get(task.id))
      assert.equals(task.id, again.id)
      assert.is_nil(data(c).interrupted)
      assert.equals(before + 1, sockets(), "one kept-alive connection, the held one closed")
      assert.equals(2, s:connections().accepted)
      assert.equals(1, #s:requests_to("GET", "^/v1/deep_research_tasks/"))
      c:close()
      assert.equals(none, sockets())
    end)

    it("item 7: a create held by the server returns control too; the task it made is not " ..
      "lost", function()
      local c = env.client(s, { timeout = 30 })
      s:fault{ method = "POST", path = TASKS, delay_ms = HELD, after = true }
      local err = interrupt_when_held(function() return c:create{ brief = env.BRIEF } end)
      assert.equals("interrupted!", err)
      assert.equals(1, #s:tasks(), "the create reached the server, which holds its reply")
      local rec = data(c).interrupted
      assert.is_true(rec.create)
      assert.is_number(rec.id)
      assert.equals("POST", rec.req.method)
      -- the answer never comes within the wait: unknown, and the transfer is cancelled
      local task, unknown = http.settle_interrupted(c, 0)
      assert.is_nil(task)
      assert.is_true(unknown)
      assert.is_nil(data(c).interrupted)
      assert.same({ nil, false }, { http.settle_interrupted(c, 0) }, "settle answers once")
      s:clear_faults()
      assert.equals(1, #assert(c:list{}))
      assert.equals(1, s:counter("extruct.tasks_created"))
      c:close()
    end)

    it("item 7: settle_interrupted drives an interrupted create to its answer: the created " ..
      "task", function()
      local c = env.client(s, { timeout = 30 })
      s:fault{ method = "POST", path = TASKS, delay_ms = 300, after = true }
      assert.equals(
        "interrupted!", interrupt_when_held(function() return c:create{ brief = env.BRIEF } end))
      local task, unknown = http.settle_interrupted(c, 60)
      assert.is_table(task)
      assert.is_false(unknown)
      assert.equals(s:tasks()[1].id, task.id)
      assert.equals(1, s:counter("extruct.tasks_created"))
      c:close()
    end)

    it("item 7: an answer lost after the create was stored is unknown; a refusal is known to " ..
      "make none", function()
      local c = env.client(s, { timeout = 30 })
      s:fault{ method = "POST", path = TASKS, kind = "drop", delay_ms = 300, after = true }
      assert.equals(
        "interrupted!", interrupt_when_held(function() return c:create{ brief = env.BRIEF } end))
      local task, unknown = http.settle_interrupted(c, 60)
      assert.is_nil(task)
      assert.is_true(unknown)
      assert.equals(1, s:counter("extruct.tasks_created"))
      c:close()

      s:reset()
      s:clear_requests()
      local poor = env.client(s, { timeout = 30, token = "poor-token" })
      s:fault{ method = "POST", path = TASKS, delay_ms = 300, after = true }
      assert.equals("interrupted!", interrupt_when_held(function()
        return poor:create{ brief = env.BRIEF, depth = "high" }
      end))
      task, unknown = http.settle_interrupted(poor, 60)
      assert.is_nil(task)
      assert.is_false(unknown, "a 402 says no task was made")
      assert.equals(0, s:counter("extruct.tasks_created"))
      poor:close()
    end)

    it("item 7: a create interrupted before it was sent made no task", function()
      local c = env.client(s)
      local ok, err = pcall(function()
        debug.sethook(function() debug.sethook(); error("interrupted!", 0) end, "", 1)
        return c:create{ brief = env.BRIEF }
      end)
      assert.is_false(ok)
      assert.equals("interrupted!", err)
      assert.same({ nil, false }, { http.settle_interrupted(c, 0) })
      assert.equals(0, s:connections().accepted)
      assert.equals(0, s:counter("extruct.tasks_created"))
      c:close()
    end)

    it("item 7: a stop function (a second Ctrl-C) ends settle_interrupted's wait at " ..
      "once", function()
      local c = env.client(s, { timeout = 30 })
      s:fault{ method = "POST", path = TASKS, delay_ms = HELD, after = true }
      assert.equals(
        "interrupted!", interrupt_when_held(function() return c:create{ brief = env.BRIEF } end))
      local asked = 0
      local task, unknown = http.settle_interrupted(c, 3600, function()
        asked = asked + 1
        return true
      end)
      assert.is_nil(task)
      assert.is_true(unknown)
      assert.equals(1, asked)
      c:close()
    end)

    it("item 7: the blocking transport's C side waits in slices: request returns nil and the " ..
      "id, finish waits on, abandon cancels", function()
      local task = new_task()
      local c = env.client(s, { timeout = 30 })
      s:fault{ method = "GET", path = TASKS .. "/[^/]+", delay_ms = HELD }
      local spec = http.prepare(
        data(c), { method = "GET", path = TASKS .. "/" .. task.id, effect = "read" })
      local rec = {}
      local handle = data(c).handle
      local res, id = c_methods.request(handle, spec, 0, rec)
      assert.is_nil(res)
      assert.is_number(id)
      assert.equals(id, rec.id)
      assert.is_nil(c_methods.finish(handle, id, 0, rec))
      assert.is_true(c_methods.abandon(handle, id))
      assert.is_false(c_methods.finish(handle, id, 0), "no such transfer any more")
      assert.is_false(c_methods.abandon(handle, id))
      s:clear_faults()
      res = c_methods.request(handle, spec, 60000, rec)
      assert.equals(200, res.status)
      assert.equals(res, rec.result)
      assert.has_error(function() c_methods.finish(handle, id, -1) end)
      c:close()
    end)

    it("item 7: core.sleep returns early (false) on a signal; trap_interrupt turns SIGINT into " ..
      "a flag", function()
      assert.is_false(core.interrupted())
      assert.is_true(core.trap_interrupt(true))
      os.execute("sh -c 'sleep 0.2; kill -INT " .. sim.own_pid() .. "' >/dev/null 2>&1 &")
      local full = core.sleep(60)
      local seen = core.interrupted()
      assert.is_false(core.trap_interrupt(false))
      assert.is_false(full, "the sleep ended early")
      assert.is_true(seen)
      assert.is_false(core.interrupted(), "cleared when the trap is removed")
    end)
  end)

  describe("item 6: Ctrl-C during the command's create", function()
    local support = require "support.cli"
    local tmp, slurp = support.tmp, support.slurp
    local running = {}
    teardown(support.cleanup)
    -- A command a failed spec left behind is stopped by its pid.
    after_each(function()
      for _, p in ipairs(running) do
        if not p.rc() then os.execute("kill -KILL " .. p.pid .. " 2>/dev/null") end
      end
      running = {}
    end)

    -- Waits (bounded) until pred() holds; the command runs in real time.
    local function until_true(pred, what)
      for _ = 1, 600 do
        if pred() then return end
        os.execute("sleep 0.05")
      end
      error("timed out waiting for " .. what)
    end

    -- Starts bin/deepresearch ARGS in the background; returns a handle with pid, stderr, rc.
    -- The command's journal (issue 19 part 7): a file of each test's own.
    local journal
    before_each(function()
      journal = tmp()
      os.remove(journal)
    end)
    local function journal_states()
      local states = {}
      for _, e in ipairs(require("deepresearch.journal").open{ path = journal }:entries()) do
        states[#states + 1] = e.state .. (e.id and (" " .. e.id) or "")
      end
      return states
    end

    local function start(args)
      local errf, rcf, pidf = tmp(), tmp(), tmp()
      os.remove(rcf)
      local script = tmp(string.format("echo $$ > %s\nexec env -u LD_PRELOAD -u " ..
        "EXTRUCT_BASE_URL EXTRUCT_API_TOKEN=test-token DEEPRESEARCH_TTY=0 LANG=C.UTF-8 " ..
        "DEEPRESEARCH_JOURNAL=%s lua5.4 bin/deepresearch --base-url %s %s >/dev/null 2>%s\n",
        pidf, q(journal), q(s.url), args, errf))
      os.execute(string.format("(sh %s; echo $? > %s) </dev/null >/dev/null 2>&1 &", script, rcf))
      local p = {
        err = function() return slurp(errf) end,
        rc = function() return slurp(rcf):match("%d+") end }
      until_true(function() return tonumber(slurp(pidf)) end, "the command to start")
      p.pid = tonumber(slurp(pidf))
      running[#running + 1] = p
      return p
    end

    local function interrupt(p) os.execute("kill -INT " .. p.pid) end

    local function finished(p)
      until_true(function() return p.rc() end, "the command to exit")
      return p.rc(), p.err()
    end

    local function held_create()
      until_true(function()
        return s:counter("extruct.tasks_created") + s:counter("discovery.tasks_created") > 0
      end, "the simulator to hold the create")
    end

    it("item 6: run: shows creating…; Ctrl-C waits for the answer, prints the id and the resume " ..
      "command (exit 130), and exactly one task exists", function()
      s:fault{ method = "POST", path = TASKS, delay_ms = 1500, after = true }
      local p = start("run -f " .. q(tmp(env.BRIEF)) .. " --interval 0.05")
      held_create()
      until_true(function() return p.err():find("creating…", 1, true) end, "creating…")
      interrupt(p)
      local rc, err = finished(p)
      assert.equals("130", rc)
      local tasks = s:tasks()
      assert.equals(1, #tasks)
      local id = tasks[1].id
      assert.matches(
        "interrupted; waiting up to 5 s for the create's answer so the task id is not lost", err)
      assert.truthy(err:find("created task " .. id, 1, true), err)
      assert.truthy(
        err:find("Resume with: bin/deepresearch --base-url " .. s.url .. " wait " .. id, 1,
          true), err)
      assert.equals(1, #s:requests_to("POST", "^/v1/deep_research_tasks$"))
      assert.same({ "queued " .. id }, journal_states()) -- the id the settle found is journalled
    end)

    it("item 6: create: when the answer cannot be had, says a task may exist and prints the " ..
      "exact list command (exit 130)", function()
      s:fault{ method = "POST", path = TASKS, kind = "drop", delay_ms = 1500, after = true }
      local p = start("create " .. q(env.BRIEF))
      held_create()
      interrupt(p)
      local rc, err = finished(p)
      assert.equals("130", rc)
      assert.equals(1, #s:tasks())
      assert.matches("a task may exist", err)
      assert.truthy(
        err:find(
        "Check before creating it again: bin/deepresearch --base-url " .. s.url .. " list\n", 1,
        true), err)
      assert.not_matches("created task", err)
      assert.same({ "unknown" }, journal_states()) -- journalled before it was sent
    end)

    it("item 6: a second Ctrl-C during that wait gives up at once, still printing the list hint " ..
    "(exit 130)",
    function()
      s:fault{ method = "POST", path = TASKS, delay_ms = HELD, after = true }
      local p = start("run " .. q(env.BRIEF))
      held_create()
      interrupt(p)
      until_true(function() return p.err():find("waiting up to", 1, true) end, "the settle message")
      interrupt(p)
      local rc, err = finished(p)
      assert.equals("130", rc)
      assert.matches("gave up waiting %(second Ctrl%-C%)", err)
      assert.truthy(err:find("deepresearch --base-url " .. s.url .. " list\n", 1, true), err)
      assert.equals(1, #s:tasks())
    end)

    it("item 6: discover: Ctrl-C during its create prints the id and the discover wait " ..
      "command", function()
      s:fault{ method = "POST", path = "/v1/discovery_tasks", delay_ms = 1500, after = true }
      local p = start(
        "discover " .. q("B2B freight-visibility software vendors in Europe") .. " --wait")
      held_create()
      interrupt(p)
      local rc, err = finished(p)
      assert.equals("130", rc)
      local tasks = s:state().discovery.tasks
      assert.equals(1, #tasks)
      assert.truthy(err:find("created task " .. tasks[1].id, 1, true), err)
      assert.truthy(
        err:find("deepresearch --base-url " .. s.url .. " discover wait " .. tasks[1].id, 1, true),
        err)
    end)
  end)
end)

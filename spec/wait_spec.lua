-- Every way wait can end, on the simulator's virtual clock.
local dr = require "deepresearch"
local wait = require "deepresearch.runtime.wait"
local env = require "support.env"

describe("wait", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client, clock = env.client(s, { base_delay = 0.01, max_delay = 0.02 })
  end)
  after_each(function() client:close() end)

  it("polls until done and returns the cited report", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    local done = dr.assert(client:wait(task.id))
    assert.equals("done", done.status)
    assert.equals("markdown", done.report.kind)
    assert.matches("%[%d+%]", done.report.markdown)
    assert.truthy(#done.report.sources > 0)
  end)

  it("sleeps on the default schedule: 2 s growing x1.5 to 30 s", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    dr.assert(client:wait(task))
    assert.equals(2, clock.sleeps[1])
    assert.equals(3, clock.sleeps[2])
    assert.equals(4.5, clock.sleeps[3])
    for _, d in ipairs(clock.sleeps) do assert.truthy(d <= 30) end
  end)

  it("needs at most 40 polls for a 10-minute task and notices the end within 30 s", function()
    s:config{ extruct = { duration = { medium = 600, high = 600, xhigh = 600 }, jitter = 0 } }
    local task = dr.assert(client:create{ brief = env.BRIEF })
    s:clear_requests()
    local done = dr.assert(client:wait(task.id))
    local polls = env.count_requests(s, "^GET /v1/deep_research_tasks/")
    assert.truthy(polls <= 40, "polls: " .. polls)
    assert.truthy(polls >= 10, "polls: " .. polls)
    assert.equals("done", done.status)
    assert.truthy(clock.t <= 600 + 30 + 30, "noticed at " .. clock.t)
  end)

  it("calls on_progress whenever status or a counter changes, and only then", function()
    local task = dr.assert(client:create{ brief = env.BRIEF, depth = "high" })
    local seen = {}
    dr.assert(client:wait(task.id, { on_progress = function(t) seen[#seen + 1] = t end }))
    assert.truthy(#seen >= 3)
    assert.equals("created", seen[1].status)
    assert.equals("done", seen[#seen].status)
    for i = 2, #seen do
      local a, b = seen[i - 1], seen[i]
      assert.truthy(a.status ~= b.status or a.agents ~= b.agents or a.iterations ~= b.iterations
        or a.sources ~= b.sources)
      assert.truthy(b.agents >= a.agents)
    end
  end)

  it("ends with task_failed when the task fails, holding the reason and the task", function()
    local task = dr.assert(client:create{ brief = "tell me some stuff about things" })
    local _, err = client:wait(task.id)
    assert.equals("task_failed", err.code)
    assert.is_string(err.reason)
    assert.equals("failed", err.task.status)
    assert.equals(err.task.failure_reason, err.reason)
  end)

  it("times out with the last seen task, leaving the task running", function()
    local task = dr.assert(client:create{ brief = env.BRIEF, depth = "xhigh" })
    local _, err = client:wait(task.id, { timeout = 60 })
    assert.equals("timeout", err.code)
    assert.equals(task.id, err.task.id)
    assert.truthy(clock.t >= 60 and clock.t <= 61)
    local still = dr.assert(client:get(task.id))
    assert.is_not.equals("failed", still.status)
  end)

  it("rides out transient 503s while polling", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    s:fault{
      method = "GET", path = "/v1/deep_research_tasks/.+", status = 503, skip = 2, count = 3 }
    local done = dr.assert(client:wait(task.id))
    assert.equals("done", done.status)
  end)

  it("gives up after 5 failed polls in a row", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", status = 503, count = -1 }
    s:clear_requests()
    local _, err = client:wait(task.id)
    assert.equals("unavailable", err.code)
    assert.equals(5, env.count_requests(s, "^GET /v1/deep_research_tasks/"))
  end)

  it("treats a 404 right after create as not visible yet", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", status = 404, count = 2,
      body = '{"detail":"Task not found"}' }
    assert.equals("done", dr.assert(client:wait(task.id)).status)
  end)

  it("ends at once on a 404 for an unknown task after the grace window", function()
    local _, err = client:wait("00000000-0000-4000-8000-000000000000", { not_found_grace = 0 })
    assert.equals("not_found", err.code)
  end)

  it("ends with a clear error on a status it does not know", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", status = 200,
      body = '{"id":"' .. task.id .. '","status":"paused","iterations":0,"agents":0,"sources":0}' }
    local _, err = client:wait(task.id)
    assert.equals("invalid_response", err.code)
    assert.matches("paused", err.message)
  end)

  it("propagates an error raised in on_progress", function()
    local task = dr.assert(client:create{ brief = env.BRIEF })
    assert.has_error(function()
      client:wait(task.id, { on_progress = function() error("stop here") end })
    end, "stop here")
    assert.truthy(client:get(task.id))
  end)

  it("run creates and waits in one call", function()
    local done = dr.assert(client:run{ brief = env.BRIEF, depth = "medium" })
    assert.equals("done", done.status)
    assert.is_string(done.report.markdown)
  end)

  it("run returns schema reports whose fields validate", function()
    local schema = { type = "object", required = { "summary", "risks" },
      properties = {
        summary = { type = "string" }, risks = { type = "array", items = { type = "string" } } } }
    local done = dr.assert(client:run{ brief = env.BRIEF, output_schema = schema })
    assert.equals("schema", done.report.kind)
    assert.is_string(done.report.fields.summary)
    assert.is_table(done.report.fields.risks)
  end)

  describe("schedule", function()
    it("grows by 1.5 from 2 s and caps at 30 s", function()
      local next_delay = wait.schedule()
      local got = {}
      for i = 1, 10 do got[i] = next_delay() end
      assert.same({ 2, 3, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30, 30, 30 }, got)
    end)

    it("honours interval and max_interval", function()
      local next_delay = wait.schedule{ interval = 1, max_interval = 2 }
      assert.same({ 1, 1.5, 2, 2 }, { next_delay(), next_delay(), next_delay(), next_delay() })
    end)
  end)

end)

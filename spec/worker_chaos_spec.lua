-- Issue 13 for bin/deepresearch-worker: never a second paid task for one job, whatever the
-- API answers, whoever pauses, however it is stopped. Real redis-server, the simulator, workers
-- as separate processes; every duplicate is counted from the simulator's own state.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker under faults", function()
    pending("needs Lua 5.4, redis-server and lua-redis (scripts/deps redis), and no sanitizer run")
  end)
  return
end

local sim = require "support.sim"
local cjson = require("cjson").new()

local wait_until = fixture.wait_until
local CREATE_PATH = "/v1/deep_research_tasks"
local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local F, S

-- The request log keeps the raw target: the list's query string is part of its path.
local function list_gets() return #S:requests_to("GET", "^/v1/deep_research_tasks%f[?\0]") end
local function posts() return #S:requests_to("POST", "^/v1/deep_research_tasks%f[?\0]") end

describe("deepresearch-worker under faults", function()
  before_each(function() F = fixture.new() end)
  after_each(function()
    if S then S:stop() S = nil end
    F:teardown()
  end)

  it("item 1: a create answered 502 after storing, while listing fails, is never sent again; " ..
     "the job stays ambiguous until a list finds its task, then ends done", function()
    S = sim.start{ speed = 2000, seed = 21 }
    S:fault{ method = "POST", path = CREATE_PATH, after = true, kind = "html502", count = -1 }
    S:fault{ method = "GET", path = CREATE_PATH, status = 503, count = -1 }
    local q = "amb"
    local job = F:push_jobs(q, 1)[1]
    local w = F:start(q, S.url, { "--concurrency", "1", "--reconcile-grace", "1" })
    -- The library's own search (3 attempts) and at least three of the worker's, all refused.
    wait_until("the worker to retry its search", 20, function() return list_gets() >= 6 end)
    local h = F:job(q, job.id)
    assert.are.equal("ambiguous", h.status, F:log_of(w))
    assert.are.equal("1", h.creates)
    assert.are.equal(1, posts())
    assert.are.equal(1, S:counter("extruct.tasks_created"))
    assert.is_nil(h.task_id)
    assert.truthy(h.ambiguous_at and h.ambiguous_at:find(ISO), tostring(h.ambiguous_at))
    assert.are.equal("ambiguous", cjson.decode(h.error).code)
    -- Listing works again: the task is found, recorded and waited on.
    S:clear_faults()
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    h = F:job(q, job.id)
    assert.are.equal("done", h.status, F:log_of(w))
    local tasks = S:tasks()
    assert.are.equal(1, #tasks)
    assert.are.equal(tasks[1].id, h.task_id)
    assert.are.equal("1", h.reconciled)
    assert.are.equal(1, posts())
  end)
end)

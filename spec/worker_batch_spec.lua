-- Issue 15 item 8 for bin/deepresearch-worker: with --provider valyu --batch-size N the worker
-- groups new jobs into Valyu batches (one batch_create per group, one batch_add whose tasks carry
-- the jobs' ids) under the same never-twice rules as single creates. Every task and batch is
-- counted from the simulator's own state.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker batches", function() pending(fixture.NEEDS) end)
  return
end

local sim = require "support.sim"
local cjson = require("cjson").new()

local ADD = "^/v1/deepresearch/batches/[^/?]+/tasks$"
-- Faults match the whole path (no query), as a Lua pattern.
local FAULT_TASKS = "/v1/deepresearch/batches/[^/]+/tasks"
local F, S

local function start(q, extra) return F:start_valyu(q, S.url, extra) end

local function push_jobs(q, n, extra)
  local list = {}
  for i = 1, n do
    local job = { id = q .. "-" .. i, brief = string.format("Research Example %d Corp " ..
      "(example%d.com): products, pricing and leadership changes in the last year.", i, i),
      depth = "fast" }
    for k, v in pairs(extra and extra(i) or {}) do job[k] = v end
    list[i] = job
    assert(F.R:call("LPUSH", q, cjson.encode(job)))
  end
  return list
end

local function valyu() return S:state().valyu end

-- Every job done with its own task, each task made once, all of them in batches.
local function assert_done_once(q, list)
  local st = valyu()
  local by_id = {}
  for _, t in ipairs(st.tasks) do by_id[t.deepresearch_id] = t end
  local seen = {}
  for _, job in ipairs(list) do
    local h = F:job(q, job.id)
    assert.are.equal("done", h.status, job.id .. ": " .. tostring(h.error))
    local t = assert(by_id[h.task_id], job.id .. ": task " .. tostring(h.task_id))
    assert.is_nil(seen[h.task_id], "two jobs share task " .. h.task_id)
    seen[h.task_id] = true
    assert.are.equal(h.batch_id, t.batch_id)
    assert.are.equal("1", h.creates)
  end
  assert.are.equal(#list, #st.tasks)
  assert.are.equal(0, #S:requests_to("POST", "^/v1/deepresearch/tasks$"))
  return st
end

describe("deepresearch-worker batches", function()
  before_each(function()
    F = fixture.new()
    S = sim.start{ speed = 2000, seed = 51 }
  end)
  after_each(function()
    if S then S:stop() S = nil end
    F:teardown()
  end)

  it("7 jobs with --batch-size 3: 3 batches, 7 tasks, every job done", function()
    local q = "b7"
    local list = push_jobs(q, 7)
    local w = start(q, { "--batch-size", "3", "--concurrency", "10", "--once" })
    assert.are.equal(0, F:exit_status(w, 120), F:log_of(w))
    local st = assert_done_once(q, list)
    assert.are.equal(3, #st.batches)
    local sizes = {}
    for i, b in ipairs(st.batches) do sizes[i] = #b.tasks end
    table.sort(sizes)
    assert.are.same({ 1, 3, 3 }, sizes)
    for _, b in ipairs(st.batches) do assert.are.equal("fast", b.mode) end
    assert.are.equal(3, #S:requests_to("POST", ADD))
  end)

  it("a lost batch_add whose batch cannot be listed for a while: never added again, " ..
    "found by the jobs' ids, still 7 tasks", function()
    local q = "lost"
    -- The first add really adds its tasks, then its connection drops; the batch's task list
    -- fails for the library's own look and the worker's first searches.
    S:fault{ method = "POST", path = FAULT_TASKS, kind = "drop", after = true, count = 1 }
    S:fault{ method = "GET", path = FAULT_TASKS, status = 503, count = 4 }
    local list = push_jobs(q, 7)
    local w = start(q, { "--batch-size", "3", "--concurrency", "10", "--once" })
    assert.are.equal(0, F:exit_status(w, 120), F:log_of(w))
    assert_done_once(q, list)
    assert.are.equal(3, #S:requests_to("POST", ADD))
    local reconciled = 0
    for _, job in ipairs(list) do
      if F:job(q, job.id).reconciled == "1" then reconciled = reconciled + 1 end
    end
    assert.is_true(reconciled >= 1, F:log_of(w))
    assert.truthy(F:log_of(w):find("ambiguous until its task is found", 1, true), F:log_of(w))
  end)

  it("a worker killed between the gates and the add's answer: the next one finds the tasks " ..
    "in the batch, adds nothing", function()
    local q = "killed"
    -- The add makes its tasks at once; its answer is held 3 s: the kill lands before it.
    S:fault{ method = "POST", path = FAULT_TASKS, delay_ms = 3000, after = true, count = 1 }
    local list = push_jobs(q, 3)
    local w = start(q, { "--batch-size", "3", "--worker-id", "wk", "--lease", "1" })
    fixture.wait_until("the tasks to exist", 30, function() return #valyu().tasks == 3 end)
    F:signal(w, "KILL")
    assert.are.equal("creating", F:job(q, list[1].id).status)
    w = start(q, { "--batch-size", "3", "--worker-id", "wk", "--lease", "1", "--once" })
    assert.are.equal(0, F:exit_status(w, 120), F:log_of(w))
    assert_done_once(q, list)
    assert.are.equal(1, #S:requests_to("POST", ADD))
    assert.are.equal(1, #valyu().batches)
  end)

  it("jobs a batch cannot take (a checkpoint) are created on their own", function()
    local q = "mixed"
    local list = push_jobs(q, 4, function(i)
      return i == 4 and { valyu = { hitl = { plan_review = true } } } or nil
    end)
    local w = start(q, { "--batch-size", "5", "--concurrency", "10", "--once" })
    assert.are.equal(0, F:exit_status(w, 120), F:log_of(w))
    assert.are.equal("input_required", F:job(q, list[4].id).status)
    assert.are.equal(1, #S:requests_to("POST", "^/v1/deepresearch/tasks$"))
    local st = valyu()
    assert.are.equal(1, #st.batches)
    assert.are.equal(3, #st.batches[1].tasks)
    assert.are.equal(4, #st.tasks)
    for i = 1, 3 do assert.are.equal("done", F:job(q, list[i].id).status) end
  end)
end)

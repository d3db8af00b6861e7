-- Issue 13 for bin/deepresearch-worker: never a second paid task for one job, whatever the
-- API answers, whoever pauses, however it is stopped. Real redis-server, the simulator, workers
-- as separate processes; every duplicate is counted from the simulator's own state.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker under faults", function() pending(fixture.NEEDS) end)
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

local function fired(id)
  for _, f in ipairs(S:faults()) do
    if f.id == id then return f.fired end
  end
end

local function free_port()
  local s = assert(require("socket").bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- A job hash and processing list as a worker leaves them when it dies right after its create
-- gate marked the job "creating" (whether or not the request then left).
local function died_creating(R, q, job, wid)
  local store = require "deepresearch.worker.store"
  local raw = cjson.encode(job)
  local t = assert(R:call("TIME"))
  assert(R:call("LPUSH", q .. ":processing:" .. wid, raw))
  assert(R:call("SADD", q .. ":workers", wid))
  assert(R:call("HSET", q .. ":job:" .. job.id, "id", job.id, "status", "creating",
    "creating_at", store.iso(t[1], t[2]), "worker", wid, "brief", job.brief, "creates", "1"))
end

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

  it("item 1 (review: a lagging list): a worker killed after its create left; the next holder's " ..
     "searches do not show the task three times, yet it never creates the job again: it keeps " ..
     "searching and finds it",
    function()
    S = sim.start{ speed = 2000, seed = 5 }
    -- The task is stored at once; its answer is held 20 s (the worker is killed meanwhile).
    S:fault{ method = "POST", path = CREATE_PATH, after = true, delay_ms = 20000, count = 1 }
    local q = "lag"
    local job = F:push_jobs(q, 1)[1]
    local a = F:start(q, S.url, { "--worker-id", "A", "--lease", "1", "--reconcile-grace", "1" })
    wait_until(
      "the task to be made", 20, function() return S:counter("extruct.tasks_created") >= 1 end)
    F:signal(a, "KILL")
    assert.are.equal("creating", F:job(q, job.id).status)
    -- The list lags: its first three answers do not show the task yet.
    local lag = S:fault{ method = "GET", path = CREATE_PATH, status = 200, body = "[]", count = 3 }
    local b = F:start(q, S.url, { "--worker-id", "B", "--lease", "1", "--reconcile-grace", "1",
      "--search-window", "30" })
    assert.are.equal(0, F:exit_status(b, 60), F:log_of(b))
    local h = F:job(q, job.id)
    assert.are.equal("done", h.status, F:log_of(b))
    assert.are.equal(1, S:counter("extruct.tasks_created"))
    assert.are.equal(1, posts())
    assert.are.equal(S:tasks()[1].id, h.task_id)
    assert.are.same({ "1", "1" }, { h.reconciled, h.creates })
    assert.are.equal(3, fired(lag))
    assert.is_true(list_gets() >= 4)
    assert.truthy(F:log_of(b):find("never creating it again", 1, true), F:log_of(b))
  end)

  it("item 1 (review: an ambiguous job set aside after one empty search): a 502 after storing, " ..
     "the list showing the task only after four empty answers: searched again with backoff, " ..
     "found, done", function()
    S = sim.start{ speed = 2000, seed = 5 }
    S:fault{ method = "POST", path = CREATE_PATH, after = true, kind = "html502", count = 1 }
    -- The library's own search takes the first empty answer, the worker's searches the others.
    local lag = S:fault{ method = "GET", path = CREATE_PATH, status = 200, body = "[]", count = 4 }
    local q = "lag2"
    local job = F:push_jobs(q, 1)[1]
    local w = F:start(q, S.url, { "--reconcile-grace", "1", "--search-window", "30" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local h = F:job(q, job.id)
    assert.are.equal("done", h.status, F:log_of(w))
    assert.are.equal(1, S:counter("extruct.tasks_created"))
    assert.are.equal(1, posts())
    assert.are.equal(S:tasks()[1].id, h.task_id)
    assert.are.same({ "1", "1" }, { h.reconciled, h.creates })
    assert.are.equal(4, fired(lag))
    assert.is_nil(h.ambiguous)
  end)

  it("item 1: a create marker whose task never shows is searched for over --search-window (at " ..
     "least 3 searches that succeed), never created again, then set aside as ambiguous", function()
    S = sim.start{ speed = 2000, seed = 25 }
    local q = "never"
    local job = {
      id = "m-1",
      brief = "Research Example Marker Corp (marker.example.com): pricing and leadership." }
    -- Its worker died right after the gate: here the request never left, but nothing proves it.
    died_creating(F.R, q, job, "gone")
    local w = F:start(q, S.url, { "--search-window", "1" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local h = F:job(q, job.id)
    assert.are.equal("ambiguous", h.status, F:log_of(w))
    assert.are.equal("1", h.ambiguous)
    assert.truthy(h.finished_at and h.finished_at:find(ISO), tostring(h.finished_at))
    assert.are.equal("ambiguous", cjson.decode(h.error).code)
    assert.are.equal(0, posts())
    assert.are.equal(0, S:counter("extruct.tasks_created"))
    assert.are.equal("1", h.creates)
    assert.is_true(list_gets() >= 3, "searches: " .. list_gets())
    local events = F:events(q)
    assert.are.same({ "m-1", "ambiguous" }, { events[#events].job_id, events[#events].status })
    assert.truthy(F:log_of(w):find("set aside as ambiguous", 1, true), F:log_of(w))
    assert.are.equal(0, F.R:call("LLEN", q .. ":processing:gone"))
  end)

  it("item 1: only the process whose gate marked a create that never left may clear its marker; " ..
     "another worker then creates the job once", function()
    S = sim.start{ speed = 2000, seed = 26 }
    local q = "unsent"
    local job = F:push_jobs(q, 1)[1]
    -- Nothing listens there: the gate passes, the connection is refused, nothing is sent.
    local a = F:start(q, "http://127.0.0.1:" .. free_port(), { "--worker-id", "A", "--lease", "1" })
    local h = wait_until("A's create to be refused before it left", 30, function()
      local j = F:job(q, job.id)
      return j.status == "retrying" and j
    end)
    F:signal(a, "KILL")
    assert.is_true(tonumber(h.creates) >= 1)
    assert.is_nil(h.ambiguous)
    assert.are.equal("network", cjson.decode(h.error).code)
    local b = F:start(q, S.url, { "--worker-id", "B", "--lease", "1" })
    assert.are.equal(0, F:exit_status(b, 60), F:log_of(b))
    h = F:job(q, job.id)
    assert.are.equal("done", h.status, F:log_of(b))
    assert.are.equal(1, S:counter("extruct.tasks_created"))
    assert.are.equal(1, posts())
  end)

  it("item 1: a create marker is cleared only with its writer's proof and only while it is the " ..
     "job's latest; the search marks a marker ambiguous only while that marker stands", function()
    local store_mod = require "deepresearch.worker.store"
    local R = F.R
    local conn = assert(require("deepresearch.worker.redis").new{ url = R.url })
    local st = store_mod.new(conn, "c", "w1")
    local job = { id = "j1", brief = "Research acme.com" }
    job.raw = cjson.encode({ id = job.id, brief = job.brief })
    assert.are.equal(0, (st:heartbeat("mine", 10, "start")))
    assert(R:call("LPUSH", "c:processing:w1", job.raw))
    local r, m1 = st:claim_send(job, false, "mine", 10)
    assert.are.equal("ok", r)
    -- A note about another marker changes nothing; about this one, the job is ambiguous.
    assert.are.equal(
      "changed", st:note(job, "ambiguous", '{"code":"ambiguous"}', "2000-01-01T00:00:00.000Z"))
    assert.are.equal("creating", R:call("HGET", "c:job:j1", "status"))
    assert.are.equal("ok", st:note(job, "ambiguous", '{"code":"ambiguous"}', m1))
    assert.are.equal("ambiguous", (st:claim_send(job, true, "mine", 10)))
    -- A proof about another marker clears nothing.
    assert.are.equal("ok", st:clear_marker(job, "2000-01-01T00:00:00.000Z", '{"code":"network"}'))
    assert.are.equal("ambiguous", R:call("HGET", "c:job:j1", "status"))
    -- The proof about this one: "retrying", and a gate passes again without forcing.
    assert.are.equal("ok", st:clear_marker(job, m1, '{"code":"network"}'))
    local h = F:hash("c:job:j1")
    assert.are.same({ "retrying", '{"code":"network"}' }, { h.status, h.error })
    assert.is_nil(h.ambiguous)
    assert.is_nil(h.ambiguous_at)
    local r2, m2 = st:claim_send(job, false, "mine", 10)
    assert.are.equal("ok", r2)
    -- Taken over meanwhile: the fact is written for the new owner all the same.
    assert(R:call("LREM", "c:processing:w1", 0, job.raw))
    assert.are.equal("lost", st:clear_marker(job, m2, '{"code":"network"}'))
    assert.are.equal("retrying", R:call("HGET", "c:job:j1", "status"))
    -- A recorded task settles it.
    assert.are.equal("ok", (st:record_task(job, "task-1", nil, "created", false)))
    assert.are.equal("settled", st:clear_marker(job, m2, '{"code":"network"}'))
    assert.are.equal("running", R:call("HGET", "c:job:j1", "status"))
    conn:close()
  end)

  it("review (late answers): a create answered after its job was taken over, whose job has " ..
     "another task recorded, is logged as a duplicate with both ids", function()
    local store_mod = require "deepresearch.worker.store"
    local flow = require "deepresearch.worker.flow"
    local conn = assert(require("deepresearch.worker.redis").new{ url = F.R.url })
    local job = { id = "j1", brief = "Research acme.com" }
    job.raw = cjson.encode({ id = job.id, brief = job.brief })
    assert(F.R:call("HSET", "late:job:j1", "id", "j1", "status", "running", "task_id", "task-1"))
    local lines = {}
    local function log(_, fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
    local w = setmetatable({ provider = { id_field = "id" }, pending_ops = {},
      store = store_mod.new(conn, "late", "w1"), log = log }, { __index = flow })
    w:late_answer(job, {}, { id = "task-2", status = "created" })
    local text = table.concat(lines, "\n")
    assert.truthy(
      text:find(
      "task task-1 is recorded for it already; task task-2, answered late, is a duplicate",
      1, true), text)
    assert.are.equal("task-1", F.R:call("HGET", "late:job:j1", "task_id"))
    assert.are.equal(0, #w.pending_ops)
    conn:close()
  end)

  it("chaos (items 1, 2): 40 jobs, two workers, one paused past its lease and resumed, creates " ..
     "answered 502 or dropped after storing, listing failing for a while: one task per job, " ..
     "every job done", function()
    S = sim.start{ speed = 100, seed = 24 }
    -- The first matching fault with firings left fires: the lost answers, then a slow answer
    -- (the task made at once, the reply held 1 s) for every other create.
    S:fault{
      method = "POST", path = CREATE_PATH, after = true, kind = "html502", skip = 2, count = 3 }
    S:fault{ method = "POST", path = CREATE_PATH, after = true, kind = "drop", skip = 8, count = 3 }
    S:fault{ method = "GET", path = CREATE_PATH, status = 503, count = 30 }
    S:fault{ method = "POST", path = CREATE_PATH, after = true, delay_ms = 1000, count = -1 }
    local q = "chaos"
    local list = F:push_jobs(q, 40)
    -- 40 jobs at once on 16 connections: most creates wait for a connection. A create A's gate
    -- let through but A never wrote (paused in between) keeps B searching until A, resumed,
    -- proves it never left: the window is longer than that.
    local common = {
      "--concurrency", "40", "--lease", "1.5", "--reconcile-grace", "0.5", "--search-window", "20" }
    local function args(id)
      local t = { "--worker-id", id }
      for _, a in ipairs(common) do t[#t + 1] = a end
      return t
    end
    local a = F:start(q, S.url, args("A"))
    wait_until("worker A to send its first creates", 30, function()
      return F.R:call("LLEN", q .. ":processing:A") == 40 and
        S:counter("extruct.tasks_created") >= 12
    end)
    F:signal(a, "STOP")
    local sent_by_a = S:counter("extruct.tasks_created")
    assert.is_true(sent_by_a < 40, "every create of A had left before it was paused")
    -- B takes A's jobs once A's lease has run out: it finds the tasks A made, creates the jobs A
    -- had not marked "creating", and searches for the others (never creating them).
    local b = F:start(q, S.url, args("B"))
    wait_until(
      "worker B to take over, and every job to have its task or be searched for", 60, function()
      if not F:log_of(b):find("worker A lost its lease", 1, true) then return false end
      for _, job in ipairs(list) do
        local h = F:job(q, job.id)
        if not h.task_id and h.ambiguous ~= "1" then return false end
      end
      return true
    end)
    -- A wakes up with its queued creates (and answers for the ones it had sent).
    F:signal(a, "CONT")
    assert.are.equal(0, F:exit_status(b, 90), F:log_of(b))
    assert.are.equal(0, F:exit_status(a, 30), F:log_of(a))
    local per = fixture.tasks_per_brief(S)
    local done_events = {}
    for _, e in ipairs(F:events(q)) do
      if e.status == "done" then done_events[e.job_id] = (done_events[e.job_id] or 0) + 1 end
    end
    local reconciled = 0
    for _, job in ipairs(list) do
      local h = F:job(q, job.id)
      assert.are.equal(1, per[job.brief], "tasks for job " .. job.id)
      assert.are.equal("done", h.status, "job " .. job.id .. ": " .. tostring(h.error))
      assert.are.equal(1, done_events[job.id], "done events for job " .. job.id)
      assert.are.equal(job.brief, cjson.decode(h.task).brief)
      if h.reconciled == "1" then reconciled = reconciled + 1 end
    end
    assert.are.equal(40, S:counter("extruct.tasks_created"))
    assert.are.equal(40, posts())
    -- The faults were met: lost answers found again, listing refused, A's jobs let go.
    assert.is_true(reconciled >= 6, "jobs found again by listing: " .. reconciled)
    local refused = 0
    for _, f in ipairs(S:faults()) do
      if f.status == 503 then refused = f.fired end
    end
    assert.is_true(refused >= 1)
    assert.truthy(F:log_of(a):find("taken over by another worker", 1, true), F:log_of(a))
    assert.are.equal(0, F.R:call("LLEN", q))
  end)

  it("item 2: the create gate passes only while this process holds the job (processing list and " ..
     "lease value, checked in one script that also renews the lease), and never for an " ..
     "ambiguous job", function()
    local store_mod = require "deepresearch.worker.store"
    local R = F.R
    local conn = assert(require("deepresearch.worker.redis").new{ url = R.url })
    local st = store_mod.new(conn, "g", "w1")
    local job = { id = "j1", brief = "Research acme.com" }
    job.raw = cjson.encode({ id = job.id, brief = job.brief })
    assert.are.equal(0, (st:heartbeat("mine", 10, "start")))
    -- Not in this worker's processing list (taken over): refused, nothing marked.
    assert.are.equal("lost", (st:claim_send(job, false, "mine", 10)))
    assert(R:call("LPUSH", "g:processing:w1", job.raw))
    -- The lease is another process's (the same worker id restarted elsewhere), or gone.
    assert.are.equal("lease", (st:claim_send(job, false, "theirs", 10)))
    assert.is_nil(R:call("HGET", "g:job:j1", "status"))
    -- Held: marked creating, and the lease renewed in the same script.
    assert(R:call("PEXPIRE", "g:worker:w1", 200))
    local r, at = st:claim_send(job, false, "mine", 10)
    assert.are.equal("ok", r)
    assert.truthy(at:find(ISO), at)
    assert.is_true(R:call("PTTL", "g:worker:w1") > 9000)
    local h = F:hash("g:job:j1")
    assert.are.same({ "creating", at, "1" }, { h.status, h.creating_at, h.creates })
    -- Marked already: an earlier create may be in flight, so only a forced gate passes.
    assert.are.equal("creating", (st:claim_send(job, false, "mine", 10)))
    assert.are.equal("ok", (st:claim_send(job, true, "mine", 10)))
    -- A create that may have made a task: no gate passes, forced or not, until it is found.
    assert.are.equal("ok", st:note(job, "ambiguous", '{"code":"ambiguous"}'))
    assert.are.equal("ambiguous", (st:claim_send(job, true, "mine", 10)))
    assert.are.equal("ambiguous", R:call("HGET", "g:job:j1", "status"))
    -- Renewing never takes the lease from another process; starting under the id does.
    assert(R:call("SET", "g:worker:w1", "theirs", "PX", 5000))
    assert.are.equal(2, (st:heartbeat("mine", 10, "renew")))
    assert.are.equal("theirs", R:call("GET", "g:worker:w1"))
    local state, left = st:heartbeat("mine", 10, "start")
    assert.are.equal(2, state)
    assert.is_true(left > 4 and left <= 5)
    assert.are.equal("mine", R:call("GET", "g:worker:w1"))
    -- Found: recorded, and the gate answers with the task.
    assert.are.equal("ok", (st:record_task(job, "task-1", nil, "created", true)))
    assert.are.same({ "task", "task-1" }, { st:claim_send(job, true, "mine", 10) })
    assert.is_nil(R:call("HGET", "g:job:j1", "ambiguous"))
    conn:close()
  end)

  it("Ctrl-C: takes no more jobs, records the answer of the create in flight, exits 0; " ..
     "a restart resumes without a second task", function()
    S = sim.start{ speed = 2000, seed = 23 }
    -- The task is made at once; its answer comes 1.5 s later.
    S:fault{ method = "POST", path = CREATE_PATH, after = true, delay_ms = 1500, count = -1 }
    local q = "int"
    local list = F:push_jobs(q, 3)
    local args = { "--concurrency", "1", "--worker-id", "wi" }
    local w = F:start(q, S.url, args)
    wait_until(
      "the first create to be sent", 30,
      function() return S:counter("extruct.tasks_created") == 1 end)
    assert.are.equal("creating", F.R:call("HGET", q .. ":job:" .. list[1].id, "status"))
    F:signal(w, "INT")
    assert.are.equal(0, F:exit_status(w, 30), F:log_of(w))
    local log = F:log_of(w)
    assert.truthy(log:find("stopped on SIGINT: took no more jobs; 1 job(s) keep their lease", 1,
      true), log)
    local tasks = S:tasks()
    assert.are.equal(1, #tasks)
    local h = F:job(q, list[1].id)
    assert.are.equal(tasks[1].id, h.task_id, log)
    assert.are.equal("running", h.status)
    assert.are.equal(2, F.R:call("LLEN", q))
    assert.are.equal(1, posts())
    -- Under the same id, the job is resumed on its task; the others run once each.
    w = F:start(q, S.url, args)
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local per = fixture.tasks_per_brief(S)
    for _, job in ipairs(list) do
      assert.are.equal("done", F:job(q, job.id).status)
      assert.are.equal(1, per[job.brief])
    end
    assert.are.equal(tasks[1].id, F:job(q, list[1].id).task_id)
  end)

  it("item 18 (review): a fraction that rounds up to a whole second carries into the " ..
    "seconds", function()
    local store = require "deepresearch.worker.store"
    assert.are.equal("1970-01-01T00:00:06.000Z", store.iso_of(5.9999997))
    local t = 1765130645
    assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", t + 1) .. ".000Z", store.iso_of(t + 0.9999997))
    assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", t) .. ".999Z", store.iso_of(t + 0.9994))
    assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", t) .. ".000Z", store.iso_of(t))
  end)

  it("item 18: writes Redis's time as ISO 8601 UTC, the same inside its scripts and " ..
    "outside", function()
    local store = require "deepresearch.worker.store"
    local R = F.R
    local SCRIPT = "local t = redis.call('TIME') return { iso(t[1], t[2]), t[1], t[2] }"
    -- The very text the scripts run, with the epochs to check passed in.
    local check = "return iso(ARGV[1], ARGV[2])"
    local source = debug.getinfo(store.iso, "S").source
    assert.are.equal("=iso", source)
    local samples = { 0, 951782400, 951868799, 1709164800, 1735689599, 4102444800, 1765130645 }
    for _, t in ipairs(samples) do
      local expected = os.date("!%Y-%m-%dT%H:%M:%S", t) .. ".250Z"
      assert.are.equal(expected, store.iso(t, 250000))
      local inside = assert(R:call("EVAL", store.ISO_SOURCE .. check, 0, tostring(t), "250999"))
      assert.are.equal(expected, inside)
    end
    local r = assert(R:call("EVAL", store.ISO_SOURCE .. SCRIPT, 0))
    assert.truthy(r[1]:find(ISO), r[1])
    assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", tonumber(r[2])), r[1]:sub(1, 19))
    assert.are.equal(string.format(".%03dZ", math.floor(tonumber(r[3]) / 1000)), r[1]:sub(20))
  end)

  it("item 18: stores the finished task as the API sent it ([] stays []) and every time as ISO " ..
    "8601 UTC",
    function()
    S = sim.start{ speed = 2000, seed = 22 }
    -- No task reaches its agent budget, so every one is served with "degradation_reasons": [].
    S:config{ extruct = { full_budget_share = 0 } }
    local q = "iso"
    local job = F:push_jobs(q, 1)[1]
    assert(F.R:call("LPUSH", q, cjson.encode({ id = "bad-1", brief = 7 })))
    local w = F:start(q, S.url, { "--concurrency", "2" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local h = F:job(q, job.id)
    assert.are.equal("done", h.status, F:log_of(w))
    local served = assert(S:http("GET", CREATE_PATH .. "/" .. h.task_id,
      { headers = { Authorization = "Bearer test-token" } }))
    assert.are.equal(200, served.status)
    local empty = 0
    for key in served.body:gmatch('"([%w_]+)"%s*:%s*%[%s*%]') do
      empty = empty + 1
      assert.truthy(
        h.task:find('"' .. key .. '":%[%]'), key .. " is no longer an empty array: " .. h.task)
      assert.falsy(h.task:find('"' .. key .. '":{}'), key)
    end
    assert.truthy(
      served.body:find('"degradation_reasons"%s*:%s*%[%s*%]'), "the simulator served []")
    assert.is_true(empty >= 1)
    -- The same value otherwise.
    local stored, sent = cjson.decode(h.task), served.json
    assert.are.equal(sent.id, stored.id)
    assert.are.equal(sent.report.markdown, stored.report.markdown)
    assert.are.equal(#sent.report.sources, #stored.report.sources)
    -- Every time the worker wrote: job hashes, the dead letter, the lease.
    local times = 0
    for _, id in ipairs({ job.id, "bad-1" }) do
      for field, value in pairs(F:job(q, id)) do
        if field:find("_at$") then
          times = times + 1
          assert.truthy(value:find(ISO), id .. "." .. field .. " = " .. value)
          -- Redis's clock, so within a minute of this one.
          local y, mo, d, hh, mi, ss = value:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
          local t = os.time({
            year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(hh),
            min = tonumber(mi), sec = tonumber(ss), isdst = false })
          local utc_now = os.time(os.date("!*t"))
          assert.is_true(math.abs(t - utc_now) < 60, field .. " " .. value)
        end
      end
    end
    for _, field in ipairs({ "creating_at", "updated_at", "finished_at" }) do
      assert.is_string(h[field], field)
    end
    assert.is_true(times >= 5)
    local dead = cjson.decode((assert(F.R:call("LINDEX", q .. ":dead", 0))))
    assert.truthy(dead.at:find(ISO), tostring(dead.at))
  end)
end)

-- Issue 18 item 12 for bin/deepresearch-worker: Ctrl-C (SIGINT) and SIGTERM stop the worker
-- cleanly: no more jobs taken, the leases of the jobs held kept (not released), one line on
-- stderr, exit 0, no traceback; a worker started next on the same host resumes those jobs at
-- once, without a second create. Real processes, a real redis-server, the simulator's tasks
-- counted.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker signals", function() pending(fixture.NEEDS) end)
  return
end

local sim = require "support.sim"
local cjson = require("cjson").new()

local wait_until = fixture.wait_until
local F, S

-- A worker's options without --verbose (its stderr is what a person sees) and without a
-- --worker-id (the default, <host>-<pid>: a restart gets another id).
local function quiet_args(q, extra)
  local args = { "--redis-url", F.R.url, "--queue", q, "--base-url", S.url, "--interval", "0.05",
    "--max-interval", "0.2", "--reconcile-grace", "0.5", "--watch-pid", tostring(sim.own_pid()) }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return args
end

local function spawn(q, extra, name)
  return F:spawn(quiet_args(q, extra), { { "EXTRUCT_API_TOKEN", "test-token" } }, name)
end

-- The stderr lines after byte `from`, without the status lines the worker prints as it runs.
local function lines_after(w, from)
  local out = {}
  for line in F:log_of(w):sub(from + 1):gmatch("[^\n]+") do
    if not line:find("^queued %d+ |") and not line:find("^redis down") then out[#out + 1] = line end
  end
  return out
end

local function running_jobs(q, list)
  local n = 0
  for _, job in ipairs(list) do
    local h = F:job(q, job.id)
    if h.status == "running" and h.task_id then n = n + 1 end
  end
  return n
end

describe("deepresearch-worker signals", function()
  before_each(function() F = fixture.new() end)
  after_each(function()
    if S then S:stop() S = nil end
    F:teardown()
  end)

  for _, sig in ipairs({ "TERM", "INT" }) do
    it("SIG" .. sig .. ": one line, exit 0, the leases kept; a worker started next on this host " ..
       "resumes the jobs at once without a second create", function()
      -- Slow tasks: they are still running when the signal comes.
      S = sim.start{ speed = 2, seed = 31 }
      local q = "sig" .. sig:lower()
      local list = F:push_jobs(q, 3)
      local w = spawn(q, { "--concurrency", "3", "--lease", "60" })
      wait_until("three running jobs", 30, function() return running_jobs(q, list) == 3 end)
      local workers = assert(F.R:call("SMEMBERS", q .. ":workers"))
      assert.are.equal(1, #workers)
      local wid = workers[1]
      local before = #F:log_of(w)
      -- A job pushed now waits (the worker is full), and is not taken by a stopping worker.
      F:push_jobs(q, 1)
      F:signal(w, sig)
      assert.are.equal(0, F:exit_status(w, 30), F:log_of(w))
      local lines = lines_after(w, before)
      assert.are.equal(1, #lines, table.concat(lines, "\n"))
      assert.truthy(lines[1]:find("stopped on SIG" .. sig .. ": took no more jobs; 3 job(s) " ..
        "keep their lease", 1, true), lines[1])
      assert.is_nil(F:log_of(w):lower():find("traceback", 1, true))
      -- The lease is kept (marked stopped), the jobs stay in its processing list.
      local lease = F.R:call("GET", q .. ":worker:" .. wid)
      assert.truthy(lease, "lease released")
      local v = cjson.decode(lease)
      assert.truthy(v.stopped, lease)
      assert.is_nil(v.token and lease:find("test-token", 1, true))
      assert.truthy(F.R:call("PTTL", q .. ":worker:" .. wid) > 30000)
      assert.are.equal(3, F.R:call("LLEN", q .. ":processing:" .. wid))
      assert.are.equal(1, F.R:call("LLEN", q))
      assert.are.equal(3, S:counter("extruct.tasks_created"))
      -- A worker started next (another id, a 60 s lease) takes them at once: it finishes all
      -- four jobs while the stopped worker's lease still had most of its minute to run.
      S:set_speed(2000)
      local w2 = spawn(q, { "--once", "--lease", "60" })
      assert.are.equal(0, F:exit_status(w2, 40), F:log_of(w2))
      assert.truthy(F:log_of(w2):find("resuming 3 job(s) of worker " .. wid ..
        ", stopped on this host", 1, true), F:log_of(w2))
      local per = fixture.tasks_per_brief(S)
      for _, job in ipairs(list) do
        assert.are.equal("done", F:job(q, job.id).status)
        assert.are.equal(1, per[job.brief])
      end
      assert.are.equal(4, S:counter("extruct.tasks_created"))
      assert.are.equal(4, #S:requests_to("POST", "^/v1/deep_research_tasks$"))
      assert.is_nil(F.R:call("GET", q .. ":worker:" .. wid))
    end)
  end

  it("a create whose answer does not come: the line counts it; a second signal ends the wait; " ..
     "the next worker finds its task by listing, no second create", function()
    S = sim.start{ speed = 2000, seed = 33 }
    -- The task is stored at once; its answer would come a minute later.
    S:fault{ method = "POST", path = "/v1/deep_research_tasks", after = true, delay_ms = 60000,
      count = 1 }
    local q = "sigcreate"
    local job = F:push_jobs(q, 1)[1]
    local w = spawn(q, { "--concurrency", "1", "--worker-id", "wc", "--lease", "2" })
    wait_until("the create to be sent", 30, function()
      return S:counter("extruct.tasks_created") == 1
    end)
    assert.are.equal("creating", F:job(q, job.id).status)
    local before = #F:log_of(w)
    F:signal(w, "TERM")
    F:signal(w, "TERM")
    assert.are.equal(0, F:exit_status(w, 30), F:log_of(w))
    local lines = lines_after(w, before)
    assert.are.equal(1, #lines, table.concat(lines, "\n"))
    assert.truthy(lines[1]:find("1 job(s) keep their lease", 1, true), lines[1])
    assert.truthy(lines[1]:find("1 create(s) unanswered after 5s stay \"creating\": searched " ..
      "for, never sent again", 1, true), lines[1])
    assert.are.equal("creating", F:job(q, job.id).status)
    -- Restarted under the same id: the task is found by listing and waited on.
    local w2 = spawn(q, { "--once", "--worker-id", "wc", "--lease", "2" })
    assert.are.equal(0, F:exit_status(w2, 60), F:log_of(w2))
    local h = F:job(q, job.id)
    assert.are.equal("done", h.status)
    assert.are.equal("1", h.reconciled)
    assert.are.equal(1, S:counter("extruct.tasks_created"))
    assert.are.equal(1, #S:requests_to("POST", "^/v1/deep_research_tasks$"))
  end)

  it("a stopped worker's jobs are taken at once only on its host and once its process is gone",
     function()
    S = sim.start{ speed = 2000, seed = 32 }
    local q = "adopt"
    local R = F.R
    local host = io.open("/proc/sys/kernel/hostname"):read("*l")
    local function stopped(wid, h, pid)
      R:call("SET", q .. ":worker:" .. wid, cjson.encode({ pid = pid, host = h,
        started = "2026-12-07T00:00:00.000Z", stopped = "2026-12-07T00:00:01.000Z" }), "PX", 60000)
      R:call("SADD", q .. ":workers", wid)
      R:call("LPUSH", q .. ":processing:" .. wid, cjson.encode({ id = wid .. "-job",
        brief = "We are a software vendor. Research Example " .. wid .. " Corp (" .. wid ..
          ".example.com): products and leadership changes in the last 12 months." }))
    end
    stopped("gone", host, 999999999)                    -- this host, its process gone: taken
    stopped("alive", host, sim.own_pid())               -- this host, still running: not taken
    stopped("elsewhere", "another-host", 999999999)     -- another host: waits for the lease
    local w = F:spawn(quiet_args(q, { "--once", "--lease", "60", "--worker-id", "w" }),
      { { "EXTRUCT_API_TOKEN", "test-token" } })
    wait_until("the gone worker's job to be done", 30, function()
      return F:job(q, "gone-job").status == "done"
    end)
    assert.truthy(F:log_of(w):find("resuming 1 job(s) of worker gone, stopped on this host", 1,
      true), F:log_of(w))
    assert.are.equal(1, R:call("LLEN", q .. ":processing:alive"))
    assert.are.equal(1, R:call("LLEN", q .. ":processing:elsewhere"))
    assert.are.equal(1, S:counter("extruct.tasks_created"))
    F:signal(w, "TERM")
    assert.are.equal(0, F:exit_status(w, 30), F:log_of(w))
    assert.truthy(F:log_of(w):find("stopped on SIGTERM: took no more jobs; no job held", 1, true),
      F:log_of(w))
  end)
end)

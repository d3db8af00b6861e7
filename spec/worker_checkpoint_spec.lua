-- Issue 15 item 6 for bin/deepresearch-worker: a job whose task stops at a human-in-the-loop
-- checkpoint is recorded as input_required and leaves the worker (no polling while a person
-- takes their time); `deepresearch-worker respond` answers it, a worker sends the answer and
-- the job completes. Real redis-server, the simulator on a frozen virtual clock, workers as
-- separate processes.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker checkpoints", function() pending(fixture.NEEDS) end)
  return
end

local sim = require "support.sim"
local cjson = require("cjson").new()

local wait_until = fixture.wait_until
local quote = sim.shell_quote
local KEY = "valyu-key"
local F, S

local function start(q, extra) return F:start_valyu(q, S.url, extra) end

-- `deepresearch-worker respond|resume ...`: its exit status and output.
local function command(q, ...)
  local args = { quote(fixture.WORKER) }
  for _, a in ipairs({ ... }) do args[#args + 1] = quote(a) end
  args[#args + 1] = "--redis-url " .. quote(F.R.url) .. " --queue " .. quote(q)
  local p = assert(io.popen(table.concat(args, " ") .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

local function push(q, job)
  assert(F.R:call("LPUSH", q, cjson.encode(job)))
end

local function hitl_job(id)
  return { id = id, brief = "Research the market for home batteries in Kenya (" .. id .. ")",
    valyu = { mode = "fast", hitl = { plan_review = true } } }
end

local function valyu_tasks() return S:state().valyu.tasks end

local function status_polls(task_id)
  return #S:requests_to("GET", "^/v1/deepresearch/tasks/" .. task_id .. "/status")
end

local function responds()
  return #S:requests_to("POST", "^/v1/deepresearch/tasks/[^/]+/respond")
end

local function job_status(q, id) return F.R:call("HGET", q .. ":job:" .. id, "status") end

-- Advances the virtual clock a step at a time until the job is done.
local function run_to_done(q, id)
  wait_until("job " .. id .. " done", 60, function()
    if job_status(q, id) == "done" then return true end
    S:advance(30)
    return false
  end)
end

describe("deepresearch-worker respond and resume (command line)", function()
  local cli = require "deepresearch.worker.cli"

  it("parses respond JOB ANSWER [--interaction ID] and resume JOB, and refuses the rest",
    function()
    local o = assert(cli.parse({ "respond", "j1", '{"approved": true}', "--interaction", "i1",
      "--queue", "q" }))
    assert.are.same({ command = "respond", args = { "j1", '{"approved": true}' },
      interaction = "i1", queue = "q" }, o)
    assert.are.same({ command = "resume", args = { "j1" } }, cli.parse({ "resume", "j1" }))
    assert.is_nil(cli.parse({ "respond", "j1" }))
    assert.is_nil(cli.parse({ "resume" }))
    assert.is_nil(cli.parse({ "resume", "j1", "extra" }))
    assert.is_nil(cli.parse({ "resume", "j1", "--interaction", "i1" }))
    assert.is_nil(cli.parse({ "--once", "respond", "j1", "{}" }))
    assert.are.equal(3, cli.parse({ "--batch-size", "3" })["batch-size"])
    assert.is_nil(cli.parse({ "--batch-size", "101" }))
    assert.is_nil(cli.parse({ "--batch-size", "2.5" }))
  end)
end)

describe("deepresearch-worker checkpoints", function()
  before_each(function()
    F = fixture.new()
    S = sim.start{ speed = 0, seed = 41 }
  end)
  after_each(function()
    if S then S:stop() S = nil end
    F:teardown()
  end)

  it("records input_required, stops polling, and completes once the consumer answers",
    function()
    local q = "hitl"
    push(q, hitl_job("h1"))
    local w = start(q, { "--input-recheck", "600" })
    wait_until("the job to wait for input", 30, function()
      return job_status(q, "h1") == "input_required"
    end)
    local h = F:job(q, "h1")
    local interaction = cjson.decode(h.interaction)
    assert.are.equal("plan_review", interaction.type)
    assert.are.equal("plan_review", h.interaction_type)
    assert.are.equal(interaction.interaction_id, h.interaction_id)
    assert.are.equal("awaiting_input", h.task_status)
    assert.truthy(h.input_at)
    -- Out of every processing list: it holds no slot of the worker.
    assert.are.equal(0, F.R:call("LLEN", q .. ":processing:" .. assert(h.worker)))
    assert.are.equal(1, F.R:call("ZCARD", q .. ":input"))
    local seen
    for _, e in ipairs(F:events(q)) do
      if e.job_id == "h1" and e.status == "input_required" then seen = e end
    end
    assert.are.equal(h.task_id, assert(seen, "no input_required event").task_id)

    -- Two real seconds at --interval 0.05 would be dozens of polls; a parked job gets none.
    local before = status_polls(h.task_id)
    require("socket").sleep(2)
    assert.are.equal(before, status_polls(h.task_id))
    assert.are.equal(0, responds())

    -- Unanswered for 5 virtual minutes the task pauses; it still takes an answer.
    S:advance(301)
    assert.are.equal("paused", valyu_tasks()[1].status)

    local bad_rc, bad_out = command(q, "respond", "h1", "[1, 2]")
    assert.are.equal(2, bad_rc, bad_out)
    local stale_rc, stale_out = command(q, "respond", "h1", '{"approved": true}',
      "--interaction", "not-this-one")
    assert.are.equal(1, stale_rc, stale_out)
    assert.truthy(stale_out:find("another checkpoint", 1, true), stale_out)

    local rc, out = command(q, "respond", "h1", '{"approved": true}')
    assert.are.equal(0, rc, out)
    assert.truthy(out:find("recorded", 1, true), out)
    wait_until("the answer to be sent", 30, function() return responds() >= 1 end)
    wait_until("the job to run again", 30, function() return job_status(q, "h1") == "running" end)
    run_to_done(q, "h1")
    assert.are.equal(1, responds())
    assert.are.equal(1, #valyu_tasks())
    h = F:job(q, "h1")
    assert.is_nil(h.answer)
    assert.is_nil(h.interaction)
    assert.truthy(h.responded_at)
    assert.truthy(h.report and #h.report > 0)
    assert.are.equal(0, F.R:call("ZCARD", q .. ":input"))

    -- A job that does not wait for input: a clear refusal, nothing written.
    rc, out = command(q, "respond", "h1", '{"approved": true}')
    assert.are.equal(1, rc, out)
    assert.truthy(out:find("job h1 is not waiting for input (status: done)", 1, true), out)
    rc, out = command(q, "resume", "nobody")
    assert.are.equal(1, rc, out)
    assert.truthy(out:find("not waiting for input", 1, true), out)
    F:signal(w, "KILL")
  end)

  it("an answer already sent by a worker that then died is not sent again", function()
    local q = "hitl2"
    push(q, hitl_job("h2"))
    -- --once: the worker exits as soon as the job is parked (nothing left to hold).
    local w = start(q, { "--once" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    assert.are.equal("input_required", job_status(q, "h2"))
    local h = F:job(q, "h2")
    local rc, out = command(q, "respond", "h2", '{"approved": true, "modifications": "cite"}')
    assert.are.equal(0, rc, out)
    -- The answer is recorded and the job queued again; a second answer waits its turn.
    assert.are.equal(1, F.R:call("LLEN", q))
    rc, out = command(q, "respond", "h2", '{"approved": false}')
    assert.are.equal(1, rc, out)
    assert.truthy(out:find("has an answer for checkpoint", 1, true), out)
    -- What a worker killed right after sending it leaves: the API has the answer, Redis
    -- still holds it as unsent.
    local res = assert(S:http("POST", "/v1/deepresearch/tasks/" .. h.task_id .. "/respond",
      { headers = { ["X-API-Key"] = KEY, ["Content-Type"] = "application/json" },
        body = { interaction_id = h.interaction_id, response = { approved = true } } }))
    assert.are.equal(200, res.status, res.body)
    w = start(q, { "--once" })
    wait_until("the job to run again", 30, function() return job_status(q, "h2") == "running" end)
    run_to_done(q, "h2")
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    assert.are.equal(1, responds()) -- the spec's own; the worker saw the task had moved on
    assert.are.equal(1, #valyu_tasks())
    assert.is_nil(F:job(q, "h2").answer)
  end)

  it("an answer the API refuses is kept as the job's error; the job waits for another",
    function()
    local q = "hitl3"
    push(q, hitl_job("h3"))
    local w = start(q, { "--once" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    -- A plan review answered with a planning answer's shape: refused before it is sent.
    local rc, out = command(q, "respond", "h3", '{"answers": []}')
    assert.are.equal(0, rc, out)
    w = start(q, { "--once" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local h = F:job(q, "h3")
    assert.are.equal("input_required", h.status)
    assert.is_nil(h.answer)
    assert.are.equal("invalid_request", cjson.decode(h.error).code)
    assert.are.equal(0, responds())
    rc, out = command(q, "respond", "h3", '{"approved": true}')
    assert.are.equal(0, rc, out)
    w = start(q, { "--once" })
    run_to_done(q, "h3")
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    assert.are.equal(1, responds())
    assert.are.equal("", F:job(q, "h3").error or "") -- cleared once answered
  end)

  it("resume hands back a job answered through the API itself", function()
    local q = "hitl4"
    push(q, hitl_job("h4"))
    local w = start(q, { "--once" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local h = F:job(q, "h4")
    local res = assert(S:http("POST", "/v1/deepresearch/tasks/" .. h.task_id .. "/respond",
      { headers = { ["X-API-Key"] = KEY, ["Content-Type"] = "application/json" },
        body = { interaction_id = h.interaction_id, response = { approved = true } } }))
    assert.are.equal(200, res.status, res.body)
    local rc, out = command(q, "resume", "h4")
    assert.are.equal(0, rc, out)
    w = start(q, { "--once" })
    run_to_done(q, "h4")
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    assert.are.equal(1, #valyu_tasks())
    assert.is_nil(F:job(q, "h4").interaction)
  end)
end)

-- Issue 18 items 13 and 14 for bin/deepresearch-worker: --once gives up on an unreachable
-- Redis (nothing listening, or a port that accepts and never answers) with exit 4; a missing
-- token is exit 4; `status` (and --json) shows the queue, jobs by status, workers and their
-- leases, dead letters; dead letters name their job; a copy of an ended job pushed again is
-- logged once; the brief's lint findings are stored on the job, which still runs.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker status", function() pending(fixture.NEEDS) end)
  return
end

local sim = require "support.sim"
local socket = require "socket"
local cjson = require("cjson").new()

local F, S

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Runs the command to the end; returns exit status, stdout, stderr.
local function run(args, env)
  local out, err = F.tmp .. "/out", F.tmp .. "/err"
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sim.shell_quote(a) end
  local cmd = string.format("%s %s %s >%s 2>%s", env or "", sim.shell_quote(fixture.WORKER),
    table.concat(quoted, " "), out, err)
  local ok, _, code = os.execute(cmd)
  local function slurp(p)
    local f = io.open(p)
    local t = f and f:read("*a") or ""
    if f then f:close() end
    return t
  end
  return ok and 0 or code, slurp(out), slurp(err)
end

local function count(text, needle)
  local n, i = 0, 1
  while true do
    local s, e = text:find(needle, i, true)
    if not s then return n end
    n, i = n + 1, e + 1
  end
end

describe("deepresearch-worker status and exits", function()
  before_each(function() F = fixture.new() end)
  after_each(function()
    if S then S:stop() S = nil end
    F:teardown()
  end)

  it("--once gives up with exit 4 when nothing listens on Redis's port", function()
    local url = "redis://127.0.0.1:" .. free_port() .. "/0"
    local rc, _, err = run({ "--once", "--lease", "1", "--redis-url", url },
      "EXTRUCT_API_TOKEN=test-token")
    assert.are.equal(4, rc, err)
    assert.are.equal(1, count(err, "did not answer for"), err)
    assert.truthy(err:find("giving up (--once)", 1, true), err)
    assert.is_nil(err:find("traceback", 1, true))
  end)

  it("--once gives up with exit 4 when Redis's port accepts and never answers", function()
    local server = assert(socket.bind("127.0.0.1", 0)) -- listens; never accepts or answers
    local _, port = server:getsockname()
    local rc, _, err = run({ "--once", "--lease", "1", "--redis-url",
      "redis://127.0.0.1:" .. port .. "/0" }, "EXTRUCT_API_TOKEN=test-token")
    server:close()
    assert.are.equal(4, rc, err)
    assert.truthy(err:find("did not answer for", 1, true), err)
  end)

  it("a missing token is exit 4, as in the command; status on an unreachable Redis is 4", function()
    local rc, _, err = run({ "--once", "--redis-url", F.R.url }, "EXTRUCT_API_TOKEN=")
    assert.are.equal(4, rc, err)
    assert.truthy(err:find("no API token: set EXTRUCT_API_TOKEN", 1, true), err)
    rc, _, err = run({ "status", "--redis-url", "redis://127.0.0.1:" .. free_port() .. "/0" })
    assert.are.equal(4, rc, err)
    rc = run({ "--json" })
    assert.are.equal(2, rc)
  end)

  it("status: queue length, jobs by status, workers and their leases, dead letters; dead " ..
     "letters name the job; an ended job pushed again is logged once; lint stored", function()
    S = sim.start{ speed = 2000, seed = 41 }
    local q = "st"
    local R = F.R
    local list = F:push_jobs(q, 2)
    -- A one-line brief: lint findings stored, the job still runs.
    local short = { id = "short", brief = "Research acme.com" }
    R:call("LPUSH", q, cjson.encode(short))
    -- Dead letters: one without an id (named by its brief's first 60 characters), one with an
    -- id, one that is not JSON.
    local long = "We are a logistics vendor deciding on a partnership. Research Initech " ..
      "(initech.example): products, pricing and leadership over the last 12 months."
    R:call("LPUSH", q, cjson.encode({ brief = long }))
    R:call("LPUSH", q, cjson.encode({ id = "bad-depth", brief = long, depth = "deepest" }))
    R:call("LPUSH", q, "not json at all")
    local w = F:start(q, S.url)
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local log = F:log_of(w)
    assert.truthy(log:find('dead letter ("' .. long:sub(1, 60) .. '…")', 1, true), log)
    assert.truthy(log:find("dead letter (job bad-depth)", 1, true), log)
    local names = {}
    for _, e in ipairs(assert(R:call("LRANGE", q .. ":dead", 0, -1))) do
      local d = cjson.decode(e)
      names[d.name] = d.job_id or cjson.null
    end
    assert.are.equal(cjson.null, names[long:sub(1, 60) .. "…"])
    assert.are.equal("bad-depth", names["bad-depth"])
    assert.are.equal(cjson.null, names["not json at all"])
    local h = F:job(q, "short")
    assert.are.equal("done", h.status)
    local lint = cjson.decode(h.lint)
    local codes = {}
    for _, f in ipairs(lint) do codes[f.code] = f.severity end
    assert.are.equal("warning", codes.one_liner, h.lint)
    -- Every job that reached its create has the field (an array, empty when nothing found).
    assert.are.equal("table", type(cjson.decode(F:job(q, list[1].id).lint)))
    -- The first job pushed three more times: one line, three copies counted, no new task.
    for _ = 1, 3 do R:call("LPUSH", q, cjson.encode(list[1])) end
    w = F:start(q, S.url)
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    log = F:log_of(w)
    assert.are.equal(1, count(log, "job " .. list[1].id .. ": pushed again after it ended done"),
      log)
    assert.are.equal("3", F:job(q, list[1].id).duplicates)
    assert.are.equal(3, S:counter("extruct.tasks_created"))
    -- A worker holding a job and stopped: its lease shows, marked stopped.
    S:set_speed(1)
    local held = F:push_jobs(q, 1)[1]
    R:call("LPUSH", q, "also not json")
    w = F:spawn(F:args(q, S.url, { "--worker-id", "held", "--lease", "30" }),
      { { "EXTRUCT_API_TOKEN", "test-token" } })
    fixture.wait_until("the job to run", 30, function()
      return R:call("LLEN", q .. ":processing:held") == 1 and R:call("LLEN", q) == 0 and
        F:job(q, held.id).status == "running"
    end)
    local rc, out, err = run({ "status", "--redis-url", R.url, "--queue", q })
    assert.are.equal(0, rc, err)
    assert.truthy(out:find("queue st: 0 queued", 1, true), out)
    assert.truthy(out:find("jobs: dead 1, done 3, running 1\n", 1, true), out)
    assert.truthy(out:find("workers: 1\n  held  lease %d+%.%ds  holds 1\n"), out)
    assert.truthy(out:find("dead letters: 4\n", 1, true), out)
    F:signal(w, "TERM")
    assert.are.equal(0, F:exit_status(w, 30), F:log_of(w))
    rc, out, err = run({ "status", "--json", "--redis-url", R.url, "--queue", q })
    assert.are.equal(0, rc, err)
    local s = cjson.decode(out)
    assert.are.equal(0, s.queued)
    assert.are.equal(4, s.dead)
    assert.are.equal(3, s.jobs.done)
    assert.are.equal(1, s.jobs.dead) -- the job with an id (the others have no hash)
    assert.are.equal(1, #s.workers)
    assert.are.equal("held", s.workers[1].id)
    assert.are.equal(1, s.workers[1].holds)
    assert.truthy(s.workers[1].lease_seconds > 20)
    assert.truthy(s.workers[1].stopped, out)
    assert.is_nil(out:find('"token"', 1, true))
  end)
end)

-- Issue 19 part 4 for bin/deepresearch-worker: a spending cap (--budget-usd-per-day) and a
-- request rate per provider (--rate PROVIDER=N/min) shared by several workers through one
-- atomic script in Redis. Three worker processes, a real redis-server, the Valyu simulator
-- (fixed prices per mode: fast is $0.10). Everything is counted from the simulator's own
-- state and request log: tasks created, their cost, creates per window of its clock.
local fixture = require "support.worker"

if not fixture.enabled() then
  describe("deepresearch-worker budget and rate", function() pending(fixture.NEEDS) end)
  return
end

local sim = require "support.sim"
local cjson = require("cjson").new()

local wait_until = fixture.wait_until
local F, S

local FAST = 0.10 -- the simulator's (and the descriptor's) price of a fast task

local function valyu() return S:state().valyu end

local function push_fast(q, n, prefix)
  return F:push_jobs(q, n, { prefix = prefix or "job", depth = "fast" })
end

local function statuses(q, list)
  local by = {}
  for _, job in ipairs(list) do
    local st = F.R:call("HGET", q .. ":job:" .. job.id, "status") or "none"
    by[st] = (by[st] or 0) + 1
  end
  return by
end

local function three(q, extra)
  local ws = {}
  for i = 1, 3 do
    local args = { "--concurrency", "4", "--worker-id", "w" .. i }
    for _, a in ipairs(extra) do args[#args + 1] = a end
    ws[i] = F:start_valyu(q, S.url, args)
  end
  return ws
end

local function stop_all(ws)
  for _, w in ipairs(ws) do F:signal(w, "TERM") end
  for _, w in ipairs(ws) do assert.are.equal(0, F:exit_status(w, 30), F:log_of(w)) end
end

-- What the simulator's tasks cost (every one a fast task at its fixed price).
local function sum_cost(tasks)
  local usd = 0
  for _, t in ipairs(tasks) do
    assert.are.equal("fast", t.mode)
    usd = usd + FAST
  end
  return usd
end

describe("deepresearch-worker budget and rate", function()
  before_each(function() F = fixture.new() end)
  after_each(function()
    if S then S:stop() S = nil end
    F:teardown()
  end)

  it("three workers never cross the day's cap: the jobs past it wait (waiting_budget); " ..
     "spend released by a cancelled task lets the next one through", function()
    S = sim.start{ speed = 2000, seed = 51 }
    local q = "cap"
    local list = push_fast(q, 10)
    local ws = three(q, { "--budget-usd-per-day", "0.45" })
    -- $0.45 holds four fast tasks: four done, six waiting, whatever the three workers race.
    wait_until("four done and six waiting", 60, function()
      local by = statuses(q, list)
      return by.done == 4 and by.waiting_budget == 6
    end)
    local tasks = valyu().tasks
    assert.are.equal(4, #tasks)
    assert.is_true(sum_cost(tasks) <= 0.45 + 1e-9)
    local day = os.date("!%Y-%m-%d")
    local spent = tonumber(F.R:call("GET", q .. ":budget:" .. day))
    assert.are.equal(400000, spent) -- micro-USD: four reservations settled at $0.10 each
    for _, job in ipairs(list) do
      local h = F:job(q, job.id)
      if h.status == "done" then
        assert.are.equal("100000", h.budget_cost)
        assert.is_nil(h.budget_reserved)
      else
        assert.is_nil(h.task_id)
      end
    end
    -- Still four after more turns of every worker (each job looks again every second).
    local posts = #S:requests_to("POST", "^/v1/deepresearch/tasks$")
    wait_until("more budget checks", 30, function()
      local n = 0
      for _, w in ipairs(ws) do
        local _, c = F:log_of(w):gsub("waiting for budget", "")
        n = n + c
      end
      return n >= 6
    end)
    assert.are.equal(4, #valyu().tasks)
    assert.are.equal(posts, #S:requests_to("POST", "^/v1/deepresearch/tasks$"))
    stop_all(ws)
    -- A task cancelled (refunded in full) gives its spend back: one waiting job goes.
    push_fast(q, 1, "slow")
    S:set_speed(1)
    F.R:call("SET", q .. ":budget:" .. day, "300000") -- as if one of the four had not run
    local w = F:start_valyu(q, S.url, { "--concurrency", "8", "--worker-id", "w1",
      "--budget-usd-per-day", "0.45" })
    wait_until("a fifth task", 30, function() return #valyu().tasks == 5 end)
    local fifth = valyu().tasks[5]
    local client = require("deepresearch").client{ provider = "valyu", base_url = S.url,
      token = "valyu-key" }
    assert(client:cancel(fifth.id or fifth.deepresearch_id))
    wait_until("a sixth task after the refund", 30, function() return #valyu().tasks == 6 end)
    assert.truthy(tonumber(F.R:call("GET", q .. ":budget:" .. day)) <= 450000)
    F:signal(w, "TERM")
    assert.are.equal(0, F:exit_status(w, 30), F:log_of(w))
    assert.are.equal(6, #valyu().tasks)
  end)

  it("a rolling window: each window's spend stays under the cap while every job runs once",
     function()
    S = sim.start{ speed = 2000, seed = 52 }
    local q = "roll"
    local list = push_fast(q, 8)
    local ws = three(q, { "--budget-usd-per-day", "0.25", "--budget-window", "2" })
    wait_until("every job done", 60, function() return statuses(q, list).done == 8 end)
    stop_all(ws)
    local per = {}
    for _, job in ipairs(list) do
      local h = F:job(q, job.id)
      per[h.budget_window] = (per[h.budget_window] or 0) + tonumber(h.budget_cost)
    end
    local windows = 0
    for _, micro in pairs(per) do
      windows = windows + 1
      assert.is_true(micro <= 250000, cjson.encode(per))
    end
    assert.is_true(windows >= 4, cjson.encode(per)) -- at most two $0.10 tasks a window
    assert.are.equal(8, #valyu().tasks)
  end)

  it("a job the dollar cap cannot bound (Extruct: credits) or whose worst case is over it is " ..
     "dead-lettered, nothing sent", function()
    S = sim.start{ speed = 2000, seed = 54 }
    local q = "unb"
    local list = F:push_jobs(q, 1)
    local w = F:start(q, S.url, { "--budget-usd-per-day", "5" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    local h = F:job(q, list[1].id)
    assert.are.equal("dead", h.status)
    assert.are.equal("budget_unbounded", cjson.decode(h.error).code)
    assert.are.equal(0, S:counter("extruct.tasks_created"))
    -- Valyu's max mode costs $15: over a $5 cap whatever else was spent.
    F.R:call("LPUSH", q, cjson.encode({ id = "max", brief = list[1].brief, depth = "max" }))
    w = F:start_valyu(q, S.url, { "--once", "--budget-usd-per-day", "5" })
    assert.are.equal(0, F:exit_status(w, 60), F:log_of(w))
    assert.are.equal("budget_exceeded", cjson.decode(F:job(q, "max").error).code)
    assert.are.equal(0, #valyu().tasks)
    assert.are.equal(2, F.R:call("LLEN", q .. ":dead"))
  end)

  it("--rate valyu=N/min: creates of three workers together keep to the bucket", function()
    S = sim.start{ speed = 100, seed = 53 }
    local q = "rate"
    local list = push_fast(q, 9)
    -- 120/min: two a second, bursts of two.
    local ws = three(q, { "--rate", "valyu=120/min" })
    wait_until("every job done", 60, function() return statuses(q, list).done == 9 end)
    stop_all(ws)
    local times = {}
    for _, r in ipairs(S:requests_to("POST", "^/v1/deepresearch/tasks$")) do
      times[#times + 1] = r.t / 100 -- the simulator's clock runs 100 times real time
    end
    table.sort(times)
    assert.are.equal(9, #times)
    -- A token bucket of rate r and burst b lets at most b + r * T creates into any T seconds.
    for i = 1, #times do
      for j = i + 1, #times do
        local n, span = j - i + 1, times[j] - times[i]
        assert.is_true(n <= 2 + 2 * span + 0.2, string.format("%d creates in %.2fs", n, span))
      end
    end
    assert.is_true(times[#times] - times[1] >= (9 - 2) / 2 - 0.3)
  end)
end)

describe("deepresearch-worker budget options", function()
  local cli = require "deepresearch.worker.cli"

  it("parses --rate PROVIDER=N/min (repeatable) and the budget flags; rejects the rest", function()
    local o = assert(cli.parse({ "--rate", "valyu=120/min", "--rate=openai=6/min",
      "--budget-usd-per-day", "2.5" }))
    assert.are.same({ valyu = 2, openai = 0.1 }, o.rate)
    assert.are.equal(2.5, o["budget-usd-per-day"])
    local w = cli.worker_options(o)
    assert.are.equal(2.5, w.budget_usd)
    assert.are.same(o.rate, w.rate)
    for _, bad in ipairs({ { "--rate", "valyu=2/s" }, { "--rate", "valyu" },
      { "--rate", "nosuch=1/min" }, { "--rate", "valyu=0/min" }, { "--budget-usd-per-day", "0" },
      { "--budget-window", "60" }, { "--budget-usd-per-day", "1", "--budget-window", "0.5" },
      { "--rate", "valyu=1/min", "--batch-size", "5" }, { "--json" } }) do
      assert.is_nil(cli.parse(bad), table.concat(bad, " "))
    end
  end)
end)

describe("deepresearch-worker budget script", function()
  local R
  before_each(function()
    F = fixture.new()
    R = F.R
  end)
  after_each(function() F:teardown() end)

  it("runs with EVALSHA and falls back to EVAL on NOSCRIPT; reserve and settle add up",
     function()
    local conn = assert(require("deepresearch.worker.redis").new{ url = R.url })
    local st = require("deepresearch.worker.store").new(conn, "b", "w1")
    local job = { id = "j1", raw = "{\"id\":\"j1\"}" }
    R:call("LPUSH", "b:processing:w1", job.raw)
    local lim = { estimate = 300000, cap = 500000, window = 86400, provider = "valyu" }
    assert.are.same({ "ok", true }, { st:reserve(job, lim) })
    assert.are.same({ "ok", false }, { st:reserve(job, lim) }) -- reserved once per job
    assert.are.equal(300000, (st:budget_spent()))
    local job2 = { id = "j2", raw = "{\"id\":\"j2\"}" }
    R:call("LPUSH", "b:processing:w1", job2.raw)
    local r, spent, left = st:reserve(job2, lim)
    assert.are.equal("budget", r)
    assert.are.equal(300000, spent)
    assert.is_true(left > 0 and left <= 86400)
    assert.are.equal("waiting_budget", R:call("HGET", "b:job:j2", "status"))
    assert.are.equal(0, st:settle_budget({ id = "none" }, 1)) -- no reservation; SHA loaded
    R:call("SCRIPT", "FLUSH")
    assert.are.equal(1, st:settle_budget(job, 120000)) -- NOSCRIPT: EVAL
    assert.are.equal(1, conn.evalsha_fallbacks)
    assert.are.equal(0, st:settle_budget(job, 120000)) -- once only
    assert.are.equal(120000, (st:budget_spent()))
    assert.are.equal("ok", (st:reserve(job2, lim)))
    assert.are.equal(1, st:settle_budget(job2, nil)) -- released: made nothing
    assert.are.equal(120000, (st:budget_spent()))
    -- The bucket: burst 2, then nothing until it refills.
    local rl = { rate = 0.001, burst = 2, provider = "p" }
    assert.are.equal("ok", (st:reserve(job, rl)))
    assert.are.equal("ok", (st:reserve(job, rl)))
    local rr, _, wait = st:reserve(job, rl)
    assert.are.equal("rate", rr)
    assert.is_true(wait > 900)
    conn:close()
  end)
end)

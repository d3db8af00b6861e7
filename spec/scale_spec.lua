-- Scale (issue 20): a poller with 10,000 pending waits keeps at most max_connections transfers
-- (sockets) at once, and the work of a step follows the timers that came due and the transfers
-- that completed, never the number of pending waits. Counted with p:stats() (touched: operations
-- resumed in the last step), on a virtual clock, with an in-process transport standing in for
-- libcurl (10,000 waits in a second or two); then real sockets against the simulator.
local dr = require "deepresearch"
local env = require "support.env"

local N = 10000
local MAXC = 8

-- The C poller's interface (add/step/next_timeout/fds/cancel/close), answering each request
-- with an in-progress task at the next step; counts the transfers it holds at once.
local function fake_transport()
  local f = { live = 0, max_live = 0, added = 0, waiting = {} }
  function f.add(_, spec)
    f.added = f.added + 1
    f.live = f.live + 1
    if f.live > f.max_live then f.max_live = f.live end
    f.waiting[#f.waiting + 1] = { id = f.added, url = spec.url }
    return f.added
  end
  function f.step(_, _, out)
    for _, w in ipairs(f.waiting) do
      f.live = f.live - 1
      local id = w.url:match("([^/]+)$")
      out[#out + 1] = { id = w.id, status = 200, head = "HTTP/1.1 200 OK\r\n\r\n",
        body = { id = id, status = "in_progress", agents = 1, sources = 2, iterations = 1 } }
    end
    f.waiting = {}
    return out
  end
  function f.next_timeout() return f.waiting[1] and 0 or nil end
  function f.fds() return {}, {} end
  function f.cancel() return true end
  function f.close() end
  return f
end

describe("scale", function()
  it("10,000 pending waits: at most max_connections transfers, work per step bounded by " ..
     "due timers and completed transfers", function()
    local client = dr.client{ base_url = "http://127.0.0.1:9", token = "test-token" }
    local now = 0
    local p = client:poller{ max_connections = MAXC, now = function() return now end }
    local real_cp = p.cp
    local f = fake_transport()
    p.cp = f
    local ended = 0
    local opts = { interval = 100, max_interval = 100, timeout = 86400 }
    local steps, worst = 0, 0
    local function step_checked()
      p:step(0)
      steps = steps + 1
      local st = p:stats()
      assert(st.touched <= st.due + st.completed, string.format(
        "step %d touched %d waits with %d timers due and %d transfers completed", steps,
        st.touched, st.due, st.completed))
      assert(st.completed <= MAXC)
      assert(st.inflight <= MAXC)
      if st.touched > worst then worst = st.touched end
      return st
    end
    -- Ten batches of 1,000 waits, one virtual second apart: each batch's first polls go out
    -- (at most MAXC at a time) and answer, then its waits sleep until 100 s after their poll.
    for batch = 0, 9 do
      now = batch
      for i = 1, N / 10 do
        p:wait(string.format("task-%05d", batch * 1000 + i), opts, function() ended = ended + 1 end)
      end
      while p:stats().timers < (batch + 1) * N / 10 do step_checked() end
    end
    assert.equals(N, f.added)
    assert.equals(N, p:pending())
    assert.equals(0, ended)
    assert.is_true(f.max_live <= MAXC)
    assert.equals(MAXC, worst) -- the first polls: MAXC completions a step, nothing more

    -- All 10,000 asleep: steps touch none of them.
    for _ = 1, 50 do
      local st = step_checked()
      assert.equals(0, st.touched)
      assert.equals(0, st.due)
    end

    -- One batch comes due: its 1,000 timers are taken in one step, the other 9,000 untouched;
    -- their polls then complete MAXC at a time.
    now = 100
    local st = step_checked()
    assert.equals(N / 10, st.due)
    assert.is_true(st.touched <= N / 10 + MAXC)
    while f.added < N + N / 10 or p:stats().inflight > 0 do
      st = step_checked()
      assert.equals(0, st.due)
      assert.is_true(st.touched <= MAXC)
    end
    assert.equals(N + N / 10, f.added)
    assert.equals(N, p:stats().timers)
    assert.equals(N, p:pending())
    assert.is_true(f.max_live <= MAXC)
    p.cp = real_cp
    p:close()
    client:close()
  end)

  it("a long-lived poller keeps claimed ids CLAIM_KEEP to twice that long, not forever",
     function()
    local poller_mod = require "deepresearch.runtime.poller"
    local client = dr.client{ base_url = "http://127.0.0.1:9", token = "test-token" }
    local now = 0
    local p = client:poller{ now = function() return now end }
    local claimed, keep = p.rt.claimed, poller_mod.CLAIM_KEEP
    claimed["a"] = true
    now = keep - 1
    claimed["b"] = true
    assert.is_true(claimed["a"])
    now = keep + 1 -- a new generation starts: a and b still answer from the old one
    claimed["c"] = true
    assert.is_true(claimed["a"])
    assert.is_true(claimed["b"])
    claimed["b"] = nil -- valyu.lua takes an id back: gone from either generation
    assert.is_nil(claimed["b"])
    now = 2 * keep + 2 -- and again: the first generation goes
    claimed["d"] = true
    assert.is_nil(claimed["a"])
    assert.is_true(claimed["c"])
    assert.is_true(claimed["d"])
    p:close()
    client:close()
  end)

  it("creates of a poller leave no per-brief entry behind once answered", function()
    local s = env.sim()
    s:reset()
    local client = dr.client{ base_url = s.url, token = "test-token" }
    local p = client:poller{}
    local made = 0
    for i = 1, 20 do
      p:create({ brief = env.BRIEF .. " #" .. i }, function(t) if t then made = made + 1 end end)
    end
    p:run()
    assert.equals(20, made)
    assert.is_nil(next(p.rt.sending))
    p:close()
    client:close()
  end)

  it("core.stats() counts the C side's transfers, bytes and connections opened", function()
    local s = env.sim()
    s:reset()
    collectgarbage() -- clients of earlier tests release their handles first
    collectgarbage()
    local before = dr.core.stats()
    local client = dr.client{ base_url = s.url, token = "test-token" }
    local task = dr.assert(client:create{ brief = env.BRIEF })
    dr.assert(client:get(task.id))
    local during = dr.core.stats()
    -- the create opens a fresh connection (CURLOPT_FRESH_CONNECT); the GET may reuse it
    assert.is_true(during.connects - before.connects >= 1)
    assert.is_true(during.transfers >= 1)
    client:close() -- frees its pooled handles: their structs, URLs and buffers
    local after = dr.core.stats()
    assert.is_true(after.transfers < during.transfers)
    assert.is_true(after.bytes < during.bytes)
    assert.equals(during.connects, after.connects)
  end)

  it("create_all keeps at most twice max_connections creates alive, each on a fresh socket",
     function()
    local s = env.sim()
    s:reset()
    local pm = require "deepresearch.runtime.poller"
    local orig, most = pm.poller, 0
    pm.poller = function(...)
      local p = orig(...)
      local step = p.step
      p.step = function(self, ms)
        if self:pending() > most then most = self:pending() end
        return step(self, ms)
      end
      return p
    end
    local client = dr.client{ base_url = s.url, token = "test-token" }
    local briefs = {}
    for i = 1, 50 do briefs[i] = env.BRIEF .. " #" .. i end
    local c0 = dr.core.stats().connects
    local ok, tasks, errs = pcall(client.create_all, client, briefs, { max_connections = 2 })
    pm.poller = orig
    assert.is_true(ok, tostring(tasks))
    assert.is_nil(next(errs))
    assert.equals(50, #tasks)
    for i = 1, 50 do assert.equals(briefs[i], tasks[i].brief) end
    assert.is_true(most >= 1 and most <= 4, "most alive: " .. most)
    assert.is_true(dr.core.stats().connects - c0 >= 50) -- never pay twice: no create reuses one
    client:close()
  end)

  it("against the simulator: 2,000 pending waits open at most max_connections sockets",
     function()
    local s = env.sim()
    s:reset()
    local client = dr.client{ base_url = s.url, token = "test-token" }
    local task = dr.assert(client:create{ brief = env.BRIEF })
    local p = client:poller{ max_connections = 4 }
    local c0 = dr.core.stats().connects
    local n = 2000
    for _ = 1, n do p:wait(task.id, { interval = 3600, max_interval = 3600 }, function() end) end
    local worst = 0
    for _ = 1, 100000 do
      local st = p:stats()
      if st.timers == n then break end
      p:step(50)
      st = p:stats()
      assert(st.touched <= st.due + st.completed)
      if st.touched > worst then worst = st.touched end
    end
    assert.equals(n, p:stats().timers)
    assert.equals(n, p:pending())
    local opened = dr.core.stats().connects - c0
    assert.is_true(opened >= 1 and opened <= 4, "opened " .. opened .. " connections")
    assert.is_true(worst <= 4)
    p:close()
    client:close()
  end)
end)

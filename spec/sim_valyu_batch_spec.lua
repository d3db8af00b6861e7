-- Simulated Valyu batches over HTTP (contract B.9, C.4 V15; issue 15 item 8, sim half):
-- create, atomic add (validation and 402 add nothing), member tasks as ordinary tasks, counts as
-- tallies of member statuses settling on the virtual clock, cursor paging, cancel, list.
local support = require("support.sim")

describe("simulated Valyu batches", function()
  local s

  setup(function() s = support.shared() end)
  before_each(function() s:reset() end)

  local function req(method, path, body, key)
    local headers = { ["X-API-Key"] = key or "valyu-key" }
    return assert(s:http(method, path, { body = body, headers = headers }))
  end

  local B = "/v1/deepresearch/batches"

  local function new_batch(body)
    local r = req("POST", B, body or { name = "b", mode = "fast" })
    assert.are.equal(200, r.status, r.body)
    return r.json.batch_id, r.json
  end

  local function add(id, list, key)
    return req("POST", B .. "/" .. id .. "/tasks", { tasks = list }, key)
  end

  it("creates an open batch with the documented fields", function()
    local id, b = new_batch({ name = "vendors", mode = "fast", metadata = { team = "x" },
      webhook_url = "https://hooks.example.com/b" })
    assert.is_string(id)
    assert.are.equal("open", b.status)
    assert.are.equal("fast", b.mode)
    assert.are.equal("vendors", b.name)
    assert.are.same({ "markdown" }, b.output_formats)
    assert.are.same({ total = 0, queued = 0, running = 0, completed = 0, failed = 0,
      cancelled = 0 }, b.counts)
    assert.are.equal(0, b.cost)
    assert.is_string(b.created_at)
    assert.matches("^" .. string.rep("%x", 64) .. "$", b.webhook_secret)
    local g = req("GET", B .. "/" .. id)
    assert.are.equal(200, g.status)
    assert.are.equal("open", g.json.status)
    assert.is_nil(g.json.webhook_secret)                   -- returned once, at creation
    assert.are.same({ team = "x" }, g.json.metadata)
    assert.are.equal(404, req("GET", B .. "/" .. id, nil, "valyu-other").status)
    assert.are.equal(404, req("GET", B .. "/nope").status)
  end)

  it("refuses hitl, a bad mode or a plain-http non-loopback webhook", function()
    assert.are.equal(400, req("POST", B, { mode = "fast", hitl = { plan_review = true } }).status)
    assert.are.equal(400, req("POST", B, { mode = "turbo" }).status)
    assert.are.equal(400, req("POST", B, { webhook_url = "http://hooks.example.com" }).status)
    assert.are.equal(200, req("POST", B, { webhook_url = "http://127.0.0.1:9/x" }).status)
    assert.are.equal(0, #s:state().valyu.batches - 1)
  end)

  it("runs 5 tasks to completed_with_errors with one failure; counts tally the members",
    function()
      local id = new_batch({ mode = "fast", output_formats = { "markdown", "pdf" } })
      local r = add(id, {
        { id = "t1", query = "alpha" }, { id = "t2", query = "beta [fail]" },
        { id = "t3", query = "gamma" }, { id = "t4", query = "delta" }, { query = "epsilon" } })
      assert.are.equal(200, r.status, r.body)
      assert.are.equal(5, r.json.added)
      assert.are.equal(5, #r.json.tasks)
      assert.are.equal("t1", r.json.tasks[1].task_id)
      assert.are.equal("running", r.json.tasks[1].status)
      assert.are.equal("queued", r.json.tasks[4].status)   -- concurrency 3
      assert.are.same({ total = 5, queued = 2, running = 3, completed = 0, failed = 0,
        cancelled = 0 }, r.json.counts)
      -- members are ordinary tasks that carry their batch
      local t1 = r.json.tasks[1].deepresearch_id
      local st = req("GET", "/v1/deepresearch/tasks/" .. t1 .. "/status").json
      assert.are.equal(id, st.batch_id)
      assert.are.equal("t1", st.batch_task_id)
      assert.are.equal("fast", st.mode)
      assert.are.same({ "markdown", "pdf" }, st.output_formats)
      assert.are.equal("processing", req("GET", B .. "/" .. id).json.status)
      s:advance(90)                                         -- t2 fails at half of 180 s
      local g = req("GET", B .. "/" .. id).json
      assert.are.same({ total = 5, queued = 1, running = 3, completed = 0, failed = 1,
        cancelled = 0 }, g.counts)
      s:advance(90)
      g = req("GET", B .. "/" .. id).json
      assert.are.equal("processing", g.status)
      assert.are.equal(2, g.counts.completed)       -- t4 started at 90, t5 at 180
      s:advance(180)
      g = req("GET", B .. "/" .. id).json
      assert.are.equal("completed_with_errors", g.status)
      assert.are.same({ total = 5, queued = 0, running = 0, completed = 4, failed = 1,
        cancelled = 0 }, g.counts)
      assert.are.equal("2026-01-01T00:06:00.000Z", g.completed_at)
      assert.is_true(math.abs(g.cost - 0.40) < 1e-9)       -- the failed task is refunded
    end)

  it("completes when every member completes", function()
    local id = new_batch({ mode = "instant" })
    assert.are.equal(200, add(id, { { query = "a" }, { query = "b" } }).status)
    s:advance(20)
    local g = req("GET", B .. "/" .. id).json
    assert.are.equal("completed", g.status)
    assert.are.equal(2, g.counts.completed)
  end)

  it("adds atomically: one bad task or a short balance adds none", function()
    local id = new_batch({ mode = "fast" })
    local r = add(id, { { query = "ok" }, { query = "" }, { query = "x", hitl = {
      plan_review = true } } })
    assert.are.equal(400, r.status)
    assert.are.equal(0, #s:state().valyu.tasks)
    assert.are.equal(400, add(id, {}).status)
    local many = {}
    for i = 1, 101 do many[i] = { query = "q" .. i } end
    assert.are.equal(400, add(id, many).status)
    -- valyu-poor holds 0.20 USD: two fast tasks fit, three do not
    local poor = req("POST", B, { mode = "fast" }, "valyu-poor").json.batch_id
    r = add(poor, { { query = "a" }, { query = "b" }, { query = "c" } }, "valyu-poor")
    assert.are.equal(402, r.status)
    assert.are.equal(0, #s:state().valyu.tasks)
    assert.are.equal("open", req("GET", B .. "/" .. poor, nil, "valyu-poor").json.status)
    assert.are.equal(200, add(poor, { { query = "a" }, { query = "b" } }, "valyu-poor").status)
    assert.are.equal(404, add(poor, { { query = "a" } }).status) -- another organisation's
  end)

  it("pages members with limit, last_key and has_more, filters by status, includes output",
    function()
      local id = new_batch({ mode = "fast" })
      local list = {}
      for i = 1, 5 do list[i] = { id = "t" .. i, query = "q" .. i } end
      add(id, list)
      local seen, key, pages = {}, nil, 0
      repeat
        local path = B .. "/" .. id .. "/tasks?limit=2" .. (key and ("&last_key=" .. key) or "")
        local r = req("GET", path)
        assert.are.equal(200, r.status, r.body)
        assert.are.equal(id, r.json.batch_id)
        assert.are.equal(#r.json.tasks, r.json.pagination.count)
        for _, t in ipairs(r.json.tasks) do seen[#seen + 1] = t.batch_task_id end
        pages = pages + 1
        key = r.json.pagination.has_more and r.json.pagination.last_key or nil
      until not key
      assert.are.same({ "t1", "t2", "t3", "t4", "t5" }, seen)
      assert.are.equal(3, pages)
      local q = req("GET", B .. "/" .. id .. "/tasks?status=queued").json
      assert.are.equal(2, #q.tasks)
      assert.is_false(q.pagination.has_more)
      assert.are.equal(400, req("GET", B .. "/" .. id .. "/tasks?status=bogus").status)
      assert.are.equal(400, req("GET", B .. "/" .. id .. "/tasks?limit=0").status)
      assert.are.equal(400, req("GET", B .. "/" .. id .. "/tasks?last_key=nope").status)
      s:advance(180)
      local done = req("GET", B .. "/" .. id .. "/tasks?status=completed&include_output=true")
      assert.are.equal(3, #done.json.tasks)
      assert.is_string(done.json.tasks[1].output)
      assert.is_nil(req("GET", B .. "/" .. id .. "/tasks").json.tasks[1].output)
    end)

  it("cancels an open or processing batch and its unfinished members, only once", function()
    local id = new_batch({ mode = "fast" })
    add(id, { { query = "a" }, { query = "b" }, { query = "c" }, { query = "d" } })
    s:advance(60)
    local r = req("POST", B .. "/" .. id .. "/cancel")
    assert.are.equal(200, r.status)
    assert.are.same({ batch_id = id, status = "cancelled", cancelled_count = 4 }, r.json)
    local g = req("GET", B .. "/" .. id).json
    assert.are.equal("cancelled", g.status)
    assert.are.equal(4, g.counts.cancelled)
    assert.are.equal(400, req("POST", B .. "/" .. id .. "/cancel").status)
    assert.are.equal(400, add(id, { { query = "late" } }).status)
    local empty = new_batch()
    assert.are.equal(0, req("POST", B .. "/" .. empty .. "/cancel").json.cancelled_count)
  end)

  it("lists the organisation's batches newest first under {batches: [...]}", function()
    local a = new_batch({ name = "a" })
    local b = new_batch({ name = "b" })
    req("POST", B, { name = "theirs" }, "valyu-other")
    local r = req("GET", B)
    assert.are.equal(200, r.status)
    assert.are.equal(2, #r.json.batches)
    assert.are.equal(b, r.json.batches[1].batch_id)
    assert.are.equal(a, r.json.batches[2].batch_id)
    assert.are.equal(1, #req("GET", B .. "?limit=1").json.batches)
    assert.are.equal(400, req("GET", B .. "?limit=101").status)
    local st = s:state().valyu.batches
    assert.are.equal(3, #st)
  end)
end)

-- Valyu batches through the client (issue 15 item 8) against the simulator, on its clock.
local dr = require "deepresearch"
local env = require "support.env"

describe("valyu batches", function()
  local s, client
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client = env.client(
      s, { provider = "valyu", api_key = "valyu-key", token = false, base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"
  -- Lua patterns, anchored by the simulator's fault matcher and by count() below.
  local TASKS_PATH = "/v1/deepresearch/batches/[^/]+/tasks"
  local BATCHES_PATH = "/v1/deepresearch/batches"

  local function briefs(n, fail_at)
    local out = {}
    for i = 1, n do out[i] = QUERY .. " #" .. i .. (i == fail_at and " [fail]" or "") end
    return out
  end

  -- Requests by method and route (the path without its query string).
  local function count(method, pattern)
    return env.count_requests(s, "^" .. method .. " " .. pattern .. "$")
  end
  local function posts_to(pattern) return count("POST", pattern) end

  -- The simulator's tasks of the batch (by batch_id), from /_sim/state.
  local function sim_tasks_of(batch_id)
    local out = {}
    for _, t in ipairs(s:state().valyu.tasks or {}) do
      if t.batch_id == batch_id then out[#out + 1] = t end
    end
    return out
  end

  it("runs a batch of 5 to completed_with_errors when one task fails", function()
    local b = dr.assert(client:batch_create{ name = "five", mode = "fast" })
    assert.is_string(b.batch_id)
    assert.equals("open", b.status)
    local added = dr.assert(client:batch_add(b.batch_id, briefs(5, 3)))
    assert.equals(5, added.added or #added.tasks)
    assert.equals(5, #added.tasks)
    assert.equals(5, #added.ids)
    local seen = {}
    local done = dr.assert(client:batch_wait(b.batch_id, {
      on_progress = function(x) seen[#seen + 1] = x.status end }))
    assert.equals("completed_with_errors", done.status)
    assert.equals(5, done.counts.total)
    assert.equals(1, done.counts.failed)
    assert.equals(4, done.counts.completed)
    assert.truthy(#seen >= 2)
    assert.equals("completed_with_errors", seen[#seen])
    -- A handful of polls over virtual minutes, not one per second.
    assert.truthy(count("GET", BATCHES_PATH .. "/[^/]+") < 40)
  end)

  it("gives every task an id of its own, and keeps the caller's", function()
    local b = dr.assert(client:batch_create{ mode = "fast" })
    local added = dr.assert(client:batch_add(b, { QUERY .. " a", { query = QUERY .. " b",
      id = "mine-1", metadata = { row = 7 } } }))
    assert.matches("^dr%-%x+%-1$", added.ids[1])
    assert.equals("mine-1", added.ids[2])
    local ids = {}
    for t in client:batch_tasks(b.batch_id) do ids[#ids + 1] = t.batch_task_id end
    table.sort(ids)
    assert.same({ added.ids[1], "mine-1" }, ids)
  end)

  it("pages through the tasks with a small limit, and filters by status", function()
    local b = dr.assert(client:batch_create{ mode = "fast" })
    dr.assert(client:batch_add(b.batch_id, briefs(5, 2)))
    dr.assert(client:batch_wait(b.batch_id))
    s:clear_requests()
    local n, seen = 0, {}
    for t, err in client:batch_tasks(b.batch_id, { limit = 2 }) do
      assert.is_nil(err)
      assert.truthy(t)
      assert.is_nil(seen[t.deepresearch_id])
      seen[t.deepresearch_id] = true
      n = n + 1
    end
    assert.equals(5, n)
    assert.equals(3, count("GET", TASKS_PATH))
    local failed = {}
    for t in client:batch_tasks(b.batch_id, { status = "failed", limit = 2 }) do
      failed[#failed + 1] = t
    end
    assert.equals(1, #failed)
    assert.equals("failed", failed[1].status)
    for t in client:batch_tasks(b.batch_id, { status = "completed", include_output = true }) do
      assert.is_string(t.output)
    end
  end)

  it("a wait past its timeout ends with timeout and the batch, which keeps running", function()
    local b = dr.assert(client:batch_create{ mode = "heavy" })
    dr.assert(client:batch_add(b.batch_id, briefs(2)))
    local _, err = client:batch_wait(b.batch_id, { timeout = 120 })
    assert.equals("timeout", err.code)
    assert.is_true(err.retryable)
    assert.equals("processing", err.batch.status)
    assert.equals("processing", dr.assert(client:batch_get(b.batch_id)).status)
  end)

  it("an iterator over a missing batch yields false, err once", function()
    local got = {}
    for t, err in client:batch_tasks("no-such-batch") do got[#got + 1] = { t, err } end
    assert.equals(1, #got)
    assert.is_false(got[1][1])
    assert.equals("not_found", got[1][2].code)
  end)

  it("cancels a batch: its wait ends with cancelled, a second cancel is refused", function()
    local b = dr.assert(client:batch_create{ mode = "heavy" })
    dr.assert(client:batch_add(b.batch_id, briefs(3)))
    s:advance(30)
    local ack = dr.assert(client:batch_cancel(b.batch_id))
    assert.equals("cancelled", ack.status)
    assert.equals(3, ack.cancelled_count)
    local _, err = client:batch_wait(b.batch_id)
    assert.equals("cancelled", err.code)
    assert.equals("cancelled", err.batch.status)
    assert.equals(3, err.batch.counts.cancelled)
    local _, again = client:batch_cancel(b.batch_id)
    assert.equals("invalid_request", again.code)
    assert.equals(400, again.status)
  end)

  it("gets and lists batches (a batch table stands for its id)", function()
    local b = dr.assert(client:batch_create{ name = "listed", mode = "fast",
      webhook_url = "http://127.0.0.1:9/hook", metadata = { team = "sales" } })
    assert.matches("^%x+$", b.webhook_secret)
    local got = dr.assert(client:batch_get(b))
    assert.equals(b.batch_id, got.batch_id)
    assert.equals("listed", got.name)
    local list = dr.assert(client:batch_list{ limit = 10 })
    assert.equals(b.batch_id, list[1].batch_id)
  end)

  it("validates locally and sends nothing", function()
    s:clear_requests()
    local _, err = client:batch_add("b-1", briefs(101))
    assert.equals("invalid_request", err.code)
    assert.matches("1..100", err.message)
    _, err = client:batch_add("b-1", {})
    assert.equals("invalid_request", err.code)
    _, err = client:batch_add("b-1", { "" })
    assert.equals("invalid_request", err.code)
    _, err = client:batch_add("b-1", { { query = QUERY, id = "x" }, { query = QUERY, id = "x" } })
    assert.matches("repeats", err.message)
    local long = string.rep("x", 7501)
    _, err = client:batch_add("b-1", { { query = QUERY, research_strategy = long,
      report_format = long } })
    assert.matches("15,000", err.message)
    _, err = client:batch_create{ mode = "turbo" }
    assert.equals("invalid_request", err.code)
    _, err = client:batch_create{ output_formats = { "docx" } }
    assert.equals("invalid_request", err.code)
    _, err = client:batch_create{ webhook_url = "http://example.com/hook" }
    assert.equals("invalid_request", err.code)
    _, err = client:batch_get("")
    assert.matches("batch id", err.message)
    _, err = client:batch_list{ limit = 0 }
    assert.equals("invalid_request", err.code)
    for _, e in client:batch_tasks("b-1", { status = "done" }) do
      assert.equals("invalid_request", e.code)
    end
    assert.equals(0, #s:requests())
    -- Mistyped fields raise at the caller's line, like every other method.
    assert.has_error(function() client:batch_add("b-1", { { qurey = QUERY } }) end,
      "bad option 'qurey' to 'batch_add' (did you mean 'query'?)")
    local ok, msg = pcall(function() client:batch_add("b-1", { 42 }) end)
    assert.is_false(ok)
    assert.matches("valyu_batch_spec.lua:%d+: bad argument #2 to 'batch_add'", msg)
    assert.has_error(function() client:batch_create{ nmae = "x" } end)
    assert.has_error(function() client:batch_wait("b-1", { on_progres = print }) end)
  end)

  it("takes create tables that repeat the batch's mode, formats and search; refuses others",
    function()
      local search = { included_sources = { "sec.gov" } }
      local b = dr.assert(client:batch_create{ mode = "fast",
        output_formats = { "markdown", "pdf" }, search = search })
      dr.assert(client:batch_add(b.batch_id, { QUERY }))
      assert.equals(0, count("GET", BATCHES_PATH .. "/[^/]+"), "a brief costs no lookup")
      local same = { query = QUERY, mode = "fast", output_formats = { "markdown", "pdf" },
        search = { included_sources = { "sec.gov" } } }
      local added = dr.assert(client:batch_add(b.batch_id, { same }))
      assert.equals(1, added.added)
      assert.equals(2, posts_to(TASKS_PATH))
      for _, over in ipairs{ { mode = "heavy" }, { output_formats = { "markdown" } },
        { search = { included_sources = { "arxiv.org" } } } } do
        local t = { query = QUERY }
        for k, v in pairs(over) do t[k] = v end
        local r, err = client:batch_add(b.batch_id, { QUERY, t })
        assert.is_nil(r)
        assert.equals("invalid_request", err.code)
        assert.matches("tasks%[2%]%." .. next(over) .. " differs", err.message)
      end
      assert.equals(2, posts_to(TASKS_PATH))
      assert.has_error(function() client:batch_add(b.batch_id, { { query = QUERY,
        hitl = { plan_review = true } } }) end)
    end)

  it("counts a CJK strategy in characters", function()
    local b = dr.assert(client:batch_create{ mode = "fast" })
    local cjk = string.rep("研", 6000) -- 18,000 bytes, 6,000 characters
    dr.assert(client:batch_add(b.batch_id, { { query = QUERY, research_strategy = cjk } }))
  end)

  describe("never pays twice", function()
    it("a lost add answer is found in the batch's tasks: one POST, no second reservation",
      function()
        local b = dr.assert(client:batch_create{ mode = "fast" })
        s:fault{ method = "POST", path = TASKS_PATH, kind = "drop", after = true, count = 1 }
        local added = dr.assert(client:batch_add(b.batch_id, briefs(4)))
        assert.is_true(added.reconciled)
        assert.equals(4, added.added)
        assert.equals(4, #added.tasks)
        for _, t in ipairs(added.tasks) do assert.is_string(t.deepresearch_id) end
        assert.equals(1, posts_to(TASKS_PATH))
        assert.equals(4, #sim_tasks_of(b.batch_id))
      end)

    it("an add that never happened is ambiguous, not resent; the same ids added again " ..
      "make the tasks once", function()
      local b = dr.assert(client:batch_create{ mode = "fast" })
      s:fault{ method = "POST", path = TASKS_PATH, kind = "drop", count = 1 }
      local _, err = client:batch_add(b.batch_id, briefs(3))
      assert.equals("ambiguous", err.code)
      assert.is_false(err.retryable)
      assert.equals(3, #err.ids)
      assert.equals(0, #err.found)
      assert.equals(1, posts_to(TASKS_PATH))
      assert.equals(0, #sim_tasks_of(b.batch_id))
      -- The caller re-adds with the ids it was given.
      local again = {}
      for i, q in ipairs(briefs(3)) do again[i] = { query = q, id = err.ids[i] } end
      local added = dr.assert(client:batch_add(b.batch_id, again))
      assert.same(err.ids, added.ids)
      assert.equals(3, #sim_tasks_of(b.batch_id))
    end)

    it("a refused add (402) is not looked up and adds nothing", function()
      local poor = env.client(s, { provider = "valyu", api_key = "valyu-poor", token = false })
      local b = dr.assert(poor:batch_create{ mode = "heavy" })
      local _, err = poor:batch_add(b.batch_id, briefs(5))
      assert.equals("insufficient_credits", err.code)
      assert.equals(0, count("GET", TASKS_PATH))
      assert.equals(0, #sim_tasks_of(b.batch_id))
      poor:close()
    end)

    it("a lost batch create answer is found by its nonce: one batch", function()
      s:fault{ method = "POST", path = BATCHES_PATH, kind = "drop", after = true, count = 1 }
      local b = dr.assert(client:batch_create{ name = "lost", mode = "fast" })
      assert.is_true(b.reconciled)
      assert.equals("lost", b.name)
      assert.equals(1, posts_to(BATCHES_PATH))
      assert.equals(1, #dr.assert(client:batch_list{}))
    end)
  end)

  -- Answers no simulator gives: a cursor that never ends, entries that are not objects.
  describe("a server whose lists are not the API's", function()
    local hostile = require "support.hostile"
    local server, c
    setup(function()
      server = hostile.start([[
local TASK = '{"deepresearch_id":"t","status":"queued","batch_task_id":"x"}'
return function(method, path)
  local scenario, rest = path:match("^/(%w+)(/.*)$")
  if rest:match("^/v1/deepresearch/batches$") or rest:match("^/v1/deepresearch/batches%?") then
    return 200, '{"batches":[1,"a",null,{"batch_id":"b1","status":"open"}]}'
  end
  local key = tonumber(rest:match("last_key=k(%d+)") or "0")
  local pages = {
    empty = '{"tasks":[],"pagination":{"has_more":true,"last_key":"k' .. key + 1 .. '"}}',
    same = '{"tasks":[' .. TASK .. '],"pagination":{"has_more":true,"last_key":"k1"}}',
    back = '{"tasks":[' .. TASK .. '],"pagination":{"has_more":true,"last_key":"k' ..
      (key + 1) % 3 .. '"}}',
    endless = '{"tasks":[' .. TASK .. '],"pagination":{"has_more":true,"last_key":"k' ..
      key + 1 .. '"}}',
    nulls = '{"tasks":[null,5,' .. TASK .. '],"pagination":{"has_more":false}}',
  }
  if rest:match("/tasks") and method == "POST" then return nil end -- no answer: lost
  if rest:match("/tasks") and pages[scenario] then return 200, pages[scenario] end
  return 404, '{"error":"not found"}'
end]])
    end)
    teardown(function() server.stop() end)
    after_each(function() if c then c:close() end end)

    local function on(scenario)
      c = dr.client{ provider = "valyu", api_key = "k", base_url = server.url .. "/" ..
        scenario, timeout = 5, base_delay = 0.01, max_retries = 0 }
      return c
    end

    local function drain(scenario, limit)
      local got, errs = 0, {}
      for t, err in on(scenario):batch_tasks("b1", { limit = limit }) do
        if t then got = got + 1 else errs[#errs + 1] = err end
        assert.truthy(got + #errs < 20000, "the iterator does not stop")
      end
      return got, errs
    end

    it("an empty page that says has_more ends the listing with invalid_response", function()
      local got, errs = drain("empty")
      assert.equals(0, got)
      assert.equals(1, #errs)
      assert.equals("invalid_response", errs[1].code)
      assert.matches("empty page", errs[1].message)
      assert.equals(1, server.count("^GET /empty/"))
    end)

    it("a last_key that does not move, or comes back, ends the listing", function()
      local got, errs = drain("same")
      assert.equals(2, got)
      assert.equals("invalid_response", errs[1].code)
      got, errs = drain("back") -- k1, k2, k0, then k1 again
      assert.equals(4, got)
      assert.equals("invalid_response", errs[1].code)
      assert.equals(4, server.count("^GET /back/"))
    end)

    it("a listing that never ends stops after MAX_LISTED tasks", function()
      local batch = require "deepresearch.providers.valyu_batch"
      local max = batch.MAX_LISTED
      batch.MAX_LISTED = 5
      local ok, got, errs = pcall(drain, "endless")
      batch.MAX_LISTED = max
      assert.is_true(ok, got)
      assert.equals(5, got)
      assert.equals("invalid_response", errs[1].code)
      assert.matches("after 5 tasks", errs[1].message)
      assert.equals(5, server.count("^GET /endless/"))
    end)

    it("a task page or batch list with entries that are not objects is invalid_response",
      function()
        local got, errs = drain("nulls")
        assert.equals(0, got)
        assert.equals("invalid_response", errs[1].code)
        local list, err = on("nulls"):batch_list{}
        assert.is_nil(list)
        assert.equals("invalid_response", err.code)
      end)

    it("a lost add whose lookup loops is ambiguous, after one POST", function()
      local _, err = on("empty"):batch_add("b1", { QUERY })
      assert.equals(1, server.count("^POST /empty/"))
      assert.equals("ambiguous", err.code)
      assert.equals("invalid_response", err.reconcile_error.code)
    end)
  end)
end)

-- The simulator's Extruct Deep Search surface (CONTRACT A.3, C.3 D1-D6), on virtual time.
local sim = require "support.sim"

local s

local function api(method, path, body, token)
  return assert(
    s:http(method, path, { headers = { Authorization = "Bearer " .. (token or "test-token") },
    body = body }))
end

local function create(body, token) return api("POST", "/v1/discovery_tasks", body, token) end
local function get(id, token) return api("GET", "/v1/discovery_tasks/" .. id, nil, token) end

local function check_invariants(t)
  assert.is_true(t.num_results <= t.num_results_evaluated)
  assert.is_true(t.num_results_evaluated <= t.num_results_enriched)
  assert.is_true(t.num_results_enriched <= t.num_results_discovered)
end

local COUNTERS = {
  "num_results_discovered", "num_results_enriched", "num_results_evaluated", "num_results" }

-- Steps virtual time until done, checking invariants and monotonic counters on the way.
local function run_to_end(id, step)
  local prev = get(id).json
  local seen_exhausted_running = false
  for _ = 1, 500 do
    s:advance(step or 3)
    local t = get(id).json
    check_invariants(t)
    for _, k in ipairs(COUNTERS) do assert.is_true(t[k] >= prev[k], k) end
    if prev.is_exhausted then assert.is_true(t.is_exhausted) end
    if t.is_exhausted and t.status == "in_progress" then seen_exhausted_running = true end
    prev = t
    if t.status == "done" or t.status == "failed" then return t, seen_exhausted_running end
  end
  error("discovery task never finished")
end

describe("simulator: Deep Search create (D1, D2)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  local function first_error(body)
    local r = create(body)
    assert.equals(422, r.status)
    return r.json.detail[1]
  end

  it("validates the body with pydantic-shaped 422 items", function()
    local d = first_error({ query = "SaaS", desired_num_results = 300 })
    assert.same({ type = "less_than_equal", loc = { "body", "desired_num_results" },
      msg = "Input should be less than or equal to 250", input = 300, ctx = { le = 250 } }, d)
    d = first_error({ query = "SaaS", desired_num_results = 0 })
    assert.same({ "greater_than_equal", 1 }, { d.type, d.ctx.ge })
    assert.equals("missing", first_error({ desired_num_results = 5 }).type)
    assert.equals("string_too_short", first_error({ query = "" }).type)
    d = first_error({ query = "SaaS", data_sources = { "web_search", "fax" } })
    assert.same({ "enum", { "body", "data_sources", 1 } }, { d.type, d.loc })
    d = first_error({ query = "SaaS", criteria = { { key = "a", name = "A" } } })
    assert.same({ "missing", { "body", "criteria", 0, "criterion" } }, { d.type, d.loc })
    d = first_error({
      query = "SaaS", criteria = { { key = "a", name = "A", criterion = "Is a SaaS company" },
      { key = "a", name = "B", criterion = "Sells to logistics firms" } } })
    assert.same({ "value_error", { "body", "criteria" } }, { d.type, d.loc })
    local ids = {}
    for i = 1, 101 do ids[i] = "00000000-0000-4000-8000-" .. string.format("%012d", i) end
    d = first_error({ query = "SaaS", exclude_task_ids = ids })
    assert.same({ "too_long", 100 }, { d.type, d.ctx.max_length })
    assert.equals("json_invalid", first_error("{").type)
  end)

  it("gates creation on the Pro plan", function()
    local r = create({ query = "SaaS" }, "free-token")
    assert.equals(402, r.status)
    assert.same({ detail = { error = "plan_required" } }, r.json)
    assert.equals(0, s:counter("discovery.tasks_created"))
  end)

  it("creates a task with zero counters, defaults and generated criteria", function()
    local r = create({ query = "Logistics SaaS in Germany",
      exclude_domains = { "https://www.Acme.com/about", "ACME.com", "foo.io", "shop.bar.co.uk" } })
    assert.equals(200, r.status)
    local t = r.json
    assert.equals("created", t.status)
    assert.equals(100, t.desired_num_results)
    assert.is_false(t.is_exhausted)
    for _, k in ipairs(COUNTERS) do assert.equals(0, t[k]) end
    assert.is_true(t.auto_data_sources)
    assert.matches('"table_id":null', r.body)
    assert.same({ "acme.com", "bar.co.uk", "foo.io" }, t.exclude_domains)
    assert.is_true(#t.criteria >= 2 and #t.criteria <= 5)
    for _, c in ipairs(t.criteria) do
      assert.is_string(c.key)
      assert.is_string(c.name)
      assert.is_string(c.criterion)
    end
    assert.same(t.criteria, get(t.id).json.criteria)
    assert.equals(1, s:counter("discovery.tasks_created"))
  end)

  it("keeps the caller's criteria and sends an empty exclusion list as []", function()
    local criteria = { { key = "saas", name = "SaaS", criterion = "Sells software as a service" } }
    local r = create({
      query = "SaaS", criteria = criteria, data_sources = { "linkedin" },
      auto_data_sources = false })
    assert.same(criteria, r.json.criteria)
    assert.same({ "linkedin" }, r.json.data_sources)
    assert.matches('"exclude_domains":%[%]', r.body)
  end)
end)

describe("simulator: Deep Search progress and results (D3, D4)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("reaches the desired number of high-fit results and stops", function()
    local id = create({ query = "Logistics SaaS", desired_num_results = 10 }).json.id
    local t = run_to_end(id)
    assert.equals("done", t.status)
    assert.is_false(t.is_exhausted)
    assert.is_true(t.num_results >= 10)
  end)

  it("exhausts a small pool, possibly while still in progress, then finishes", function()
    local id = create({ query = "Logistics SaaS", desired_num_results = 100 }).json.id
    local t, exhausted_running = run_to_end(id)
    assert.equals("done", t.status)
    assert.is_true(t.is_exhausted)
    assert.is_true(exhausted_running)
    assert.is_true(t.num_results < 100)
  end)

  it("serves results sorted by relevance, paged, with a score per criterion", function()
    local task = create({ query = "Logistics SaaS", desired_num_results = 15 }).json
    run_to_end(task.id)
    local all, offset = {}, 0
    while true do
      local r = api(
        "GET", "/v1/discovery_tasks/" .. task.id .. "/results?offset=" .. offset .. "&limit=4")
      assert.equals(200, r.status)
      assert.equals(task.id, r.json.id)
      assert.equals("done", r.json.status)
      for _, row in ipairs(r.json.results) do all[#all + 1] = row end
      if #r.json.results < 4 then break end
      offset = offset + 4
    end
    local final = get(task.id).json
    assert.equals(final.num_results, #all)
    local fields = {
      "id", "task_id", "company_name", "company_description", "company_website", "relevance",
      "created_at", "source", "scores", "employee_count", "hq_country", "hq_state_province",
      "hq_city",
      "company_full_description" }
    for i, row in ipairs(all) do
      for _, f in ipairs(fields) do assert.is_not_nil(row[f], f) end
      if i > 1 then assert.is_true(all[i - 1].relevance >= row.relevance) end
      local high = 0
      for _, c in ipairs(final.criteria) do
        local sc = row.scores[c.key]
        assert.is_true(sc.grade >= 1 and sc.grade <= 5)
        assert.is_string(sc.explanation)
        assert.is_string(sc.sources[1])
        if sc.grade >= 4 then high = high + 1 end
      end
      assert.is_true(high >= 0.75 * #final.criteria)
    end
  end)

  it("serves results while running, and 404 for unknown or foreign tasks", function()
    local id = create({ query = "Logistics SaaS" }).json.id
    local r = api("GET", "/v1/discovery_tasks/" .. id .. "/results")
    assert.equals(200, r.status)
    assert.matches('"results":%[%]', r.body)
    assert.equals(404, get(id, "other-org-token").status)
    assert.equals(200, get(id, "teammate-token").status)
    assert.equals(404, api("GET", "/v1/discovery_tasks/nope/results").status)
    assert.equals(422, api("GET", "/v1/discovery_tasks/" .. id .. "/results?limit=x").status)
  end)
end)

describe("simulator: Deep Search resume and list (D5, D6)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("resumes a finished task for more results", function()
    local id = create({ query = "Logistics SaaS", desired_num_results = 5 }).json.id
    local before = run_to_end(id)
    local r = api("POST", "/v1/discovery_tasks/" .. id .. "/resume", { desired_new_results = 5 })
    assert.equals(200, r.status)
    assert.equals("in_progress", r.json.status)
    assert.equals(10, r.json.desired_num_results)
    local after = run_to_end(id)
    assert.is_true(after.num_results >= 10)
    assert.is_true(after.num_results_discovered > before.num_results_discovered)
    assert.equals(
      35, api("POST", "/v1/discovery_tasks/" .. id .. "/resume").json.desired_num_results)
  end)

  it("refuses to resume an exhausted task and checks the range", function()
    local id = create({ query = "Logistics SaaS", desired_num_results = 200 }).json.id
    local r = api("POST", "/v1/discovery_tasks/" .. id .. "/resume", { desired_new_results = 251 })
    assert.equals(422, r.status)
    assert.equals("less_than_equal", r.json.detail[1].type)
    r = api("POST", "/v1/discovery_tasks/" .. id .. "/resume", { desired_new_results = -1 })
    assert.equals("greater_than_equal", r.json.detail[1].type)
    assert.equals(
      250, api("POST", "/v1/discovery_tasks/" .. id .. "/resume", { desired_new_results = 250 })
      .json.desired_num_results)
    run_to_end(id)
    r = api("POST", "/v1/discovery_tasks/" .. id .. "/resume")
    assert.equals(400, r.status)
    assert.is_string(r.json.detail)
    assert.equals(404, api("POST", "/v1/discovery_tasks/nope/resume").status)
  end)

  it("lists tasks newest first with paging", function()
    local ids = {}
    for i = 1, 3 do
      ids[i] = create({ query = "Query " .. i }).json.id
      s:advance(1)
    end
    local all = api("GET", "/v1/discovery_tasks").json
    assert.same({ ids[3], ids[2], ids[1] }, { all[1].id, all[2].id, all[3].id })
    assert.same({ ids[2] }, { api("GET", "/v1/discovery_tasks?offset=1&limit=1").json[1].id })
    assert.equals("[]", api("GET", "/v1/discovery_tasks", nil, "other-org-token").body)
    assert.equals(3, #s:state().discovery.tasks)
  end)

  it("excludes the visible results of earlier done tasks", function()
    local first = create({ query = "Logistics SaaS", desired_num_results = 5 }).json.id
    run_to_end(first)
    local rows = api("GET", "/v1/discovery_tasks/" .. first .. "/results").json.results
    local t = create({ query = "Logistics SaaS", exclude_task_ids = { first } }).json
    local excluded = {}
    for _, d in ipairs(t.exclude_domains) do excluded[d] = true end
    for _, row in ipairs(rows) do assert.is_true(excluded[row.company_website]) end
  end)
end)

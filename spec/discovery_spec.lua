-- Extruct Deep Search through the client, against the simulator.
local dr = require "deepresearch"
local discovery = require "deepresearch.providers.discovery"
local env = require "support.env"

describe("discovery", function()
  local s, client
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client = env.client(s, { base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local QUERY = "B2B logistics software vendors in Germany with 50-500 employees"
  local CRITERIA = {
    { key = "logistics", name = "Logistics focus",
    criterion = "Sells software to logistics companies" },
    { key = "germany", name = "German HQ", criterion = "Headquartered in Germany" },
  }

  describe("create", function()
    it("creates a task with zero counters and the given criteria", function()
      local t = dr.assert(
        client:discovery_create{ query = QUERY, desired_num_results = 20, criteria = CRITERIA,
        auto_data_sources = false, data_sources = { "web_search", "linkedin" },
        exclude_domains = { "https://www.Acme.com/about" } })
      assert.equals("created", t.status)
      assert.equals(20, t.desired_num_results)
      assert.equals(0, t.num_results)
      assert.equals("logistics", t.criteria[1].key)
      assert.same({ "acme.com" }, t.exclude_domains)
      assert.equals(1, s:counter("discovery.tasks_created"))
    end)

    it("validates locally: ranges, enums, criteria, exclusions; nothing sent", function()
      local before = #s:requests()
      local cases = {
        { query = "" },
        { query = QUERY, desired_num_results = 0 },
        { query = QUERY, desired_num_results = 251 },
        { query = QUERY, desired_num_results = 2.5 },
        { query = QUERY, data_sources = { "twitter" } },
        { query = QUERY, criteria = { { key = "a", name = "A" } } },
        { query = QUERY, criteria = { CRITERIA[1], CRITERIA[1] } },
        { query = QUERY,
        criteria = { { key = "1bad", name = "x", criterion = "some criterion here" } } },
      }
      local ids = {}
      for i = 1, 101 do ids[i] = string.format("00000000-0000-4000-8000-%012d", i) end
      cases[#cases + 1] = { query = QUERY, exclude_task_ids = ids }
      for i, p in ipairs(cases) do
        local t, err = client:discovery_create(p)
        assert.is_nil(t, "case " .. i)
        assert.equals("invalid_request", err.code, "case " .. i)
      end
      assert.equals(before, #s:requests())
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() client:discovery_create() end)
      assert.has_error(function() client:discovery_create{ query = 5 } end)
      assert.has_error(function() client:discovery_create{ query = QUERY, criteria = "x" } end)
    end)

    it("maps 402 plan_required for a plan without Deep Search", function()
      local c = env.client(s, { token = "free-token" })
      local _, err = c:discovery_create{ query = QUERY }
      assert.equals("plan_required", err.code)
      c:close()
    end)
  end)

  describe("get, list, results", function()
    it("gets and lists tasks newest first", function()
      local a = dr.assert(client:discovery_create{ query = QUERY .. " A" })
      s:advance(1)
      local b = dr.assert(client:discovery_create{ query = QUERY .. " B" })
      assert.equals(a.id, dr.assert(client:discovery_get(a.id)).id)
      local list = dr.assert(client:discovery_list{ offset = 0, limit = 10 })
      assert.equals(b.id, list[1].id)
      assert.equals(a.id, list[2].id)
      local _, err = client:discovery_get("missing")
      assert.equals("not_found", err.code)
    end)

    it("waits until done, reporting the four counters and is_exhausted", function()
      local t = dr.assert(
        client:discovery_create{ query = QUERY, desired_num_results = 10, criteria = CRITERIA })
      local seen = {}
      local done = dr.assert(
        client:discovery_wait(t.id, { on_progress = function(x) seen[#seen + 1] = x end }))
      assert.equals("done", done.status)
      assert.truthy(#seen >= 2)
      for _, x in ipairs(seen) do
        assert.truthy(x.num_results <= x.num_results_evaluated)
        assert.truthy(x.num_results_evaluated <= x.num_results_enriched)
        assert.truthy(x.num_results_enriched <= x.num_results_discovered)
      end
    end)

    it("keeps waiting past is_exhausted by default, and stops there when asked", function()
      s:config{ discovery = { pool = 8, exhaust_lag = 120 } }
      local t = dr.assert(client:discovery_create{ query = QUERY, desired_num_results = 100 })
      local early = dr.assert(client:discovery_wait(t.id, { until_exhausted = true }))
      assert.is_true(early.is_exhausted)
      assert.equals("in_progress", early.status)
      local final = dr.assert(client:discovery_wait(t.id))
      assert.equals("done", final.status)
    end)

    it("pages through results by relevance, stopping at a short page", function()
      local t = dr.assert(
        client:discovery_create{ query = QUERY, desired_num_results = 12, criteria = CRITERIA })
      dr.assert(client:discovery_wait(t.id))
      local page = dr.assert(client:discovery_results(t.id, { offset = 0, limit = 5 }))
      assert.equals(t.id, page.id)
      assert.equals(5, #page.results)
      s:clear_requests()
      local rows, last = 0, math.huge
      for row in client:discovery_each(t.id, { limit = 5 }) do
        assert.truthy(row.relevance <= last)
        last = row.relevance
        rows = rows + 1
      end
      assert.truthy(rows >= 1)
      local pages = env.count_requests(s, "^GET /v1/discovery_tasks/[^/]+/results$")
      assert.equals(math.floor(rows / 5) + 1, pages)
    end)

    it("discovery_pages yields whole pages", function()
      local t = dr.assert(client:discovery_create{ query = QUERY, desired_num_results = 6 })
      dr.assert(client:discovery_wait(t.id))
      local n = 0
      for page in client:discovery_pages(t.id, { limit = 2 }) do
        assert.is_table(page.results)
        n = n + 1
      end
      assert.truthy(n >= 1)
    end)
  end)

  describe("resume", function()
    it("asks for more results", function()
      local t = dr.assert(client:discovery_create{ query = QUERY, desired_num_results = 5 })
      dr.assert(client:discovery_wait(t.id))
      local r = dr.assert(client:discovery_resume(t.id, { desired_new_results = 5 }))
      assert.equals(10, r.desired_num_results)
    end)

    it("an exhausted task answers 400: error code exhausted", function()
      s:config{ discovery = { pool = 4 } }
      local t = dr.assert(client:discovery_create{ query = QUERY, desired_num_results = 50 })
      dr.assert(client:discovery_wait(t.id))
      local _, err = client:discovery_resume(t.id, { desired_new_results = 5 })
      assert.equals("exhausted", err.code)
      assert.equals(400, err.status)
      assert.equals(1, err.attempts)
    end)

    it("validates desired_new_results", function()
      local _, err = client:discovery_resume("x", { desired_new_results = 300 })
      assert.equals("invalid_request", err.code)
    end)
  end)

  describe("grades and high fit", function()
    local result = { scores = {
      a = { grade = 5, explanation = "yes", sources = { "https://a.example" } },
      b = { grade = 4, explanation = "mostly" },
      c = { grade = 4, explanation = "mostly" },
      d = { grade = 2, explanation = "no" },
    } }
    local criteria = { { key = "a", name = "A" }, { key = "b", name = "B" },
      { key = "c", name = "C" },
      { key = "d", name = "D" } }

    it("lists grades with names and explanations", function()
      local g = discovery.grades(result, criteria)
      assert.equals(4, #g)
      assert.equals("a", g[1].key)
      assert.equals("A", g[1].name)
      assert.equals(5, g[1].grade)
      assert.equals("yes", g[1].explanation)
    end)

    it("high fit needs at least 75% of criteria graded 4 or 5", function()
      assert.is_true(discovery.high_fit(result, criteria))
      local worse = {
        scores = { a = { grade = 5 }, b = { grade = 3 }, c = { grade = 4 }, d = { grade = 2 } } }
      assert.is_false(discovery.high_fit(worse, criteria))
      assert.is_false(discovery.high_fit({ scores = {} }, {}))
    end)

    it("agrees with the simulator's rows", function()
      local t = dr.assert(
        client:discovery_create{ query = QUERY, desired_num_results = 5, criteria = CRITERIA })
      local done = dr.assert(client:discovery_wait(t.id))
      local page = dr.assert(client:discovery_results(t.id, { limit = 50 }))
      for _, row in ipairs(page.results) do
        assert.is_true(discovery.high_fit(row, done.criteria))
      end
    end)
  end)

  -- Issue 15 item 12 (audit M8): the vendor's API skill lists extruct_db beside the three.
  describe("the extruct_db data source", function()
    it("is accepted and sent, and the simulator's candidates come from it", function()
      local t = dr.assert(client:discovery_create{ query = QUERY, desired_num_results = 5,
        criteria = CRITERIA, auto_data_sources = false, data_sources = { "extruct_db" } })
      assert.same({ "extruct_db" }, t.data_sources)
      local body = s:requests()[#s:requests()].body
      assert.truthy(tostring(body):find('"extruct_db"', 1, true))
      dr.assert(client:discovery_wait(t.id))
      local page = dr.assert(client:discovery_results(t.id, { limit = 50 }))
      assert.is_true(#page.results > 0)
      for _, row in ipairs(page.results) do assert.equals("extruct_db", row.source) end
    end)

    it("is one of the data sources the client checks against, beside the three", function()
      assert.same({ "web_search", "extruct_db", "linkedin", "maps" }, discovery.DATA_SOURCES)
      local _, err = client:discovery_create{ query = QUERY, data_sources = { "extruct" } }
      assert.equals("invalid_request", err.code)
      assert.truthy(err.message:find("extruct_db", 1, true), err.message)
    end)
  end)
end)

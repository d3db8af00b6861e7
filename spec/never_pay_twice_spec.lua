-- Issue "Never pay twice, never hang": the library's side. Each case reproduces one way a
-- create could turn into a second paid task (or a wait could crash), and counts the
-- simulator's tasks and requests.
local dr = require "deepresearch"
local env = require "support.env"

local PATH = "/v1/deep_research_tasks"
local VPATH = "/v1/deepresearch/tasks"
local ENVOY_503 = "upstream connect error or disconnect/reset before headers. reset reason: " ..
  "connection termination"
local HTML_504 = "<html><head><title>504 Gateway Time-out</title></head><body>504</body></html>"

describe("never pay twice (library)", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client, clock = env.client(s, { base_delay = 0.01, max_delay = 0.02 })
  end)
  after_each(function() client:close() end)

  local function created() return s:counter("extruct.tasks_created") end
  local function posts() return env.count_requests(s, "^POST " .. PATH .. "$") end
  local function list_fails() s:fault{ method = "GET", path = PATH, status = 503, count = -1 } end

  describe("item 3: a 503 that is not the API's", function()
    it("is not retried: one POST, one task, found again by the reconcile", function()
      s:fault{
        method = "POST", path = PATH, status = 503, body = ENVOY_503, after = true, count = -1 }
      local task = dr.assert(client:create{ brief = env.BRIEF })
      assert.is_true(task.reconciled)
      assert.equals(1, posts())
      assert.equals(1, created())
    end)

    it("ends ambiguous with status 503 when the reconcile cannot find the task", function()
      s:fault{
        method = "POST", path = PATH, status = 503, body = ENVOY_503, after = true, count = -1 }
      list_fails()
      local task, err = client:create{ brief = env.BRIEF }
      assert.is_nil(task)
      assert.equals("ambiguous", err.code)
      assert.equals(503, err.status)
      assert.is_false(err.retryable)
      assert.equals(1, posts())
      assert.equals(1, created())
    end)

    it("an HTML 503 page is not the API's either", function()
      s:fault{ method = "POST", path = PATH, status = 503, after = true, count = -1,
        body = "<html><title>503 Service Unavailable</title></html>" }
      list_fails()
      local _, err = client:create{ brief = env.BRIEF }
      assert.equals("ambiguous", err.code)
      assert.equals(1, posts())
      assert.equals(1, created())
    end)

    it("the API's own JSON 503 (nothing created) is still retried", function()
      s:fault{ method = "POST", path = PATH, status = 503, count = 2 }
      local task = dr.assert(client:create{ brief = env.BRIEF })
      assert.is_nil(task.reconciled)
      assert.equals(3, posts())
      assert.equals(1, created())
    end)

    it("a gateway's JSON 503 that is not the API's error shape is not retried either", function()
      for _, body in ipairs({
        '{"status":503,"error":"Service Unavailable","path":"/v1/deep_research_tasks"}',
        '{"detail":{"reason":"upstream"}}', '{"message":"Service Unavailable"}' }) do
        s:reset()
        s:fault{ method = "POST", path = PATH, status = 503, body = body, after = true, count = -1 }
        local task = dr.assert(client:create{ brief = env.BRIEF })
        assert.is_true(task.reconciled)
        assert.equals(1, posts())
        assert.equals(1, created())
      end
    end)

    it("Valyu: a gateway's JSON 503 without Valyu's error shape is not retried", function()
      local v = env.client(s, { provider = "valyu", api_key = "valyu-key", base_delay = 0.01 })
      s:fault{ method = "POST", path = VPATH, status = 503, after = true, count = -1,
        body = '{"status":503,"error":"Service Unavailable"}' }
      local task = dr.assert(
        v:create{ query = "Warehouse automation revenue of Acme since 2023", mode = "fast" })
      v:close()
      assert.is_true(task.reconciled)
      assert.equals(1, env.count_requests(s, "^POST " .. VPATH .. "$"))
      assert.equals(1, s:counter("valyu.tasks_created"))
    end)

    it("Valyu: a proxy's 503 after forwarding is not retried", function()
      local v = env.client(s, { provider = "valyu", api_key = "valyu-key", base_delay = 0.01 })
      s:fault{
        method = "POST", path = VPATH, status = 503, body = ENVOY_503, after = true, count = -1 }
      s:fault{ method = "GET", path = "/v1/deepresearch/list", status = 503, count = -1 }
      local _, err = v:create{
        query = "Warehouse automation revenue of Acme since 2023", mode = "fast" }
      v:close()
      assert.equals("ambiguous", err.code)
      assert.equals(503, err.status)
      assert.equals(1, env.count_requests(s, "^POST " .. VPATH .. "$"))
      assert.equals(1, s:counter("valyu.tasks_created"))
    end)
  end)

  describe("item 4: an unreadable 2xx or a non-API 5xx to a create", function()
    local function ambiguous_with(fault, status)
      fault.method, fault.path, fault.after, fault.count = "POST", PATH, true, -1
      s:fault(fault)
      list_fails()
      local task, err = client:create{ brief = env.BRIEF }
      assert.is_nil(task)
      assert.equals("ambiguous", err.code)
      assert.equals(status, err.status)
      assert.is_false(err.retryable)
      assert.equals(1, posts())
      assert.equals(1, created())
      return err
    end

    it("invalid JSON in a 200 ends ambiguous, never invalid_response", function()
      local err = ambiguous_with({ kind = "invalid_json" }, 200)
      assert.equals("invalid_response", err.cause.code)
    end)

    it("an empty 200 ends ambiguous", function() ambiguous_with({ kind = "empty" }, 200) end)
    it("a 200 of the wrong shape ends ambiguous", function()
      ambiguous_with({ kind = "wrong_shape" }, 200)
    end)
    it("an HTML 502 page ends ambiguous", function() ambiguous_with({ kind = "html502" }, 502) end)
    it("an HTML 504 page ends ambiguous", function()
      ambiguous_with({ status = 504, body = HTML_504 }, 504)
    end)
    it("a JSON 500 ends ambiguous", function() ambiguous_with({ status = 500 }, 500) end)

    it("an unreadable 200 is reconciled when the list works", function()
      s:fault{ method = "POST", path = PATH, kind = "invalid_json", after = true, count = -1 }
      local task = dr.assert(client:create{ brief = env.BRIEF, depth = "high" })
      assert.is_true(task.reconciled)
      assert.equals("high", task.depth)
      assert.equals(1, posts())
      assert.equals(1, created())
    end)

    it("a 4xx answer made nothing: the server's error, no reconcile", function()
      s:fault{ method = "POST", path = PATH, status = 429, count = -1 }
      local _, err = client:create{ brief = env.BRIEF }
      assert.equals("rate_limited", err.code)
      assert.equals(0, env.count_requests(s, "^GET " .. PATH .. "$"))
      assert.equals(0, created())
    end)

    it("Valyu: a 200 without a deepresearch_id ends ambiguous", function()
      local v = env.client(s, { provider = "valyu", api_key = "valyu-key", base_delay = 0.01 })
      s:fault{
        method = "POST", path = VPATH, status = 200, body = '{"status":"queued"}', after = true }
      s:fault{ method = "GET", path = "/v1/deepresearch/list", status = 503, count = -1 }
      local _, err = v:create{
        query = "Warehouse automation revenue of Acme since 2023", mode = "fast" }
      v:close()
      assert.equals("ambiguous", err.code)
      assert.equals(200, err.status)
      assert.equals(1, s:counter("valyu.tasks_created"))
    end)
  end)

  describe("item 4: Deep Search creates", function()
    it("a 200 without a task id ends ambiguous, never a task without an id", function()
      s:fault{
        method = "POST", path = "/v1/discovery_tasks", status = 200, body = '{"status":"created"}',
        after = true }
      local task, err = client:discovery_create{
        query = "B2B logistics software vendors in Germany",
        desired_num_results = 10 }
      assert.is_nil(task)
      assert.equals("ambiguous", err.code)
      assert.equals(200, err.status)
      assert.equals(1, s:counter("discovery.tasks_created"))
    end)
  end)

  describe("item 5: create_all with the same brief twice", function()
    it("a lost create waits for its slow sibling, so each result has its own task", function()
      -- The first create to arrive is answered by a dropped connection after its task was
      -- made; the second's task is made at once but its answer is held 1.5 s. Virtual time
      -- runs (50x) so the sibling's task is the newer one: the first task a newest-first
      -- reconcile meets is the sibling's, which its own answer will claim later.
      s:set_speed(50)
      s:fault{ method = "POST", path = PATH, kind = "drop", after = true, count = 1 }
      s:fault{ method = "POST", path = PATH, delay_ms = 1500, after = true, skip = 1, count = 1 }
      local tasks, errs = client:create_all({ env.BRIEF, env.BRIEF }, { max_connections = 2 })
      assert.same({}, errs)
      assert.equals(2, created())
      assert.is_table(tasks[1])
      assert.is_table(tasks[2])
      assert.are_not.equal(tasks[1].id, tasks[2].id)
      local made = {}
      for _, t in ipairs(s:tasks()) do made[t.id] = true end
      assert.is_true(made[tasks[1].id])
      assert.is_true(made[tasks[2].id])
      assert.equals(1, (tasks[1].reconciled and 1 or 0) + (tasks[2].reconciled and 1 or 0))
    end)

    it("two lost creates of one brief, one of which made nothing: one task, one " ..
      "ambiguous", function()
      s:fault{ method = "POST", path = PATH, kind = "drop", after = true, count = 1 }
      s:fault{ method = "POST", path = PATH, kind = "drop", skip = 1, count = 1 }
      local tasks, errs = client:create_all({ env.BRIEF, env.BRIEF }, { max_connections = 2 })
      assert.equals(1, created())
      local got, ambiguous = 0, 0
      for i = 1, 2 do
        if tasks[i] then got = got + 1 end
        if errs[i] then
          assert.equals("ambiguous", errs[i].code)
          ambiguous = ambiguous + 1
        end
      end
      assert.equals(1, got)
      assert.equals(1, ambiguous)
    end)
  end)

  describe("item 5: Valyu creates of one query in one poller", function()
    it("a lost create never takes a sibling's task, whatever their modes", function()
      local v = env.client(s, { provider = "valyu", api_key = "valyu-key", base_delay = 0.01 })
      local q = "Warehouse automation revenue of Acme since 2023"
      s:set_speed(50)
      s:fault{ method = "POST", path = VPATH, kind = "drop", after = true, count = 1 }
      s:fault{ method = "POST", path = VPATH, delay_ms = 1500, after = true, skip = 1, count = 1 }
      local tasks, errs = v:create_all({ { query = q, mode = "fast" },
        { query = q, mode = "heavy" } },
        { max_connections = 2 })
      v:close()
      assert.same({}, errs)
      assert.equals(2, s:counter("valyu.tasks_created"))
      assert.are_not.equal(tasks[1].deepresearch_id, tasks[2].deepresearch_id)
      assert.equals("fast", tasks[1].mode)
      assert.equals("heavy", tasks[2].mode)
    end)
  end)

  describe("item 8: an unsolicited 304", function()
    local function valyu_task(v)
      return dr.assert(
        v:create{ query = "Warehouse automation revenue of Acme since 2023", mode = "fast" })
    end

    it("is a transient poll failure in wait, never a raise", function()
      local v = env.client(s, { provider = "valyu", api_key = "valyu-key" })
      local t = valyu_task(v)
      s:fault{ method = "GET", path = VPATH .. "/.+/status", status = 304, count = 1 }
      local ok, done, err = pcall(v.wait, v, t.deepresearch_id, { interval = 5, max_interval = 60 })
      v:close()
      assert.is_true(ok, tostring(done))
      assert.is_nil(err)
      assert.equals("completed", done.status)
      -- The poll after the 304 went without If-None-Match.
      local statuses = s:requests_to("GET", "^" .. VPATH .. "/.+/status$")
      assert.equals(304, statuses[1].status)
      assert.is_nil(statuses[2].headers["if-none-match"])
    end)

    it("reaches a poller's callback", function()
      local v = env.client(s, { provider = "valyu", api_key = "valyu-key" })
      local t = valyu_task(v)
      s:fault{ method = "GET", path = VPATH .. "/.+/status", status = 304, count = -1 }
      local p = v:poller{}
      local got
      p:wait(t.deepresearch_id, { interval = 0.01, max_interval = 0.01, max_failures = 2 },
        function(task, err) got = { task = task, err = err } end)
      local ok, e = pcall(p.run, p)
      p:close()
      v:close()
      assert.is_true(ok, tostring(e))
      assert.is_table(got)
      assert.is_nil(got.task)
      assert.equals("invalid_response", got.err.code)
      assert.equals(304, got.err.status)
    end)

    it("a plain get answered 304 is invalid_response", function()
      local t = dr.assert(client:create{ brief = env.BRIEF })
      s:fault{ method = "GET", path = PATH .. "/.+", status = 304, count = -1 }
      local _, err = client:get(t.id)
      assert.equals("invalid_response", err.code)
      assert.equals(304, err.status)
    end)
  end)

  describe("item 9: wait follows the client's retry policy", function()
    it("caps a poll's Retry-After at the client's max_retry_after", function()
      local c, cl = env.client(s, { max_retry_after = 2 })
      local t = dr.assert(c:create{ brief = env.BRIEF })
      s:fault{ method = "GET", path = PATH .. "/.+", status = 429, retry_after = "120", count = 1 }
      local first = #cl.sleeps
      dr.assert(c:wait(t.id))
      c:close()
      assert.is_true(cl.sleeps[first + 1] <= 2, "slept " .. tostring(cl.sleeps[first + 1]))
    end)

    it("caps the backoff after failed polls at the client's max_delay", function()
      local c, cl = env.client(s, { base_delay = 0.05, max_delay = 0.2 })
      local t = dr.assert(c:create{ brief = env.BRIEF })
      s:fault{ method = "GET", path = PATH .. "/.+", status = 503, count = 4 }
      local first = #cl.sleeps
      local _ = c:wait(t.id, { interval = 0.1, max_interval = 0.1, timeout = 60 })
      c:close()
      assert.is_true(#cl.sleeps >= first + 4)
      for i = first + 1, first + 4 do
        assert.is_true(cl.sleeps[i] <= 0.2, "slept " .. tostring(cl.sleeps[i]))
      end
    end)
  end)

  describe("item 11: report.render never raises on server text", function()
    it("keeps huge citation numbers and source ids as text", function()
      local task = { id = "t", status = "done", report = { kind = "markdown",
        markdown = "A [12345678901234567890]. B [1e300]. C [3-12345678901234567890]. D [1].",
        sources = { { id = 1e300, url = "https://a.example" },
        { id = 1, url = "https://b.example" },
          { id = "99999999999999999999", url = "https://c.example" } } } }
      for _, style in ipairs({ "footnotes", "inline", "plain" }) do
        local ok, text = pcall(dr.report.render, task, { style = style })
        assert.is_true(ok, tostring(text))
        assert.matches("[12345678901234567890]", text, 1, true)
        assert.matches("[1e300]", text, 1, true)
      end
    end)
  end)

  describe("item 11: the command's displays never raise on server data", function()
    it("progress and summaries show odd counters as text", function()
      local progress = require "deepresearch.cli.progress"
      local adapters = require "deepresearch.cli.task"
      local odd = { id = "t", deepresearch_id = "t", status = { "x" }, depth = {}, iterations = 1.5,
        agents = "many", sources = 1e300, cost = "free", num_results = 0 / 0,
        desired_num_results = "x",
        progress = { current_step = 1.5, total_steps = "ten" }, report = { kind = "markdown",
          degradation_reasons = { { "nested" }, 3 } } }
      for _, describe_fn in ipairs({
        progress.extruct_research({ medium = 25 }), progress.valyu_research,
        progress.discovery }) do
        local ok, d = pcall(describe_fn, odd)
        assert.is_true(ok, tostring(d))
        assert.is_string(table.concat(d.parts, " "))
      end
      for _, name in ipairs({ "extruct", "valyu" }) do
        local ok, e = pcall(adapters[name].summary, odd)
        assert.is_true(ok, tostring(e))
      end
    end)
  end)

  describe("item 17: a password in a URL is never shown (command, redirects)", function()
    it("the command's --base-url usage error shows user:***@", function()
      -- The command runs on Lua 5.4 whatever interpreter runs the specs.
      local p = io.popen("env -u LD_PRELOAD lua5.4 bin/deepresearch --base-url " ..
        "ftp://user:hunter2@h list 2>&1; echo \"exit $?\"")
      local text = p:read("*a")
      p:close()
      assert.matches("exit 2", text, 1, true)
      assert.not_matches("hunter2", text)
      assert.matches("user:***@", text, 1, true)
    end)

    it("a redirect's Location with a password is shown redacted", function()
      local http = require "deepresearch.runtime.http"
      local res = { status = 302, head = "HTTP/1.1 302 Found\r\n" ..
        "Location: http://mallory:hunter2@127.0.0.1:1/steal\r\n\r\n" }
      local _, err = http.classify({}, res, { method = "GET", path = PATH })
      assert.equals("invalid_response", err.code)
      assert.not_matches("hunter2", err.message)
      assert.matches("mallory:***@", err.message, 1, true)
    end)
  end)

  describe("item 15: a done task without its report", function()
    it("is invalid_response (not retryable), never success", function()
      local t = dr.assert(client:create{ brief = env.BRIEF })
      local body = string.format('{"id":"%s","status":"done","brief":"b","depth":"medium",' ..
        '"iterations":1,"agents":1,"sources":1,"created_at":"2026-01-01T00:00:00Z"}', t.id)
      s:fault{ method = "GET", path = PATH .. "/.+", status = 200, body = body, count = -1 }
      local got, err = client:get(t.id)
      assert.is_nil(got)
      assert.equals("invalid_response", err.code)
      assert.is_false(err.retryable)
      local _, werr = client:wait(t.id, { interval = 0.1, max_interval = 0.1 })
      assert.equals("invalid_response", werr.code)
      assert.is_false(werr.retryable)
      assert.is_true(clock.t > 0)
    end)
  end)
end)

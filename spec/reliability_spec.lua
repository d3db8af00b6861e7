-- Faults injected into the simulator, and what the client does about each.
local dr = require "deepresearch"
local retry = require "deepresearch.base.policy"
local env = require "support.env"

describe("reliability", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client, clock = env.client(s)
  end)
  after_each(function() client:close() end)

  local function created() return s:counter("extruct.tasks_created") end

  describe("backoff", function()
    it("starts at 0.5 s, doubles, caps at 8 s, with jitter x[0.75, 1]", function()
      local lo = function() return 0 end
      local hi = function() return 1 end
      assert.equals(0.375, retry.backoff(1, nil, lo))
      assert.equals(0.5, retry.backoff(1, nil, hi))
      assert.equals(1, retry.backoff(2, nil, hi))
      assert.equals(8, retry.backoff(6, nil, hi))
      assert.equals(8, retry.backoff(20, nil, hi))
      for _ = 1, 50 do
        local d = retry.backoff(3)
        assert.truthy(d >= 1.5 and d <= 2)
      end
    end)

    it("parses Retry-After in seconds and as an HTTP date", function()
      assert.equals(7, retry.parse_retry_after("7"))
      local now = os.time()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", now + 30)
      local d = retry.parse_retry_after(date, now)
      assert.truthy(d >= 29 and d <= 31, tostring(d))
      assert.is_nil(retry.parse_retry_after("soon"))
    end)

    it("sleeps for the server's Retry-After (seconds) before retrying a read", function()
      s:fault{ method = "GET", path = "/v1/deep_research_tasks", status = 429, retry_after = "3" }
      assert.truthy(client:list{})
      assert.same({ 3 }, clock.sleeps)
    end)

    it("honours Retry-After as an HTTP date", function()
      local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 20)
      s:fault{ method = "GET", path = "/v1/deep_research_tasks", status = 503, retry_after = date }
      assert.truthy(client:list{})
      assert.truthy(clock.sleeps[1] >= 18 and clock.sleeps[1] <= 21, tostring(clock.sleeps[1]))
    end)

    it("caps Retry-After at max_retry_after", function()
      local c, ck = env.client(s, { max_retry_after = 5 })
      s:fault{
        method = "GET", path = "/v1/deep_research_tasks", status = 503, retry_after = "3600" }
      assert.truthy(c:list{})
      assert.same({ 5 }, ck.sleeps)
      c:close()
    end)

    it("max_retries bounds the attempts", function()
      local c = env.client(s, { max_retries = 4, base_delay = 0.01 })
      s:fault{ method = "GET", path = "/v1/deep_research_tasks", status = 502, count = -1 }
      local _, err = c:list{}
      assert.equals(5, err.attempts)
      c:close()
    end)

    it("retries 408, 500, 502, 504 on reads", function()
      for _, status in ipairs({ 408, 500, 502, 504 }) do
        s:fault{ method = "GET", path = "/v1/deep_research_tasks", status = status }
        assert.truthy(client:list{}, "status " .. status)
      end
    end)
  end)

  describe("create never duplicates a task", function()
    it("retries a 503 (nothing was created) and makes exactly one task", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", status = 503, count = 2 }
      dr.assert(client:create{ brief = env.BRIEF })
      assert.equals(1, created())
    end)

    it("retries when the connection failed before sending", function()
      local c = dr.client{ base_url = "http://127.0.0.1:1", token = "t", base_delay = 0.001,
        clock = env.virtual_clock(s) }
      local _, err = c:create{ brief = env.BRIEF }
      assert.equals("network", err.code)
      assert.equals(3, err.attempts)
      assert.is_true(err.retryable)
      c:close()
    end)

    it("does not retry a 429 on create", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", status = 429 }
      local _, err = client:create{ brief = env.BRIEF }
      assert.equals("rate_limited", err.code)
      assert.equals(1, err.attempts)
      assert.equals(0, created())
    end)

    it("reconciles a create whose answer was lost after the task was made", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", kind = "drop", after = true }
      local task = dr.assert(client:create{ brief = env.BRIEF, depth = "high" })
      assert.is_true(task.reconciled)
      assert.equals(env.BRIEF, task.brief)
      assert.equals(1, created())
      assert.equals(1, env.count_requests(s, "^POST /v1/deep_research_tasks$"))
    end)

    it("reconciles a create that timed out after sending", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", delay_ms = 1500, after = true }
      local c = env.client(s, { timeout = 0.3 })
      local task = dr.assert(c:create{ brief = env.BRIEF })
      assert.is_true(task.reconciled)
      assert.equals(1, created())
      assert.equals(1, env.count_requests(s, "^POST /v1/deep_research_tasks$"))
      c:close()
    end)

    it("reports ambiguous when the answer was lost and no task can be found", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", kind = "drop" }
      local _, err = client:create{ brief = env.BRIEF }
      assert.equals("ambiguous", err.code)
      assert.is_false(err.retryable)
      assert.matches("list", err.message)
      assert.equals(1, err.attempts)
      assert.equals(0, created())
      assert.equals(1, env.count_requests(s, "^POST /v1/deep_research_tasks$"))
    end)

    it("does not take another brief's task for its own", function()
      dr.assert(client:create{ brief = env.BRIEF .. " other" })
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", kind = "drop" }
      local _, err = client:create{ brief = env.BRIEF }
      assert.equals("ambiguous", err.code)
    end)

    it("looks for the task after a 502 on create, returning it when the server had made " ..
      "it", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", status = 502, after = true }
      local task = dr.assert(client:create{ brief = env.BRIEF })
      assert.is_true(task.reconciled)
      assert.equals(1, created())
    end)

    it("a 500 on create that made no task ends ambiguous (a 5xx may follow a stored task), " ..
      "never retried (item 3)", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", status = 500 }
      local _, err = client:create{ brief = env.BRIEF }
      assert.equals("ambiguous", err.code)
      assert.equals(500, err.status)
      assert.equals("server_error", err.cause.code)
      assert.is_false(err.retryable)
      assert.equals(0, created())
      assert.equals(1, env.count_requests(s, "^POST /v1/deep_research_tasks$"))
    end)

    it("create_all never hands one task to two lost creates of the same brief", function()
      s:fault{
        method = "POST", path = "/v1/deep_research_tasks", kind = "drop", after = true, count = 2 }
      local tasks, errs = client:create_all{ env.BRIEF, env.BRIEF }
      local ids = {}
      for i = 1, 2 do
        if tasks[i] then ids[tasks[i].id] = (ids[tasks[i].id] or 0) + 1 end
        if errs[i] then assert.equals("ambiguous", errs[i].code) end
      end
      for _, n in pairs(ids) do assert.equals(1, n) end
    end)
  end)

  describe("limits", function()
    it("aborts a server that drips bytes (low-speed limit)", function()
      dr.assert(client:create{ brief = env.BRIEF })
      s:fault{ method = "GET", path = "/v1/deep_research_tasks", kind = "drip", interval_ms = 400 }
      local c = env.client(s, { low_speed_limit = 100, low_speed_time = 1, max_retries = 0 })
      local _, err = c:list{}
      assert.equals("timeout", err.code)
      c:close()
    end)

    it("refuses responses over max_response_size", function()
      s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", kind = "big", size = 300000 }
      local task = dr.assert(client:create{ brief = env.BRIEF })
      local c = env.client(s, { max_response_size = 100000, max_retries = 0 })
      local _, err = c:get(task.id)
      assert.equals("invalid_response", err.code)
      assert.matches("max_response_size", err.message)
      c:close()
    end)

    it("gives up connecting after connect_timeout, and knows nothing was sent", function()
      -- a listener that never accepts, its backlog filled: the next SYN goes unanswered
      local socket = require "socket"
      local srv = socket.tcp()
      assert(srv:bind("127.0.0.1", 0))
      assert(srv:listen(0))
      local _, port = srv:getsockname()
      local fill = {}
      for i = 1, 4 do
        fill[i] = socket.tcp()
        fill[i]:settimeout(0)
        fill[i]:connect("127.0.0.1", port)
      end
      local c = dr.client{
        base_url = "http://127.0.0.1:" .. port, token = "t", connect_timeout = 0.3,
        max_retries = 0 }
      local _, err = c:create{ brief = env.BRIEF }
      assert.equals("timeout", err.code)
      assert.is_false(err.sent)
      assert.is_true(err.retryable)
      c:close()
      for _, f in ipairs(fill) do f:close() end
      srv:close()
    end)

  end)

  describe("hostile or broken responses", function()
    local function get_err(kind, extra)
      local task = dr.assert(client:create{ brief = env.BRIEF })
      local f = { method = "GET", path = "/v1/deep_research_tasks/.+", kind = kind }
      for k, v in pairs(extra or {}) do f[k] = v end
      s:fault(f)
      local c = env.client(s, { max_retries = 0 })
      local t, err = c:get(task.id)
      c:close()
      return t, err
    end

    it("truncated body", function()
      local _, err = get_err("truncate")
      assert.equals("network", err.code)
    end)

    it("connection reset mid-body", function()
      local _, err = get_err("reset")
      assert.equals("network", err.code)
    end)

    it("status line with no body", function()
      local _, err = get_err("no_body")
      assert.truthy(err.code == "network" or err.code == "invalid_response")
    end)

    it("empty 200 body", function()
      local _, err = get_err("empty")
      assert.equals("invalid_response", err.code)
    end)

    it("invalid JSON", function()
      local _, err = get_err("invalid_json")
      assert.equals("invalid_response", err.code)
    end)

    it("a string where an object is promised", function()
      local _, err = get_err("wrong_shape")
      assert.equals("invalid_response", err.code)
    end)

    it("a report of an unknown kind", function()
      local task = dr.assert(client:create{ brief = env.BRIEF })
      s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", status = 200,
        body = '{"id":"' .. task.id .. '","status":"done","report":{"kind":"video"}}' }
      local _, err = client:get(task.id)
      assert.equals("invalid_response", err.code)
      assert.matches("video", err.message)
    end)

    it("an HTML 502 page from a proxy", function()
      local _, err = get_err("html502")
      assert.equals("invalid_response", err.code)
      assert.equals(502, err.status)
      assert.is_true(err.retryable)
    end)

    it("gzip-encoded bodies are accepted", function()
      local t = get_err("gzip")
      assert.is_table(t)
      assert.is_string(t.id)
    end)

    it("duplicate headers", function()
      local t = get_err("dup_headers")
      assert.is_table(t)
    end)

    it("invalid UTF-8 and raw control characters in strings", function()
      local t = get_err("control_chars")
      assert.is_table(t)
      assert.matches("[\n\t]", t.brief)
      local t2 = get_err("invalid_utf8")
      assert.is_table(t2)
    end)
  end)

  describe("security", function()
    it("does not follow redirects (the token would go along)", function()
      s:fault{ method = "GET", path = "/v1/deep_research_tasks", status = 302,
        headers = { Location = "http://127.0.0.1:1/steal" } }
      local _, err = client:list{}
      assert.equals("invalid_response", err.code)
      assert.matches("redirect", err.message)
    end)

    it("sends requests through the proxy option", function()
      local c = dr.client{
        base_url = "http://api.example.invalid", token = "test-token", proxy = s.url,
        max_retries = 0 }
      c:list{}
      local seen = false
      for _, r in ipairs(s:requests()) do
        if r.path:find("^http://api%.example%.invalid/v1/deep_research_tasks") then seen = true end
      end
      assert.is_true(seen)
      c:close()
    end)

    it("never shows the token in errors or tostring", function()
      local c = env.client(s, { token = "sk-very-secret" })
      local _, err = c:get("nope")
      assert.not_matches("sk%-very%-secret", tostring(err))
      assert.not_matches("sk%-very%-secret", err.message)
      assert.not_matches("sk%-very%-secret", tostring(c))
      c:close()
    end)

    it("redacts Authorization in the DEEPRESEARCH_DEBUG request log", function()
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write(string.format([[
        package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
        package.cpath = "build/5.4/?.so;" .. package.cpath
        local dr = require "deepresearch"
        local c = dr.client{ base_url = %q, token = "sk-very-secret" }
        c:list{}
      ]], s.url))
      f:close()
      local p = io.popen("DEEPRESEARCH_DEBUG=1 lua5.4 " .. script .. " 2>&1")
      local out = p:read("*a")
      p:close()
      os.remove(script)
      assert.matches("GET", out)
      assert.matches("%[redacted%]", out)
      assert.not_matches("sk%-very%-secret", out)
    end)
  end)

  describe("Lua-side safety", function()
    it("works from inside a coroutine", function()
      local co = coroutine.wrap(function()
        local task = dr.assert(client:create{ brief = env.BRIEF })
        return dr.assert(client:wait(task.id)).status
      end)
      assert.equals("done", co())
    end)

    it("survives a garbage collection during a wait whose caller dropped the client", function()
      local c = env.client(s)
      local task = dr.assert(c:create{ brief = env.BRIEF })
      local wait = c.wait
      local done = wait(c, task.id, { on_progress = function() collectgarbage() end })
      assert.equals("done", done.status)
      c = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)

    it("an error raised in on_progress leaves the client usable", function()
      local task = dr.assert(client:create{ brief = env.BRIEF })
      assert.has_error(function()
        client:wait(task.id, { on_progress = function() error({ code = "mine" }) end })
      end)
      assert.equals(task.id, dr.assert(client:get(task.id)).id)
    end)
  end)
end)

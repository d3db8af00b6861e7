-- The Extruct Deep Research client against the simulator: create, get, list, tasks, validation.
local dr = require "deepresearch"
local env = require "support.env"

describe("client", function()
  local s, client
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client = env.client(s)
  end)
  after_each(function() client:close() end)

  describe("object", function()
    it("is a table (issue 14 part 4: a Lua object) whose tostring never shows the token", function()
      local c = dr.client{ base_url = s.url, token = "secret-token-value" }
      assert.equals("table", type(c))
      assert.not_matches("secret%-token%-value", tostring(c))
      assert.matches("extruct", tostring(c))
      c:close()
    end)

    it("reads the token from EXTRUCT_API_TOKEN when none is given", function()
      local c = dr.client{ base_url = s.url }
      local _, err = c:get("x")
      -- either the environment holds a token, or the error says how to give one
      if not os.getenv("EXTRUCT_API_TOKEN") then
        assert.equals("unauthorized", err.code)
        assert.matches("EXTRUCT_API_TOKEN", err.message)
        assert.equals(0, err.attempts)
      end
      c:close()
    end)

    it("accepts a function as the token", function()
      local calls = 0
      local c = env.client(s, { token = function() calls = calls + 1 return "test-token" end })
      assert.truthy(c:list{ limit = 1 })
      assert.equals(1, calls)
      c:close()
    end)

    it("raises on wrong option types and unknown providers", function()
      assert.has_error(function() dr.client{ timeout = "x" } end)
      assert.has_error(function() dr.client{ base_url = 42 } end)
      assert.has_error(function() dr.client{ base_url = "ftp://x" } end)
      assert.has_error(function() dr.client{ provider = "nope" } end)
      assert.has_error(function() dr.client{ insecure = true } end)
    end)

    it("raises a clear error when used after close", function()
      client:close()
      assert.has_error(
        function() client:get("x") end, "attempt to use a closed deepresearch.client")
      client = env.client(s)
    end)

    it("loads Deep Search and the many-at-once methods on first use", function()
      -- A fresh interpreter: this one has loaded every module already.
      local cmd = "lua5.4 -e \"package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path " ..
        "package.cpath = 'build/5.4/?.so;' .. package.cpath " ..
        "local c = require('deepresearch').client({ base_url = '" .. s.url .. "', token = " ..
        "'test-token' }) local function has(m) return package.loaded[m] and 'y' or 'n' end " ..
        "assert(c:list({ limit = 1 })) " ..
        "io.write(has('deepresearch.providers.discovery'), has('deepresearch.runtime.poller'), " ..
        "' ') io.write(type(c.wait_all), ' ', type(c.discovery_create), ' ', " ..
        "type(c.nonexistent), ' ') io.write(has('deepresearch.providers.discovery'), " ..
        "has('deepresearch.runtime.poller'), ' ', type(c.close))\" 2>&1"
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      assert.equals("nn function function nil yy function", out)
    end)

    it("sends the documented headers", function()
      assert.truthy(client:list{ limit = 1 })
      local req = s:requests()[#s:requests()]
      assert.equals("Bearer test-token", req.headers.authorization)
      assert.equals("application/json", req.headers.accept)
      assert.matches("^deepresearch%-lua/%d+%.%d+%.%d+ libcurl/", req.headers["user-agent"])
    end)
  end)

  describe("create", function()
    it("creates a task and returns it as a plain table with nulls absent", function()
      local task = dr.assert(client:create{ brief = env.BRIEF, depth = "high" })
      assert.is_string(task.id)
      assert.equals("created", task.status)
      assert.equals("high", task.depth)
      assert.equals(0, task.agents)
      assert.is_nil(task.report)
      assert.equals(env.BRIEF, task.brief)
      assert.equals(1, s:counter("extruct.tasks_created"))
    end)

    it("sends output_schema with arrays intact, even an empty required list", function()
      local schema = {
        type = "object", properties = { summary = { type = "string" } }, required = {} }
      local task = dr.assert(client:create{ brief = env.BRIEF, output_schema = schema })
      local req = s:requests()[#s:requests()]
      assert.matches('"required":%[%]', req.body)
      assert.same({}, task.output_schema.required or {})
    end)

    it("validates the brief before sending: empty, too long in characters, invalid " ..
      "UTF-8", function()
      local before = #s:requests()
      local _, e1 = client:create{ brief = "" }
      local _, e2 = client:create{ brief = string.rep("é", 20001) }
      local _, e3 = client:create{ brief = "bad \255 byte" }
      for _, e in ipairs({ e1, e2, e3 }) do
        assert.equals("invalid_request", e.code)
        assert.is_false(e.retryable)
      end
      assert.matches("20001", e2.message)
      assert.equals(before, #s:requests())
    end)

    it("counts the 20,000 limit in characters, not bytes", function()
      local task = dr.assert(client:create{ brief = "Acme Corp " .. string.rep("é", 19990) })
      assert.equals("created", task.status)
    end)

    it("validates depth and output_schema before sending", function()
      local before = #s:requests()
      local _, e1 = client:create{ brief = env.BRIEF, depth = "HIGH" }
      local _, e2 = client:create{ brief = env.BRIEF, output_schema = { type = "array" } }
      assert.equals("invalid_request", e1.code)
      assert.matches("depth", e1.message)
      assert.equals("invalid_request", e2.code)
      assert.matches("output_schema", e2.message)
      assert.equals(before, #s:requests())
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() client:create() end)
      assert.has_error(function() client:create{ brief = 42 } end)
      assert.has_error(function() client:create{ brief = env.BRIEF, depth = 3 } end)
      assert.has_error(function() client:create{ brief = env.BRIEF, output_schema = "x" } end)
    end)
  end)

  describe("get", function()
    it("returns the task", function()
      local task = dr.assert(client:create{ brief = env.BRIEF })
      local same = dr.assert(client:get(task.id))
      assert.equals(task.id, same.id)
      assert.equals(task.brief, same.brief)
    end)

    it("accepts a task table in place of an id", function()
      local task = dr.assert(client:create{ brief = env.BRIEF })
      assert.equals(task.id, dr.assert(client:get(task)).id)
    end)

    it("percent-escapes ids so they never reach another endpoint", function()
      for _, id in ipairs({ "a/b", "../deep_research_tasks", "x?limit=1", "y#z", ".." }) do
        local _, err = client:get(id)
        assert.equals("not_found", err.code)
        local req = s:requests()[#s:requests()]
        assert.equals("GET", req.method)
        assert.not_matches("%?", req.path)
        assert.matches("^/v1/deep_research_tasks/[^/]+$", req.path)
      end
    end)

    it("rejects empty ids and ids with control characters without sending", function()
      local before = #s:requests()
      local _, e1 = client:get("")
      local _, e2 = client:get("abc\r\nX-Evil: 1")
      assert.equals("invalid_request", e1.code)
      assert.equals("invalid_request", e2.code)
      assert.equals(before, #s:requests())
      assert.has_error(function() client:get(42) end)
      assert.has_error(function() client:get() end)
    end)
  end)

  describe("list and tasks", function()
    it("lists newest first with offset and limit", function()
      local ids = {}
      for i = 1, 5 do
        ids[i] = dr.assert(client:create{ brief = env.BRIEF .. " #" .. i }).id
        s:advance(1)
      end
      local page = dr.assert(client:list{ offset = 1, limit = 2 })
      assert.equals(2, #page)
      assert.equals(ids[4], page[1].id)
      assert.equals(ids[3], page[2].id)
      assert.same({}, dr.assert(client:list{ offset = 50, limit = 10 }))
    end)

    it("validates offset and limit", function()
      local _, e1 = client:list{ offset = -1 }
      local _, e2 = client:list{ limit = 1.5 }
      assert.equals("invalid_request", e1.code)
      assert.equals("invalid_request", e2.code)
      assert.has_error(function() client:list{ limit = "10" } end)
    end)

    it("iterates every task across pages, fetching pages lazily", function()
      for i = 1, 7 do
        dr.assert(client:create{ brief = env.BRIEF .. " #" .. i })
        s:advance(1)
      end
      s:clear_requests()
      local iter = client:tasks{ limit = 3 }
      local first = iter()
      assert.matches("#7$", first.brief)
      assert.equals(1, env.count_requests(s, "^GET /v1/deep_research_tasks$"))
      local n = 1
      for t in iter do
        assert.is_table(t)
        n = n + 1
      end
      assert.equals(7, n)
      assert.equals(3, env.count_requests(s, "^GET /v1/deep_research_tasks$"))
    end)

    it("yields false, err once when a page fails", function()
      s:fault{ method = "GET", path = "/v1/deep_research_tasks", status = 401, count = -1 }
      local got = {}
      for t, err in client:tasks{ limit = 2 } do got[#got + 1] = { t, err } end
      assert.equals(1, #got)
      assert.is_false(got[1][1])
      assert.equals("unauthorized", got[1][2].code)
    end)
  end)

  describe("user", function()
    it("returns the account with its credits", function()
      local u = dr.assert(client:user())
      assert.is_number(u.available_credits)
    end)
  end)
end)

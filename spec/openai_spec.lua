-- The OpenAI client (Responses API in background mode, issue 16) against the simulator.
local dr = require "deepresearch"
local env = require "support.env"
local json = require "cjson"
-- dr.result (issue 16's one view of a task), when installed.
local has_result, result = pcall(require, "deepresearch.result")

describe("openai", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    client, clock = env.provider_client(s, "openai", { time_scale = 0.05 },
      { api_key = "openai-key", base_url = s.url .. "/v1" })
  end)
  after_each(function() client:close() end)

  local BRIEF = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"

  local function posts() return #s:requests_to("POST", "^/v1/responses$") end
  local function last_body()
    return json.decode(s:requests_to("POST", "^/v1/responses$")[1].body)
  end

  it("sends the brief as input with background, store, a data source and a nonce", function()
    local t = dr.assert(client:create{ brief = BRIEF, instructions = "Cite primary sources.",
      max_tool_calls = 12, max_output_tokens = 20000 })
    local req = s:requests_to("POST", "^/v1/responses$")[1]
    assert.equals("Bearer openai-key", req.headers.authorization)
    local body = last_body()
    assert.equals(BRIEF, body.input)
    assert.is_true(body.background)
    assert.is_true(body.store)
    assert.equals("gpt-5.5-pro", body.model)
    assert.equals("web_search", body.tools[1].type)
    assert.equals("Cite primary sources.", body.instructions)
    assert.equals(12, body.max_tool_calls)
    assert.equals(20000, body.max_output_tokens)
    assert.is_string(body.metadata.deepresearch_nonce)
    assert.matches("^resp_%x+$", t.id)
    assert.equals("queued", dr.state(t, "openai"))
    assert.is_true(dr.providers.openai.detect(t))
    assert.is_false(dr.providers.perplexity.detect(t))
  end)

  it("creates, waits with progress and reads the report of the last message", function()
    local t = dr.assert(client:create{ brief = BRIEF, metadata = { team = "gtm" } })
    local seen = 0
    local done = dr.assert(client:wait(t.id, { on_progress = function() seen = seen + 1 end }))
    assert.equals("completed", done.status)
    assert.equals("done", dr.state(done, "openai"))
    assert.equals("gtm", done.metadata.team)
    local text = dr.providers.openai.report.extract(done)
    assert.truthy(#text > 100)
    assert.truthy(seen >= 2)
    assert.truthy(#clock.sleeps >= 2)
    -- the descriptor's poll floor paces the wait (PROVIDERS.md §5: 10 s)
    assert.truthy(clock.sleeps[1] >= 10)
    if has_result then
      local r = dr.assert(result(done))
      assert.equals("openai", r.provider)
      assert.equals("done", r.state)
      assert.truthy(#r.sources >= 1)
      assert.is_true(r.cost.estimated)
      assert.is_number(r.cost.usd)
      -- each url_citation range becomes a numbered footnote
      local out = dr.report.render(done)
      assert.truthy(out:find("[^1]: " .. r.sources[1].url, 1, true))
      -- the last citation's marker sits at its range's end, counted in characters, after
      -- non-ASCII text (so a byte count would put it elsewhere)
      local part = done.output[#done.output].content[1]
      local last = part.annotations[1]
      for _, a in ipairs(part.annotations) do
        if a.end_index > last.end_index then last = a end
      end
      local upto, n = {}, 0
      for ch in part.text:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
        if n == last.end_index then break end
        upto[#upto + 1], n = ch, n + 1
      end
      local prefix = table.concat(upto)
      assert.truthy(#prefix > n)
      -- the report with its markers taken out, and where each was
      local stripped, marks, pos = {}, {}, 1
      for piece, mark in (out .. "[^0]"):gmatch("(.-)(%[%^%d+%])") do
        stripped[#stripped + 1] = piece
        pos = pos + #piece
        marks[pos] = mark
      end
      local at = table.concat(stripped):find(prefix, 1, true)
      assert.is_number(at)
      assert.is_string(marks[at + #prefix])
    end
  end)

  it("run takes the brief and waits", function()
    local done = dr.assert(client:run{ brief = BRIEF })
    assert.equals("completed", done.status)
    assert.equals(1, posts())
  end)

  it("ends a failed run with task_failed and its reason", function()
    local _, err = client:run{ brief = BRIEF .. " [fail]" }
    assert.equals("task_failed", err.code)
    assert.is_string(err.reason)
    assert.equals("failed", dr.state(err.task, "openai"))
  end)

  it("reads incomplete as done with text, and as failed without", function()
    local done = dr.assert(client:run{ brief = BRIEF .. " [incomplete]" })
    assert.equals("incomplete", done.status)
    assert.truthy(#dr.providers.openai.report.extract(done) > 0)
    s:config{ openai = { incomplete_no_message = true } }
    local _, err = client:run{ brief = BRIEF .. " [incomplete]" }
    assert.equals("incomplete", err.code)
    assert.equals("max_output_tokens", err.reason)
  end)

  it("cancels a running response and the wait ends cancelled", function()
    local t = dr.assert(client:create{ brief = BRIEF })
    local c = dr.assert(client:cancel(t.id))
    assert.equals("cancelled", c.status)
    local _, err = client:wait(t.id)
    assert.equals("cancelled", err.code)
  end)

  it("deletes a response; a GET then answers not_found", function()
    local done = dr.assert(client:run{ brief = BRIEF })
    local gone = dr.assert(client:delete(done.id))
    assert.is_true(gone.deleted)
    local _, err = client:get(done.id)
    assert.equals("not_found", err.code)
    assert.equals(404, err.status)
  end)

  it("has no list: unsupported, nothing sent", function()
    local before = #s:requests()
    local list, err = client:list()
    assert.is_nil(list)
    assert.equals("unsupported", err.code)
    assert.equals(before, #s:requests())
  end)

  it("maps a bad key to unauthorized without retrying", function()
    local c = env.client(s, { provider = "openai", api_key = "sk-wrong-key-1234", token = false })
    local _, err = c:create{ brief = BRIEF }
    assert.equals("unauthorized", err.code)
    assert.equals(401, err.status)
    assert.matches("Incorrect API key", err.message)
    assert.equals(1, posts())
    c:close()
  end)

  it("sends the provider's own options by their names", function()
    local body = dr.providers.openai.module
    body = require(body).create_body(dr.providers.openai, { brief = BRIEF, max_tool_calls = 12,
      max_output_tokens = 4000, reasoning = { summary = "auto" }, model = "gpt-5.4-pro" })
    body = json.decode(body)
    assert.equals(12, body.max_tool_calls)
    assert.equals(4000, body.max_output_tokens)
    assert.equals("auto", body.reasoning.summary)
    assert.equals("gpt-5.4-pro", body.model)
  end)

  it("validates locally before sending", function()
    local before = #s:requests()
    local cases = {
      { brief = "" }, { brief = BRIEF, max_output_tokens = 8 }, { brief = BRIEF, tools = {} },
      { brief = BRIEF, max_tool_calls = -1 },
      { brief = BRIEF, output_schema = { type = "object", properties = {} } },
    }
    for _, c in ipairs(cases) do
      local _, err = client:create(c)
      assert.equals("invalid_request", err.code)
    end
    assert.equals(before, #s:requests())
    assert.has_error(function() client:create{ brief = BRIEF, preset = "high" } end,
      "bad option 'preset' to 'create' (unknown option)")
    assert.has_error(function() client:create{ brief = BRIEF, modle = "x" } end)
  end)

  it("maps the server's validation answer to invalid_request with the field", function()
    local _, err = client:create{ brief = BRIEF, service_tier = "turbo" }
    assert.equals("invalid_request", err.code)
    assert.equals(400, err.status)
    assert.equals("service_tier", err.fields[1].field)
  end)

  it("names a shut-down model and its successor: retired", function()
    local _, err = client:create{ brief = BRIEF, model = "o4-mini-deep-research" }
    assert.equals("retired", err.code)
    assert.is_false(err.retryable)
    assert.matches("o4%-mini%-deep%-research", err.message)
    assert.matches("gpt%-5%.5%-pro", err.message)
    assert.matches("2026%-07%-23", err.message)
    local _, unknown = client:create{ brief = BRIEF, model = "gpt-nonexistent" }
    assert.equals("invalid_request", unknown.code)
  end)

  it("maps insufficient_quota to insufficient_credits, not retried", function()
    local c = env.client(s, { provider = "openai", api_key = "openai-broke", token = false })
    local _, err = c:create{ brief = BRIEF }
    assert.equals("insufficient_credits", err.code)
    assert.is_false(err.retryable)
    assert.equals(1, posts())
    c:close()
  end)

  it("maps 429 to rate_limited: a create is not re-sent, a read waits Retry-After", function()
    s:config{ openai = { creates_per_min = 1, requests_per_min = 1 } }
    local t = dr.assert(client:create{ brief = BRIEF })
    local _, err = client:create{ brief = BRIEF }
    assert.equals("rate_limited", err.code)
    assert.equals(429, err.status)
    assert.is_string(err.retry_after)
    assert.equals(2, posts())
    assert.equals(1, s:counter("openai.tasks_created"))
    dr.assert(client:get(t.id)) -- the window's one read
    local n = #clock.sleeps
    local again = dr.assert(client:get(t.id)) -- 429, waits the hint, then answers
    assert.equals(t.id, again.id)
    assert.truthy(#clock.sleeps > n)
    assert.truthy(clock.sleeps[#clock.sleeps] >= 1)
  end)

  it("honours retry-after-ms on a read's 429", function()
    s:config{ openai = { requests_per_min = 1, retry_after_ms = true } }
    local t = dr.assert(client:create{ brief = BRIEF })
    dr.assert(client:get(t.id))
    local again = dr.assert(client:get(t.id))
    assert.equals(t.id, again.id)
    -- the hint is the window's remaining minute, in milliseconds; no retry-after header
    assert.truthy(clock.sleeps[#clock.sleeps] >= 30)
    assert.equals(0, #s:requests_to("GET", "^/v1/responses/") - 3)
  end)

  it("reports a lost create as ambiguous with its nonce, after exactly one POST", function()
    s:fault{ method = "POST", path = "/v1/responses", kind = "drop", after = true }
    local _, err = client:create{ brief = BRIEF }
    assert.equals("ambiguous", err.code)
    assert.is_false(err.retryable)
    assert.equals(1, posts())
    assert.equals(1, s:counter("openai.tasks_created"))
    local made = s:state().openai.tasks[1]
    assert.equals(made.metadata.deepresearch_nonce, err.nonce)
    assert.matches(err.nonce, err.message, 1, true)
    assert.matches("cannot be looked up", err.message)
  end)

  it("create_all sends each create once; a lost one is ambiguous", function()
    s:fault{ method = "POST", path = "/v1/responses", kind = "drop", after = true, skip = 1 }
    local tasks, errs = client:create_all({ { brief = BRIEF .. " one" },
      { brief = BRIEF .. " two" }, { brief = BRIEF .. " three" } }, { max_connections = 3 })
    local made, lost = 0, 0
    for i = 1, 3 do
      if tasks[i] then made = made + 1 end
      if errs[i] then
        lost = lost + 1
        assert.equals("ambiguous", errs[i].code)
      end
    end
    assert.equals(2, made)
    assert.equals(1, lost)
    assert.equals(3, posts())
    assert.equals(3, s:counter("openai.tasks_created"))
  end)

  it("never re-sends a create answered 5xx", function()
    s:fault{ method = "POST", path = "/v1/responses", status = 503,
      body = '{"error":{"message":"overloaded","type":"server_error","param":null,' ..
        '"code":null}}' }
    local _, err = client:create{ brief = BRIEF }
    assert.equals("ambiguous", err.code)
    assert.equals(1, posts())
  end)

  -- One body of the wrong types, for both providers the Responses module serves.
  for _, name in ipairs({ "openai", "perplexity" }) do
    it(name .. ": an error body of the wrong types is an error, never a raise: create, get, "
      .. "wait, poller",
      function()
        local h = require("support.hostile").start([[
  return function(method, path, body, n)
    if n % 2 == 0 then return 400, '{"error":{"message":{"a":1},"type":7,"code":[]}}' end
    return 422, '{"detail":[1,"x",{"loc":[{}],"msg":{},"type":5},{"loc":["body","input"],' ..
      '"msg":"field required","type":"missing"}]}'
  end]])
        local c
        finally(function() -- one finally per test; a server left running blocks busted's exit
          if c then c:close() end
          h.stop()
        end)
        c = dr.client{ provider = name, api_key = "k", base_url = h.url,
          base_delay = 0.01, max_retries = 0 }
        local errs = {}
        local function try(label, fn, ...)
          local ok, _, err = pcall(fn, ...)
          assert.is_true(ok, label .. ": " .. tostring(_))
          assert.is_table(err, label)
          assert.is_string(err.message, label)
          assert.is_nil(err.message:find("table:", 1, true), err.message)
          errs[#errs + 1] = err
        end
        try("create", c.create, c, { brief = BRIEF })
        try("get", c.get, c, "resp_1")
        try("wait", c.wait, c, "resp_1", { timeout = 1 })
        assert.equals("invalid_request", errs[1].code)
        assert.truthy(errs[1].message:find("input: field required", 1, true), errs[1].message)
        local pl, got = c:poller{}, nil
        local ok, e = pcall(function()
          pl:create({ brief = BRIEF }, function(_, err) got = err end)
          while pl:pending() > 0 do pl:step(50) end
        end)
        assert.is_true(ok, tostring(e))
        assert.is_table(got)
      end)
  end
end)

-- The Perplexity Agent API client (background mode, issue 16) against the simulator.
local dr = require "deepresearch"
local env = require "support.env"
local json = require "cjson"
-- dr.result (issue 16's one view of a task), when installed.
local has_result, result = pcall(require, "deepresearch.result")

describe("perplexity", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    client, clock = env.provider_client(s, "perplexity", { time_scale = 0.1 },
      { api_key = "pplx-key" })
  end)
  after_each(function() client:close() end)

  local BRIEF = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"
  local D = dr.providers.perplexity

  local function posts() return #s:requests_to("POST", "^/v1/agent$") end
  local function sent(n)
    return json.decode(s:requests_to("POST", "^/v1/agent$")[n or 1].body)
  end

  it("sends the brief as input with the default preset, background and store", function()
    local t = dr.assert(client:create{ brief = BRIEF })
    local req = s:requests_to("POST", "^/v1/agent$")[1]
    assert.equals("Bearer pplx-key", req.headers.authorization)
    local body = sent()
    assert.equals(BRIEF, body.input)
    assert.equals("high", body.preset)
    assert.is_true(body.background)
    assert.is_true(body.store)
    assert.is_nil(body.metadata) -- outside the published schema; nothing could search it
    assert.is_true(D.detect(t))
    assert.is_false(dr.providers.openai.detect(t))
    assert.equals("queued", dr.state(t, "perplexity"))
  end)

  it("accepts the base URL with /v1 (the OpenAI SDKs' convention)", function()
    local c = env.client(s, { provider = "perplexity", api_key = "pplx-key", token = false,
      base_url = s.url .. "/v1" })
    dr.assert(c:create{ brief = BRIEF, preset = "fast" })
    assert.equals(1, posts())
    c:close()
  end)

  it("creates, waits with progress and reads a report with [web:N] markers", function()
    local t = dr.assert(client:create{ brief = BRIEF, preset = "medium" })
    local seen = 0
    local done = dr.assert(client:wait(t.id, { on_progress = function() seen = seen + 1 end }))
    assert.equals("completed", done.status)
    assert.equals("done", dr.state(done, "perplexity"))
    local text = D.report.extract(done)
    assert.matches("%[web:%d+%]", text)
    assert.is_number(done.usage.cost.total_cost)
    assert.truthy(seen >= 2)
    assert.truthy(clock.sleeps[1] >= 3) -- the descriptor's poll floor
    if has_result then
      local r = dr.assert(result(done))
      assert.equals("perplexity", r.provider)
      assert.truthy(#r.sources >= 1)
      assert.equals(done.usage.cost.total_cost, r.cost.usd)
      -- [web:N] markers resolve against search_results and render as numbered footnotes
      local out = dr.report.render(done)
      assert.is_nil(out:find("[web:", 1, true))
      assert.truthy(out:find("[^1]: " .. r.sources[1].url, 1, true))
      -- the first marker names a result by its id, not by its place in the output
      local first = tonumber(text:match("%[web:(%d+)%]"))
      local url
      for _, item in ipairs(done.output) do
        for _, res in ipairs(item.type == "search_results" and item.results or {}) do
          if res.id == first then url = res.url end
        end
      end
      assert.equals(url, r.sources[1].url)
    end
  end)

  it("run takes the brief; the fast preset cites with [N]", function()
    local done = dr.assert(client:run{ brief = BRIEF, preset = "fast" })
    assert.equals("completed", done.status)
    assert.matches("%[%d+%]", D.report.extract(done))
    assert.equals(1, posts())
  end)

  it("sends output_schema as response_format and the search filters on web_search", function()
    local schema = { type = "object", properties = { summary = { type = "string" } } }
    dr.assert(client:create{ brief = BRIEF, preset = "low", output_schema = schema,
      search_domain_filter = { "sec.gov", "-reddit.com" }, search_recency_filter = "month",
      search_after_date_filter = "01/31/2025", instructions = "Cite filings.", max_steps = 8,
      max_tool_calls = 20 })
    local body = sent()
    assert.equals("json_schema", body.response_format.type)
    assert.equals("object", body.response_format.json_schema.schema.type)
    assert.equals("web_search", body.tools[1].type)
    assert.equals("month", body.tools[1].filters.search_recency_filter)
    assert.equals("sec.gov", body.tools[1].filters.search_domain_filter[1])
    assert.equals("01/31/2025", body.tools[1].filters.search_after_date_filter)
    assert.equals("Cite filings.", body.instructions)
    assert.equals(8, body.max_steps)
    assert.equals(20, body.max_tool_calls)
  end)

  it("gives a bare model a web_search tool (else it would not search)", function()
    dr.assert(client:create{ brief = BRIEF, model = "openai/gpt-6-luna" })
    local body = sent()
    assert.is_nil(body.preset)
    assert.equals("web_search", body.tools[1].type)
  end)

  it("ends a failed run with task_failed", function()
    local _, err = client:run{ brief = BRIEF .. " SIMULATE_FAIL", preset = "fast" }
    assert.equals("task_failed", err.code)
    assert.equals("failed", dr.state(err.task, "perplexity"))
  end)

  it("reads incomplete as done when text came, else as failed", function()
    local done = dr.assert(client:run{ brief = BRIEF .. " [incomplete]", preset = "fast" })
    assert.equals("incomplete", done.status)
    assert.truthy(#D.report.extract(done) > 0)
    -- a small cap spent on reasoning: incomplete with no message at all
    local _, err = client:run{ brief = BRIEF, preset = "medium", max_output_tokens = 32 }
    assert.equals("incomplete", err.code)
    assert.equals("max_output_tokens", err.reason)
    if has_result then assert.equals("failed", dr.assert(result(err.task)).state) end
  end)

  it("cancels: the answer says cancelling, the wait ends cancelled", function()
    local t = dr.assert(client:create{ brief = BRIEF, preset = "high" })
    local ack = dr.assert(client:cancel(t.id))
    assert.equals("cancelling", ack.status)
    assert.equals(t.id, ack.response_id)
    local _, err = client:wait(t.id)
    assert.equals("cancelled", err.code)
    local _, again = client:cancel(t.id)
    assert.equals("invalid_request", again.code)
    assert.equals(400, again.status)
    assert.matches("already ended %(cancelled%)", again.message)
    assert.equals("cancelled", again.task.status)
  end)

  it("has no list and no delete: unsupported, nothing sent", function()
    local before = #s:requests()
    local _, err = client:list()
    assert.equals("unsupported", err.code)
    local _, derr = client:delete("resp_8762b9bb-2d06-44a4-b68c-412dc85b24db")
    assert.equals("unsupported", derr.code)
    assert.equals(before, #s:requests())
  end)

  it("maps a bad key to unauthorized and a blocked one to forbidden", function()
    local c = env.client(s, { provider = "perplexity", api_key = "pplx-nope", token = false })
    local _, err = c:create{ brief = BRIEF }
    assert.equals("unauthorized", err.code)
    assert.equals(401, err.status)
    c:close()
    c = env.client(s, { provider = "perplexity", api_key = "pplx-blocked", token = false })
    _, err = c:create{ brief = BRIEF }
    assert.equals("forbidden", err.code)
    c:close()
  end)

  it("validates locally before sending", function()
    local before = #s:requests()
    local domains = {}
    for i = 1, 21 do domains[i] = "d" .. i .. ".example" end
    local cases = {
      { brief = "" }, { brief = BRIEF, preset = "turbo" }, { brief = BRIEF, max_steps = 0 },
      { brief = BRIEF, search_recency_filter = "decade" },
      { brief = BRIEF, search_domain_filter = domains },
      { brief = BRIEF, search_before_date_filter = "2026-01-31" },
      { brief = BRIEF, output_schema = { type = "array" } },
    }
    for _, c in ipairs(cases) do
      local _, err = client:create(c)
      assert.equals("invalid_request", err.code)
    end
    assert.equals(before, #s:requests())
    assert.has_error(function() client:create{ brief = BRIEF, metadata = {} } end,
      "bad option 'metadata' to 'create' (unknown option)")
    assert.has_error(function() client:run{ brief = BRIEF, presett = "fast" } end,
      "bad option 'presett' to 'run' (did you mean 'preset'?)")
  end)

  it("maps the server's strict validation to invalid_request with the field", function()
    local _, err = client:create{ brief = BRIEF, tools = { { type = "web_search", bogus = 1 } } }
    assert.equals("invalid_request", err.code)
    assert.equals(400, err.status)
    assert.equals("bogus", err.fields[1].field)
    assert.equals(0, s:counter("perplexity.tasks_created"))
  end)

  it("names a retired Sonar model and its preset: retired", function()
    local _, err = client:create{ brief = BRIEF, model = "sonar-deep-research" }
    assert.equals("retired", err.code)
    assert.matches("sonar%-deep%-research", err.message)
    assert.matches("preset high", err.message)
  end)

  it("reads the retired surface's 403 as retired, not as an auth failure", function()
    s:fault{ method = "POST", path = "/v1/agent", status = 403,
      body = '{"error":{"message":"Sonar is now the Agent API. Use /v1/responses instead of ' ..
        '/v1/sonar.","type":"chat_completions_not_available","code":403}}' }
    local _, err = client:create{ brief = BRIEF }
    assert.equals("retired", err.code)
    assert.is_false(err.retryable)
    assert.matches("Agent API", err.message)
    assert.equals(1, posts())
    -- the simulator's own legacy route answers the same body
    local res = s:http("GET", "/async/chat/completions",
      { headers = { Authorization = "Bearer pplx-key" } })
    assert.equals(403, res.status)
    assert.equals("chat_completions_not_available", res.json.error.type)
  end)

  it("maps 429 to rate_limited and never re-sends the create", function()
    s:config{ perplexity = { rpm = { 1, 1, 1, 1, 1, 1 }, retry_after = true } }
    dr.assert(client:create{ brief = BRIEF, preset = "fast" })
    local _, err = client:create{ brief = BRIEF, preset = "fast" }
    assert.equals("rate_limited", err.code)
    assert.equals(429, err.status)
    assert.equals(2, posts())
    assert.equals(1, s:counter("perplexity.tasks_created"))
  end)

  it("reports a lost create as ambiguous after exactly one POST", function()
    s:fault{ method = "POST", path = "/v1/agent", kind = "drop", after = true }
    local _, err = client:create{ brief = BRIEF, preset = "fast" }
    assert.equals("ambiguous", err.code)
    assert.is_false(err.retryable)
    assert.is_nil(err.nonce)
    assert.equals(1, posts())
    assert.equals(1, s:counter("perplexity.tasks_created"))
    assert.matches("cannot be looked up", err.message)
  end)
  -- The hostile-error-body case for both Responses providers is in openai_spec.
end)

-- The simulated Perplexity Agent API in background mode (sim/simulator/perplexity.lua;
-- perplexity-agent.md PART C PA1-PA18), over raw HTTP, driven by the virtual clock (speed 0).
local sim = require "support.sim"

local s
local KEY = { Authorization = "Bearer pplx-key" }
local BAD_KEY = '{"error":{"message":"Invalid API key provided. Ensure your API key is correct '
  .. 'and active.","type":"invalid_api_key","code":401}}'
local RETIRED = "Sonar is now the Agent API. Use /v1/responses instead of /v1/sonar. Migrate "
  .. "here: https://docs.perplexity.ai/docs/agent-api/migrate-from-sonar/overview"

local function post(path, body, headers)
  return assert(s:http("POST", path, { headers = headers or KEY, body = body }))
end

local function get(path, headers)
  return assert(s:http("GET", path, { headers = headers or KEY }))
end

local function create(extra, path)
  local body = { preset = "medium", input = "Research the Acme Robotics market",
    background = true }
  for k, v in pairs(extra or {}) do body[k] = v end
  if body.preset == false then body.preset = nil end
  return post(path or "/v1/agent", body)
end

local function created()
  return s:counter("perplexity.tasks_created")
end

local function keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function finished(extra, seconds)
  local id = create(extra).json.id
  s:advance(seconds or 300)
  return get("/v1/agent/" .. id).json
end

local function report_text(body)
  local msg = body.output[#body.output]
  assert.equal("message", msg.type)
  return msg.content[1].text
end

local function result_ids(body)
  local ids = {}
  for _, item in ipairs(body.output) do
    if item.type == "search_results" then
      for _, r in ipairs(item.results) do ids[r.id] = r.url end
    end
  end
  return ids
end

local function markers(text, pattern)
  local list = {}
  for n in text:gmatch(pattern) do list[#list + 1] = tonumber(n) end
  return list
end

describe("Perplexity Agent API simulator", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  describe("auth first (PA3)", function()
    it("answers 401 with the captured body, 403 for a blocked key, creating nothing", function()
      local r = post("/v1/agent", { preset = "medium", input = "x" }, {})
      assert.equal(401, r.status)
      assert.same(require("cjson").decode(BAD_KEY), r.json)
      r = post("/v1/agent", { nonsense = true }, { Authorization = "Bearer pplx-blocked" })
      assert.equal(403, r.status)
      assert.equal("forbidden", r.json.error.type)
      assert.equal(0, created())
    end)

    it("answers GET /v1/models only with a key unless the switch makes it public", function()
      assert.equal(401, get("/v1/models", {}).status)
      local r = get("/v1/models")
      assert.equal(200, r.status)
      assert.equal("list", r.json.object)
      s:config({ perplexity = { models_public = true } })
      assert.equal(200, get("/v1/models", {}).status)
    end)
  end)

  describe("strict validation (PA4)", function()
    local function refused(extra, message, param, type_)
      local r = create(extra)
      assert.equal(400, r.status)
      assert.equal(message, r.json.error.message)
      assert.equal(400, r.json.error.code)
      assert.equal(type_ or "invalid_request", r.json.error.type)
      if param then assert.equal(param, r.json.error.param) end
    end

    it("refuses unknown fields at any depth, and OpenAI's text.format", function()
      refused({ query = "x" }, 'invalid request body: json: unknown field "query"', "query")
      refused({ tools = { { type = "web_search", filters = { search_after_date = "x" } } } },
        'invalid request body: json: unknown field "search_after_date"', "search_after_date")
      refused({ text = { format = { type = "json_schema" } } },
        'invalid request body: json: unknown field "format"', "format")
      assert.equal(0, created())
    end)

    it("answers the captured messages", function()
      refused({ input = "" }, "validation failed: input cannot be empty")
      refused({ input = 42 }, "validation failed: input array cannot be empty")
      refused({ max_steps = 0 }, "validation failed: max steps must be at least 1")
      local decade = { search_recency_filter = "decade" }
      refused({ tools = { { type = "web_search", filters = decade } } },
        "validation failed: tools[0]: search recency filter must be one of: hour day week month "
        .. "year")
      refused({ response_format = { type = "json_schema" } },
        'validation failed: response_format.json_schema is required when type is "json_schema"')
      refused({ response_format = { type = "json_schema", json_schema = { schema = {
        type = "array" } } } }, "json_schema.schema must have a root type of 'object' (got "
        .. 'type="array"). Wrap your schema in an object.', nil, "invalid_parameter")
      refused({ preset = false, model = "anthropic/claude-opus-5-5" },
        "validation failed: max_output_tokens is required when using Anthropic models")
      refused({ preset = "ultra-max" }, "unknown preset: ultra-max")
      refused({ preset = false, model = "openai/gpt-2" }, "model not supported: openai/gpt-2", nil,
        "invalid_model")
      refused({ previous_response_id = "resp_unknown" }, "invalid request")
      assert.equal(0, created())
    end)
  end)

  describe("create and lifecycle (PA6-PA9)", function()
    it("answers the 32-key queued object with the preset as model", function()
      local r = create()
      assert.equal(200, r.status)
      local b = r.json
      assert.equal(32, keys(b))
      assert.truthy(b.id:match("^resp_%x+%-%x+%-4%x+%-%x+%-%x+$"))
      assert.equal("queued", b.status)
      assert.equal("medium", b.model)
      assert.equal(0, #b.tools)
      assert.equal("default", b.service_tier)
      assert.truthy(r.body:find('"usage":null', 1, true))
      assert.equal("cloudflare", r.headers.server)
      assert.equal("50", r.headers["x-ratelimit-limit"])
      assert.equal("49", r.headers["x-ratelimit-remaining"])
      assert.equal(1, created())
    end)

    it("grows search_results while in_progress, then completes with the resolved model",
      function()
        local id = create().json.id
        s:advance(20)
        local mid = get("/v1/agent/" .. id).json
        assert.equal("in_progress", mid.status)
        assert.equal("medium", mid.model)
        assert.is_true(#mid.output >= 1)
        for _, item in ipairs(mid.output) do assert.are_not.equal("message", item.type) end
        assert.equal(1767225600 + 20, mid.created_at) -- rewritten to the snapshot's time
        s:advance(300)
        local b = get("/v1/agent/" .. id).json
        assert.equal("completed", b.status)
        assert.equal("openai/gpt-6-luna", b.model)
        assert.equal(b.created_at, b.completed_at)
        assert.is_true(#b.tools > 0)
        local c = b.usage.cost
        local parts = (c.input_cost or 0) + (c.output_cost or 0) + (c.cache_read_cost or 0)
          + (c.cache_creation_cost or 0) + (c.tool_calls_cost or 0)
        assert.is_true(math.abs(parts - c.total_cost) < 2e-5)
        assert.equal(b.usage.input_tokens + b.usage.output_tokens, b.usage.total_tokens)
      end)

    it("cites with [web:N] markers that resolve to result ids in blocks of 10", function()
      local b = finished()
      local ids, text = result_ids(b), report_text(b)
      local list = markers(text, "%[web:(%d+)%]")
      assert.is_true(#list > 0)
      for _, n in ipairs(list) do assert.truthy(ids[n], "marker " .. n .. " resolves") end
      for _, item in ipairs(b.output) do
        if item.type == "search_results" then
          local block = math.floor((item.results[1].id - 1) / 10)
          for _, r in ipairs(item.results) do
            assert.equal(block, math.floor((r.id - 1) / 10))
          end
        end
      end
      assert.truthy(text:find("|", 1, true))
      assert.truthy(text:find("[\128-\255]"))
      assert.equal(0, #b.output[#b.output].content[1].annotations)
    end)

    it("fast writes glued [N]; custom instructions turn citations into links", function()
      local text = report_text(finished({ preset = "fast" }, 20))
      assert.is_true(#markers(text, "%[(%d+)%]") > 0)
      assert.falsy(text:find("[web:", 1, true))
      s:reset()
      text = report_text(finished({ instructions = "Be brief." }))
      assert.falsy(text:find("[web:", 1, true))
      assert.truthy(text:find("%]%(https://"))
    end)

    it("switch dangling_marker leaves one marker unresolved", function()
      s:config({ perplexity = { dangling_marker = true } })
      local b = finished()
      local ids, dangling = result_ids(b), 0
      for _, n in ipairs(markers(report_text(b), "%[web:(%d+)%]")) do
        if not ids[n] then dangling = dangling + 1 end
      end
      assert.is_true(dangling >= 1)
    end)

    it("serves the same run on the /v1/responses alias for a Perplexity key", function()
      local r = create(nil, "/v1/responses")
      assert.equal(200, r.status)
      assert.equal(32, keys(r.json))
      assert.equal(r.json.id, get("/v1/agent/" .. r.json.id).json.id)
      assert.equal(r.json.id, get("/v1/responses/" .. r.json.id).json.id)
    end)
  end)

  describe("engines and switches (PA5, PA7, PA8, PA9)", function()
    it("takes effort pins, model chains and explicit models with their own search price",
      function()
        local b = finished({ preset = false, effort = "medium@2026-10-16.0" })
        assert.equal("completed", b.status)
        s:reset()
        s:config({ perplexity = { models_fail_first = 1 } })
        b = finished({ preset = false, models = { "openai/gpt-5.6-sol", "perplexity/sonar" },
          tools = { { type = "web_search" } } })
        assert.equal("perplexity/sonar", b.model)
        local d = b.usage.tool_calls_details.search_web
        assert.is_true(math.abs(d.cost_usd - d.invocation * 0.0025) < 1e-9)
        s:reset()
        s:config({ perplexity = { effort_field = false } })
        assert.equal("effort", create({ effort = "fast" }).json.error.param)
      end)

    it("keeps created_at stable and cites [page:1] and a repeated id by switch", function()
      s:config({ perplexity = { stable_created_at = true, page_marker = true,
        duplicate_id = true } })
      local b = finished()
      assert.equal(1767225600, b.created_at)
      assert.is_true(b.completed_at > b.created_at)
      assert.truthy(report_text(b):find("[page:1]", 1, true))
      local seen, repeated = {}, false
      for _, item in ipairs(b.output) do
        for _, r in ipairs(item.results or {}) do
          if seen[r.id] and seen[r.id] ~= r.url then repeated = true end
          seen[r.id] = r.url
        end
      end
      assert.is_true(repeated)
    end)

    it("bills fast at the priority tier and shows no usage before the end", function()
      local id = create({ preset = "fast" }).json.id
      s:advance(1)
      local r = get("/v1/agent/" .. id)
      assert.equal("queued", r.json.status)
      assert.truthy(r.body:find('"usage":null', 1, true))
      s:advance(20)
      assert.equal("fast", get("/v1/agent/" .. id).json.service_tier)
    end)
  end)

  describe("rare endings (PA10, PA11)", function()
    it("ends incomplete with output [] when the cap is tiny", function()
      local b = finished({ max_output_tokens = 20 })
      assert.equal("incomplete", b.status)
      assert.equal("max_output_tokens", b.incomplete_details.reason)
      assert.equal(0, #b.output)
      assert.equal(20, b.usage.output_tokens)
      assert.equal(20, b.usage.output_tokens_details.reasoning_tokens)
    end)

    it("fails on SIMULATE_FAIL with internal_error and usage", function()
      local b = finished({ input = "Research Acme SIMULATE_FAIL" })
      assert.equal("failed", b.status)
      assert.equal("internal_error", b.error.code)
      assert.equal("number", type(b.usage.total_tokens))
    end)
  end)

  describe("cancel (PA12) and get (PA13)", function()
    it("answers cancelling, keeps showing in_progress, then the cancelled snapshot", function()
      local id = create().json.id
      s:advance(20)
      local r = post("/v1/agent/" .. id .. "/cancel", nil)
      assert.equal(200, r.status)
      assert.same({ response_id = id, status = "cancelling" }, r.json)
      assert.equal(200, post("/v1/agent/" .. id .. "/cancel", nil).status)
      s:advance(1)
      assert.equal("in_progress", get("/v1/agent/" .. id).json.status)
      s:advance(20)
      local g = get("/v1/agent/" .. id)
      local b = g.json
      assert.equal("cancelled", b.status)
      assert.equal("cancelled", b.error.code)
      assert.equal("cancelled", b.incomplete_details.reason)
      assert.truthy(g.body:find('"usage":null', 1, true))
      assert.equal("medium", b.model)
      assert.equal(1, s:counter("perplexity.cancels"))
      assert.is_true(s:state().perplexity.tasks[1].cost_usd > 0)
      local again = post("/v1/agent/" .. id .. "/cancel", nil)
      assert.equal(400, again.status)
      assert.equal("the run is already terminal and cannot be cancelled", again.json.error.message)
    end)

    it("answers unknown, malformed, other-key and store:false ids as the captures show", function()
      local unknown = "/v1/agent/resp_8762b9bb-2d06-44a4-b68c-412dc85b24db"
      assert.equal(400, post(unknown .. "/cancel", nil).status)
      assert.equal("invalid response id", get("/v1/agent/not-an-id").json.error.message)
      local r = get(unknown)
      assert.equal(404, r.status)
      assert.same({ message = "resource not found", type = "not_found", code = 404 },
        r.json.error)
      local id = create().json.id
      assert.equal(404, get("/v1/agent/" .. id, { Authorization = "Bearer pplx-other" }).status)
      local hidden = create({ store = false }).json.id
      assert.equal(404, get("/v1/agent/" .. hidden).status)
      assert.equal(2, #s:state().perplexity.tasks)
      s:config({ perplexity = { cancel_unknown = "404" } })
      assert.equal(404, post(unknown .. "/cancel", nil).status)
    end)

    it("forgets a run 30 virtual days after it ended; has no list or delete", function()
      local id = create().json.id
      s:advance(300)
      assert.equal(200, get("/v1/agent/" .. id).status)
      s:advance(30 * 86400)
      assert.equal(404, get("/v1/agent/" .. id).status)
      assert.equal(404, get("/v1/agent").status)
      assert.equal(404, assert(s:http("DELETE", "/v1/agent/" .. id, { headers = KEY })).status)
    end)
  end)

  describe("rate limits and no idempotency (PA14, PA16)", function()
    it("answers 429 past the tier's RPM with remaining 0, creating nothing", function()
      s:config({ perplexity = { rpm = { 2 } } })
      create()
      create()
      local r = create()
      assert.equal(429, r.status)
      assert.equal("request_rate_limit_exceeded", r.json.error.type)
      assert.equal("0", r.headers["x-ratelimit-remaining"])
      assert.is_nil(r.headers["retry-after"])
      assert.equal(2, created())
      s:config({ perplexity = { retry_after = true } })
      assert.equal("60", create().headers["retry-after"])
    end)

    it("keeps running a create whose answer was lost", function()
      s:fault({ method = "POST", path = "/v1/agent", kind = "drop", after = true })
      assert.is_nil(s:http("POST", "/v1/agent", { headers = KEY,
        body = { preset = "medium", input = "x", background = true } }))
      assert.equal(1, created())
      s:advance(300)
      assert.equal("completed", s:state().perplexity.tasks[1].status)
    end)

    it("can answer 500 in Perplexity's envelope after the run was started", function()
      s:fault({ method = "POST", path = "/v1/agent", status = 500, after = true,
        body = '{"error":{"message":"internal error","type":"internal_error","code":500}}' })
      local r = create()
      assert.equal(500, r.status)
      assert.equal("internal_error", r.json.error.type)
      assert.equal(1, created())
    end)
  end)

  describe("retired Sonar routes (PA18)", function()
    it("answer 403 chat_completions_not_available, never an auth failure", function()
      for _, r in ipairs({ post("/chat/completions", { model = "sonar" }),
        get("/async/chat/completions"), post("/v1/sonar", {}, {}) }) do
        assert.equal(403, r.status)
        assert.same({ message = RETIRED, type = "chat_completions_not_available", code = 403 },
          r.json.error)
      end
      assert.equal(0, created())
      s:config({ perplexity = { legacy_retired = false } })
      assert.equal(404, post("/chat/completions", {}).status)
    end)
  end)
end)

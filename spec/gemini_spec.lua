-- The Gemini Deep Research client (Interactions API) against the simulator (gemini.md Part C).
local dr = require "deepresearch"
local env = require "support.env"
local json = require "cjson"

local D = require "deepresearch.providers.descriptor.gemini"
local ROUTE = "/v1beta/interactions"

describe("gemini", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client, clock = env.client(s, { provider = "gemini", api_key = "gemini-key", token = false,
      base_url = s.url .. "/v1beta", base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local BRIEF = env.BRIEF

  local function posts() return env.count_requests(s, "^POST " .. ROUTE .. "$") end
  local function last_request() local r = s:requests() return r[#r] end
  local function sim_tasks() return s:state().gemini.tasks end

  it("sends the key in x-goog-api-key, strips /v1beta from the base URL, fixes the body",
    function()
      local t = dr.assert(client:create{ brief = BRIEF })
      local req = last_request()
      assert.equals("POST", req.method)
      assert.equals(ROUTE, req.route)
      assert.equals("gemini-key", req.headers["x-goog-api-key"])
      assert.is_nil(req.headers.authorization)
      assert.equals(D.api_revision, req.headers["api-revision"])
      local body = json.decode(req.body)
      assert.equals(D.default_agent, body.agent)
      assert.equals(BRIEF, body.input)
      assert.is_true(body.background)
      assert.is_true(body.store)
      assert.equals("deep-research", body.agent_config.type)
      assert.matches("^%x+$", body.labels.deepresearch_nonce)
      assert.is_string(t.id)
      assert.equals("running", dr.state(t, "gemini"))
      assert.equals(1, s:counter("gemini.tasks_created"))
    end)

  it("reads GEMINI_API_KEY when no key is given", function()
    local c = dr.client{ provider = "gemini", base_url = s.url }
    local _, err = c:get("x")
    if not os.getenv("GEMINI_API_KEY") then
      assert.equals("unauthorized", err.code)
      assert.matches("GEMINI_API_KEY", err.message)
    end
    c:close()
  end)

  it("creates, waits (polling no sooner than every 10 s) and reads the report from steps",
    function()
      local t = dr.assert(client:create{ brief = BRIEF,
        agent_config = { thinking_summaries = "auto" } })
      local seen = 0
      local done = dr.assert(client:wait(t.id, { on_progress = function() seen = seen + 1 end }))
      assert.equals("completed", done.status)
      assert.equals("done", dr.state(done, "gemini"))
      assert.truthy(seen >= 2)
      for _, d in ipairs(clock.sleeps) do assert.truthy(d >= D.poll.floor and d <= D.poll.cap) end
      local r = dr.assert(dr.result(done, "gemini"))
      assert.matches("%[1%]", r.text)
      assert.truthy(#r.sources >= 1)
      assert.truthy(D.detect(done))
      assert.truthy(r.cost.usd > 0.2 and r.cost.usd < 10, tostring(r.cost.usd))
    end)

  it("dr.result and report.render read a finished interaction: footnotes, estimated cost",
    function()
      local done = dr.assert(client:run{ brief = BRIEF })
      local r = dr.assert(dr.result(done)) -- detected without the provider's name
      assert.equals("gemini", r.provider)
      assert.equals(done.id, r.id)
      assert.equals("done", r.state)
      assert.truthy(#r.sources >= 1)
      assert.is_true(r.cost.estimated)
      assert.equals(D.prices.as_of, r.cost.as_of)
      -- The first [n] marker sits where the first citation's byte range ends.
      local part
      for _, step in ipairs(done.steps) do
        if step.type == "model_output" then part = step.content[1] end
      end
      local first = part.annotations[1]
      for _, a in ipairs(part.annotations) do
        if a.end_index < first.end_index then first = a end
      end
      local before = part.text:sub(1, first.end_index)
      assert.equals(1, r.text:find(before, 1, true))
      assert.equals("[1]", r.text:sub(#before + 1, #before + 3))
      local md = dr.report.render(done)
      assert.matches("%[%^1%]: " .. r.sources[1].url:gsub("%p", "%%%0"), md)
    end)

  it("run creates and waits in one call; the legacy outputs[] layout reads too", function()
    s:config{ gemini = { layout = "outputs" } }
    local done = dr.assert(client:run{ brief = BRIEF })
    assert.equals("completed", done.status)
    assert.is_nil(done.steps)
    assert.matches("%[1%]", dr.assert(dr.result(done)).text)
  end)

  it("an invalid key (400 API_KEY_INVALID) is unauthorized, sent once", function()
    local c = env.client(s, { provider = "gemini", api_key = "nope", token = false })
    local _, err = c:create{ brief = BRIEF }
    assert.equals("unauthorized", err.code)
    assert.equals(400, err.status)
    assert.is_false(err.retryable)
    assert.matches("API key not valid", err.message)
    assert.equals(1, posts())
    c:close()
  end)

  it("refuses what Gemini cannot do before sending anything", function()
    local _, err = client:create{ brief = BRIEF,
      output_schema = { type = "object", properties = {} } }
    assert.equals("invalid_request", err.code)
    assert.matches("structured output", err.message)
    _, err = client:create{ brief = BRIEF, agent_config = { type = "chat" } }
    assert.equals("invalid_request", err.code)
    _, err = client:create{ brief = BRIEF, agent_config = { visualization = "maybe" } }
    assert.equals("invalid_request", err.code)
    _, err = client:create{ brief = "   " }
    assert.equals("invalid_request", err.code)
    assert.has_error(function() client:create{ brief = BRIEF, depth = "high" } end)
    assert.has_error(function() client:create{ brief = BRIEF, agnet = "x" } end)
    assert.equals(0, #s:requests())
  end)

  it("a shut-down agent is retired: known ones locally, others by the server's 404", function()
    local _, err = client:create{ brief = BRIEF, agent = "deep-research-pro-preview-12-2025" }
    assert.equals("retired", err.code)
    assert.matches("deep%-research%-preview%-04%-2026", err.message)
    assert.equals(0, posts())
    s:config{ gemini = { agents = { ["deep-research-max-preview-04-2026"] = "retired" } } }
    _, err = client:create{ brief = BRIEF, agent = "deep-research-max-preview-04-2026" }
    assert.equals("retired", err.code)
    assert.equals(404, err.status)
    assert.matches("deep%-research%-max%-preview%-04%-2026", err.message)
    assert.equals(1, posts())
  end)

  it("only Google's JSON NOT_FOUND naming the agent is retired; other 404s keep their code",
    function()
      local h = require("support.hostile").start([[
return function(method, path, body, n)
  if n == 1 then return 404, '<html>Not Found</html>' end
  if n == 2 then
    return 404, '{"error":{"code":404,"message":"Requested entity was not found.",' ..
      '"status":"NOT_FOUND"}}'
  end
  return 404, '{"error":{"code":404,"message":"Agent deep-research-preview-04-2026 is not ' ..
    'found for API version v1beta","status":"NOT_FOUND"}}'
end]])
      finally(h.stop) -- before any assertion: a server left running blocks busted's exit
      local c = dr.client{ provider = "gemini", api_key = "k", base_url = h.url .. "/v1beta" }
      local _, err = c:create{ brief = BRIEF }
      assert.equals("invalid_response", err.code)
      assert.equals(404, err.status)
      _, err = c:create{ brief = BRIEF }
      assert.equals("not_found", err.code)
      _, err = c:create{ brief = BRIEF }
      assert.equals("retired", err.code)
      assert.matches("deep%-research%-preview%-04%-2026", err.message)
      c:close()
    end)

  it("an error body of the wrong types is read, never raised on", function()
    local h = require("support.hostile").start([[
return function()
  return 400, '{"error":{"code":"x","message":{"a":1},"status":7,' ..
    '"details":[1,"s",{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":{}},' ..
    '{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":5}]}}'
end]])
    finally(h.stop)
    local c = dr.client{ provider = "gemini", api_key = "k", base_url = h.url }
    local ok, _, err = pcall(c.create, c, { brief = BRIEF })
    assert.is_true(ok, tostring(_))
    assert.equals("invalid_request", err.code)
    assert.is_string(err.message)
    assert.no_match("table:", err.message)
    c:close()
  end)

  it("a 429 carries retryDelay as retry_after; a create is not re-sent, a get is", function()
    s:config{ gemini = { rate = { creates_per_min = 1, gets_per_min = 1 } } }
    local t = dr.assert(client:create{ brief = BRIEF })
    local _, err = client:create{ brief = BRIEF }
    assert.equals("rate_limited", err.code)
    assert.equals(429, err.status)
    assert.is_true(err.retryable)
    assert.matches("^%d+$", err.retry_after)
    assert.equals(2, posts())
    assert.equals(1, s:counter("gemini.tasks_created"))
    -- A get's 429 is retried after the delay its body names (virtual seconds slept).
    dr.assert(client:get(t.id))
    local before = #clock.sleeps
    local got = dr.assert(client:get(t.id))
    assert.equals(t.id, got.id)
    assert.equals(before + 1, #clock.sleeps)
    assert.truthy(clock.sleeps[#clock.sleeps] >= 30, tostring(clock.sleeps[#clock.sleeps]))
  end)

  it("cancel stops a running interaction; a wait then ends cancelled", function()
    local t = dr.assert(client:create{ brief = BRIEF })
    local c = dr.assert(client:cancel(t.id))
    assert.equals("cancelled", c.status)
    local _, err = client:wait(t.id)
    assert.equals("cancelled", err.code)
    assert.equals("cancelled", err.task.status)
    -- A finished interaction cannot be cancelled (FAILED_PRECONDITION).
    _, err = client:cancel(t.id)
    assert.equals("invalid_request", err.code)
    assert.equals(400, err.status)
  end)

  it("delete removes the record; a get then finds nothing", function()
    local t = dr.assert(client:create{ brief = BRIEF })
    dr.assert(client:delete(t.id))
    local _, err = client:get(t.id)
    assert.equals("not_found", err.code)
  end)

  it("list is unsupported and sends nothing", function()
    local list, err = client:list{ limit = 10 }
    assert.is_nil(list)
    assert.equals("unsupported", err.code)
    assert.equals(0, #s:requests())
  end)

  it("a lost create is ambiguous, names its nonce and is sent exactly once", function()
    s:fault{ method = "POST", path = ROUTE, kind = "drop", after = true }
    local _, err = client:create{ brief = BRIEF }
    assert.equals("ambiguous", err.code)
    assert.is_false(err.retryable)
    assert.matches("cannot be looked up", err.message)
    assert.matches(err.nonce, err.message, 1, true)
    assert.equals(1, posts())
    assert.equals(1, s:counter("gemini.tasks_created"))
    -- The interaction exists, and carries the nonce the error names.
    assert.equals(err.nonce, sim_tasks()[1].labels.deepresearch_nonce)
  end)

  it("a 5xx to a create may have made one: ambiguous, never retried", function()
    s:fault{ method = "POST", path = ROUTE, status = 503,
      body = '{"error":{"code":503,"message":"The service is currently unavailable.",' ..
        '"status":"UNAVAILABLE"}}' }
    local _, err = client:create{ brief = BRIEF }
    assert.equals("ambiguous", err.code)
    assert.equals(503, err.status)
    assert.equals(1, posts())
  end)

  it("run with a lost create does not wait or send again", function()
    s:fault{ method = "POST", path = ROUTE, kind = "drop", after = true }
    local _, err = client:run{ brief = BRIEF }
    assert.equals("ambiguous", err.code)
    assert.equals(1, #s:requests())
  end)

  it("incomplete with a report is done; budget_exceeded and failed are task_failed", function()
    s:config{ gemini = { outcome = "incomplete" } }
    local done = dr.assert(client:run{ brief = BRIEF })
    assert.equals("incomplete", done.status)
    assert.equals("done", dr.state(done, "gemini"))
    s:config{ gemini = { outcome = "budget_exceeded" } }
    local _, err = client:run{ brief = BRIEF }
    assert.equals("task_failed", err.code)
    assert.equals("budget_exceeded", err.task.status)
    assert.matches("budget", err.message)
    s:config{ gemini = { outcome = "failed" } }
    _, err = client:run{ brief = BRIEF }
    assert.equals("task_failed", err.code)
    assert.equals("failed", dr.state(err.task, "gemini"))
  end)

  it("a run still going at the 65-minute deadline is cancelled; a caller's timeout is not",
    function()
      s:config{ gemini = { stuck = true } }
      local t = dr.assert(client:create{ brief = BRIEF })
      local _, err = client:wait(t.id, { timeout = 600 })
      assert.equals("timeout", err.code)
      assert.equals(0, env.count_requests(s, "^POST " .. ROUTE .. "/.*/cancel$"))
      _, err = client:wait(t.id)
      assert.equals("timeout", err.code)
      assert.is_true(err.cancelled)
      assert.matches("cancelled it", err.message)
      assert.truthy(clock.t >= D.deadline)
      assert.equals(1, env.count_requests(s, "^POST " .. ROUTE .. "/.*/cancel$"))
      assert.equals("cancelled", dr.assert(client:get(t.id)).status)
    end)

  it("incomplete without a report is a failure (code incomplete)", function()
    local task = { id = "i1", status = "incomplete", steps = {},
      errors = { { code = "x/max_tokens", message = "hit max tokens" } } }
    local err = require("deepresearch.providers.gemini").verdict(task, "done")
    assert.equals("incomplete", err.code)
    assert.matches("hit max tokens", err.message)
  end)

  it("a planning turn that requires action ends the wait with input_required", function()
    s:config{ gemini = { planning_status = "requires_action" } }
    local _, err = client:run{ brief = BRIEF, agent_config = { collaborative_planning = true } }
    assert.equals("input_required", err.code)
    assert.equals("requires_action", err.task.status)
    assert.matches("previous_interaction_id", err.message)
    assert.equals("input_required", dr.state({ status = "requires_action" }))
  end)

  it("reads a byte-range citation after non-ASCII text", function()
    -- 3 bytes more than characters before the cited sentence: character offsets would miss.
    local text = "Zürich — Acme grew 30%. Globex fell."
    local s0, e0 = text:find("Acme grew 30%.", 1, true)
    local task = { id = "x", status = "completed", agent = D.default_agent, steps = {
      { type = "thought", summary = {} },
      { type = "model_output", content = { { type = "text", text = text, annotations = {
        { type = "url_citation", url = "https://a.example", title = "a.example",
          start_index = s0 - 1, end_index = e0 } } } } } } }
    local r = dr.assert(dr.result(task))
    assert.equals("Zürich — Acme grew 30%.[1] Globex fell.", r.text)
    assert.equals("https://a.example", r.sources[1].url)
    assert.is_true(r.cost.estimated)
    assert.is_true(D.detect(task))
    assert.is_false(D.detect({ object = "response", id = "resp_1", status = "completed" }))
  end)
end)

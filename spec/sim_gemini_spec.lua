-- The simulated Gemini Interactions API, Deep Research agents (gemini.md Part C, G1-G14): raw
-- HTTP against the simulator, driven by its virtual clock and switches (never by sleeping).
local sim = require "support.sim"
local cjson = require "cjson"

local s
local AGENT = "deep-research-preview-04-2026"
local MAX = "deep-research-max-preview-04-2026"
local BASE = "/v1beta/interactions"

local function api(method, path, body, key)
  local headers = {}
  if key ~= false then headers["x-goog-api-key"] = key or "gemini-key" end
  return assert(s:http(method, path, { headers = headers, body = body }))
end

local function body_for(input, extra)
  local b = { agent = AGENT, input = input or "Research Acme Corp", background = true }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

local function create(input, extra, key) return api("POST", BASE, body_for(input, extra), key) end
local function get(id, key) return api("GET", BASE .. "/" .. id, nil, key) end

local function gemini_state() return s:state().gemini end

local function error_of(r, code, status)
  assert.equals(code, r.status)
  assert.equals(code, r.json.error.code)
  assert.equals(status, r.json.error.status)
  return r.json.error
end

-- Number of UTF-8 characters (no utf8 library on Lua 5.1 / LuaJIT).
local function chars(str)
  return select(2, str:gsub("[^\128-\191]", ""))
end

local function last_step(it) return it.steps[#it.steps] end

local function run_to_end(id, step)
  for _ = 1, 400 do
    s:advance(step or 30)
    local it = get(id).json
    if it.status ~= "in_progress" and it.status ~= "queued" then return it end
  end
  error("interaction never ended")
end

describe("simulated Gemini Interactions", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  describe("auth (G2)", function()
    it("no key: 403 PERMISSION_DENIED without details", function()
      local e = error_of(create(nil, nil, false), 403, "PERMISSION_DENIED")
      assert.matches("unregistered callers", e.message)
      assert.is_nil(e.details)
    end)

    it("unknown key: 400 INVALID_ARGUMENT with API_KEY_INVALID and a LocalizedMessage", function()
      local e = error_of(create(nil, nil, "nope"), 400, "INVALID_ARGUMENT")
      assert.equals("API key not valid. Please pass a valid API key.", e.message)
      assert.equals("type.googleapis.com/google.rpc.ErrorInfo", e.details[1]["@type"])
      assert.equals("API_KEY_INVALID", e.details[1].reason)
      assert.equals("type.googleapis.com/google.rpc.LocalizedMessage", e.details[2]["@type"])
      assert.equals(0, s:counter("gemini.tasks_created"))
    end)

    it("accepts ?key= but flags it in the side channel", function()
      local r = api("POST", BASE .. "?key=gemini-key", body_for(), false)
      assert.equals(200, r.status)
      assert.equals(1, gemini_state().query_key_uses)
      assert.equals(1, s:counter("gemini.query_key"))
    end)

    it("free-tier key: 403 on create (switchable); leaked key: 403", function()
      error_of(create(nil, nil, "gemini-free"), 403, "PERMISSION_DENIED")
      error_of(create(nil, nil, "gemini-leaked"), 403, "PERMISSION_DENIED")
      s:config{ gemini = { free_tier_forbidden = false } }
      assert.equals(200, create(nil, nil, "gemini-free").status)
    end)

    it("another project's interaction is 404", function()
      local id = create().json.id
      error_of(get(id, "gemini-other"), 404, "NOT_FOUND")
    end)
  end)

  describe("validation (G3): nothing created", function()
    local cases = {
      { "missing agent", { agent = cjson.null } },
      { "missing input", { input = cjson.null } },
      { "agent and model", { model = "gemini-3-pro" } },
      { "unknown agent", { agent = "deep-research-nope" } },
      { "background absent", { background = cjson.null } },
      { "background false", { background = false } },
      { "store false", { store = false } },
      { "agent_config.type", { agent_config = { type = "chat" } } },
      { "bad enum", { agent_config = { type = "deep-research", visualization = "on" } } },
      { "unknown agent_config key",
        { agent_config = { type = "deep-research", depth = 3 } } },
      { "response_format", { response_format = { type = "object" } } },
      { "function tool", { tools = { { type = "function", name = "f" } } } },
      { "unknown field", { query = "x" } },
      { "empty input", { input = "   " } },
      { "labels not strings", { labels = { a = 1 } } },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " -> 400 INVALID_ARGUMENT", function()
        local b = body_for()
        for k, v in pairs(case[2]) do
          if v == cjson.null then b[k] = nil else b[k] = v end
        end
        error_of(api("POST", BASE, b), 400, "INVALID_ARGUMENT")
        assert.equals(0, s:counter("gemini.tasks_created"))
      end)
    end

    it("the shut-down agent is 404 NOT_FOUND naming it; the switch retires a current one",
      function()
        local e = error_of(create(nil, { agent = "deep-research-pro-preview-12-2025" }), 404,
          "NOT_FOUND")
        assert.matches("deep%-research%-pro%-preview%-12%-2025", e.message)
        s:config{ gemini = { agents = { [AGENT] = "retired" } } }
        error_of(create(), 404, "NOT_FOUND")
        assert.equals(200, create(nil, { agent = MAX }).status)
      end)

    it("there is no list: GET /v1beta/interactions is 404", function()
      error_of(api("GET", BASE), 404, "NOT_FOUND")
    end)
  end)

  describe("create and lifecycle (G4, G5, G14)", function()
    it("answers in_progress with defaults filled and no steps", function()
      local r = create()
      assert.equals(200, r.status)
      local it_ = r.json
      assert.equals("in_progress", it_.status)
      assert.equals(AGENT, it_.agent)
      assert.matches("^v1_", it_.id)
      assert.same({ type = "deep-research", thinking_summaries = "none", visualization = "auto",
        collaborative_planning = false }, it_.agent_config)
      assert.same({}, it_.steps)
      assert.matches("^%[%]", r.body:match('"steps":(%[%])'))
      assert.equals(it_.created, it_.updated)
      assert.equals(1, s:counter("gemini.tasks_created"))
    end)

    it("identical creates make separate interactions and charges", function()
      local a, b = create().json.id, create().json.id
      assert.are_not.equal(a, b)
      assert.equals(2, s:counter("gemini.tasks_created"))
      s:advance(1000)
      local st = gemini_state()
      assert.equals(2, st.charges.tasks)
      assert.is_true(st.charges.estimated_usd > 2)
    end)

    it("appends steps monotonically, bumps updated, then freezes", function()
      local id = create(nil, { agent_config = { type = "deep-research",
        thinking_summaries = "auto" } }).json.id
      local prev, bumps = get(id).json, 0
      local final
      for _ = 1, 100 do
        s:advance(15)
        local cur = get(id).json
        assert.is_true(#cur.steps >= #prev.steps)
        for i = 1, #prev.steps do assert.same(prev.steps[i], cur.steps[i]) end
        if cur.updated ~= prev.updated then bumps = bumps + 1 end
        prev = cur
        if cur.status ~= "in_progress" then final = cur break end
      end
      assert.equals("completed", final.status)
      assert.is_true(bumps > 5)
      local kinds = {}
      for _, st in ipairs(final.steps) do kinds[st.type] = (kinds[st.type] or 0) + 1 end
      assert.is_true(kinds.thought > 0 and kinds.google_search_call > 0)
      assert.equals(kinds.google_search_call, kinds.google_search_result)
      assert.is_true(kinds.url_context_call > 0)
      assert.equals(1, kinds.model_output)
      assert.is_table(final.steps[1].summary)
      s:advance(86400)
      assert.same(final, get(id).json)
    end)

    it("standard runs take 3-15 min, max runs 8-35 min", function()
      local a = create().json.id
      local b = create(nil, { agent = MAX }).json.id
      s:advance(179)
      assert.equals("in_progress", get(a).json.status)
      s:set_time(479)
      assert.equals("in_progress", get(b).json.status)
      s:set_time(900)
      assert.equals("completed", get(a).json.status)
      s:set_time(2100)
      local done = get(b).json
      assert.equals("completed", done.status)
      local q = done.usage.grounding_tool_count[1].count
      assert.is_true(q >= 120 and q <= 180, q)
    end)

    it("no thought summaries unless thinking_summaries is auto", function()
      local it_ = run_to_end(create().json.id)
      for _, st in ipairs(it_.steps) do
        if st.type == "thought" then
          assert.is_nil(st.summary)
          assert.is_string(st.signature)
        end
      end
    end)

    it("switch start_queued: queued first, then in_progress", function()
      s:config{ gemini = { start_queued = true } }
      local r = create().json
      assert.equals("queued", r.status)
      s:advance(61)
      assert.equals("in_progress", get(r.id).json.status)
    end)
  end)

  describe("completed payload (G6, G7)", function()
    it("cites with UTF-8 byte ranges that differ from character ranges", function()
      local it_ = run_to_end(create("Research Acme Corp").json.id)
      local out = last_step(it_)
      assert.equals("model_output", out.type)
      local part = out.content[1]
      assert.equals("text", part.type)
      assert.is_true(#part.annotations >= 4)
      local differs = false
      for _, a in ipairs(part.annotations) do
        assert.equals("url_citation", a.type)
        assert.matches("^[%w%-]+%.%a+$", a.title)
        assert.matches("^https://vertexaisearch%.cloud%.google%.com/grounding%-api%-redirect/",
          a.url)
        local cited = part.text:sub(a.start_index + 1, a.end_index)
        assert.matches("Acme Corp", cited)
        assert.matches("^%S", cited)
        assert.not_matches("%.$", cited)
        if chars(part.text:sub(1, a.start_index)) ~= a.start_index then differs = true end
      end
      assert.is_true(differs)
      assert.is_nil(part.cost)
      assert.is_nil(it_.cost)
    end)

    it("switch citation_urls = source: the sources' own URLs", function()
      s:config{ gemini = { citation_urls = "source" } }
      local it_ = run_to_end(create().json.id)
      for _, a in ipairs(last_step(it_).content[1].annotations) do
        assert.matches("^https://www%." .. a.title:gsub("%p", "%%%0") .. "/", a.url)
      end
    end)

    it("a prompt asking for a chart gets an image part when visualization is auto", function()
      local it_ = run_to_end(create("Research Acme Corp, with a chart of revenue").json.id)
      local img = last_step(it_).content[2]
      assert.equals("image", img.type)
      assert.equals("image/png", img.mime_type)
      assert.matches("^iVBOR", img.data)
      local off = run_to_end(create("Acme Corp chart", { agent_config = {
        type = "deep-research", visualization = "off" } }).json.id)
      assert.is_nil(last_step(off).content[2])
    end)

    it("fills usage; total_tokens covers input, output and thought", function()
      local it_ = run_to_end(create().json.id)
      local u = it_.usage
      for _, k in ipairs({ "total_input_tokens", "total_cached_tokens", "total_output_tokens",
        "total_thought_tokens", "total_tool_use_tokens", "total_tokens" }) do
        assert.is_number(u[k], k)
      end
      assert.is_true(u.total_tokens >= u.total_input_tokens + u.total_output_tokens
        + u.total_thought_tokens)
      assert.equals("TEXT", u.input_tokens_by_modality[1].modality)
      assert.equals("TEXT", u.output_tokens_by_modality[1].modality)
      local q = u.grounding_tool_count[1]
      assert.equals("google_search", q.type)
      assert.is_true(q.count >= 60 and q.count <= 100, q.count)
      local side = gemini_state().tasks[1]
      assert.equals(q.count, side.queries)
      assert.is_true(side.estimated_cost_usd >= 1 and side.estimated_cost_usd <= 3,
        side.estimated_cost_usd)
    end)

    it("switch layout: outputs (legacy) only, or both", function()
      s:config{ gemini = { layout = "outputs" } }
      local it_ = run_to_end(create().json.id)
      assert.is_nil(it_.steps)
      assert.equals("text", it_.outputs[1].type)
      assert.is_table(it_.outputs[1].annotations)
      s:config{ gemini = { layout = "both" } }
      it_ = get(it_.id).json
      assert.same(it_.outputs, last_step(it_).content)
    end)

    it("switch layout = by_revision: steps from steps_revision on, outputs before", function()
      s:config{ gemini = { layout = "by_revision" } }
      local id = run_to_end(create().json.id).id
      local function with_revision(rev)
        return assert(s:http("GET", BASE .. "/" .. id, { headers = {
          ["x-goog-api-key"] = "gemini-key", ["Api-Revision"] = rev } })).json
      end
      local new = with_revision("2026-05-20")
      assert.is_table(new.steps)
      assert.is_nil(new.outputs)
      local old = with_revision("2025-12-01")
      assert.is_nil(old.steps)
      assert.equals("text", old.outputs[1].type)
      assert.is_nil(get(id).json.steps)
    end)
  end)

  describe("rare statuses (G8)", function()
    it("[fail]: failed, errors[] and a model_output error 13", function()
      local it_ = run_to_end(create("Acme Corp [fail]").json.id)
      assert.equals("failed", it_.status)
      assert.matches("/internal$", it_.errors[1].code)
      assert.equals(13, last_step(it_).error.code)
      assert.is_table(it_.usage)
    end)

    it("[budget]: budget_exceeded without a report", function()
      local it_ = run_to_end(create("Acme Corp [budget]").json.id)
      assert.equals("budget_exceeded", it_.status)
      assert.is_string(it_.errors[1].message)
      for _, st in ipairs(it_.steps) do assert.are_not.equal("model_output", st.type) end
    end)

    it("[incomplete]: a cut report with an errors[] note; citations stay inside it", function()
      local it_ = run_to_end(create("Acme Corp [incomplete]").json.id)
      assert.equals("incomplete", it_.status)
      assert.is_string(it_.errors[1].code)
      local part = last_step(it_).content[1]
      assert.is_true(#part.text > 0)
      for _, a in ipairs(part.annotations) do assert.is_true(a.end_index <= #part.text) end
      local full = run_to_end(create("Acme Corp").json.id)
      assert.is_true(#last_step(full).content[1].text > #part.text)
    end)

    it("switch outcome applies to every run", function()
      s:config{ gemini = { outcome = "budget_exceeded" } }
      assert.equals("budget_exceeded", run_to_end(create().json.id).status)
    end)

    it("hard stop at 60 minutes -> failed; switch stuck stays in_progress", function()
      s:config{ gemini = { duration = { standard = { 4000, 4000 } } } }
      local id = create().json.id
      s:advance(3599)
      assert.equals("in_progress", get(id).json.status)
      s:advance(2)
      local it_ = get(id).json
      assert.equals("failed", it_.status)
      assert.matches("deadline", it_.errors[1].code)
      s:config{ gemini = { stuck = true } }
      local stuck = create().json.id
      s:advance(7200)
      assert.equals("in_progress", get(stuck).json.status)
    end)

    it("[queued] holds in queued until cancelled", function()
      local id = create("Acme Corp [queued]").json.id
      s:advance(7200)
      assert.equals("queued", get(id).json.status)
      assert.equals("cancelled", api("POST", BASE .. "/" .. id .. "/cancel").json.status)
    end)
  end)

  describe("collaborative planning (G9)", function()
    local PLAN = { type = "deep-research", collaborative_planning = true }

    it("plan, revise, approve", function()
      local plan = run_to_end(create("Acme Corp", { agent_config = PLAN }).json.id, 10)
      assert.equals("completed", plan.status)
      local text = last_step(plan).content[1].text
      assert.matches("\n1%. ", text)
      local rev = run_to_end(create("Add pricing", { agent_config = PLAN,
        previous_interaction_id = plan.id }).json.id, 10)
      assert.matches("revision 1", last_step(rev).content[1].text)
      local go = create("Go ahead", { previous_interaction_id = rev.id }).json
      assert.equals(rev.id, go.previous_interaction_id)
      local report = run_to_end(go.id)
      assert.equals("completed", report.status)
      assert.matches("Acme Corp", last_step(report).content[1].text)
      assert.is_table(last_step(report).content[1].annotations)
    end)

    it("switch planning_status = requires_action", function()
      s:config{ gemini = { planning_status = "requires_action" } }
      local plan = run_to_end(create("Acme Corp", { agent_config = PLAN }).json.id, 10)
      assert.equals("requires_action", plan.status)
    end)

    it("a follow-up on an unknown id is 400", function()
      error_of(create("x", { previous_interaction_id = "v1_nope" }), 400, "INVALID_ARGUMENT")
    end)
  end)

  describe("cancel and delete (G10, G11)", function()
    it("cancels a running interaction, keeping partial steps; terminal -> 400", function()
      local id = create().json.id
      s:advance(120)
      local n = #get(id).json.steps
      local r = api("POST", BASE .. "/" .. id .. "/cancel")
      assert.equals(200, r.status)
      assert.equals("cancelled", r.json.status)
      assert.equals(n, #r.json.steps)
      s:advance(3000)
      assert.equals(n, #get(id).json.steps)
      error_of(api("POST", BASE .. "/" .. id .. "/cancel"), 400, "FAILED_PRECONDITION")
      error_of(api("POST", BASE .. "/v1_unknown/cancel"), 404, "NOT_FOUND")
      assert.is_true(gemini_state().tasks[1].estimated_cost_usd > 0)
    end)

    it("delete answers {} and hides the record; the run keeps going unless switched", function()
      local id = create().json.id
      local r = api("DELETE", BASE .. "/" .. id)
      assert.equals(200, r.status)
      assert.same({}, r.json)
      error_of(get(id), 404, "NOT_FOUND")
      error_of(api("POST", BASE .. "/" .. id .. "/cancel"), 404, "NOT_FOUND")
      error_of(api("DELETE", BASE .. "/" .. id), 404, "NOT_FOUND")
      local side = gemini_state().tasks[1]
      assert.is_true(side.deleted and side.running)
      s:advance(1000)
      assert.equals("completed", gemini_state().tasks[1].status)
      s:config{ gemini = { delete_cancels = true } }
      local id2 = create().json.id
      api("DELETE", BASE .. "/" .. id2)
      assert.equals("cancelled", gemini_state().tasks[2].status)
    end)
  end)

  describe("retention (G12)", function()
    it("paid keys keep 55 days after updated, free keys 1 day", function()
      s:config{ gemini = { free_tier_forbidden = false } }
      local paid = create().json.id
      local free = create(nil, nil, "gemini-free").json.id
      s:advance(1000)
      local done = get(free, "gemini-free").json
      assert.equals("completed", done.status)
      s:advance(86400)
      error_of(get(free, "gemini-free"), 404, "NOT_FOUND")
      assert.equals(200, get(paid).status)
      s:advance(55 * 86400)
      local e = error_of(get(paid), 404, "NOT_FOUND")
      assert.matches("not found", e.message)
    end)
  end)

  describe("rate limits (G13)", function()
    it("429 RESOURCE_EXHAUSTED with RetryInfo.retryDelay; Retry-After behind a switch",
      function()
        s:config{ gemini = { rate = { creates_per_min = 2 } } }
        create()
        s:advance(20)
        create()
        local r = create()
        local e = error_of(r, 429, "RESOURCE_EXHAUSTED")
        assert.equals("type.googleapis.com/google.rpc.RetryInfo", e.details[1]["@type"])
        assert.equals("40s", e.details[1].retryDelay)
        assert.is_nil(r.headers["retry-after"])
        assert.equals(2, s:counter("gemini.tasks_created"))
        s:config{ gemini = { retry_after_header = true } }
        assert.equals("40", create().headers["retry-after"])
        s:advance(40)
        assert.equals(200, create().status)
      end)

    it("gets have their own bucket", function()
      s:config{ gemini = { rate = { gets_per_min = 3 } } }
      local id = create().json.id
      for _ = 1, 3 do assert.equals(200, get(id).status) end
      error_of(get(id), 429, "RESOURCE_EXHAUSTED")
    end)
  end)

  describe("webhooks (G15): Standard Webhooks, user_metadata echoed", function()
    local socket = require "socket"
    local listener, port

    setup(function()
      listener = assert(socket.bind("127.0.0.1", 0))
      port = select(2, listener:getsockname())
    end)
    teardown(function() listener:close() end)

    -- One delivery, answered 200; nil when none comes within `wait` real seconds.
    local function receive(wait)
      listener:settimeout(wait or 5)
      local c = listener:accept()
      if not c then return nil end
      c:settimeout(5)
      local line, headers = c:receive("*l"), {}
      while true do
        local h = c:receive("*l")
        if not h or h == "" then break end
        local k, v = h:match("^([^:]+):%s*(.*)$")
        headers[k:lower()] = v
      end
      local body = c:receive(tonumber(headers["content-length"]))
      c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      c:close()
      return { line = line, headers = headers, body = body }
    end

    -- base64 HMAC-SHA256 by the openssl command line (not the simulator's code).
    local function openssl_sig(secret_b64, data)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
      local cmd = "printf '%s' '" .. secret_b64 .. "' | openssl base64 -d -A | od -An -v -tx1"
        .. " | tr -d ' \\n'"
      local p = assert(io.popen(cmd))
      local hex = p:read("*a")
      p:close()
      p = assert(io.popen("openssl dgst -sha256 -mac HMAC -macopt hexkey:" .. hex
        .. " -binary " .. path .. " | openssl base64 -A 2>/dev/null"))
      local out = p:read("*a")
      p:close()
      os.remove(path)
      return out ~= "" and out or nil
    end

    it("POSTs a signed event when the run completes, once", function()
      local id = create("Acme Corp", { webhook_config = {
        uris = { "http://127.0.0.1:" .. port .. "/hook" },
        user_metadata = { deepresearch_nonce = "abc123" } } }).json.id
      s:advance(1000)
      assert.equals("completed", get(id).json.status)
      local got = assert(receive())
      assert.equals("POST /hook HTTP/1.1", got.line)
      local body = cjson.decode(got.body)
      assert.equals("interaction.completed", body.type)
      assert.same({ id = id, status = "completed",
        user_metadata = { deepresearch_nonce = "abc123" } }, body.data)
      assert.equals("msg_1", got.headers["webhook-id"])
      assert.equals(tostring(1767225600 + 1000), got.headers["webhook-timestamp"])
      local sig = got.headers["webhook-signature"]
      assert.matches("^v1,", sig)
      local secret = "c2ltdWxhdGVkLWdlbWluaS13ZWJob29rLXNlY3JldA=="
      local want = openssl_sig(secret, "msg_1." .. got.headers["webhook-timestamp"] .. "."
        .. got.body)
      if want then assert.equals("v1," .. want, sig) end
      get(id)
      assert.is_nil(receive(0.3))
      local w = gemini_state().webhooks
      assert.equals(1, #w)
      assert.equals("delivered", w[1].state)
      assert.equals(1, s:counter("gemini.webhooks_delivered"))
    end)

    it("fails are reported as interaction.failed; switch webhook_fail records a failure",
      function()
        s:config{ gemini = { webhook_fail = true } }
        create("Acme Corp [fail]", { webhook_config = {
          uris = { "http://127.0.0.1:" .. port .. "/hook" } } })
        s:advance(1000)
        local w = gemini_state().webhooks
        assert.equals("interaction.failed", w[1].event)
        s:state()
        w = gemini_state().webhooks
        assert.equals("failed", w[1].state)
      end)
  end)

  describe("never pay twice (G14) and error shape switch", function()
    it("a dropped create answer still created exactly one interaction", function()
      s:fault{ method = "POST", path = BASE, kind = "drop", after = true }
      local r = s:http("POST", BASE, { headers = { ["x-goog-api-key"] = "gemini-key" },
        body = body_for() })
      assert.is_nil(r)
      assert.equals(1, #s:requests_to("POST", "^/v1beta/interactions$"))
      assert.equals(1, s:counter("gemini.tasks_created"))
      assert.equals(1, #gemini_state().tasks)
    end)

    it("switch error_list wraps error bodies in a one-element list", function()
      s:config{ gemini = { error_list = true } }
      local r = create(nil, nil, "nope")
      assert.equals(400, r.status)
      assert.equals("INVALID_ARGUMENT", r.json[1].error.status)
    end)
  end)
end)

-- Valyu checkpoints (issue 15 item 6, client side): input_required, respond, wait's on_input,
-- against the simulator's clock (an unanswered checkpoint pauses after 300 virtual seconds).
local dr = require "deepresearch"
local env = require "support.env"

describe("issue 15 item 6: Valyu checkpoints", function()
  local s, client
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client = env.client(
      s, { provider = "valyu", api_key = "valyu-key", token = false, base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"

  local function hitl_task(checkpoints, mode)
    return dr.assert(client:create{ query = QUERY, mode = mode or "fast", hitl = checkpoints })
  end

  local function posts(path_end)
    return env.count_requests(s, "^POST /v1/deepresearch/tasks/[^/]+/" .. path_end .. "$")
  end

  local function polls()
    return env.count_requests(s, "^GET /v1/deepresearch/tasks/[^/]+/status$")
  end

  it("reads awaiting_input and paused as input_required", function()
    assert.equals("input_required", dr.state{ deepresearch_id = "v", status = "awaiting_input" })
    assert.equals("input_required", dr.state{ deepresearch_id = "v", status = "paused" })
    assert.equals("input_required", dr.state({ status = "paused" }, "valyu"))
    assert.is_nil(dr.state({ id = "t", status = "awaiting_input" }, "extruct"))
  end)

  it("answers a checkpoint through on_input, once, and the task completes", function()
    local t = hitl_task{ plan_review = true }
    local seen = {}
    local done = dr.assert(client:wait(t.deepresearch_id, {
      on_input = function(task, interaction)
        seen[#seen + 1] = interaction
        assert.equals("input_required", dr.state(task))
        return { approved = true, modifications = "Focus on 2024 revenue" }
      end }))
    assert.equals("completed", done.status)
    assert.equals(1, #seen)
    assert.equals("plan_review", seen[1].type)
    assert.equals(1, posts("respond"))
    local h = done.hitl_history[1]
    assert.equals(seen[1].interaction_id, h.interaction_id)
    assert.is_false(h.auto_continued)
    assert.is_true(h.response.approved)
  end)

  it("answers every checkpoint type in its documented shape", function()
    local t = hitl_task({ planning_questions = true, plan_review = true, source_review = true,
      outline_review = true }, "standard")
    local types = {}
    local answers = {
      planning_questions = function(i)
        local a = {}
        for k, q in ipairs(i.data.questions) do a[k] = { question = q.question, answer = "EU" } end
        return { answers = a }
      end,
      plan_review = function() return { approved = true } end,
      outline_review = function()
        return { approved = false, modifications = "Add a risks part" }
      end,
      source_review = function(i)
        return { included_domains = { i.data.domains[1].domain }, excluded_domains = {} }
      end,
    }
    local done = dr.assert(client:wait(t.deepresearch_id, { on_input = function(_, i)
      types[#types + 1] = i.type
      return answers[i.type](i)
    end }))
    assert.equals("completed", done.status)
    assert.same({ "planning_questions", "plan_review", "source_review", "outline_review" }, types)
    assert.equals(4, posts("respond"))
  end)

  it("without on_input a checkpoint ends the wait at once with input_required", function()
    local t = hitl_task{ plan_review = true }
    local started = s:now()
    local _, err = client:wait(t.deepresearch_id)
    assert.equals("input_required", err.code)
    assert.is_false(err.retryable)
    assert.equals("awaiting_input", err.task.status)
    assert.equals("plan_review", err.interaction.type)
    assert.matches("respond", err.message)
    assert.truthy(s:now() - started < 120, "virtual seconds, not hours")
    assert.truthy(polls() <= 5, "a handful of polls: " .. polls())
    assert.equals(0, posts("respond"))
  end)

  it("an on_input that returns nil ends the wait the same way", function()
    local t = hitl_task{ source_review = true }
    local asked = 0
    local _, err = client:wait(t.deepresearch_id, { on_input = function() asked = asked + 1 end })
    assert.equals("input_required", err.code)
    assert.equals(1, asked)
    assert.equals("source_review", err.interaction.type)
    assert.equals(0, posts("respond"))
  end)

  it("paused -> respond -> queued -> completed", function()
    local t = hitl_task{ plan_review = true }
    s:advance(400) -- five unanswered minutes: paused
    local _, err = client:wait(t.deepresearch_id)
    assert.equals("input_required", err.code)
    assert.equals("paused", err.task.status)
    assert.matches("paused", err.message)
    local ack = dr.assert(client:respond(t.deepresearch_id, err.interaction, { approved = true }))
    assert.is_true(ack.success)
    assert.equals("queued", ack.status)
    assert.equals("queued", client:get(t.deepresearch_id).status)
    local done = dr.assert(client:wait(t.deepresearch_id))
    assert.equals("completed", done.status)
  end)

  it("run passes on_input through", function()
    local asked = 0
    local done = dr.assert(client:run{ query = QUERY, mode = "fast", hitl = { plan_review = true },
      on_input = function()
        asked = asked + 1
        return { approved = true }
      end })
    assert.equals("completed", done.status)
    assert.equals(1, asked)
  end)

  it("respond takes the interaction id too (the shape then follows the response's keys)",
    function()
    local t = hitl_task{ plan_review = true }
    local _, err = client:wait(t.deepresearch_id)
    local ack = dr.assert(client:respond(t.deepresearch_id, err.interaction.interaction_id,
      { approved = true }))
    assert.is_true(ack.success)
    assert.equals("running", ack.status)
    end)

  describe("refuses a response of the wrong shape before sending", function()
    local interaction
    before_each(function()
      local t = hitl_task{ plan_review = true }
      local _, err = client:wait(t.deepresearch_id)
      interaction = err.interaction
      s:clear_requests()
    end)

    local function refused(kind, response, field)
      local i = { interaction_id = interaction.interaction_id, type = kind }
      local r, err = client:respond("any-id", i, response)
      assert.is_nil(r)
      assert.equals("invalid_request", err.code)
      if field then assert.equals(field, err.field) end
      assert.equals(0, #s:requests())
    end

    it("plan_review and outline_review", function()
      refused("plan_review", { approve = true }, "response.approve")
      refused("plan_review", {}, "response.approved")
      refused("outline_review", { approved = "yes" }, "response.approved")
      refused("outline_review", { approved = true, modifications = 3 }, "response.modifications")
    end)

    it("planning_questions", function()
      refused("planning_questions", {}, "response.answers")
      refused("planning_questions", { answers = { { question = "q" } } }, "response.answers[1]")
      refused("planning_questions", { answers = { q = "a" } }, "response.answers")
    end)

    it("source_review", function()
      refused("source_review", { included_domains = "a.com" }, "response.included_domains")
      refused("source_review", { included_domains = { 1 } }, "response.included_domains[1]")
      refused("source_review", { included_domains = { "a.com" }, excluded_domains = { "A.com" } },
        "response.excluded_domains")
      refused("source_review", { domains = {} }, "response.domains")
    end)

    it("an empty interaction id", function()
      local r, err = client:respond("any-id", "", { approved = true })
      assert.is_nil(r)
      assert.equals("interaction_id", err.field)
      assert.equals(0, #s:requests())
    end)

    it("raises for wrong argument types", function()
      assert.has_error(function() client:respond("x", true, {}) end)
      assert.has_error(function() client:respond("x", "i") end)
      assert.has_error(function() client:respond("x", { type = "plan_review" }, {}) end)
      assert.equals(0, #s:requests())
    end)

    it("with a bare interaction id, the response's keys pick the shape", function()
      local id = interaction.interaction_id
      local function refused_bare(response, field)
        local r, err = client:respond("any-id", id, response)
        assert.is_nil(r)
        assert.equals("invalid_request", err.code)
        if field then assert.equals(field, err.field) end
      end
      refused_bare({ approved = "yes" }, "response.approved")
      refused_bare({ approve = true }, "response.approve")
      refused_bare({ answers = { { question = "q" } } }, "response.answers[1]")
      refused_bare({ included_domains = { 1 } }, "response.included_domains[1]")
      refused_bare({ approved = true, answers = {} }) -- two shapes at once
      refused_bare({ approved = true, excluded_domains = {} })
      refused_bare({}) -- no shape at all
      -- An interaction table without its type is read the same way.
      local r, err = client:respond("any-id", { interaction_id = id }, { approved = 1 })
      assert.is_nil(r)
      assert.equals("response.approved", err.field)
      assert.equals(0, #s:requests())
    end)

    it("an on_input answer of the wrong shape ends the wait unsent", function()
      local t = hitl_task{ outline_review = true }
      local _, err = client:wait(t.deepresearch_id, { on_input = function()
        return { approve = true }
      end })
      assert.equals("invalid_request", err.code)
      assert.equals("outline_review", err.interaction.type)
      assert.equals(0, posts("respond"))
    end)
  end)

  it("create checks the hitl flags before sending: known checkpoints, true or false", function()
    s:clear_requests()
    for _, flags in ipairs{ { plan_reveiw = true }, { plan_review = "yes" }, { "plan_review" },
      { [true] = true } } do
      local t, err = client:create{ query = QUERY, mode = "fast", hitl = flags }
      assert.is_nil(t)
      assert.equals("invalid_request", err.code)
      assert.matches("^hitl", err.field)
    end
    assert.equals(0, #s:requests())
    dr.assert(client:create{ query = QUERY, mode = "fast", hitl = { plan_review = false } })
  end)

  it("an empty source_review answer sends two JSON arrays (accept the AI's picks)", function()
    local t = hitl_task{ source_review = true }
    local done = dr.assert(client:wait(t.deepresearch_id, { on_input = function() return {} end }))
    assert.equals("completed", done.status)
    local req = s:requests_to("POST", "/respond$")[1]
    assert.matches('"included_domains":%[%]', req.body)
    assert.matches('"excluded_domains":%[%]', req.body)
  end)

  it("the poller's wait ends with input_required too, or answers through on_input", function()
    local a = hitl_task{ plan_review = true }
    local b = hitl_task{ plan_review = true }
    -- The poller sleeps on the real clock: the simulator runs fast (a second: ten minutes).
    s:set_speed(600)
    local fast = { interval = 0.05, max_interval = 0.05 }
    local done, errs = client:wait_all({ a.deepresearch_id }, fast)
    assert.is_nil(done[a.deepresearch_id])
    assert.equals("input_required", errs[a.deepresearch_id].code)
    done = client:wait_all({ b.deepresearch_id }, { interval = 0.05, max_interval = 0.05,
      on_input = function() return { approved = true } end })
    assert.equals("completed", done[b.deepresearch_id].status)
  end)

  describe("an answer that fails on the way", function()
    local RESPOND = "/v1/deepresearch/tasks/[^/]+/respond"

    it("a 503 keeps the wait polling; the answer is sent again while the checkpoint shows",
      function()
        local t = hitl_task{ plan_review = true }
        s:fault{ method = "POST", path = RESPOND, status = 503, count = 1 }
        client:close() -- one attempt per send: the wait, not the transport, sends again
        client = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false,
          max_retries = 0 })
        local asked = 0
        local done = dr.assert(client:wait(t.deepresearch_id, { on_input = function()
          asked = asked + 1
          return { approved = true }
        end }))
        assert.equals("completed", done.status)
        assert.equals(1, asked)
        assert.equals(2, posts("respond"))
      end)

    it("a lost answer the server took is not sent again", function()
      local t = hitl_task{ plan_review = true }
      s:fault{ method = "POST", path = RESPOND, kind = "drop", after = true, count = 1 }
      local done = dr.assert(client:wait(t.deepresearch_id, { on_input = function()
        return { approved = true }
      end }))
      assert.equals("completed", done.status)
      assert.equals(1, posts("respond"))
    end)
  end)

  -- Answers the simulator does not give: a checkpoint that stays after its answer, a numeric
  -- interaction id, an answer whose loss the status shows late.
  describe("a server that keeps a checkpoint", function()
    local server
    setup(function()
      server = require("support.hostile").start([[
local state = {}
local TASK = '{"deepresearch_id":"t1","status":"%s","mode":"fast","interaction":' ..
  '{"interaction_id":%s,"type":"plan_review","data":{}}}'
local DONE = '{"deepresearch_id":"t1","status":"completed","mode":"fast","output":"# R",' ..
  '"output_type":"markdown"}'
return function(_, path, body)
  local sc, rest = path:match("^/(%w+)(/.*)$")
  local st = state[sc] or { responds = 0, after = 0 }
  state[sc] = st
  if rest:match("/respond$") then
    st.responds = st.responds + 1
    if sc == "numeric" then
      if body:match('"interaction_id":"12345"') then return 200, '{"success":true}' end
      return 400, '{"error":"Interaction not found"}'
    end
    if sc == "busy" then return 503, '{"error":"busy"}' end
    if sc == "late" and st.responds > 1 then
      return 400, '{"error":"Task must be in awaiting_input or paused status"}'
    end
    st.answered = true
    if sc == "late" then return nil end -- taken, the answer lost
    return 200, '{"success":true,"status":"running","deepresearch_id":"t1"}'
  end
  if rest:match("/status$") then
    local status = "awaiting_input"
    if st.answered and sc == "paused" then status = "paused" end
    if st.answered and sc == "late" then
      st.after = st.after + 1
      if st.after > 1 then return 200, DONE end -- one stale poll first
    end
    return 200, TASK:format(status, sc == "numeric" and "12345" or '"i-1"')
  end
  return 404, '{"error":"not found"}'
end]])
    end)
    teardown(function() server.stop() end)

    local c
    after_each(function() if c then c:close() end end)
    local function on(scenario)
      local clock = { t = 0 }
      clock.now = function() return clock.t end
      clock.sleep = function(sec) clock.t = clock.t + sec return true end
      c = dr.client{ provider = "valyu", api_key = "k", base_url = server.url .. "/" ..
        scenario, clock = clock, timeout = 5, base_delay = 0.01, max_retries = 0 }
      return c, clock
    end
    local function approve() return { approved = true } end
    local function responds(scenario)
      return server.count("^POST /" .. scenario .. "/.*/respond$")
    end

    it("an answered checkpoint still pending after a few polls ends with input_required",
      function()
        local cl, clock = on("pending")
        local _, err = cl:wait("t1", { on_input = approve })
        assert.equals("input_required", err.code)
        assert.is_true(err.answered)
        assert.matches("after its answer was sent", err.message)
        assert.equals(1, responds("pending"))
        assert.truthy(clock.t < 120, "virtual seconds, not the 2-hour timeout: " .. clock.t)
        assert.truthy(server.count("^GET /pending/") <= 5)
      end)

    it("an answered checkpoint that shows paused ends the wait at once", function()
      local cl = on("paused")
      local _, err = cl:wait("t1", { on_input = approve })
      assert.equals("input_required", err.code)
      assert.is_true(err.answered)
      assert.equals(1, responds("paused"))
      assert.equals(2, server.count("^GET /paused/"))
    end)

    it("a lost answer the status shows late: one resend, its refusal counts as answered",
      function()
        local done = dr.assert(on("late"):wait("t1", { on_input = approve }))
        assert.equals("completed", done.status)
        assert.equals(2, responds("late"))
      end)

    it("an answer that keeps failing ends the wait after MAX_SENDS sends", function()
      local hitl = require "deepresearch.providers.valyu_hitl"
      local asked = 0
      local _, err = on("busy"):wait("t1", { on_input = function()
        asked = asked + 1
        return approve()
      end })
      assert.equals("unavailable", err.code)
      assert.equals("plan_review", err.interaction.type)
      assert.equals(1, asked)
      assert.equals(hitl.MAX_SENDS, responds("busy"))
    end)

    it("a numeric interaction_id is answered as its digits", function()
      local cl = on("numeric")
      local _, err = cl:wait("t1")
      assert.equals("input_required", err.code)
      assert.equals(12345, err.interaction.interaction_id)
      assert.is_true(dr.assert(cl:respond("t1", err.interaction, approve())).success)
      assert.is_true(dr.assert(cl:respond("t1", 12345, approve())).success)
      local asked = 0
      _, err = cl:wait("t1", { on_input = function()
        asked = asked + 1
        return approve()
      end })
      assert.equals(1, asked)
      assert.is_true(err.answered)
      assert.equals(3, responds("numeric"))
    end)
  end)
end)

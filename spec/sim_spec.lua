-- The simulator's Extruct Deep Research surface and control channel (CONTRACT A.1, A.2, C.1, C.2).
-- Virtual time only: the simulator runs at speed 0 and specs advance it.
local sim = require "support.sim"

local s

local function api(method, path, body, token, headers)
  local h = {}
  if token ~= false then h.Authorization = "Bearer " .. (token or "test-token") end
  for k, v in pairs(headers or {}) do h[k] = v end
  return assert(s:http(method, path, { headers = h, body = body }))
end

local function create(body, token)
  return api("POST", "/v1/deep_research_tasks", body, token)
end

local function get(id, token)
  return api("GET", "/v1/deep_research_tasks/" .. id, nil, token)
end

local function credits(token)
  return api("GET", "/v1/user", nil, token).json.available_credits
end

-- Advances in steps until the task is terminal; returns the snapshots seen.
local function run_to_end(id, step, token)
  local seen = {}
  for _ = 1, 400 do
    local t = get(id, token).json
    seen[#seen + 1] = t
    if t.status == "done" or t.status == "failed" then return t, seen end
    s:advance(step or 10)
  end
  error("task never finished")
end

describe("simulator: Extruct auth (E1, E4)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("answers a missing header with 401 Not authenticated and WWW-Authenticate", function()
    local r = api("GET", "/v1/user", nil, false)
    assert.equals(401, r.status)
    assert.same({ detail = "Not authenticated" }, r.json)
    assert.equals("Bearer", r.headers["www-authenticate"])
    assert.matches("^application/json", r.headers["content-type"])
  end)

  it("can answer a missing header with the legacy 403", function()
    s:config({ auth_missing_status = 403 })
    local r = api("GET", "/v1/deep_research_tasks", nil, false)
    assert.equals(403, r.status)
    assert.equals("Not authenticated", r.json.detail)
  end)

  it("rejects a wrong token and a token without the Bearer prefix with 401", function()
    assert.equals(401, api("GET", "/v1/user", nil, "nope").status)
    local r = api("GET", "/v1/user", nil, false, { Authorization = "test-token" })
    assert.equals(401, r.status)
    assert.equals("string", type(r.json.detail))
  end)

  it("GET /v1/user reports the token's user, organisation and balance", function()
    local u = api("GET", "/v1/user").json
    assert.same({
      user_id = "u1", email = "alice@acme.test", available_credits = 10000,
      organization_id = "org_acme",
      organization_name = "Acme", organization_slug = "acme", organization_is_active = true }, u)
    assert.equals("u2", api("GET", "/v1/user", nil, "teammate-token").json.user_id)
  end)

  it("adds tokens through the control channel and never shows tokens in the state users", function()
    s:token({
      token = "extra-token", user_id = "u9", email = "zed@acme.test", org_id = "org_acme",
      credits = 77 })
    local u = api("GET", "/v1/user", nil, "extra-token").json
    assert.equals("u9", u.user_id)
    assert.equals(77, u.available_credits)
    local users = s:state().extruct.users
    assert.equals(77, users.u9.available_credits)
    for _, info in pairs(users) do assert.is_nil(info.token) end
  end)
end)

describe("simulator: Deep Research create checks (E2, E3)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  local function detail(r)
    assert.equals(422, r.status)
    return r.json.detail[1]
  end

  it("reports a missing brief, an empty one and a non-string one as pydantic items", function()
    local d = detail(create({ depth = "high" }))
    assert.same({ "body", "brief" }, d.loc)
    assert.equals("missing", d.type)
    assert.equals("Field required", d.msg)
    d = detail(create({ brief = "" }))
    assert.equals("string_too_short", d.type)
    assert.same({ min_length = 1 }, d.ctx)
    assert.equals("string_type", detail(create({ brief = 5 })).type)
  end)

  it("counts the 20000-character limit in UTF-8 characters", function()
    assert.equals(200, create({ brief = "Acme " .. string.rep("é", 19995) }).status)
    local d = detail(create({ brief = string.rep("a", 20001) }))
    assert.equals("string_too_long", d.type)
    assert.same({ max_length = 20000 }, d.ctx)
  end)

  it("rejects an unknown or wrongly cased depth", function()
    local d = detail(create({ brief = "Research Acme", depth = "HIGH" }))
    assert.same({ "body", "depth" }, d.loc)
    assert.equals("enum", d.type)
    assert.equals("Input should be 'medium', 'high' or 'xhigh'", d.msg)
    assert.equals("HIGH", d.input)
  end)

  it("validates output_schema in full, nested properties included", function()
    local d = detail(create({ brief = "Research Acme", output_schema = { type = "array" } }))
    assert.equals("value_error", d.type)
    assert.same({ "body", "output_schema" }, d.loc)
    assert.matches("^Value error, ", d.msg)
    d = detail(create({ brief = "Research Acme", output_schema = { type = "object",
      properties = { a = { type = "object", properties = { b = { type = "strnig" } } } } } }))
    assert.matches("strnig", d.ctx.error)
    assert.equals(
      "dict_type", detail(create({ brief = "Research Acme", output_schema = "x" })).type)
  end)

  it("reports malformed JSON as json_invalid with a character offset", function()
    local d = detail(create('{"brief": '))
    assert.equals("json_invalid", d.type)
    assert.equals("body", d.loc[1])
    assert.equals("number", type(d.loc[2]))
  end)

  it("checks auth, then the body, then the plan, then credits; nothing is created or " ..
    "charged", function()
    assert.equals(401, create({ brief = "" }, "nope").status)
    assert.equals(422, create({ brief = "" }, "free-token").status)
    local r = create({ brief = "Research Acme" }, "free-token")
    assert.equals(402, r.status)
    assert.same({ detail = { error = "plan_required" } }, r.json)
    r = create({ brief = "Research Acme", depth = "high" }, "poor-token")
    assert.equals(402, r.status)
    assert.same({
      detail = { error = "insufficient_credits", required_credits = 50, available_credits = 30 } },
      r.json)
    assert.equals(0, s:counter("extruct.tasks_created"))
    assert.equals(30, credits("poor-token"))
    assert.equals(200, create({ brief = "Research Acme", depth = "medium" }, "poor-token").status)
    assert.equals(1, s:counter("extruct.tasks_created"))
  end)

  it("creates nothing when the scheduler is unavailable (503 fault)", function()
    s:fault({ method = "POST", path = "/v1/deep_research_tasks", status = 503 })
    assert.equals(503, create({ brief = "Research Acme" }).status)
    assert.equals(0, #s:tasks())
    assert.equals(200, create({ brief = "Research Acme" }).status)
    assert.equals(1, #s:tasks())
  end)
end)

describe("simulator: Deep Research lifecycle and billing (E5-E10)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("returns a fresh task exactly as created, echoing the brief byte for byte", function()
    local brief = "Research Acme Corp (acme.com) — pricing,\n\t\"quotes\" and ünïcode ✓"
    local r = create({ brief = brief })
    assert.equals(200, r.status)
    local t = r.json
    assert.equals(brief, t.brief)
    assert.equals("created", t.status)
    assert.equals("medium", t.depth)
    assert.same({ 0, 0, 0 }, { t.iterations, t.agents, t.sources })
    assert.equals(t.created_at, t.updated_at)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", t.created_at)
    assert.same({ id = "u1", email = "alice@acme.test" }, t.owner)
    assert.matches('"report":null', r.body)
    assert.matches('"failure_reason":null', r.body)
    assert.matches('"output_schema":null', r.body)
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", t.id)
  end)

  it("moves created -> in_progress -> done with monotonic counters and per-agent " ..
    "billing", function()
    local id = create({
      brief = "Research Acme Corp for a pricing decision", depth = "high" }).json.id
    s:advance(6)
    assert.equals("in_progress", get(id).json.status)
    local prev = get(id).json
    for _ = 1, 200 do
      s:advance(7)
      local t = get(id).json
      for _, k in ipairs({ "agents", "iterations", "sources" }) do
        assert.is_true(t[k] >= prev[k])
      end
      assert.is_true(t.agents <= 50)
      assert.equals(10000 - t.agents, credits())
      if t.agents ~= prev.agents then assert.is_true(t.updated_at >= prev.updated_at) end
      if t.agents > 0 then assert.is_true(t.iterations <= math.ceil(t.agents / 4)) end
      prev = t
      if t.status == "done" then break end
    end
    assert.equals("done", prev.status)
    assert.is_true(prev.agents >= 1 and prev.sources >= prev.agents)
    s:advance(10000)
    local frozen = get(id).json
    assert.same(prev, frozen)
    assert.equals(10000 - prev.agents, credits())
  end)

  it("finishes within the configured duration", function()
    s:config({ extruct = { duration = { medium = 60 }, jitter = 0 } })
    local id = create({ brief = "Research Acme" }).json.id
    s:advance(66)
    assert.equals("done", get(id).json.status)
  end)

  it("refunds everything when a task fails", function()
    local id = create({ brief = "Research Acme [fail]" }).json.id
    local t = run_to_end(id, 10)
    assert.equals("failed", t.status)
    assert.is_string(t.failure_reason)
    assert.matches('"report":null', get(id).body)
    assert.equals(10000, credits())
    assert.equals(0, s:state().extruct.billing[id].charged)
  end)

  it("fails a run whose balance reaches 0 mid-run and keeps the ledger consistent", function()
    s:config({ extruct = { full_budget_share = 1 } })
    local a = create({ brief = "Research Acme" }, "poor-token").json.id
    local b = create({ brief = "Research Globex" }, "poor-token").json.id
    local ta = run_to_end(a, 10, "poor-token")
    local tb = run_to_end(b, 10, "poor-token")
    local failed, spent = 0, 0
    for _, t in ipairs({ ta, tb }) do
      if t.status == "failed" then
        failed = failed + 1
        assert.matches("[Ii]nsufficient credits", t.failure_reason)
      else
        spent = spent + t.agents
      end
    end
    assert.is_true(failed >= 1)
    assert.equals(30 - spent, credits("poor-token"))
    assert.is_true(credits("poor-token") >= 0)
  end)

  it("creates an unusable brief, then fails it with reasons and suggestions, charging " ..
    "nothing", function()
    for _, brief in ipairs({
      "what is the best crm for us? tell me everything.", "Research Acme [unusable]" }) do
      local r = create({ brief = brief })
      assert.equals(200, r.status)
      s:advance(11)
      local t = get(r.json.id).json
      assert.equals("failed", t.status)
      assert.matches("Suggestions", t.failure_reason)
      assert.equals(0, t.agents)
    end
    assert.equals(10000, credits())
  end)
end)

describe("simulator: Deep Research access and listing (E13, E14)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("lets the same organisation read a task, not another one; unknown ids are 404", function()
    local id = create({ brief = "Research Acme" }).json.id
    assert.equals(200, get(id, "teammate-token").status)
    local r = get(id, "other-org-token")
    assert.equals(403, r.status)
    assert.equals("string", type(r.json.detail))
    r = get("00000000-0000-4000-8000-000000000000")
    assert.equals(404, r.status)
    assert.same({ detail = "Task not found" }, r.json)
  end)

  it("lists the caller's tasks newest first with offset and limit", function()
    local ids = {}
    for i = 1, 3 do
      ids[i] = create({ brief = "Research Acme " .. i }).json.id
      s:advance(1)
    end
    create({ brief = "Research Globex" }, "teammate-token")
    local all = api("GET", "/v1/deep_research_tasks").json
    assert.same({ ids[3], ids[2], ids[1] }, { all[1].id, all[2].id, all[3].id })
    assert.equals(3, #all)
    assert.equals(2, #api("GET", "/v1/deep_research_tasks?limit=2").json)
    local page = api("GET", "/v1/deep_research_tasks?offset=2&limit=2").json
    assert.same({ ids[1] }, { page[1].id })
    local past = api("GET", "/v1/deep_research_tasks?offset=10")
    assert.equals("[]", past.body)
  end)

  it("breaks created_at ties by id, descending", function()
    for i = 1, 4 do create({ brief = "Research Acme " .. i }) end
    local all = api("GET", "/v1/deep_research_tasks").json
    for i = 2, #all do assert.is_true(all[i - 1].id > all[i].id) end
  end)

  it("rejects non-integer and negative paging values with 422", function()
    local r = api("GET", "/v1/deep_research_tasks?limit=abc")
    assert.equals(422, r.status)
    assert.equals("int_parsing", r.json.detail[1].type)
    assert.same({ "query", "limit" }, r.json.detail[1].loc)
    r = api("GET", "/v1/deep_research_tasks?offset=-1")
    assert.equals(422, r.status)
    assert.same({ "query", "offset" }, r.json.detail[1].loc)
  end)
end)

describe("simulator: control channel", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("resets tasks, credits, counters, clock and config", function()
    s:config({ extruct = { budgets = { medium = 5 } } })
    local id = create({ brief = "Research Acme" }).json.id
    s:advance(1000)
    assert.is_true(credits() < 10000)
    s:reset()
    assert.equals(10000, credits())
    assert.equals(404, get(id).status)
    local st = s:state()
    assert.equals(0, st.now)
    assert.equals(0, #st.extruct.tasks)
    assert.is_nil(st.counters["extruct.tasks_created"])
    assert.equals(2, #st.requests) -- the two reads above
    local d = create({ brief = "Research Acme" }, "poor-token")
    assert.equals(200, d.status) -- budgets are back to 25
  end)

  it("drives the clock: advance, set, speed; never backwards", function()
    assert.equals(5, s:advance(5).now)
    assert.equals(100, s:set_time(100).now)
    local r = s:http("POST", "/_sim/clock", { body = { set = 50 } })
    assert.equals(400, r.status)
    assert.equals(0, s:set_speed(0).speed)
    assert.same({ now = 100, speed = 0 }, s:clock())
  end)

  it("is deterministic: the same seed gives the same ids and reports", function()
    local function run(seed)
      s:reset({ seed = seed })
      local id = create({ brief = "Research Acme Corp" }).json.id
      s:advance(2000)
      return id, get(id).json.report
    end
    local id1, rep1 = run(42)
    local id2, rep2 = run(42)
    local id3 = run(43)
    assert.equals(id1, id2)
    assert.same(rep1, rep2)
    assert.are_not.equal(id1, id3)
  end)

  it("answers unknown routes with a JSON 404 and wrong methods with 405", function()
    local r = api("GET", "/v1/nope")
    assert.equals(404, r.status)
    assert.matches("^application/json", r.headers["content-type"])
    assert.equals(405, api("DELETE", "/v1/deep_research_tasks").status)
  end)
end)

describe("simulator event heap", function()
  -- The simulator is Lua 5.4 code (it runs as its own lua5.4 process): so is this check.
  it("pops events by time, and events at the same time in creation order", function()
    local script = "package.path = 'sim/?.lua;' .. package.path local heap = require " ..
      "'simulator.heap' local h = {} for _, e in ipairs({ " ..
      "{5,1},{2,4},{9,2},{2,3},{7,6},{2,5},{0,7},{5,0} }) do heap.push(h, { t = e[1], seq = " ..
      "e[2] }) end local got = {} while h[1] do local ev = heap.pop(h) got[#got + 1] = ev.t .. " ..
      "':' .. ev.seq end io.write(table.concat(got, ' '), ' ', tostring(heap.pop(h)))"
    local p = assert(io.popen('lua5.4 -e "' .. script .. '" 2>&1'))
    local out = p:read("*a")
    p:close()
    assert.equals("0:7 2:3 2:4 2:5 5:0 5:1 7:6 9:2 nil", out)
  end)
end)

-- Issue 16 (items 1, 2, 3, 6, 8): the framework and its consumers follow the descriptor. A fake
-- provider registered here (no list, base_suffixes, poll pace, no describer) drives dr.client,
-- the command, the progress line and the worker's job routing with no code of its own; the
-- real providers' cases (brief everywhere, unsupported) run against the simulator.
local dr = require "deepresearch"
local providers = require "deepresearch.providers"
local env = require "support.env"

local function buffer()
  local b = { text = "" }
  function b:write(...)
    for i = 1, select("#", ...) do self.text = self.text .. tostring((select(i, ...))) end
    return self
  end
  function b:flush() return self end
  function b.setvbuf() return true end
  return b
end

-- Its operations module: a list it would answer, which has_list = false must hide.
package.preload["spec.fake_ops"] = function()
  return {
    ops = {},
    accepts = { create = { opts = 1, required = true, fields = { brief = "string" } } },
    methods = {
      create = function(_, p) return { ref = "n1", status = "pending", brief = p.brief } end,
      get = function(_, id) return { ref = id, status = "pending" } end,
      list = function() return {} end,
    },
  }
end

local function nolist()
  return {
    name = "nolist",
    base_url = "https://api.nolist.test",
    base_suffixes = { "/v1" },
    base_env = "NOLIST_BASE_URL",
    token_env = "NOLIST_API_KEY",
    token_option = "api_key",
    auth_header = "Authorization",
    auth_prefix = "Bearer ",
    parse_error = function() return {} end,
    has_list = false,
    poll = { floor = 5, cap = 60 },
    create_pace = 10,
    kinds = {
      research = {
        path = "/v1/things", id_field = "ref", label = "thing", failure_field = "why",
        states = { pending = "queued", busy = "running", ok = "done", bad = "failed" },
        progress = { "status", "usage.steps", "#citations" },
      },
    },
    module = "spec.fake_ops",
    limits = { brief = 1000 },
    operations = {},
    recovery = "none",
    report = { text = "text", citation_kind = "list" },
    cost = { source = "computed" },
    cli = {
      name = "NoList",
      flags = {},
      create = function(client, text) return client:create{ brief = text } end,
      summary = function(task) return { { "ref", task.ref } } end,
    },
    worker = {
      id_field = "ref",
      params = function(j) return { brief = j.brief, extra = j.nolist } end,
      validate = function(p) return p end,
      progress = function(task) return { task_status = task.status } end,
    },
  }
end

local function main(argv)
  local out, err = buffer(), buffer()
  local code = require("deepresearch.cli").main(argv, { out = out, err = err, stdin = buffer() })
  return code, out.text, err.text
end

describe("issue 16: a provider's consumers follow its descriptor", function()
  before_each(function() providers.register(nolist()) end)
  after_each(function() providers.unregister("nolist") end)

  it("item 3: a generic method the provider lacks answers unsupported, list when " ..
    "has_list = false", function()
    local c = dr.client{ provider = "nolist", api_key = "k" }
    for _, m in ipairs({ "list", "cancel", "delete" }) do
      local r, err = c[m](c, "n1")
      assert.is_nil(r, m)
      assert.are.equal("unsupported", err.code, m)
      assert.is_false(err.retryable)
      assert.are.equal("nolist", err.provider)
      assert.are.equal(m, err.method)
      assert.matches("NoList has no '" .. m .. "'", err.message, 1, true)
    end
    assert.are.equal("n1", c:create{ brief = "x" }.ref) -- its own methods stay
    c:close()
    -- Extruct cannot cancel: the same code, nothing sent.
    local e = dr.client{ provider = "extruct", token = "t", base_url = "http://127.0.0.1:9" }
    local r, err = e:cancel("t1")
    assert.is_nil(r)
    assert.are.equal("unsupported", err.code)
    assert.matches("Extruct has no 'cancel'", err.message, 1, true)
    e:close()
  end)

  it("item 1: a trailing base suffix (/v1) leaves the base URL, slashes too", function()
    local p = providers.get("nolist")
    assert.are.equal("http://h:1", dr.base_url(p, "http://h:1/v1"))
    assert.are.equal("http://h:1", dr.base_url(p, "http://h:1/v1/"))
    assert.are.equal("http://h:1/api", dr.base_url(p, "http://h:1/api/v1"))
    assert.are.equal("http://h:1/v10", dr.base_url(p, "http://h:1/v10"))
    assert.are.equal("http://v1", dr.base_url(p, "http://v1"))
    -- No suffixes: slashes only.
    assert.are.equal("http://h:1/v1", dr.base_url(providers.get("extruct"), "http://h:1/v1//"))
    local c = dr.client{ provider = "nolist", api_key = "k", base_url = "http://127.0.0.1:9/v1/" }
    assert.matches("(nolist, http://127.0.0.1:9)", tostring(c), 1, true)
    c:close()
  end)

  it("item 1: the base URL's environment variable loses the suffix too", function()
    local code = [[
      local providers = require "deepresearch.providers"
      providers.register{ name = "nolist", base_url = "https://x", base_env = "NOLIST_BASE_URL",
        base_suffixes = { "/v1beta" }, token_env = "NOLIST_API_KEY", token_option = "api_key",
        kinds = { research = {} }, module = "deepresearch.providers.extruct" }
      io.write(tostring(require("deepresearch").client{ provider = "nolist" }))
    ]]
    local q = require("support.sim").shell_quote
    local cmd = "NOLIST_BASE_URL=http://127.0.0.1:9/v1beta/ LUA_PATH=" .. q(package.path) ..
      " LUA_CPATH=" .. q(package.cpath) .. " lua5.4 -e " .. q(code) .. " 2>&1"
    if _VERSION ~= "Lua 5.4" then return end -- one run of the subprocess is enough
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    assert.matches("(nolist, http://127.0.0.1:9)", out, 1, true)
  end)

  it("item 6: the registry needs no list fields without a list; checks the new ones", function()
    assert.same({}, providers.missing(providers.get("nolist")))
    local d = nolist()
    d.has_list = nil
    assert.same({ "cli.columns", "cli.list", "list_paging", "worker.matches" },
      providers.missing(d))
    d = nolist()
    d.poll = { floor = 9, cap = 1 }
    d.base_suffixes = "/v1"
    assert.same({ "base_suffixes (table)", "poll (floor <= cap, numbers)" }, providers.missing(d))
  end)

  it("item 6: the command's list says the provider cannot list and exits 2", function()
    local code, out, err = main({ "--provider", "nolist", "list" })
    local _
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("NoList cannot list tasks (its API has no list)", err, 1, true)
    code, _, err = main({ "--provider", "nolist", "cancel", "n1" })
    assert.are.equal(2, code)
    assert.matches("'cancel' is not available for --provider nolist", err, 1, true)
    local names = providers.names()
    code, _, err = main({ "--provider", "nobody", "get", "x" })
    assert.are.equal(2, code)
    assert.matches(names[#names], err, 1, true) -- the choices come from the registry
    local cli = require "deepresearch.cli"
    assert.are.equal(cli.EXIT.usage, cli.exit_code(dr.errors.unsupported("nolist", "list")))
  end)

  it("item 6: the progress line shows the counters the task reports, none when it has none",
    function()
      local ad = require("deepresearch.cli.task").nolist
      local info = ad.describe({ ref = "n1", status = "busy", usage = { steps = 4 },
        citations = { 1, 2 } })
      assert.are.equal("n1", info.id)
      assert.same({ "steps 4", "citations 2" }, info.parts)
      info = ad.describe({ ref = "n1", status = "busy" })
      assert.same({}, info.parts)
      assert.same({}, ad.list_headers)
      -- The line always carries the elapsed time.
      local t = 100
      local p = require("deepresearch.cli.progress").new{ mode = "lines", stream = buffer(),
        now = function() return t end, describe = ad.describe }
      t = 165
      p:update({ ref = "n1", status = "busy" })
      assert.are.equal("task n1: busy  1:05\n", p.stream.text)
    end)

  it("item 8: the descriptor's poll pace is the wait's default floor and cap", function()
    local wait = require "deepresearch.runtime.wait"
    local o = wait.with_poll({}, { floor = 5, cap = 60 })
    assert.are.equal(5, o.interval)
    assert.are.equal(60, o.max_interval)
    o = wait.with_poll({ interval = 1, max_interval = 3 }, { floor = 5, cap = 60 })
    assert.are.equal(1, o.interval)
    assert.are.equal(3, o.max_interval)
    o = wait.with_poll({}, nil)
    assert.is_nil(o.interval)
    -- A waiter on a client whose provider has a pace sleeps at least the floor first.
    local w = wait.waiter({ clock = { now = function() return 0 end, sleep = function() end },
      policy = { poll = { floor = 5, cap = 60 } },
      verdict = function() return nil end }, providers.get("nolist").kinds.research, "n1", {})
    local action, delay = w:observe({ ref = "n1", status = "busy" })
    assert.are.equal("sleep", action)
    assert.are.equal(5, delay)
  end)

  it("item 8: the worker keeps to the descriptor's create pace (creates per minute)", function()
    -- The worker runs on Lua 5.4 (its store loads Redis scripts with load(string)), LuaJIT too.
    if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
      pending("the worker needs Lua 5.4")
      return
    end
    local flow = require "deepresearch.worker.flow"
    local t = 1000
    local d = nolist()
    d.create_pace = 2
    local w = setmetatable({ lanes = { nolist = { name = "nolist", descriptor = d } },
      provider_name = "nolist", now = function() return t end }, { __index = flow })
    local job = { id = "j1", provider = "nolist" }
    assert.are.equal(0, w:create_delay(job))
    t = 1010
    assert.are.equal(0, w:create_delay(job))
    t = 1030
    assert.are.equal(30, w:create_delay(job)) -- the first create leaves the minute at 1060
    t = 1060
    assert.are.equal(0, w:create_delay(job))
    -- No pace: never held.
    w.lanes.nolist.descriptor = providers.get("extruct")
    for _ = 1, 5 do assert.are.equal(0, w:create_delay(job)) end
  end)

  it("item 6: a job's own provider field picks its provider; unknown ones are refused",
    function()
      local jobs = require "deepresearch.worker.job"
      local job = assert(jobs.parse(
        '{"id":"j1","brief":"north sea ports","provider":"nolist","nolist":{"x":1}}', "extruct"))
      assert.are.equal("nolist", job.provider)
      assert.same({ brief = "north sea ports", extra = { x = 1 } }, job.params)
      job = assert(jobs.parse('{"id":"j2","brief":"north sea ports"}', "nolist"))
      assert.are.equal("nolist", job.provider)
      local _, err = jobs.parse('{"id":"j3","brief":"b","provider":"nobody"}', "extruct")
      assert.are.equal("invalid_request", err.code)
      assert.are.equal("j3", err.job_id)
      assert.matches("provider must be one of extruct, valyu", err.message, 1, true)
      _, err = jobs.parse('{"id":"j4","brief":"b","provider":7}', "extruct")
      assert.matches("got number", err.message, 1, true)
    end)
end)

describe("issue 16 item 2: one way to ask", function()
  local s
  setup(function() s = env.sim() end)
  before_each(function() s:reset() end)

  it("Valyu takes brief as its query", function()
    local client = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false })
    local t = dr.assert(client:create{ brief = "Compare Acme and Globex on revenue",
      mode = "fast" })
    assert.is_string(t.deepresearch_id)
    local req = s:requests()[#s:requests()]
    assert.matches('"query":"Compare Acme and Globex on revenue"', req.body, 1, true)
    assert.has_error(function() client:create{ mode = "fast" } end)
    client:close()
  end)

  it("brief with the provider's own field (input, query) is refused before sending", function()
    local CASES = { { "openai", "input", "/v1" }, { "perplexity", "input", "/v1" },
      { "gemini", "input", "/v1beta" }, { "valyu", "query", "" }, { "valyu", "input", "" } }
    for _, case in ipairs(CASES) do
      local name, field = case[1], case[2]
      -- Port 9 answers nothing: a request that left would end network, not invalid_request.
      local c = dr.client{ provider = name, api_key = "k",
        base_url = "http://127.0.0.1:9" .. case[3] }
      local _, err = c:create{ brief = "Compare Acme and Globex on revenue",
        [field] = "Compare Acme and Globex on revenue" }
      assert.are.equal("invalid_request", err and err.code, name .. " " .. field)
      assert.matches("give brief or " .. field .. ", not both", err.message, 1, true)
      c:close()
    end
  end)

  it("Extruct takes brief, as before", function()
    local client = env.client(s, {})
    local t = dr.assert(client:create{ brief = "Research Flexport (flexport.com): products, " ..
      "pricing and leadership changes over the last 12 months." })
    assert.is_string(t.id)
    client:close()
  end)
end)

-- One queue, two providers: the worker's --provider (Extruct) and a job naming Valyu.
local fixture = require "support.worker"
if fixture.enabled() then
  describe("issue 16 item 6: a worker runs a queue that mixes providers", function()
    local sim = require "support.sim"
    local cjson = require("cjson").new()
    local F, S
    before_each(function()
      F = fixture.new()
      S = sim.start{ speed = 100, seed = 16 }
    end)
    after_each(function()
      if S then S:stop() S = nil end
      F:teardown()
    end)

    -- The fixture's start sets the Extruct token only; this worker also holds Valyu's.
    local function start(q)
      return F:spawn({ "--redis-url", F.R.url, "--queue", q, "--base-url", S.url, "--interval",
        "0.05", "--max-interval", "0.2", "--once", "--verbose", "--watch-pid",
        tostring(sim.own_pid()) }, { { "EXTRUCT_API_TOKEN", "test-token" },
        { "VALYU_API_KEY", "valyu-key" }, { "VALYU_BASE_URL", S.url } }, "mixed")
    end

    it("each job goes to its own provider; both end done with one task each", function()
      local q = "mixed"
      local brief = "Research Flexport (flexport.com): products, pricing and leadership " ..
        "changes over the last 12 months."
      assert(F.R:call("LPUSH", q, cjson.encode({ id = "e1", brief = brief })))
      assert(F.R:call("LPUSH", q, cjson.encode({ id = "v1", provider = "valyu",
        brief = "Compare Acme Robotics and Globex on warehouse automation revenue",
        valyu = { mode = "fast" } })))
      local w = start(q)
      assert.are.equal(0, F:exit_status(w, 120), F:log_of(w))
      assert.are.equal("done", F:job(q, "e1").status, F:log_of(w))
      assert.are.equal("done", F:job(q, "v1").status, F:log_of(w))
      local st = S:state()
      assert.are.equal(1, #st.extruct.tasks)
      assert.are.equal(1, #st.valyu.tasks)
      assert.are.equal("fast", st.valyu.tasks[1].mode)
      assert.is_string(cjson.decode(F:job(q, "v1").task).deepresearch_id)
    end)
  end)
end

describe("issue 16: the registered providers, as their descriptors say", function()
  local CASES = {
    { name = "openai", suffix = "/v1", lacks = { "list" } },
    { name = "perplexity", suffix = "/v1", lacks = { "list", "delete" } },
    { name = "gemini", suffix = "/v1beta", lacks = { "list" } },
  }
  for _, case in ipairs(CASES) do
    local name = case.name
    it(name .. ": a base URL ending in " .. case.suffix .. " is accepted; what it lacks is " ..
      "unsupported, nothing sent; the command's list exits 2", function()
      if not providers.get(name) then return pending(name .. " is not registered yet") end
      local c = dr.client{ provider = name, api_key = "k",
        base_url = "http://127.0.0.1:9" .. case.suffix .. "/" }
      assert.matches("(" .. name .. ", http://127.0.0.1:9)", tostring(c), 1, true)
      for _, m in ipairs(case.lacks) do
        local r, err = c[m](c, "resp_1")
        assert.is_nil(r, m)
        assert.are.equal("unsupported", err.code, name .. " " .. m)
        assert.are.equal(m, err.method)
      end
      c:close()
      local code, out, err = main({ "--provider", name, "list" })
      assert.are.equal(2, code)
      assert.are.equal("", out)
      assert.matches("cannot list tasks", err, 1, true)
    end)
  end
end)

describe("issue 16 review: every descriptor's parse_error reads a hostile body", function()
  local cjson = require "cjson"
  -- Items and fields of the wrong type in each provider's error shape (and the others').
  local BODIES = {
    '{"detail":[1,"x",null,{"loc":[{}],"msg":{},"type":5},{"loc":"body","msg":"m"}]}',
    '{"detail":{"error":{"a":1},"required_credits":"x"}}',
    '{"detail":7}',
    '{"error":{"message":{"a":1},"type":7,"code":[],"param":{}}}',
    '{"error":"validation_failed","message":[1],"errors":[1,"s",{"key":{},"message":{}}]}',
    '{"success":false,"error":{"x":1}}',
    '[{"error":{"message":5,"status":{},"details":[1,{"@type":7},' ..
      '{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":{}},' ..
      '{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":[]}]}}]',
    '[1]', '"text"', '{}',
  }
  for _, name in ipairs(providers.names()) do
    it(name .. ": no raise; message and server_code are strings or absent", function()
      local d = providers.get(name)
      for _, text in ipairs(BODIES) do
        local ok, info = pcall(d.parse_error, cjson.decode(text))
        assert.is_true(ok, name .. " " .. text .. ": " .. tostring(info))
        assert.is_table(info, text)
        for _, f in ipairs{ "message", "server_code", "retry_after" } do
          assert.is_true(info[f] == nil or type(info[f]) == "string", f .. " of " .. text)
        end
        if info.message then assert.is_nil(info.message:find("table:", 1, true), text) end
        for _, fl in ipairs(type(info.fields) == "table" and info.fields or {}) do
          assert.is_true(fl.message == nil or type(fl.message) == "string", text)
        end
      end
    end)
  end
end)

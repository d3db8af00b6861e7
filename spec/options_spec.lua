-- Issue 14 part 6: options are checked against what each entry point accepts. A misspelled
-- option raises (naming the one meant) before anything is sent; type errors name the field;
-- argument errors blame the caller's line, as luaL_argerror does.
local dr = require "deepresearch"
local env = require "support.env"
local options = require "deepresearch.base.options"

local SRC = debug.getinfo(1, "S").short_src

-- Runs fn, a one-line function holding the call, and asserts it raised
-- "<this file>:<fn's line>: <text>": the error blames the caller's line, not the library.
local function raises(text, fn)
  local ok, msg = pcall(fn)
  assert.is_false(ok)
  assert.is_string(msg)
  assert.equals(SRC .. ":" .. debug.getinfo(fn, "S").linedefined .. ": " .. text, msg)
  assert.matches("options_spec%.lua:%d+: ", msg)
end

describe("item 6 (issue 14): options checked at each entry point", function()
  local s, client
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client = env.client(s)
    s:clear_requests()
  end)
  after_each(function() client:close() end)

  local function sent() return #s:requests() end

  describe("the edit distance behind did-you-mean", function()
    it("item 6: counts a swap of neighbours as one edit (optimal string alignment)", function()
      assert.equals(1, options.distance("dpeth", "depth"))
      assert.equals(1, options.distance("timout", "timeout"))
      assert.equals(0, options.distance("depth", "depth"))
      assert.equals(5, options.distance("", "depth"))
      assert.equals(3, options.distance("ca", "abc")) -- OSA, not unrestricted Damerau (2)
    end)

    it("item 6: suggests only names at most two edits away", function()
      local fields = { depth = "string", brief = "string", output_schema = "table" }
      assert.equals("depth", options.suggest("dpeth", fields))
      assert.equals("brief", options.suggest("breif", fields))
      assert.is_nil(options.suggest("colour", fields))
      assert.is_nil(options.suggest(1, fields))
    end)
  end)

  describe("the blocking client (Extruct)", function()
    it("item 6: create refuses a misspelled option, naming the one meant; sends nothing", function()
      raises("bad option 'dpeth' to 'create' (did you mean 'depth'?)",
        function() client:create{ brief = env.BRIEF, dpeth = "high" } end)
      assert.equals(0, sent())
      assert.equals(0, s:counter("extruct.tasks_created"))
    end)

    it("item 6: an option with no near name says it is unknown", function()
      raises("bad option 'colour' to 'create' (unknown option)",
        function() client:create{ brief = env.BRIEF, colour = "red" } end)
      assert.equals(0, sent())
    end)

    it("item 6: a type error names the field", function()
      raises("bad option 'depth' to 'create' (string expected, got number)",
        function() client:create{ brief = env.BRIEF, depth = 5 } end)
      raises("bad option 'brief' to 'create' (string expected, got number)",
        function() client:create{ brief = 7 } end)
      assert.equals(0, sent())
    end)

    it("item 6: c:create(42) blames the caller's line", function()
      raises("bad argument #1 to 'create' (table expected, got number)",
        function() client:create(42) end)
      raises("bad argument #1 to 'create' (table expected, got no value)",
        function() client:create() end)
      assert.equals(0, sent())
    end)

    it("item 6: a missing required field is named, at the caller's line", function()
      raises("bad option 'brief' to 'create' (string expected, got no value)",
        function() client:create{ depth = "high" } end)
      raises("bad option 'query' to 'discovery_create' (string expected, got no value)",
        function() client:discovery_create{ desired_num_results = 5 } end)
      local p = client:poller()
      raises("bad option 'brief' to 'create' (string expected, got no value)",
        function() p:create({ depth = "high" }, function() end) end)
      p:close()
      assert.equals(0, sent())
    end)

    it("item 6: run accepts create's options and the wait's, nothing else", function()
      raises("bad option 'timout' to 'run' (did you mean 'timeout'?)",
        function() client:run{ brief = env.BRIEF, timout = 5 } end)
      raises("bad option 'growth' to 'run' (unknown option)",
        function() client:run{ brief = env.BRIEF, growth = 2 } end)
      assert.equals(0, sent())
    end)

    it("item 6: list and tasks refuse unknown options at the caller's line", function()
      raises("bad option 'limt' to 'list' (did you mean 'limit'?)",
        function() client:list{ limt = 5 } end)
      raises("bad argument #1 to 'list' (table expected, got number)",
        function() client:list(5) end)
      raises("bad option 'offset' to 'list' (number expected, got string)",
        function() client:list{ offset = "0" } end)
      raises("bad option 'ofset' to 'tasks' (did you mean 'offset'?)",
        function() client:tasks{ ofset = 5 } end)
      assert.equals(0, sent())
    end)

    it("item 6: wait refuses unknown options and a non-id at the caller's line", function()
      raises("bad option 'intervall' to 'wait' (did you mean 'interval'?)",
        function() client:wait("t1", { intervall = 1 }) end)
      raises("bad argument #1 to 'wait' (string expected, got number)",
        function() client:wait(42) end)
      raises("bad option 'on_progress' to 'wait' (function expected, got boolean)",
        function() client:wait("t1", { on_progress = true }) end)
      assert.equals(0, sent())
    end)

    it("item 6: every documented wait option is accepted", function()
      local t = dr.assert(client:create{ brief = env.BRIEF })
      local done = dr.assert(client:wait(t, { interval = 1, growth = 1.5, max_interval = 5,
        timeout = 7200, max_failures = 5, not_found_grace = 30, on_progress = function() end,
        task = t }))
      assert.equals(t.id, done.id)
    end)

    it("item 6: Deep Search methods refuse unknown options", function()
      raises("bad option 'desired_num_result' to 'discovery_create' " ..
        "(did you mean 'desired_num_results'?)",
        function() client:discovery_create{ query = "x", desired_num_result = 5 } end)
      raises("bad option 'until_exhaust' to 'discovery_wait' (did you mean 'until_exhausted'?)",
        function() client:discovery_wait("d1", { until_exhaust = true }) end)
      raises("bad option 'limits' to 'discovery_results' (did you mean 'limit'?)",
        function() client:discovery_results("d1", { limits = 5 }) end)
      assert.equals(0, sent())
    end)
  end)

  describe("dr.client", function()
    it("item 6: dr.client{ timout = 5 } raises, naming timeout", function()
      raises("bad option 'timout' to 'client' (did you mean 'timeout'?)",
        function() dr.client{ base_url = s.url, token = "t", timout = 5 } end)
    end)

    it("item 6: an Extruct client refuses Valyu's api_key; all README options pass", function()
      raises("bad option 'api_key' to 'client' (unknown option)",
        function() dr.client{ base_url = s.url, api_key = "k" } end)
      local c = dr.client{ provider = "extruct", token = "test-token", base_url = s.url,
        timeout = 60, connect_timeout = 5, low_speed_limit = 1, low_speed_time = 30,
        max_response_size = 1024, max_retries = 2, base_delay = 0.5, max_delay = 8,
        max_retry_after = 120, max_connections = 8,
        proxy = "", user_agent = "x", clock = env.virtual_clock(s) }
      assert.is_table(dr.assert(c:list{ limit = 1 }))
      c:close()
    end)
  end)

  describe("the poller, wait_all and create_all", function()
    it("item 6: poller options and each poller method are checked before queuing", function()
      raises("bad option 'max_conections' to 'poller' (did you mean 'max_connections'?)",
        function() client:poller{ max_conections = 2 } end)
      local p = client:poller()
      raises("bad option 'dpeth' to 'create' (did you mean 'depth'?)",
        function() p:create({ brief = env.BRIEF, dpeth = "high" }, function() end) end)
      raises("bad option 'gat' to 'create' (did you mean 'gate'?)",
        function() p:create({ brief = env.BRIEF }, function() end, { gat = print }) end)
      raises("bad option 'limt' to 'list' (did you mean 'limit'?)",
        function() p:list({ limt = 1 }, function() end) end)
      raises("bad option 'timout' to 'wait' (did you mean 'timeout'?)",
        function() p:wait("t1", { timout = 1 }, function() end) end)
      raises("bad option 'until_exhaustd' to 'discovery_wait' (did you mean 'until_exhausted'?)",
        function() p:add("discovery_wait", function() end, "d1", { until_exhaustd = true }) end)
      assert.equals(0, p:pending())
      p:close()
      assert.equals(0, sent())
    end)

    it("item 6: wait_all and create_all refuse unknown options and items", function()
      raises("bad option 'timout' to 'wait_all' (did you mean 'timeout'?)",
        function() client:wait_all({ "t1" }, { timout = 5 }) end)
      raises("bad argument #1 to 'wait_all' (ids[1]: a task id or task expected, got number)",
        function() client:wait_all({ 42 }) end)
      raises("bad option 'dpeth' to 'create_all' (did you mean 'depth'?)",
        function() client:create_all({ env.BRIEF }, { dpeth = "high" }) end)
      raises("bad option 'dpeth' to 'create_all' (did you mean 'depth'?)",
        function() client:create_all({ { brief = env.BRIEF }, { brief = "b", dpeth = "x" } }) end)
      assert.equals(0, sent())
      assert.equals(0, s:counter("extruct.tasks_created"))
    end)
  end)

  describe("Valyu", function()
    local v
    before_each(function()
      v = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false })
    end)
    after_each(function() v:close() end)

    it("item 6: create accepts B.2's fields and refuses a misspelled one", function()
      raises("bad option 'mdoe' to 'create' (did you mean 'mode'?)",
        function() v:create{ query = "q", mdoe = "fast" } end)
      raises("bad option 'model' to 'create' (did you mean 'mode'?)",
        function() v:create{ query = "q", model = "fast" } end)
      raises("bad option 'query' to 'create' (string expected, got no value)",
        function() v:create{ mode = "fast" } end)
      raises("bad argument #2 to 'update' (string expected, got number)",
        function() v:update("x", 5) end)
      raises("bad argument #1 to 'cancel' (string expected, got no value)",
        function() v:cancel() end)
      raises("bad option 'offset' to 'list' (unknown option)",
        function() v:list{ offset = 0 } end)
      raises("bad option 'intrval' to 'wait' (did you mean 'interval'?)",
        function() v:wait("x", { intrval = 1 }) end)
      assert.equals(0, sent())
      local t = dr.assert(v:create{ query = "q", mode = "fast", research_strategy = "s",
        report_format = "r",
        metadata = { a = "b" }, urls = { "https://example.com" } })
      assert.is_string(t.deepresearch_id)
    end)
  end)
end)

-- dr.fanout (issue 19 part 1): one brief on all six kinds of provider at once, against a private
-- simulator running fast. Counted: tasks the simulator created, requests sent, progress calls;
-- never timed.
local dr = require "deepresearch"
local sim = require "support.sim"
local env = require "support.env"

local SPEED = 600
local KEYS = { extruct = { token = "test-token" }, valyu = { api_key = "valyu-key" },
  perplexity = { api_key = "pplx-key" }, openai = { api_key = "openai-key" },
  gemini = { api_key = "gemini-key" } }
local FAST = { time_scale = 0.05 }
local POLL = { interval = 0.05, max_interval = 0.05 }
local ALL = { "extruct", "valyu", "perplexity", "openai", "gemini" }

describe("fanout", function()
  local s, clients
  setup(function() s = sim.start{ speed = SPEED, seed = 5 } end)
  teardown(function() if s then s:stop() end end)
  before_each(function()
    s:reset{ speed = SPEED }
    s:config{ perplexity = FAST, openai = FAST, gemini = FAST, valyu = FAST }
    clients = {}
    for name, key in pairs(KEYS) do
      local o = { provider = name, base_url = s.url, base_delay = 0.01, max_delay = 0.02 }
      for k, v in pairs(key) do o[k] = v end
      clients[name] = dr.client(o)
    end
  end)
  after_each(function() for _, c in pairs(clients) do c:close() end end)

  local function created(name) return s:counter(name .. ".tasks_created") end

  local function run(opts)
    local o = { brief = env.BRIEF, clients = clients }
    for k, v in pairs(POLL) do o[k] = v end
    for k, v in pairs(opts) do o[k] = v end
    return dr.fanout(o)
  end

  it("runs one brief on every provider: one task each, all done, progress per provider",
    function()
      local seen = {}
      local results, errs = run{ providers = ALL, on_progress = function(name, task)
        seen[name] = (seen[name] or 0) + 1
        assert.is_table(task)
      end }
      assert.same({}, errs)
      for _, name in ipairs(ALL) do
        assert.equals("done", dr.state(results[name], name), name)
        assert.equals(1, created(name), name)
        assert.truthy(seen[name] and seen[name] >= 2, name .. " progress")
        assert.is_number(require("deepresearch.fanout").duration(results[name]))
      end
      -- compare counts what each report's markers cite: the simulator's Extruct report also
      -- lists uncited "Other sources", which stay in source_count only
      local c = dr.compare(results, errs)
      for _, name in ipairs(ALL) do
        local row = c.providers[name]
        assert.equals("markers", row.cited_from, name)
        assert.truthy(row.cited > 0 and row.cited <= row.source_count, name)
      end
      assert.truthy(c.providers.extruct.cited < c.providers.extruct.source_count)
    end)

  it("takes create options per provider (gemini = { agent = ... })", function()
    local agent = "deep-research-max-preview-04-2026"
    local results, errs = run{ providers = { "extruct", gemini = { agent = agent },
      valyu = { mode = "fast" } } }
    assert.same({}, errs)
    assert.equals(agent, results.gemini.agent)
    assert.equals("fast", results.valyu.mode)
    assert.equals(1, created("extruct"))
  end)

  it("one failure never ends the others", function()
    s:fault{ method = "POST", path = "/v1/agent", status = 402,
      body = '{"error":{"message":"insufficient credit","type":"payment_required"}}' }
    local results, errs = run{ providers = { "extruct", "perplexity", "gemini" } }
    assert.is_table(errs.perplexity)
    assert.is_nil(results.perplexity)
    assert.equals(0, created("perplexity"))
    assert.equals("done", dr.state(results.extruct, "extruct"))
    assert.equals("done", dr.state(results.gemini, "gemini"))
  end)

  it("a missing key is that provider's error, the others run", function()
    clients.openai:close()
    clients.openai = dr.client{ provider = "openai", base_url = s.url, api_key = "" }
    local results, errs = run{ providers = { "openai", "valyu" } }
    assert.equals("unauthorized", errs.openai.code)
    assert.equals("done", dr.state(results.valyu, "valyu"))
    assert.equals(0, created("openai"))
  end)

  it("a total budget over the sum of worst cases sends nothing", function()
    local results, errs = run{ providers = { "valyu", "extruct" },
      budget = { usd = 1 } }
    -- extruct's worst case is in credits: a usd budget cannot bound it
    assert.same({}, results)
    assert.equals("budget_unbounded", errs.extruct.code)
    assert.equals(0, #s:requests())
    results, errs = run{ providers = { "valyu", perplexity = { preset = "fast",
      max_tool_calls = 2 } }, budget = { usd = 0.55 } }
    assert.same({}, results)
    assert.equals("budget_exceeded", errs.valyu.code)
    assert.equals(errs.valyu, errs.perplexity)
    assert.equals(0, #s:requests())
    local _, errs2 = run{ providers = { "valyu", perplexity = { preset = "fast",
      max_tool_calls = 2 } }, budget = { usd = 1 } }
    assert.same({}, errs2)
    assert.equals(1, created("valyu"))
    assert.equals(1, created("perplexity"))
  end)

  it("a per-provider budget refuses that provider only", function()
    local results, errs = run{ providers = { "valyu", extruct = { depth = "xhigh",
      budget = { credits = 30 } } } }
    assert.equals("budget_exceeded", errs.extruct.code)
    assert.equals(0, created("extruct"))
    assert.equals("done", dr.state(results.valyu, "valyu"))
  end)

  it("raises on a caller's mistake before anything is sent", function()
    assert.has_error(function() run{ providers = { "nope" } } end)
    assert.has_error(function() run{ providers = { "extruct", "extruct" } } end)
    assert.has_error(function() run{ providers = { extruct = { dpeth = "high" }, "valyu" } } end)
    assert.has_error(function() run{ providers = {} } end)
    assert.has_error(function() run{ providers = { "extruct" }, colour = "red" } end)
    assert.equals(0, #s:requests())
  end)

  it("closes the clients it made when making a later one raises", function()
    local fanout = require "deepresearch.fanout"
    local real, made, closed = dr.client, {}, {}
    -- the second client raises (as a bad client option would); the first must be closed
    dr.client = function(o)
      if #made == 1 then error("bad option 'colour' to 'client'", 2) end
      local c = { provider = o.provider }
      function c.close() closed[#closed + 1] = o.provider end
      made[#made + 1] = c
      return c
    end
    local ok, err = pcall(fanout.clients, { { name = "extruct" }, { name = "valyu" },
      { name = "gemini" } })
    made = {}
    local ok2 = pcall(dr.fanout, { brief = env.BRIEF, providers = { "valyu", "extruct" } })
    dr.client = real
    assert.is_false(ok)
    assert.matches("colour", tostring(err))
    assert.is_false(ok2)
    assert.same({ "extruct", "valyu" }, closed) -- each made client closed once, none left open
    assert.equals(0, #s:requests())
    -- a given client is the caller's: never closed here
    made, closed = {}, {}
    local given = { close = function() closed[#closed + 1] = "given" end }
    dr.client = function(o)
      if #made == 1 then error("bad option", 2) end
      made[#made + 1] = { close = function() closed[#closed + 1] = o.provider end }
      return made[#made]
    end
    ok = pcall(fanout.clients, { { name = "openai" }, { name = "extruct" },
      { name = "valyu" } }, { extruct = given })
    dr.client = real
    assert.is_false(ok)
    assert.same({ "openai" }, closed)
  end)

  it("journals each create before it is sent and again with its id (source fanout)",
    function()
      local ok, journal = pcall(require, "deepresearch.journal")
      if not ok then
        pending("deepresearch.journal is not installed yet")
        return
      end
      local path = os.tmpname()
      local j = journal.open{ path = path }
      local results = run{ providers = { "extruct", "valyu" }, journal = j }
      local list = j:entries{ source = "fanout" }
      assert.equals(2, #list)
      local ids = {}
      for _, e in ipairs(list) do ids[e.provider] = e.id end
      assert.equals(results.extruct.id, ids.extruct)
      assert.equals(results.valyu.deepresearch_id, ids.valyu)
      os.remove(path)
    end)
end)

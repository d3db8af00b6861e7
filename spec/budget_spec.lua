-- Budgets (issue 19 part 3): the worst case of a create from the descriptor's dated prices and
-- the request's caps, refused locally (nothing sent: the simulator's request log stays empty).
local dr = require "deepresearch"
local env = require "support.env"
local budget = require "deepresearch.budget"

describe("budget", function()
  local s
  setup(function() s = env.sim() end)
  before_each(function() s:reset() end)

  local function sent() return #s:requests() end

  describe("dr.estimate", function()
    it("Extruct: the depth's agent budget in credits", function()
      local e = dr.assert(dr.estimate("extruct", { depth = "high" }))
      assert.equals(50, e.credits)
      assert.is_nil(e.usd)
      assert.is_true(e.bounded)
      assert.matches("high", e.basis)
      assert.equals(25, dr.estimate("extruct", {}).credits)
      assert.equals(75, dr.estimate("extruct", { depth = "xhigh" }).credits)
    end)

    it("Valyu: the mode's fixed price; instant has none published (unbounded)", function()
      assert.equals(2.5, dr.estimate("valyu", { mode = "heavy" }).usd)
      assert.equals(0.5, dr.estimate("valyu", {}).usd) -- standard, the default
      assert.equals(0.5, dr.estimate("valyu", { mode = "lite" }).usd) -- the alias
      local e, err = dr.estimate("valyu", { mode = "instant" })
      assert.is_nil(e)
      assert.equals("budget_unbounded", err.code)
    end)

    it("Valyu: surcharges the request commits to (deliverables after the first; code execution "
      .. "is uncapped)", function()
        local e = dr.assert(dr.estimate("valyu", { mode = "fast",
          deliverables = { "a", "b", "c" } }))
        assert.near(0.10 + 2 * 0.10, e.usd, 1e-9)
        assert.equals(0.10, dr.estimate("valyu", { mode = "fast", deliverables = { "a" } }).usd)
        local _, err = dr.estimate("valyu", { mode = "fast", code_execution = true })
        assert.equals("budget_unbounded", err.code)
      end)

    it("OpenAI: bounded only by max_tool_calls and max_output_tokens, from dated prices",
      function()
        local e, err = dr.estimate("openai", { max_tool_calls = 10 })
        assert.is_nil(e)
        assert.equals("budget_unbounded", err.code)
        assert.same({ "max_output_tokens" }, err.missing)
        e = dr.assert(dr.estimate("openai", { model = "o4-mini-deep-research",
          max_tool_calls = 4, max_output_tokens = 10000 }))
        local p = dr.providers.openai.prices["o4-mini-deep-research"]
        local want = 5 * p.context * p.input / 1e6 + 10000 * p.output / 1e6 + 4 * p.web_search
        assert.near(want, e.usd, 1e-9)
        assert.matches(dr.providers.openai.prices.as_of, e.basis, 1, true)
        -- a dated snapshot is priced as its model
        local snap = dr.assert(dr.estimate("openai", { model = "o4-mini-deep-research-2025-06-26",
          max_tool_calls = 4, max_output_tokens = 10000 }))
        assert.near(e.usd, snap.usd, 1e-9)
      end)

    it("Perplexity: the preset's steps and output cap, and max_tool_calls", function()
      local _, err = dr.estimate("perplexity", {})
      assert.equals("budget_unbounded", err.code)
      assert.same({ "max_tool_calls" }, err.missing)
      local fast = dr.assert(dr.estimate("perplexity", { preset = "fast", max_tool_calls = 5 }))
      local high = dr.assert(dr.estimate("perplexity", { max_tool_calls = 5 })) -- default high
      assert.truthy(high.usd > fast.usd)
      local capped = dr.assert(dr.estimate("perplexity", { max_tool_calls = 5, max_steps = 2,
        max_output_tokens = 1000 }))
      assert.truthy(capped.usd < high.usd)
      local _, e2 = dr.estimate("perplexity", { preset = "wide-research", max_tool_calls = 5 })
      assert.equals("budget_unbounded", e2.code) -- its limits are not published
    end)

    it("Gemini: no cap exists, so the agent's published band's upper end stands in",
      function()
        local g = dr.providers.gemini
        local e = dr.assert(dr.estimate("gemini", {})) -- the standard agent, the default
        assert.equals(g.prices[g.default_agent].high, e.usd)
        assert.equals(3, e.usd)
        assert.is_false(e.bounded)
        assert.matches("published typical upper bound", e.basis, 1, true)
        assert.matches(g.prices.as_of, e.basis, 1, true)
        local max = dr.assert(dr.estimate("gemini",
          { agent = "deep-research-max-preview-04-2026" }))
        assert.equals(7, max.usd)
        assert.is_false(max.bounded)
        -- an agent without a published band has no worst case at all
        local none, err = dr.estimate("gemini", { agent = "some-future-agent" })
        assert.is_nil(none)
        assert.equals("budget_unbounded", err.code)
      end)

    it("raises on an unknown provider", function()
      assert.has_error(function() dr.estimate("nope", {}) end)
    end)
  end)

  describe("create with a budget", function()
    it("refuses over budget locally: budget_exceeded, err.estimate, err.budget, 0 requests",
      function()
        local c = env.client(s)
        local t, err = c:create{ brief = env.BRIEF, depth = "high", budget = { credits = 40 } }
        assert.is_nil(t)
        assert.equals("budget_exceeded", err.code)
        assert.equals(50, err.estimate.credits)
        assert.equals(40, err.budget.credits)
        assert.equals(0, sent())
        c:close()
      end)

    it("sends a create within budget (the budget is not sent)", function()
      local c = env.client(s)
      dr.assert(c:create{ brief = env.BRIEF, depth = "high", budget = { credits = 50 } })
      assert.equals(1, s:counter("extruct.tasks_created"))
      assert.is_nil(require("cjson").decode(s:requests_to("POST")[1].body).budget)
      c:close()
    end)

    it("Gemini is checked against its band's upper end: $5 passes on the standard agent and "
      .. "is budget_exceeded on max", function()
        local c = env.client(s, { provider = "gemini", api_key = "gemini-key", token = false })
        dr.assert(c:create{ brief = env.BRIEF, budget = { usd = 5 } })
        assert.equals(1, s:counter("gemini.tasks_created"))
        local _, over = c:create{ brief = env.BRIEF, agent = "deep-research-max-preview-04-2026",
          budget = { usd = 5 } }
        assert.equals("budget_exceeded", over.code)
        assert.equals(7, over.estimate.usd)
        assert.is_false(over.estimate.bounded)
        assert.equals(5, over.budget.usd)
        assert.matches("published typical upper bound", over.message, 1, true)
        assert.equals(1, s:counter("gemini.tasks_created"))
        c:close()
      end)

    it("a budget that cannot be checked refuses: budget_unbounded naming the caps, nothing "
      .. "sent", function()
        local c = env.client(s, { provider = "openai", api_key = "openai-key", token = false })
        local _, err = c:create{ brief = env.BRIEF, budget = { usd = 100 } }
        assert.equals("budget_unbounded", err.code)
        assert.same({ "max_output_tokens", "max_tool_calls" }, err.missing)
        assert.matches("max_output_tokens and max_tool_calls", err.message, 1, true)
        c:close()
        c = env.client(s, { provider = "perplexity", api_key = "perplexity-key", token = false })
        _, err = c:create{ brief = env.BRIEF, budget = { usd = 100 } }
        assert.equals("budget_unbounded", err.code)
        assert.matches("max_tool_calls", err.message, 1, true)
        assert.equals(0, sent())
        c:close()
      end)

    it("a budget in the wrong unit cannot be checked", function()
      local c = env.client(s)
      local _, err = c:create{ brief = env.BRIEF, budget = { usd = 100 } }
      assert.equals("budget_unbounded", err.code)
      assert.matches("credits", err.message)
      assert.equals(0, sent())
      c:close()
    end)

    it("OpenAI with caps: over budget is refused, within is sent", function()
      local c = env.client(s, { provider = "openai", api_key = "openai-key", token = false })
      local p = { brief = env.BRIEF, max_tool_calls = 2,
        max_output_tokens = 5000 }
      local est = dr.assert(dr.estimate("openai", p))
      p.budget = { usd = est.usd - 0.01 }
      local _, err = c:create(p)
      assert.equals("budget_exceeded", err.code)
      assert.equals(0, sent())
      p.budget = { usd = est.usd }
      dr.assert(c:create(p))
      assert.equals(1, s:counter("openai.tasks_created"))
      c:close()
    end)

    it("a malformed budget raises", function()
      local c = env.client(s)
      assert.has_error(function() c:create{ brief = env.BRIEF, budget = { eur = 5 } } end)
      assert.has_error(function() c:create{ brief = env.BRIEF, budget = 5 } end)
      assert.has_error(function() c:create{ brief = env.BRIEF, budget = { usd = -1 } } end)
      assert.has_error(function() -- no longer an option: Gemini's band is the default
        c:create{ brief = env.BRIEF, budget = { usd = 5, accept_estimates = true } }
      end)
      assert.equals(0, sent())
      c:close()
    end)

    it("create_all takes a total: over it, nothing is sent", function()
      local c = env.client(s)
      local tasks, errs = c:create_all({ env.BRIEF .. " (a)", env.BRIEF .. " (b)" },
        { depth = "high", budget = { credits = 99 } })
      assert.same({}, tasks)
      assert.equals("budget_exceeded", errs[1].code)
      assert.equals(100, errs[1].estimate.credits)
      assert.equals(0, sent())
      tasks = c:create_all({ env.BRIEF .. " (a)", env.BRIEF .. " (b)" },
        { depth = "high", budget = { credits = 100 } })
      assert.equals(2, #tasks)
      assert.equals(2, s:counter("extruct.tasks_created"))
      c:close()
    end)
  end)

  describe("parse", function()
    it("reads the command's --budget values", function()
      assert.same({ usd = 5 }, budget.parse("5usd"))
      assert.same({ usd = 2.5 }, budget.parse("$2.5"))
      assert.same({ credits = 100 }, budget.parse("100credits"))
      assert.same({ credits = 100 }, budget.parse("100 credits"))
      assert.is_nil(budget.parse("5eur"))
      assert.is_nil(budget.parse("lots"))
    end)
  end)
end)

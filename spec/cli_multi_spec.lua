-- `deepresearch run` across providers (issue 19): --provider a,b,c, --fallback, --budget,
-- --dry-run, as a user runs them (bin/deepresearch in a subprocess) against the simulator at
-- 2000x. Counted: the simulator's requests and tasks per provider.
local sim = require "support.sim"
local support = require "support.cli"
local cjson = require("cjson").new()

local BRIEF = "We sell freight-visibility software. Research Flexport (flexport.com): their " ..
  "tooling and leadership changes, so we can decide whether to pitch them this quarter."
local FAST, concat = support.FAST, support.concat

describe("deepresearch run across providers", function()
  local s, dir

  local function env()
    local u = s.url
    return { PERPLEXITY_BASE_URL = u, PERPLEXITY_API_KEY = "pplx-key", GEMINI_BASE_URL = u,
      GEMINI_API_KEY = "gemini-key", OPENAI_BASE_URL = u, OPENAI_API_KEY = "openai-key",
      DEEPRESEARCH_TTY = "0", DEEPRESEARCH_JOURNAL = "off" }
  end
  local function cli(argv, extra_env)
    local e = env()
    for k, v in pairs(extra_env or {}) do e[k] = v end
    return support.run(s.url, argv, { env = e })
  end
  local function created(name) return s:counter(name .. ".tasks_created") end

  setup(function()
    s = sim.shared()
    dir = support.remember(os.tmpname())
    os.remove(dir)
    assert(os.execute("mkdir -p " .. support.q(dir)))
  end)
  before_each(function()
    s:reset{ speed = 2000 }
    s:config{ perplexity = { time_scale = 0.05 }, gemini = { time_scale = 0.05 },
      openai = { time_scale = 0.05 } }
  end)
  teardown(function()
    os.execute("rm -rf " .. support.q(dir))
    support.cleanup()
  end)

  it("runs one brief on three providers: a progress line each, reports written, a table",
    function()
      -- the issue's own form: the providers after `run`
      local code, out, err = cli(concat({ "run", "--provider", "extruct,perplexity,gemini",
        "-o", dir }, FAST, { BRIEF }))
      assert.equals(0, code, err)
      for _, name in ipairs({ "extruct", "perplexity", "gemini" }) do
        assert.equals(1, created(name), name)
        assert.matches("\n?" .. name .. ": %S+ ", err)
        local report = support.slurp(dir .. "/" .. name .. ".md")
        assert.truthy(#report > 50, name .. " report written")
        assert.matches("\n" .. name .. "%s+done", "\n" .. out)
      end
      assert.matches("PROVIDER%s+STATE%s+TIME%s+COST%s+LENGTH%s+SOURCES%s+CITED%s+AGREE%s+REPORT",
        out)
      -- the simulator's Extruct report lists more sources than its markers cite
      local listed, cited = out:match(
        "\nextruct%s+done%s+%S+%s+%d+ credits%s+%d+%s+(%d+)%s+(%d+)%s")
      assert.truthy(listed and tonumber(cited) < tonumber(listed), out)
      assert.matches("sources every provider cited: %d+", out)
    end)

  it("--json prints the whole comparison", function()
    local code, out, err = cli(concat({ "--provider", "valyu,perplexity", "run", "--json",
      "-o", dir }, FAST, { BRIEF }))
    assert.equals(0, code, err)
    local j = cjson.decode(out)
    assert.equals("done", j.comparison.providers.valyu.state)
    assert.equals("done", j.comparison.providers.perplexity.state)
    assert.is_table(j.results.valyu)
    assert.is_string(j.reports.perplexity)
  end)

  it("one provider failing is shown, the others run (exit 1)", function()
    local code, out, err = cli(concat({ "--provider", "extruct,openai", "run", "-o", dir }, FAST,
      { BRIEF }), { OPENAI_API_KEY = "wrong" })
    assert.equals(1, code, err)
    assert.matches("openai: deepresearch: unauthorized", err)
    assert.matches("\nextruct%s+done", "\n" .. out)
    assert.matches("\nopenai%s+failed", "\n" .. out)
    assert.equals(1, created("extruct"))
  end)

  it("--dry-run prints the estimate and the request, token redacted, and sends nothing",
    function()
      local code, out, err = cli({ "--provider", "extruct,valyu,perplexity", "run",
        "--dry-run", "--depth", "high", "--mode", "heavy", BRIEF })
      assert.equals(0, code, err)
      assert.equals(0, #s:requests())
      assert.matches("estimate: 50 credits worst case", out, 1, true)
      assert.matches("estimate: $2.50 worst case", out, 1, true)
      assert.matches("estimate: none: Perplexity", out, 1, true)
      assert.matches("POST " .. s.url .. "/v1/deep_research_tasks", out, 1, true)
      assert.matches("POST " .. s.url .. "/v1/agent", out, 1, true)
      assert.matches("Authorization: Bearer ***", out, 1, true)
      assert.matches("X-API-Key: ***", out, 1, true)
      assert.not_matches("test-token", out, 1, true)
      assert.not_matches("pplx-key", out, 1, true)
      assert.not_matches("valyu-key", out, 1, true)
      assert.matches('"depth":"high"', out, 1, true)
      assert.matches('"mode":"heavy"', out, 1, true)
      assert.matches("nothing was sent", out, 1, true)
    end)

  it("--dry-run --json, for one provider", function()
    local code, out = cli({ "--provider", "valyu", "run", "--dry-run", "--json", BRIEF })
    assert.equals(0, code)
    local j = cjson.decode(out)
    assert.equals(0, j.sent)
    assert.equals(0.5, j.providers[1].estimate.usd)
    assert.equals("POST", j.providers[1].request.method)
    assert.equals(0, #s:requests())
  end)

  it("--budget refuses over budget (exit 2, nothing sent)", function()
    local code, _, err = cli(concat({ "--provider", "extruct", "run", "--depth", "high",
      "--budget", "40credits" }, FAST, { BRIEF }))
    assert.equals(2, code)
    assert.matches("budget_exceeded", err)
    assert.equals(0, #s:requests())
    -- Gemini's worst case is its agent's published band's top ($3): with Valyu's $0.50, over $3
    code, _, err = cli(concat({ "--provider", "valyu,gemini", "run", "--budget", "3usd" }, FAST,
      { BRIEF }))
    assert.equals(2, code)
    assert.matches("budget_exceeded", err)
    assert.equals(0, #s:requests())
    code, _, err = cli(concat({ "--provider", "valyu,perplexity", "run", "--budget", "5usd" },
      FAST, { BRIEF }))
    assert.equals(2, code)
    assert.matches("budget_unbounded", err) -- perplexity without max_tool_calls has no bound
    assert.matches("max_tool_calls", err, 1, true)
    assert.equals(0, #s:requests())
    code, _, err = cli({ "run", "--budget", "5eur", BRIEF })
    assert.equals(2, code)
    assert.matches("5usd or 100credits", err)
  end)

  it("--budget within it runs and prints the real cost at the end", function()
    local code, out, err = cli(concat({ "--provider", "valyu", "run", "--mode", "fast",
      "--budget", "1usd" }, FAST, { BRIEF }))
    assert.equals(0, code, err)
    assert.equals(1, created("valyu"))
    assert.matches("valyu cost: $0.1000", err, 1, true)
    assert.truthy(#out > 50)
  end)

  it("a plain run prints the finished task's cost too", function()
    local code, _, err = cli(concat({ "run" }, FAST, { BRIEF }))
    assert.equals(0, code, err)
    assert.matches("extruct cost: %d+ credits", err)
  end)

  it("--fallback moves on after a refusal that made nothing; one task in all", function()
    s:fault{ method = "POST", path = "/v1/agent", status = 402, count = 5,
      body = '{"error":{"message":"Insufficient credits","type":"insufficient_quota"}}' }
    local code, out, err = cli(concat({ "--provider", "perplexity,valyu,extruct", "run",
      "--fallback", "--mode", "fast" }, FAST, { BRIEF }))
    assert.equals(0, code, err)
    assert.matches("skipped perplexity", err, 1, true)
    assert.matches("ran on valyu", err, 1, true)
    assert.equals(0, created("perplexity"))
    assert.equals(1, created("valyu"))
    assert.equals(0, created("extruct"))
    assert.truthy(#out > 50)
  end)

  it("--fallback never moves on after an ambiguous create", function()
    s:fault{ method = "POST", path = "/v1/agent", kind = "drop", after = true }
    local code, _, err = cli(concat({ "--provider", "perplexity,extruct", "run", "--fallback" },
      FAST, { BRIEF }))
    assert.equals(4, code)
    assert.matches("ambiguous", err)
    assert.equals(0, created("extruct"))
    assert.equals(1, created("perplexity"))
  end)

  it("refuses --fallback with one provider and unknown names", function()
    local code, _, err = cli({ "run", "--fallback", BRIEF })
    assert.equals(2, code)
    assert.matches("two providers", err)
    code, _, err = cli({ "--provider", "extruct,nope", "run", BRIEF })
    assert.equals(2, code)
    assert.matches("unknown provider 'nope'", err, 1, true)
    assert.equals(0, #s:requests())
  end)
end)

-- Acceptance review of issue 19 (fan-out, budgets, the journal): cases a tester holding only the
-- issue text tried and found wrong, each kept here so it stays fixed. The command runs as a user
-- runs it (bin/deepresearch in a subprocess, its own working directory) against the simulator.
local host = require "support.host"
local sim = require "support.sim"
local support = require "support.cli"
local json = require "deepresearch.base.json"
local budget = require "deepresearch.budget"

local BRIEF = "We sell freight-visibility software. Research Flexport (flexport.com): their " ..
  "tooling and leadership changes, so we can decide whether to pitch them this quarter."
local ROOT = (io.popen("pwd"):read("*l"))

local tmpdir = host.tmpdir

-- Runs bin/deepresearch from directory cwd (PWD set as a shell sets it); exit code, out, err.
local function cli_in(cwd, url, argv, env)
  local words = {}
  for i, a in ipairs(argv) do words[i] = support.q(a) end
  local errf = support.tmp()
  local line = "cd " .. support.q(cwd) .. " && " .. support.env_prefix(url, env) ..
    " PWD=" .. support.q(cwd) .. " lua5.4 " .. support.q(ROOT .. "/bin/deepresearch") .. " " ..
    table.concat(words, " ") .. " </dev/null 2>" .. errf .. "; echo \"__rc=$?\""
  local p = assert(io.popen(line))
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("__rc=(%d+)\n?$")), (out:gsub("__rc=%d+\n?$", "")), support.slurp(errf)
end

describe("issue 19 review", function()
  local s, dir
  setup(function() s = sim.shared() end)
  before_each(function()
    s:reset{ speed = 2000 }
    s:config{ perplexity = { time_scale = 0.05 }, valyu = { time_scale = 0.05 } }
    dir = tmpdir()
  end)
  after_each(function() os.execute("rm -rf " .. support.q(dir)) end)
  teardown(function() support.cleanup() end)

  it("fan-out records each written report in the journal by its absolute path", function()
    local jpath = dir .. "/journal.jsonl"
    local code, _, err = cli_in(dir, s.url, { "run", "--provider", "extruct,valyu",
      "--interval", "0.05", "--max-interval", "0.05", BRIEF },
      { DEEPRESEARCH_JOURNAL = jpath })
    assert.equals(0, code, err)
    local paths = {}
    for line in (support.slurp(jpath) or ""):gmatch("[^\n]+") do
      local rec = json.decode(line)
      if rec.report_path then paths[#paths + 1] = rec.report_path end
    end
    assert.equals(2, #paths)
    for _, p in ipairs(paths) do
      assert.equals("/", p:sub(1, 1), p)
      assert.truthy(io.open(p, "rb"), p) -- found from any working directory
    end
  end)

  it("fan-out between polls sleeps until the next poll, not every slice (steps counted)",
    function()
      local dr = require "deepresearch"
      -- slow tasks, polled every 0.3 s: a loop waking every 10 ms steps each poller ~100 times
      -- a second; one that sleeps to the next timer steps it a few times per poll
      s:reset{ speed = 100 }
      s:config{ valyu = { time_scale = 0.2 } }
      local pollers = {}
      local clients = {}
      for name, key in pairs({ extruct = { token = "test-token" },
        valyu = { api_key = "valyu-key" } }) do
        local o = { provider = name, base_url = s.url }
        for k, v in pairs(key) do o[k] = v end
        local c = dr.client(o)
        local orig = c.poller
        c.poller = function(self, po)
          local p = orig(self, po)
          pollers[#pollers + 1] = p
          return p
        end
        clients[name] = c
      end
      local polls = 0
      local results, errs = dr.fanout{ brief = BRIEF, providers = { "extruct", "valyu" },
        clients = clients, interval = 0.3, max_interval = 0.3,
        on_progress = function() polls = polls + 1 end }
      local steps = 0
      for _, p in ipairs(pollers) do steps = steps + p:stats().steps end
      for _, c in pairs(clients) do c:close() end
      assert.same({}, errs)
      assert.truthy(results.extruct and results.valyu)
      assert.equals(2, #pollers)
      assert.truthy(polls >= 4, "polls " .. polls)
      -- each poll costs a handful of steps (send, answer, timer); never one per 10 ms slice
      assert.truthy(steps <= polls * 8 + 20, ("%d steps for %d polls"):format(steps, polls))
    end)

  describe("a create whose answer was lost is journalled as unknown, never as failed", function()
    local dr = require "deepresearch"
    local journal = require "deepresearch.journal"
    local function entries(path)
      local by = {}
      for _, e in ipairs(journal.open{ path = path }:entries{}) do by[e.provider] = e end
      return by
    end
    local function client(name, key)
      local o = { provider = name, base_url = s.url, base_delay = 0.01, max_delay = 0.02 }
      for k, v in pairs(key) do o[k] = v end
      return dr.client(o)
    end

    it("dr.fanout: the lost create reads unknown with its list command; a 401 reads refused",
      function()
        local path = dir .. "/j.jsonl"
        -- Perplexity cannot look a lost create up (Extruct would find it in its task list)
        s:fault{ method = "POST", path = "/v1/agent", kind = "drop", after = true }
        local clients = { perplexity = client("perplexity", { api_key = "pplx-key" }),
          valyu = client("valyu", { api_key = "wrong-key" }) }
        local _, errs = dr.fanout{ brief = BRIEF, providers = { "perplexity", "valyu" },
          clients = clients, journal = journal.open{ path = path }, interval = 0.05 }
        for _, c in pairs(clients) do c:close() end
        assert.equals("ambiguous", errs.perplexity.code)
        assert.equals("unauthorized", errs.valyu.code)
        local by = entries(path)
        assert.equals("unknown", by.perplexity.state)
        assert.equals("deepresearch list --provider perplexity", by.perplexity.find)
        assert.equals("refused", by.valyu.state)
      end)

    it("dr.fallback: the lost create reads unknown", function()
      local path = dir .. "/j.jsonl"
      s:fault{ method = "POST", path = "/v1/agent", kind = "drop", after = true }
      local c = client("perplexity", { api_key = "pplx-key" })
      local task, err = dr.fallback{ brief = BRIEF, providers = { "perplexity", "valyu" },
        clients = { perplexity = c }, journal = journal.open{ path = path } }
      c:close()
      assert.is_nil(task)
      assert.equals("ambiguous", err.code)
      assert.equals("unknown", entries(path).perplexity.state)
      assert.equals(0, s:counter("valyu.tasks_created"))
    end)
  end)

  describe("dr.fanout journals by default (every task it creates, issue 19 part 7)", function()
    -- in a fresh process: DEEPRESEARCH_JOURNAL names the journal, as a user's environment would
    local function fanout_in(env, extra)
      local chunk = "local dr = require 'deepresearch'; local c = dr.client{ provider = " ..
        "'valyu', base_url = '" .. s.url .. "', api_key = 'valyu-key' }; " ..
        "local r, e = dr.fanout{ brief = 'Research flexport.com funding and hiring in 2026', " ..
        "providers = { 'valyu' }, clients = { valyu = c }, interval = 0.05" .. extra .. " }; " ..
        "io.write(r.valyu and 'ok' or tostring(e.valyu))"
      local p = io.popen("env " .. env .. " LUA_PATH='lua/?.lua;lua/?/init.lua;;' " ..
        "LUA_CPATH='build/5.4/?.so;;' lua5.4 -e " .. support.q(chunk) .. " 2>&1")
      local out = p:read("*a")
      p:close()
      return out
    end

    it("writes begin, created and the end state without journal = ...", function()
      local path = dir .. "/state/journal.jsonl"
      assert.equals("ok", fanout_in("DEEPRESEARCH_JOURNAL=" .. support.q(path), ""))
      local evs = {}
      for line in (support.slurp(path) or ""):gmatch("[^\n]+") do
        local rec = json.decode(line)
        evs[#evs + 1] = rec.ev
        if rec.ev == "begin" then assert.equals("fanout", rec.source) end
      end
      assert.same({ "begin", "created", "update" }, evs)
    end)

    it("journal = false writes nothing; a journal of the wrong type raises", function()
      local path = dir .. "/off.jsonl"
      assert.equals("ok", fanout_in("DEEPRESEARCH_JOURNAL=" .. support.q(path),
        ", journal = false"))
      assert.is_nil(io.open(path, "rb"))
      assert.has_error(function()
        require("deepresearch").fanout{ brief = BRIEF, providers = { "valyu" }, journal = "yes" }
      end, "bad option 'journal' to 'fanout' (true, false or a journal expected, got string)")
    end)
  end)

  it("dr.fallback moves on after OpenAI's 404 model_not_found; one task in all", function()
    local dr = require "deepresearch"
    local oa = dr.client{ provider = "openai", base_url = s.url, api_key = "openai-key" }
    local va = dr.client{ provider = "valyu", base_url = s.url, api_key = "valyu-key" }
    local task, info = dr.fallback{ brief = BRIEF, journal = false,
      providers = { { "openai", model = "gpt-no-such-model" }, "valyu" },
      clients = { openai = oa, valyu = va } }
    oa:close()
    va:close()
    assert.is_table(task, info and info.message)
    assert.equals("valyu", info.provider)
    assert.equals("openai", info.skipped[1].provider)
    assert.equals(0, s:counter("openai.tasks_created"))
    assert.equals(1, s:counter("valyu.tasks_created"))
  end)

  describe("--max-tool-calls / --max-output-tokens bound OpenAI and Perplexity for --budget",
    function()
      local PPLX = { PERPLEXITY_BASE_URL = "", PERPLEXITY_API_KEY = "pplx-key" }
      local function env()
        local e = {}
        for k, v in pairs(PPLX) do e[k] = v end
        e.PERPLEXITY_BASE_URL = s.url
        return e
      end

      it("dry run: the caps are sent and the estimate is bounded", function()
        local code, out, err = cli_in(dir, s.url, { "run", "--provider", "perplexity,extruct",
          "--max-tool-calls", "10", "--max-output-tokens", "20000",
          "--budget", "30usd,25credits", "--dry-run", BRIEF }, env())
        assert.equals(0, code, err)
        assert.matches('"max_tool_calls":10', out)
        assert.matches('"max_output_tokens":20000', out)
        assert.matches("within it", out)
        assert.equals(0, #s:requests_to("POST", "^/v1/agent$"))
      end)

      it("a run under the budget creates one task; over it sends nothing", function()
        local code, _, err = cli_in(dir, s.url, { "run", "--provider", "perplexity",
          "--max-tool-calls", "5", "--max-output-tokens", "8000", "--budget", "1usd", BRIEF },
          env())
        assert.equals(2, code, err)
        assert.matches("budget_exceeded", err)
        assert.equals(0, #s:requests_to("POST", "^/v1/agent$"))
        code, _, err = cli_in(dir, s.url, { "run", "--provider", "perplexity", "--interval",
          "0.05", "--max-tool-calls", "5", "--max-output-tokens", "8000", "--budget", "30usd",
          BRIEF }, env())
        assert.equals(0, code, err)
        assert.equals(1, #s:requests_to("POST", "^/v1/agent$"))
        assert.matches("perplexity cost: %$", err)
      end)

      it("refuses a cap no provider of the run takes, and a cap that is not a whole number",
        function()
          local code, _, err = cli_in(dir, s.url, { "run", "--provider", "extruct",
            "--max-tool-calls", "5", BRIEF })
          assert.equals(2, code)
          assert.matches("%-%-max%-tool%-calls is for", err)
          code, _, err = cli_in(dir, s.url, { "run", "--provider", "perplexity",
            "--max-tool-calls", "1.5", BRIEF }, env())
          assert.equals(2, code)
          assert.matches("whole number", err)
          assert.equals(0, s:counter("extruct.tasks_created"))
        end)
    end)

  describe("--budget with both units (a fan-out over Extruct's credits and others' dollars)",
    function()
      it("parses 5usd,100credits as one budget in two units", function()
        assert.same({ usd = 5, credits = 100 }, budget.parse("5usd,100credits"))
        assert.same({ usd = 5, credits = 100 }, budget.parse("100 credits, $5"))
        assert.is_nil(budget.parse("5usd,6usd"))
        assert.is_nil(budget.parse("5usd,"))
      end)

      it("runs extruct and valyu under one two-unit budget; over either part sends nothing",
        function()
          local code, _, err = cli_in(dir, s.url, { "run", "--provider", "extruct,valyu",
            "--budget", "1usd,30credits", "--interval", "0.05", "--max-interval", "0.05",
            "-o", dir, BRIEF })
          assert.equals(0, code, err)
          assert.equals(1, s:counter("extruct.tasks_created"))
          assert.equals(1, s:counter("valyu.tasks_created"))
          code, _, err = cli_in(dir, s.url, { "run", "--provider", "extruct,valyu",
            "--budget", "1usd,20credits", "-o", dir, BRIEF })
          assert.equals(2, code)
          local _, said = err:gsub("budget_exceeded", "")
          assert.equals(1, said, err) -- once, not once per provider and again
          assert.equals(1, s:counter("extruct.tasks_created"))
          assert.equals(1, s:counter("valyu.tasks_created"))
        end)
    end)
end)

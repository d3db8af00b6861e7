-- Issue 18 item 10: help and the messages a first-time user reads, from the real command
-- (spec/support/cli.lua); what a terminal stdin shows, through tmux.
local sim = require "support.sim"
local support = require "support.cli"
local brief = require "deepresearch.brief"
local args = require "deepresearch.cli.args"

local q = support.q
local term = require "support.tmux"
local has_tmux = term.available

-- A research question with no requester context and no decision: fine for Valyu, OpenAI...
local QUESTION = "What changed in European rules on battery recycling in the last 12 months, " ..
  "and which recyclers have announced new plants in Germany or Poland since 2025?"

describe("deepresearch help and messages (issue 18 item 10)", function()
  local s

  local function cli(argv, o) return support.run(s.url, argv, o) end
  local function sent() return #s:requests() end

  setup(function() s = sim.shared() end)
  before_each(function()
    s:reset{ speed = 2000 }
    s:clear_requests()
  end)
  teardown(support.cleanup)

  local function codes(findings)
    local out = {}
    for _, f in ipairs(findings) do out[f.code] = true end
    return out
  end

  describe("per-command help", function()
    it("shows the command's options and one pointer to the global options", function()
      local code, out, err = cli({ "help", "wait" })
      assert.equals(0, code, err)
      assert.truthy(out:find("--timeout S", 1, true))
      assert.truthy(out:find("--max-interval S", 1, true))
      local n = 0
      for line in out:gmatch("[^\n]*") do
        if line:find("deepresearch help options", 1, true) then n = n + 1 end
      end
      assert.equals(1, n, out)
      assert.falsy(out:find("--base-url URL", 1, true), "the global list is not repeated")
      assert.falsy(out:find("Exit codes:", 1, true), "nor the exit codes")
      assert.falsy(out:find("VALYU_API_KEY", 1, true))
      local _, run_help = cli({ "run", "--help" })
      assert.falsy(run_help:find("--base-url URL", 1, true))
    end)

    it("help options lists every global flag, each provider's variables and the exit codes",
      function()
        local code, out = cli({ "help", "options" })
        assert.equals(0, code)
        for _, o in ipairs(args.GLOBAL) do assert.truthy(out:find("--" .. o[1], 1, true), o[1]) end
        local providers = require "deepresearch.providers"
        for _, name in ipairs(providers.names()) do
          local d = providers.get(name)
          assert.truthy(out:find(d.token_env, 1, true), d.token_env)
          assert.truthy(out:find(d.base_env, 1, true), d.base_env)
          assert.truthy(out:find(name, 1, true), name)
        end
        assert.truthy(out:find("Exit codes:", 1, true))
      end)
  end)

  describe("did you mean", function()
    it("suggests the closest command, sub-command or flag (exit 2, nothing sent)", function()
      local cases = {
        { { "wiat", "x" }, "unknown command 'wiat'; did you mean 'wait'?" },
        { { "lsit" }, "did you mean 'list'?" },
        { { "brief", "lnt" }, "unknown command 'brief lnt'; did you mean 'brief lint'?" },
        { { "help", "reprot" }, "no command 'reprot'; did you mean 'report'?" },
        { { "list", "--limt", "3" }, "unknown option '--limt'; did you mean '--limit'?" },
        { { "run", "--dpeth", "high", QUESTION }, "did you mean '--depth'?" },
        { { "--provder", "valyu", "list" }, "unknown option '--provder'; did you mean " ..
          "'--provider'?" },
      }
      for _, c in ipairs(cases) do
        local code, out, err = cli(c[1])
        assert.equals(2, code, table.concat(c[1], " "))
        assert.equals("", out)
        assert.truthy(err:find(c[2], 1, true), err)
      end
      assert.equals(0, sent())
    end)

    it("suggests nothing for a word far from every name", function()
      local code, _, err = cli({ "frobnicate" })
      assert.equals(2, code)
      assert.falsy(err:find("did you mean", 1, true), err)
      code, _, err = cli({ "list", "--zzzzzzzz" })
      assert.equals(2, code)
      assert.falsy(err:find("did you mean", 1, true), err)
    end)

    it("the distance counts a swap of neighbours as one edit", function()
      assert.equals(1, args.distance("wiat", "wait"))
      assert.equals(1, args.distance("lsit", "list"))
      assert.equals(2, args.distance("lst", "lisa"))
      assert.equals("limit", args.closest("lim", { "limit", "json" }))
      assert.is_nil(args.closest("zz", { "limit", "json" }))
    end)
  end)

  it("--limit abc, 0, 1.5 and 101 all print the same rule", function()
    for _, v in ipairs({ "abc", "0", "1.5", "101", "-3" }) do
      local code, out, err = cli({ "list", "--limit", v })
      assert.equals(2, code, v)
      assert.equals("", out)
      assert.truthy(err:find("--limit must be a whole number from 1 to 100, got '" .. v .. "'",
        1, true), err)
    end
    assert.equals(0, sent())
    local code = cli({ "list", "--limit", "100" })
    assert.equals(0, code)
  end)

  it("run -f missing.txt says it cannot read the brief file (exit 2)", function()
    local code, out, err = cli({ "run", "-f", "missing.txt" })
    assert.equals(2, code)
    assert.equals("", out)
    assert.truthy(err:find("cannot read brief file missing.txt: ", 1, true), err)
    assert.equals(0, sent())
  end)

  it("stdin that is not a terminal gets no prompt", function()
    local code, _, err = cli({ "brief", "lint", "-" }, { stdin = QUESTION })
    assert.equals(0, code, err)
    assert.falsy(err:find("standard input", 1, true), err)
  end)

  describe("lint advice fits the provider", function()
    it("Extruct's account advice (requester context, decision, target) is Extruct's only",
      function()
        local all = codes(brief.lint(QUESTION))
        assert.is_true(all.no_context and all.no_decision and true or false)
        local none = codes(brief.lint(QUESTION, { advice = {} }))
        assert.is_nil(none.no_context)
        assert.is_nil(none.no_decision)
        assert.is_nil(none.no_target)
        assert.has_error(function() brief.lint(QUESTION, { advice = "no_context" }) end)
      end)

    it("brief lint and run name requester context for Extruct, never for Valyu", function()
      local file = support.tmp(QUESTION)
      local _, out = cli({ "brief", "lint", file })
      assert.truthy(out:find("requester context", 1, true), out)
      for _, p in ipairs({ "valyu", "openai", "gemini", "perplexity" }) do
        local code, out2, err2 = cli({ "--provider", p, "brief", "lint", file })
        assert.equals(0, code, p)
        assert.falsy(out2:find("requester context", 1, true), p .. ": " .. out2)
        assert.falsy(out2:find("no_decision", 1, true), p .. ": " .. out2)
        assert.truthy(err2:find("no findings", 1, true) or out2 ~= "", p)
      end
      local code, _, err = cli({ "--provider", "valyu", "create", "--mode", "fast", QUESTION })
      assert.equals(0, code, err)
      assert.falsy(err:find("requester context", 1, true), err)
    end)
  end)

  it("the general help names every registered provider (the registry, not a fixed list)", function()
    local code, out, err = cli({ "--help" })
    assert.are.equal(0, code, err)
    -- The introduction, before the command list (which names providers elsewhere too).
    local text = ((out .. err):match("^(.-)\nCommands:")) or ""
    for _, name in ipairs(require("deepresearch.providers").names()) do
      assert.truthy(text:find(name, 1, true), name .. " missing from:\n" .. text)
    end
  end)

  it("sim/server.lua --help prints its usage and exits 0", function()
    local p = assert(io.popen("lua5.4 sim/server.lua --help 2>&1; echo \"__rc=$?\""))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("__rc=0", 1, true), out)
    assert.truthy(out:find("usage: lua5.4 sim/server.lua", 1, true), out)
    assert.truthy(out:find("--speed S", 1, true), out)
  end)

  describe("a terminal stdin (tmux)", function()
    if not has_tmux then
      pending("tmux is not installed")
      return
    end
    local socket_name, session
    local cwd, wait_for = term.cwd, term.wait_for
    local function tmux(cmd) return term.run(socket_name, cmd) end

    local function screen() return tmux("capture-pane -p -t " .. session) end

    -- bin/deepresearch ARGS in a fresh pane, its stdin the pane's terminal.
    local function start(words)
      local rc = support.tmp()
      os.remove(rc)
      local cmd = string.format("cd %s && %s lua5.4 bin/deepresearch %s; echo $? > %s; sleep 60",
        q(cwd), support.env_prefix(s.url), words, rc)
      tmux(string.format("new-session -d -s %s -x 120 -y 30 %s", session, q(cmd)))
      return rc
    end

    before_each(function()
      socket_name, session = term.names("drhelp")
    end)
    after_each(function() tmux("kill-session -t " .. session) end)

    for _, words in ipairs({ "brief lint", "run -" }) do
      it(words .. " says it reads the brief from standard input, then reads it", function()
        local rc = start(words)
        assert.truthy(wait_for(function()
          return screen():find("reading the brief from standard input; end with Ctrl-D", 1, true)
        end, 10), screen())
        tmux("send-keys -t " .. session .. " -l " .. q("Research {{company}}"))
        tmux("send-keys -t " .. session .. " Enter C-d")
        assert.truthy(wait_for(function() return support.slurp(rc):match("%d") end, 10),
          screen())
        -- The brief typed was read and linted: a placeholder is an error (a run sends nothing).
        assert.truthy(screen():find("unfilled placeholder {{company}}", 1, true), screen())
        assert.equals(words == "run -" and "2" or "1", support.slurp(rc):match("%d+"))
        assert.equals(0, #s:tasks())
      end)
    end
  end)
end)

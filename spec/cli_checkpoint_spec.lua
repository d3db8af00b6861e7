-- Checkpoints in the command (issue 15 item 6): `deepresearch --provider valyu run/wait` at a
-- task waiting for a human. Without a terminal it exits 5 and prints the respond command, which
-- works when run; --yes accepts every proposal; on a (faked) terminal the answers come from
-- stdin; `respond` refuses a bad response with exit 2 and sends nothing.
-- bin/deepresearch runs as a subprocess against the simulator (see spec/cli_spec.lua). A
-- checkpoint at the start of a task (planning_questions, plan_review) is reached at creation,
-- so the runs that must stop there do so with the clock stopped (speed 0); the runs that
-- finish use 2000x and poll every 0.05 s.
local sim = require "support.sim"
local support = require "support.cli"
local cjson = require("cjson").new()

local BRIEF = support.brief("Flexport (flexport.com)")
local FAST, concat, tmp = support.FAST, support.concat, support.tmp
local KEY = "valyu-key"

describe("deepresearch at a checkpoint (--provider valyu)", function()
  local s

  -- Runs a shell command line "deepresearch ..." (as printed by the command itself) with the
  -- simulator's environment; returns exit code, stdout, stderr.
  local function shell(line, o) return support.shell(s.url, line, o) end

  local function cli(argv, o)
    return support.run(s.url, concat({ "--provider", "valyu" }, argv), o)
  end

  local function status(id)
    local r = assert(s:http("GET", "/v1/deepresearch/tasks/" .. id .. "/status",
      { headers = { ["X-API-Key"] = KEY } }))
    assert.equals(200, r.status, r.body)
    return cjson.decode(r.body)
  end

  local function responds()
    return #s:requests_to("POST", "/respond$")
  end

  local function create(checkpoints)
    local argv = { "create", "--mode", "fast", BRIEF }
    for _, c in ipairs(checkpoints) do argv[#argv + 1] = "--checkpoint=" .. c end
    local code, out, err = cli(argv)
    assert.equals(0, code, err)
    return (out:gsub("%s+$", ""))
  end

  setup(function() s = sim.shared() end)
  before_each(function() s:reset{ speed = 0 } end)
  teardown(support.cleanup)

  describe("without a terminal", function()
    it("exits 5 with the plan and a respond command that works when run", function()
      local code, out, err = cli(concat({ "run", "--mode", "fast", "--checkpoint", "plan_review",
        BRIEF }, FAST))
      assert.equals(5, code, err)
      assert.equals("", out)
      local id = err:match("created task (%S+)")
      assert.truthy(id, err)
      assert.truthy(err:find("(mode fast, $0.10)", 1, true), err)
      assert.truthy(err:find("waiting for your input (plan_review)", 1, true), err)
      assert.truthy(err:find("needs your input (plan_review", 1, true), err)
      assert.truthy(err:find("no terminal to ask on", 1, true), err)
      assert.truthy(err:find("Investigate", 1, true), err) -- the plan itself
      assert.equals(0, responds())
      local line = err:match("\n  (bin/deepresearch [^\n]* respond [^\n]*)")
      assert.truthy(line, err)
      assert.truthy(err:find("  bin/deepresearch --provider valyu wait " .. id, 1, true), err)

      local code2, out2, err2 = shell(line)
      assert.equals(0, code2, err2)
      assert.equals("answered: task " .. id .. " is running\n", out2)
      assert.equals(1, responds())
      local t = status(id)
      assert.equals("running", t.status)
      assert.is_true(t.hitl_history[1].response.approved)

      s:set_speed(2000)
      local code3, out3, err3 = cli(concat({ "wait", id }, FAST))
      assert.equals(0, code3, err3)
      assert.truthy(("\n" .. out3):find("\n# "), out3)
    end)

    it("a paused task (5 unanswered minutes) also exits 5; respond re-queues it", function()
      local id = create({ "planning_questions" })
      s:advance(301)
      assert.equals("paused", status(id).status)
      local code, _, err = cli(concat({ "wait", id }, FAST))
      assert.equals(5, code, err)
      assert.truthy(err:find("needs your input (planning_questions, status paused)", 1, true), err)
      assert.truthy(err:find("Which time period", 1, true), err)
      assert.truthy(err:find('"answer":"YOUR ANSWER"', 1, true), err)
      local code2, out2, err2 = cli({ "respond", id, "--approve", "--json" })
      assert.equals(0, code2, err2)
      assert.equals("queued", cjson.decode(out2).status)
      local answers = status(id).hitl_history[1].response.answers
      assert.equals(2, #answers)
      assert.equals("No preference: use your judgement.", answers[1].answer)
    end)
  end)

  it("--yes accepts every proposal and the run completes", function()
    s:set_speed(2000)
    local code, out, err = cli(concat({ "--yes", "run", "--mode", "fast",
      "--checkpoint", "planning_questions", "--checkpoint", "plan_review",
      "--checkpoint", "source_review", "--checkpoint", "outline_review", BRIEF }, FAST))
    assert.equals(0, code, err)
    assert.truthy(("\n" .. out):find("\n# "), out)
    assert.truthy(err:find("accepted as proposed (--yes)", 1, true), err)
    assert.truthy(err:find("completed  %d+:%d%d  [^\n]*mode fast  cost %$0%.10"), err)
    local id = err:match("created task (%S+)")
    local t = status(id)
    assert.equals("completed", t.status)
    local by_type = {}
    for _, h in ipairs(t.hitl_history) do by_type[h.type] = h.response end
    assert.is_true(by_type.plan_review.approved)
    assert.is_true(by_type.outline_review.approved)
    assert.same({}, by_type.source_review.included_domains)
    assert.same({}, by_type.source_review.excluded_domains)
    assert.equals(2, #by_type.planning_questions.answers)
    assert.equals(4, responds())
  end)

  it("on a terminal asks each question and the plan review, answered through stdin", function()
    s:set_speed(2000)
    local code, out, err = cli(concat({ "run", "--mode", "fast", "--checkpoint",
      "planning_questions", "--checkpoint", "plan_review", BRIEF }, FAST),
      { env = { DEEPRESEARCH_TTY = "1" }, stdin = "the last two years\n\nn\nfocus on Europe\n" })
    assert.equals(0, code, err)
    assert.truthy(("\n" .. out):find("\n# "), out)
    assert.truthy(err:find("Which time period", 1, true), err)
    assert.truthy(err:find("Approve? [Y/n]", 1, true), err)
    local t = status(err:match("created task (%S+)"))
    assert.equals("completed", t.status)
    local answers = t.hitl_history[1].response.answers
    assert.equals("the last two years", answers[1].answer)
    assert.equals("No preference: use your judgement.", answers[2].answer)
    assert.same({ approved = false, modifications = "focus on Europe" },
      t.hitl_history[2].response)
  end)

  it("on a terminal, end of input stops asking and exits 5", function()
    local code, _, err = cli(concat({ "run", "--mode", "fast", "--checkpoint", "plan_review",
      BRIEF }, FAST), { env = { DEEPRESEARCH_TTY = "1" }, stdin = "" })
    assert.equals(5, code, err)
    assert.truthy(err:find("Approve? [Y/n]", 1, true), err)
    assert.truthy(err:find(" respond ", 1, true), err)
    assert.equals(0, responds())
  end)

  describe("respond", function()
    it("answers and waits with --wait, asking nothing more", function()
      local id = create({ "plan_review" })
      s:set_speed(2000)
      local code, out, err = cli(concat({ "respond", id, "--approve", "--wait" }, FAST))
      assert.equals(0, code, err)
      assert.truthy(("\n" .. out):find("\n# "), out)
      assert.equals(1, responds())
    end)

    it("refuses a bad response with exit 2 and sends nothing", function()
      local id = create({ "source_review" })
      s:config{ valyu = { hitl_pause_after = 3600 } } -- stays awaiting_input while asked
      s:set_speed(2000)
      local waited = cli(concat({ "wait", id }, FAST)) -- runs to the source review
      assert.equals(5, waited)
      s:set_speed(0)
      local iid = status(id).interaction.interaction_id
      local bad = {
        { "respond", id, '{"approve": true}' },                   -- not this type's shape
        { "respond", id, iid, '{"included_domains": ["a.com"], "excluded_domains": ["a.com"]}' },
        { "respond", id, "{not json" },
        { "respond", id, "[1, 2]" },
        { "respond", id },                                        -- no response
        { "respond", id, "--approve", '{"approved": true}' },     -- two responses
        { "respond" },
        { "respond", id, "--file", "/nonexistent/response.json" },
      }
      for _, argv in ipairs(bad) do
        local code, out, err = cli(argv)
        assert.equals(2, code, table.concat(argv, " ") .. ": " .. err)
        assert.equals("", out)
      end
      local code = shell("deepresearch respond " .. id .. " --approve")
      assert.equals(2, code) -- Extruct has no checkpoints
      assert.equals(0, responds())
      local file = tmp('{"included_domains": [], "excluded_domains": ["flexport.com"]}')
      local ok, out, err = cli({ "respond", id, "--file", file })
      assert.equals(0, ok, err)
      assert.equals("answered: task " .. id .. " is running\n", out)
      assert.same({ "flexport.com" }, status(id).hitl_history[1].response.excluded_domains)
    end)

    it("takes the response from stdin with '-'", function()
      local id = create({ "outline_review" })
      s:set_speed(2000)
      assert.equals(5, (cli(concat({ "wait", id }, FAST))))
      s:set_speed(0)
      local code, out, err = cli({ "respond", id, "-" },
        { stdin = '{"approved": false, "modifications": "add a risks section"}' })
      assert.equals(0, code, err)
      assert.truthy(out:find("answered: task " .. id, 1, true), out)
      local h = status(id).hitl_history[1]
      assert.equals("outline_review", h.type)
      assert.same({ approved = false, modifications = "add a risks section" }, h.response)
    end)

    it("says so (exit 1) when the task waits for nothing", function()
      local id = create({})
      local code, _, err = cli({ "respond", id, "--approve" })
      assert.equals(1, code, err)
      assert.truthy(err:find("is not waiting for input", 1, true), err)
      assert.equals(0, responds())
    end)
  end)

  describe("help", function()
    it("lists respond, --yes and exit code 5; help respond shows every response shape", function()
      local code, out = cli({ "--help" })
      assert.equals(0, code)
      for _, word in ipairs({ "respond", "-y, --yes", "5    the task needs your input" }) do
        assert.truthy(out:find(word, 1, true), word)
      end
      local code2, text = cli({ "help", "respond" })
      assert.equals(0, code2)
      for _, word in ipairs({ "usage: deepresearch respond ID", "planning_questions",
        '"approved"', '"included_domains"', "--approve", "--wait" }) do
        assert.truthy(text:find(word, 1, true), word)
      end
      local _, run_help = cli({ "help", "run" })
      assert.truthy(run_help:find("--checkpoint TYPE", 1, true), run_help)
    end)
  end)

  describe("modes", function()
    it("--mode takes the descriptor's modes, instant included", function()
      local code, _, err = cli({ "create", "--mode", "instant", BRIEF })
      assert.equals(0, code, err)
      code, _, err = cli({ "create", "--mode", "slow", BRIEF })
      assert.equals(2, code)
      assert.truthy(err:find("instant, fast, standard, heavy, max", 1, true), err)
      local _, help = cli({ "help", "run" })
      assert.truthy(help:find("max ($15.00)", 1, true), help)
    end)
  end)
end)

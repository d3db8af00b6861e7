-- The command's journal (issue 19 part 7): every task `run` and `create` make is recorded
-- before the create is sent, again with its id, and with its final state, cost and report file;
-- `deepresearch history` lists the record. The real command, DEEPRESEARCH_JOURNAL a temp file.
local sim = require "support.sim"
local support = require "support.cli"
local json = require "deepresearch.base.json"

local brief = support.brief
local BRIEF = brief("Flexport (flexport.com)")
local FAST, slurp, concat = support.FAST, support.slurp, support.concat

local lines = support.lines

-- The journal's events, decoded.
local function events(path)
  local out = {}
  for _, l in ipairs(lines(slurp(path))) do out[#out + 1] = assert(json.decode(l)) end
  return out
end

describe("deepresearch journal and history", function()
  local s, journal

  local function cli(argv, env) return support.run_journalled(s.url, journal, argv, env) end

  local function history(argv, env)
    local code, out, err = cli(concat({ "history", "--json" }, argv or {}), env)
    assert.equals(0, code, err)
    return assert(json.decode(out))
  end

  setup(function() s = sim.shared() end)
  before_each(function()
    s:reset{ speed = 2000 }
    journal = support.tmp()
    os.remove(journal) -- the command creates it
  end)
  teardown(support.cleanup)

  it("run: records the create before it is sent, its id, then state and cost", function()
    local code, _, err = cli(concat({ "run", BRIEF }, FAST))
    assert.equals(0, code, err)
    local ev = events(journal)
    assert.equals(3, #ev)
    assert.equals("begin", ev[1].ev)
    assert.equals("creating", ev[1].state)
    assert.is_nil(ev[1].id)
    assert.equals("created", ev[2].ev)
    assert.equals(s:tasks()[1].id, ev[2].id)
    assert.equals("update", ev[3].ev)
    local h = history()
    assert.equals(1, #h)
    assert.equals(s:tasks()[1].id, h[1].id)
    assert.equals("extruct", h[1].provider)
    assert.equals("done", h[1].state)
    assert.equals(25, h[1].cost.credits)
    assert.equals("cli", h[1].source)
    assert.equals(BRIEF:sub(1, 80), h[1].brief_head)
    assert.is_nil(h[1].report_path) -- stdout was a pipe
  end)

  it("run > FILE: records where the report was written", function()
    local report = support.tmp()
    local code, _, err = support.shell(s.url, "deepresearch " .. table.concat({ "run",
      support.q(BRIEF), table.concat(FAST, " ") }, " ") .. " > " .. support.q(report),
      { env = { DEEPRESEARCH_JOURNAL = journal } })
    assert.equals(0, code, err)
    assert.matches("# flexport.com", slurp(report))
    local h = history()
    assert.equals(report, h[1].report_path)
    assert.is_true(h[1].seen)
  end)

  it("create: records the id and the first state; history lists newest first", function()
    local _, a = cli({ "create", brief("Flexport (flexport.com)") })
    local _, b = cli({ "create", brief("Stripe (stripe.com)") })
    a, b = a:gsub("%s+$", ""), b:gsub("%s+$", "")
    local h = history()
    assert.equals(2, #h)
    assert.equals(b, h[1].id)
    assert.equals(a, h[2].id)
    assert.equals("queued", h[1].state)
    assert.equals(2, s:counter("extruct.tasks_created"))
  end)

  it("a create whose answer was lost is unknown, with the list command that finds it", function()
    -- Perplexity: no list to recover the lost answer with, so the command cannot know either.
    s:fault{ method = "POST", path = "/v1/.*", kind = "drop", after = true, count = 5 }
    local code = cli({ "--provider", "perplexity", "create", BRIEF },
      { PERPLEXITY_BASE_URL = s.url, PERPLEXITY_API_KEY = "pplx-key" })
    assert.equals(4, code)
    local h = history()
    assert.equals(1, #h)
    assert.equals("unknown", h[1].state)
    assert.is_nil(h[1].id)
    assert.equals("deepresearch list --provider perplexity", h[1].find)
    local _, out, err = cli({ "history" })
    assert.matches("unknown", out)
    assert.truthy(err:find("cannot list tasks, so check the provider's dashboard", 1, true), err)
    assert.equals(1, #s:requests_to("POST", "^/v1/")) -- sent once, never again
  end)

  it("an extruct create whose answer was lost and found again by listing has its id", function()
    s:fault{ method = "POST", path = "/v1/deep_research_tasks", kind = "drop", after = true }
    local code, _, err = cli({ "create", BRIEF })
    assert.equals(0, code, err)
    local h = history()
    assert.equals(s:tasks()[1].id, h[1].id)
    assert.equals(1, s:counter("extruct.tasks_created"))
  end)

  it("a create refused by the API (402) is recorded as refused: nothing was made", function()
    local code = cli({ "create", "--depth", "xhigh", BRIEF }, { EXTRUCT_API_TOKEN = "poor-token" })
    assert.equals(4, code)
    local h = history()
    assert.equals("refused", h[1].state)
    assert.equals("insufficient_credits", h[1].error)
    assert.equals(0, s:counter("extruct.tasks_created"))
  end)

  it("history names the list command for an unknown create where there is a list", function()
    local f = assert(io.open(journal, "wb"))
    f:write(json.encode({ ref = "j1-1", ev = "begin", provider = "valyu", brief_head = "x",
      created_at = os.time(), state = "creating", source = "cli" }), "\n")
    f:close()
    local code, out, err = cli({ "history" })
    assert.equals(0, code)
    assert.matches("valyu%s+%-%s+unknown", out)
    assert.truthy(err:find("Find it with: deepresearch list --provider valyu", 1, true), err)
  end)

  it("discover: a Deep Search is journalled too, as kind discovery", function()
    local code, _, err = cli(concat({ "discover", "Freight visibility software vendors in " ..
      "Europe", "--results", "3", "--wait" }, FAST))
    assert.equals(0, code, err)
    local h = history()
    assert.equals(1, #h)
    assert.equals("discovery", h[1].kind)
    assert.equals("done", h[1].state)
    assert.is_string(h[1].id)
    assert.equals("Freight visibility software vendors in Europe", h[1].brief_head)
  end)

  it("a failed task is recorded failed", function()
    local code = cli(concat({ "run", brief("Stripe (stripe.com) [fail]") }, FAST))
    assert.equals(1, code)
    local h = history()
    assert.equals("failed", h[1].state)
    assert.equals("task_failed", h[1].error)
  end)

  it("keeps only the brief's head and never a token; --journal-briefs keeps the brief", function()
    local secret = "test-token"
    cli({ "create", BRIEF })
    local text = slurp(journal)
    assert.is_nil(text:find(secret, 1, true))
    assert.is_nil(text:find("pitch them this quarter", 1, true))
    cli({ "--journal-briefs", "create", BRIEF })
    local h = history()
    assert.equals(BRIEF, h[1].brief)
    assert.is_nil(h[2].brief)
    assert.is_nil(slurp(journal):find(secret, 1, true))
  end)

  it("report_written records a report file on a journalled task only", function()
    local j = require("deepresearch.journal").open{ path = journal }
    j:created(j:begin{ provider = "extruct", brief = "b" }, "rw-123456")
    local ctx = { g = {}, err = io.stderr, journal = j }
    local h = require "deepresearch.cli.history"
    h.report_written(ctx, "rw-123456", "/tmp/r.html")
    h.report_written(ctx, "not-there-1", "/tmp/x.html")
    local e = j:entries()
    assert.equals(1, #e)
    assert.equals("/tmp/r.html", e[1].report_path)
    assert.is_true(e[1].seen)
  end)

  it("writes nothing with DEEPRESEARCH_JOURNAL=off", function()
    local code = cli({ "create", BRIEF }, { DEEPRESEARCH_JOURNAL = "off" })
    assert.equals(0, code)
    assert.equals("", slurp(journal))
  end)

  describe("history", function()
    local function add(provider, id, at, state, extra)
      local f = assert(io.open(journal, "ab"))
      local ev = { ref = "j" .. id, ev = "begin", provider = provider, created_at = at,
        brief_head = "Research " .. id .. " in depth, with every source the agents can find",
        state = "creating", source = "cli", t = at }
      f:write(json.encode(ev), "\n")
      local done = { ref = "j" .. id, ev = "created", id = id, state = state, t = at }
      for k, v in pairs(extra or {}) do done[k] = v end
      f:write(json.encode(done), "\n")
      f:close()
    end

    it("says so when the journal is empty, naming its path", function()
      local code, out = cli({ "history" })
      assert.equals(0, code)
      assert.equals("no tasks in the journal (" .. journal .. ")\n", out)
    end)

    it("lists local time, provider, short id, state, cost, brief head in 80 columns", function()
      local now = os.time()
      add("extruct", "aaaaaaaa-1111-4111-8111-111111111111", now - 7200, "done",
        { cost = { credits = 25 } })
      add("valyu", "bbbbbbbb-2222-4222-8222-222222222222", now - 60, "running")
      add("perplexity", "resp_cccccccc-3333-4333-8333-333333333333", now - 30, "done",
        { cost = { usd = 1.5 } })
      local code, out = cli({ "history" })
      assert.equals(0, code)
      local l = lines(out)
      assert.equals(4, #l)
      assert.matches("^CREATED%s+PROVIDER%s+ID%s+STATE%s+COST%s+BRIEF$", l[1])
      assert.matches("perplexity%s+resp_ccccccc%s+done%s+%$1%.50%s+Research", l[2])
      assert.matches("valyu%s+bbbbbbbb%-222%s+running%s+Research", l[3])
      assert.matches("extruct%s+aaaaaaaa%-111%s+done%s+25 cr%s+Research", l[4])
      assert.truthy(l[4]:find(os.date("%H:%M", now - 7200), 1, true))
      for _, line in ipairs(l) do
        local _, cont = line:gsub("[\128-\191]", "")
        assert.is_true(#line - cont <= 80, line)
      end
    end)

    it("filters by --provider, --state and --since", function()
      local now = os.time()
      add("extruct", "aaaaaa01", now - 5 * 86400, "done")
      add("valyu", "bbbbbb02", now - 3600, "running")
      add("extruct", "cccccc03", now - 60, "failed")
      local function ids(argv)
        local out = {}
        for _, e in ipairs(history(argv)) do out[#out + 1] = e.id end
        return out
      end
      assert.same({ "cccccc03", "aaaaaa01" }, ids({ "--provider", "extruct" }))
      assert.same({ "cccccc03" }, ids({ "--state", "failed" }))
      assert.same({ "cccccc03", "bbbbbb02" }, ids({ "--since", "2h" }))
      assert.same({ "cccccc03", "bbbbbb02" }, ids({ "--since", "3d" }))
      assert.same({ "cccccc03", "bbbbbb02", "aaaaaa01" },
        ids({ "--since", os.date("%Y-%m-%d", now - 6 * 86400) }))
      local code, out = cli({ "history", "--state", "cancelled" })
      assert.equals(0, code)
      assert.matches("^no tasks in the journal match", out)
    end)

    it("refuses a --since it cannot read and a --state it does not know (exit 2)", function()
      local code, _, err = cli({ "history", "--since", "yesterday" })
      assert.equals(2, code)
      assert.matches("%-%-since wants a date", err)
      code = cli({ "history", "--state", "sleeping" })
      assert.equals(2, code)
    end)
  end)
end)

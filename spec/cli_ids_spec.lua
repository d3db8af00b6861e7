-- Ids people can type (issue 18 item 8): wait/get/report/cancel take a unique prefix of 6+
-- characters from the journal or the first list page; an ambiguous one is a usage error;
-- `wait ID ID ...` waits on several at once; list --status, the DIFFERS column, "no tasks".
local sim = require "support.sim"
local support = require "support.cli"
local json = require "deepresearch.base.json"

local brief = support.brief
local FAST, concat = support.FAST, support.concat
local TASKS = "^/v1/deep_research_tasks"

local lines = support.lines

describe("deepresearch ids and lists", function()
  local s, journal

  local function cli(argv, env) return support.run_journalled(s.url, journal, argv, env) end

  -- Creates a task through the command (journalled unless env turns the journal off).
  local function create(target, argv, env)
    local code, out, err = cli(concat(argv or {}, { "create", brief(target) }), env)
    assert.equals(0, code, err)
    return (out:gsub("%s+$", ""))
  end

  local function gets(id)
    return #s:requests_to("GET", "^/v1/deep_research_tasks/" .. id:gsub("%-", "%%-") .. "$")
  end
  local function lists() return #s:requests_to("GET", TASKS .. "%?") + #s:requests_to("GET",
    TASKS .. "$") end

  setup(function() s = sim.shared() end)
  before_each(function()
    s:reset{ speed = 2000 }
    journal = support.tmp()
    os.remove(journal)
  end)
  teardown(support.cleanup)

  describe("prefixes", function()
    it("wait, get and report take a journal prefix of 6+ characters; no listing needed",
      function()
        local id = create("Flexport (flexport.com)")
        s:clear_requests()
        local code, out, err = cli(concat({ "wait", id:sub(1, 8) }, FAST))
        assert.equals(0, code, err)
        assert.matches("# flexport.com", out)
        code, out = cli({ "get", id:sub(1, 6) })
        assert.equals(0, code)
        assert.truthy(out:find(id, 1, true))
        code, out = cli({ "report", id:sub(1, 7) })
        assert.equals(0, code)
        assert.matches("# flexport.com", out)
        assert.is_true(gets(id) >= 3)
        assert.equals(0, lists())
      end)

    it("the journal says which provider a prefix belongs to", function()
      local id = create("Flexport (flexport.com)", { "--provider", "valyu" })
      local code, out, err = cli(concat({ "wait", id:sub(1, 10) }, FAST)) -- no --provider
      assert.equals(0, code, err)
      assert.truthy(#out > 0)
      assert.is_true(#s:requests_to("GET", "/deepresearch/tasks/" .. id:gsub("%-", "%%-")) > 0)
    end)

    it("a prefix of another provider's task is a usage error naming it; nothing is sent",
      function()
        local a = create("Flexport (flexport.com)")
        local b = create("Stripe (stripe.com)", { "--provider", "valyu" })
        s:clear_requests()
        local code, _, err = cli({ "wait", a:sub(1, 8), b:sub(1, 8) })
        assert.equals(2, code)
        assert.truthy(err:find("'" .. b:sub(1, 8) .. "' is a task of --provider valyu (" .. b ..
          "), not of extruct", 1, true), err)
        assert.equals(0, #s:requests())
      end)

    it("cancel takes a prefix", function()
      s:set_speed(0) -- stays queued
      local id = create("Flexport (flexport.com)", { "--provider", "valyu" })
      local code, out, err = cli({ "--provider", "valyu", "cancel", id:sub(1, 9) })
      assert.equals(0, code, err)
      assert.truthy(out:find(id, 1, true), out)
    end)

    it("an ambiguous prefix is a usage error listing the candidates; nothing is sent",
      function()
        local f = assert(io.open(journal, "wb"))
        for i, id in ipairs({ "abcdef01-aaaa", "abcdef02-bbbb", "abcdef03-cccc" }) do
          f:write(json.encode({ ref = "j" .. i, ev = "begin", provider = "extruct",
            created_at = os.time(), state = "creating", brief_head = "b" }), "\n")
          f:write(json.encode({ ref = "j" .. i, ev = "created", id = id, state = "queued" }), "\n")
        end
        f:close()
        s:clear_requests()
        for _, cmd in ipairs({ "wait", "get", "report", "cancel" }) do
          local code, _, err = cli({ "--provider", "extruct", cmd, "abcdef" })
          if cmd ~= "cancel" then -- Extruct cannot cancel: that usage error comes first
            assert.equals(2, code, cmd)
            assert.matches("'abcdef' matches 3 tasks: ", err)
            for _, id in ipairs({ "abcdef01-aaaa", "abcdef02-bbbb", "abcdef03-cccc" }) do
              assert.truthy(err:find(id, 1, true), err)
            end
          end
        end
        assert.equals(0, #s:requests())
        local code = cli({ "get", "abcdef02" })
        assert.equals(4, code) -- unique now: sent as the whole id, which the server lacks
        assert.equals(1, #s:requests_to("GET", "^/v1/deep_research_tasks/abcdef02%-bbbb$"))
      end)

    it("a prefix the journal lacks is looked up on the first list page", function()
      local id = create("Flexport (flexport.com)", nil, { DEEPRESEARCH_JOURNAL = "off" })
      s:clear_requests()
      local code, out = cli({ "get", id:sub(1, 8) })
      assert.equals(0, code)
      assert.truthy(out:find(id, 1, true))
      assert.equals(1, lists())
      assert.equals(1, gets(id))
    end)

    it("a word shorter than 6 or as long as a whole id is sent as typed, unlisted", function()
      s:clear_requests()
      local code = cli({ "get", "abc" })
      assert.equals(4, code)
      code = cli({ "get", "00000000-0000-4000-8000-000000000000" })
      assert.equals(4, code)
      assert.equals(0, lists())
      assert.equals(2, #s:requests())
    end)
  end)

  describe("wait ID ID ...", function()
    it("waits on several tasks at once; one line each; exit code is the worst", function()
      local a = create("Flexport (flexport.com)")
      local b = create("Stripe (stripe.com) [fail]")
      local code, out, err = cli(concat({ "wait", a:sub(1, 8), b }, FAST))
      assert.equals(1, code, err)
      assert.equals("", out)
      local l = lines(err)
      assert.equals(2, #l, err)
      assert.matches("^" .. a:sub(1, 12):gsub("%-", "%%-") .. "  done", l[1])
      assert.matches("^" .. b:sub(1, 12):gsub("%-", "%%-") .. "  failed  ", l[2])
      assert.equals(2, s:counter("extruct.tasks_created"))
      local h = {}
      local _, hist = cli({ "history", "--json" })
      for _, e in ipairs(json.decode(hist)) do h[e.id] = e.state end
      assert.equals("done", h[a])
      assert.equals("failed", h[b])
    end)

    it("--json prints the tasks; all done is exit 0", function()
      local a = create("Flexport (flexport.com)")
      local b = create("Stripe (stripe.com)")
      local code, out = cli(concat({ "wait", a, b, "--json" }, FAST))
      assert.equals(0, code)
      local tasks = json.decode(out)
      assert.equals(2, #tasks)
      assert.equals(a, tasks[1].id)
      assert.equals("done", tasks[2].status)
    end)

    it("a terminal gets one live line per task, redrawn in place", function()
      local a = create("Flexport (flexport.com)")
      local b = create("Stripe (stripe.com)")
      local code, _, err = cli(concat({ "wait", a, b }, FAST), { DEEPRESEARCH_TTY = "1" })
      assert.equals(0, code)
      assert.truthy(err:find("\27[2A", 1, true), "cursor moves up over the two lines")
      assert.truthy(err:find(a:sub(1, 12) .. "  done", 1, true))
      assert.truthy(err:find(b:sub(1, 12) .. "  done", 1, true))
    end)

    it("an ambiguous or unknown id among them: usage error before anything waits", function()
      local f = assert(io.open(journal, "wb"))
      for i, id in ipairs({ "zzzzzz01", "zzzzzz02" }) do
        f:write(json.encode({ ref = "j" .. i, ev = "begin", provider = "extruct",
          created_at = os.time(), state = "creating" }), "\n")
        f:write(json.encode({ ref = "j" .. i, ev = "created", id = id }), "\n")
      end
      f:close()
      s:clear_requests()
      local code, _, err = cli({ "wait", "zzzzzz01", "zzzzzz" })
      assert.equals(2, code)
      assert.matches("matches 2 tasks", err)
      assert.equals(0, #s:requests())
    end)
  end)

  describe("list", function()
    it("an empty list says no tasks", function()
      local code, out = cli({ "list" })
      assert.equals(0, code)
      assert.equals("no tasks\n", out)
    end)

    it("--status running|done|failed keeps the tasks dr.state puts there", function()
      local a = create("Flexport (flexport.com)")
      local b = create("Stripe (stripe.com) [fail]")
      cli(concat({ "wait", a, b }, FAST))
      s:set_speed(0) -- the clock stands still: c stays queued
      local c = create("Notion (notion.so)")
      local function ids(status)
        local _, out = cli({ "list", "--status", status, "--json" })
        local got = {}
        for _, t in ipairs(json.decode(out)) do got[#got + 1] = t.id end
        return got
      end
      assert.same({ a }, ids("done"))
      assert.same({ b }, ids("failed"))
      assert.same({ c }, ids("running"))
      local code = cli({ "list", "--status", "sleeping" })
      assert.equals(2, code)
    end)

    it("a DIFFERS column tells one template's tasks apart; none for unrelated briefs", function()
      create("Flexport (flexport.com)")
      create("Stripe (stripe.com)")
      local code, out = cli({ "list" })
      assert.equals(0, code)
      local l = lines(out)
      assert.matches("CREATED%s+DIFFERS%s+BRIEF$", l[1])
      assert.matches("Stripe %(stripe%.com%):", l[2])
      assert.matches("Flexport %(flexport%.com%):", l[3])
      s:reset{ speed = 2000 }
      cli({ "create", "Research Acme Corp (acme.com): its market position and rivals this year." })
      cli({ "create", brief("Flexport (flexport.com)") })
      code, out = cli({ "list" })
      assert.equals(0, code)
      assert.not_matches("DIFFERS", out)
    end)
  end)
end)

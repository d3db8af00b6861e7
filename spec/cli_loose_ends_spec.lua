-- Loose ends of issues 18 and 19 in the command, run for real against the simulator
-- (spec/support/cli.lua): cancel PREFIX finds its provider in the journal; report -o FILE is
-- journalled; every error code has a README row; discover's and batch's --limit say list's one
-- rule; their waits show "waiting for first answer…" on a terminal from the start.
local sim = require "support.sim"
local support = require "support.cli"
local journal_mod = require "deepresearch.journal"
local report_out = require "deepresearch.cli.report_out"

local BRIEF = support.brief("Flexport (flexport.com)")
local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"
local FAST, concat = support.FAST, support.concat

describe("deepresearch loose ends", function()
  local s, journal

  local function cli(argv, env) return support.run_journalled(s.url, journal, argv, env) end

  local function records()
    return assert(journal_mod.open{ path = journal }):entries{}
  end

  setup(function() s = sim.shared() end)
  before_each(function()
    s:reset{ speed = 0 } -- nothing moves unless a spec advances the clock
    journal = support.tmp()
    os.remove(journal)
  end)
  teardown(support.cleanup)

  describe("cancel PREFIX", function()
    it("a journalled Valyu task's prefix needs no --provider: the journal names it", function()
      local code, out, err = cli({ "--provider", "valyu", "create", QUERY })
      assert.equals(0, code, err)
      local id = out:match("^(%S+)")
      s:clear_requests()
      code, out, err = cli({ "cancel", id:sub(1, 10) }) -- no --provider
      assert.equals(0, code, err)
      assert.truthy(out:find(id, 1, true), out)
      assert.equals(1, #s:requests_to("POST", "/deepresearch/tasks/" .. id:gsub("%-", "%%-") ..
        "/cancel"))
    end)

    it("an id the journal does not know is still refused for Extruct, nothing sent", function()
      local code, _, err = cli({ "cancel", "0123456789abcdef0123" })
      assert.equals(2, code)
      assert.matches("'cancel' is not available for %-%-provider extruct", err)
      assert.equals(0, #s:requests())
    end)
  end)

  describe("report ID -o FILE", function()
    it("records the report's path on the task's journal record", function()
      local code, out, err = cli({ "create", BRIEF })
      assert.equals(0, code, err)
      local id = out:match("^(%S+)")
      local _
      s:advance(3600)
      local file = support.tmp()
      code, _, err = cli({ "report", id:sub(1, 8), "-o", file })
      assert.equals(0, code, err)
      assert.truthy(#support.slurp(file) > 50)
      local r = records()
      assert.equals(1, #r)
      assert.equals(id, r[1].id)
      assert.equals(file, r[1].report_path)
    end)

    it("a relative path is recorded against the working directory", function()
      assert.equals("/home/u/out/r.md", report_out.absolute("r.md", "/home/u/out"))
      assert.equals("/home/u/out/r.md", report_out.absolute("./r.md", "/home/u/out/"))
      assert.equals("/tmp/r.md", report_out.absolute("/tmp/r.md", "/home/u"))
    end)
  end)

  describe("docs", function()
    it("the README's error table has a row for every code the library makes", function()
      local readme = support.slurp("README.md")
      local p = io.popen("grep -rhoE 'errors\\.new\\(\"[a-z_]+\"' lua")
      local codes = {}
      for code in p:read("*a"):gmatch('errors%.new%("([a-z_]+)"') do codes[code] = true end
      p:close()
      for _, must in ipairs({ "ambiguous_id", "budget_exceeded", "budget_unbounded" }) do
        codes[must] = true
      end
      for code in pairs(codes) do
        assert.truthy(readme:find("\n| `" .. code .. "` |", 1, true), "README row for " .. code)
      end
    end)

    it("help options documents --journal-briefs", function()
      local code, out = cli({ "help", "options" })
      assert.equals(0, code)
      assert.matches("\n%s+%-%-journal%-briefs%s+keep each created task's whole brief", out)
    end)
  end)

  describe("--limit in discover and batch", function()
    -- list's message for a value, the one rule every --limit prints.
    local function rule(value)
      local code, _, err = cli({ "list", "--limit", value })
      assert.equals(2, code)
      return err:match("^deepresearch: ([^\n]+)")
    end

    it("prints list's one rule for abc, 0 and 1.5; nothing is sent", function()
      for _, v in ipairs({ "abc", "0", "1.5", "101" }) do
        local want = rule(v)
        assert.equals("--limit must be a whole number from 1 to 100, got '" .. v .. "'", want)
        for _, argv in ipairs({ { "discover", "list" }, { "discover", "results", "some-id" },
          { "--provider", "valyu", "batch", "list" } }) do
          local code, _, err = cli(concat(argv, { "--limit", v }))
          assert.equals(2, code, table.concat(argv, " "))
          assert.equals(want, err:match("^deepresearch: ([^\n]+)"), table.concat(argv, " "))
        end
      end
      -- batch tasks pages, so it has no upper bound: the same rule, "1 or more"
      local code, _, err = cli({ "--provider", "valyu", "batch", "tasks", "some-id", "--limit",
        "0" })
      assert.equals(2, code)
      assert.matches("^deepresearch: %-%-limit must be a whole number 1 or more, got '0'", err)
      assert.equals(0, #s:requests())
    end)
  end)

  describe("waits on a terminal", function()
    local TTY = { DEEPRESEARCH_TTY = "1", LANG = "C.UTF-8" }

    local function first_line(err) return err:match("\r\27%[K([^\r]*)") end

    it("discover wait shows 'waiting for first answer…' before the first answer", function()
      local code, out, err = cli({ "discover", "Freight visibility software vendors in Europe",
        "--results", "3" })
      assert.equals(0, code, err)
      local id, _ = out:match("^(%S+)")
      s:set_speed(2000)
      code, _, err = cli(concat({ "discover", "wait", id }, FAST), TTY)
      assert.equals(0, code, err)
      local first = first_line(err)
      assert.truthy(first and first:find("waiting for first answer…", 1, true), err)
    end)

    it("batch wait shows 'waiting for first answer…' before the first answer", function()
      local v = { "--provider", "valyu" }
      local code, out, err = cli(concat(v, { "batch", "create", "--mode", "fast" }))
      assert.equals(0, code, err)
      local id, _ = out:match("^(%S+)")
      code, _, err = cli(concat(v, { "batch", "add", id, QUERY }))
      assert.equals(0, code, err)
      s:set_speed(2000)
      code, _, err = cli(concat(v, { "batch", "wait", id }, FAST), TTY)
      assert.equals(0, code, err)
      local first = first_line(err)
      assert.truthy(first and first:find("waiting for first answer…", 1, true), err)
    end)
  end)
end)

-- bin/deepresearch as a user runs it: a subprocess against the simulator, with its stdout,
-- stderr and exit code apart. The command sleeps for real between polls, so the simulator
-- runs fast (2000x: a medium task takes ~0.13 s) and every wait polls every 0.05 s.
local sim = require "support.sim"
local support = require "support.cli"
local cjson = require("cjson").new()

local BRIEF = support.brief("Flexport (flexport.com)")
-- Lint-clean enough to be sent (warnings only), but names no target: the simulator rejects it.
local NO_TARGET = "We sell freight-visibility software to mid-market logistics firms. Research " ..
  "the logistics companies that might buy it in the last 12 months, so we can decide where to " ..
  "pitch this quarter."
local FAST, slurp, tmp = support.FAST, support.slurp, support.tmp

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- A rendered report: a markdown heading at the start of a line.
local function is_report(out)
  return ("\n" .. out):find("\n# ") ~= nil
end

local concat = support.concat

describe("deepresearch command", function()
  local s

  -- Runs bin/deepresearch with argv; returns exit code, stdout, stderr.
  -- o.env overrides the environment (false unsets), o.stdin is fed on standard input.
  local function cli(argv, o) return support.run(s.url, argv, o) end

  local function created_ids()
    local ids = {}
    for _, t in ipairs(s:tasks()) do ids[#ids + 1] = t.id end
    return ids
  end

  setup(function() s = sim.shared() end)
  before_each(function() s:reset{ speed = 2000 } end)
  teardown(support.cleanup)

  describe("help and usage", function()
    it("prints the overview, every command and the exit codes with --help (exit 0)", function()
      local code, out, err = cli({ "--help" })
      assert.equals(0, code)
      assert.equals("", err)
      for _, word in ipairs({
        "run", "create", "get", "wait", "list", "report", "cancel", "brief render",
        "brief lint", "discover", "discover results", "discover resume", "Exit codes", "130",
        "EXTRUCT_API_TOKEN", "VALYU_API_KEY" }) do
        assert.truthy(out:find(word, 1, true), word)
      end
    end)

    it("has help for every command, as --help and as `help COMMAND`", function()
      for _, cmd in ipairs({ { "run" }, { "create" }, { "get" }, { "wait" }, { "list" },
        { "report" },
        { "cancel" }, { "brief", "render" }, { "brief", "lint" }, { "discover" },
        { "discover", "get" },
        { "discover", "results" }, { "discover", "resume" } }) do
        local code, out = cli(concat(cmd, { "--help" }))
        assert.equals(0, code, table.concat(cmd, " "))
        assert.truthy(
          out:find("usage: deepresearch " .. table.concat(cmd, " "), 1, true),
          table.concat(cmd, " "))
        assert.truthy(out:find("and exit codes: deepresearch help options", 1, true))
        local code2, out2 = cli(concat({ "help" }, cmd))
        assert.equals(0, code2)
        assert.equals(out, out2)
      end
      local _, run_help = cli({ "help", "run" })
      for _, opt in ipairs({
        "--depth", "--schema", "--json", "--timeout", "--interval", "--strict", "-f FILE" }) do
        assert.truthy(run_help:find(opt, 1, true), opt)
      end
    end)

    it("prints the version", function()
      local code, out = cli({ "--version" })
      assert.equals(0, code)
      assert.matches("^deepresearch %d+%.%d+%.%d+", out)
    end)

    it("exits 2 on usage errors, with the message on stderr and nothing on stdout", function()
      local cases = {
        {}, { "frobnicate" }, { "run", "--frobnicate", BRIEF }, { "run", "--depth", "HIGH", BRIEF },
        { "run" }, { "get" }, { "get", "a", "b" }, { "list", "--limit", "x" },
        { "--provider", "nope", "list" },
        { "run", "-f", "/nonexistent/brief.txt" },
        { "run", "--schema", "/nonexistent.json", BRIEF },
        { "cancel", "some-id" }, { "--provider", "valyu", "discover", "companies" },
        { "--provider", "valyu", "run", "--depth", "high", BRIEF },
        { "run", "--mode", "fast", BRIEF },
        { "brief" }, { "discover", "results" }, { "wait", "some-id", "--interval", "0" },
        { "list", "--base-url", "ftp://example.com" }, { "list", "--limit", "1.5" },
        { "help", "nope" },
      }
      for _, argv in ipairs(cases) do
        local code, out, err = cli(argv)
        assert.equals(2, code, table.concat(argv, " "))
        assert.equals("", out, table.concat(argv, " "))
        assert.matches("deepresearch", err)
      end
      assert.same({}, created_ids())
    end)

    it("logs requests with --verbose, the token redacted", function()
      local code, out, err = cli({ "list", "--verbose", "--limit", "1" })
      assert.equals(0, code)
      assert.equals("no tasks\n", out) -- an empty list says so (issue 18 item 8)
      assert.matches("GET http://[^ ]+/v1/deep_research_tasks%?limit=1 %-> 200", err)
      assert.matches("Authorization: %[redacted%]", err)
      assert.not_matches("test%-token", err)
    end)

    it("never takes the token as a flag", function()
      local code, _, err = cli({ "list", "--token", "test-token" })
      assert.equals(2, code)
      assert.matches("unknown option '%-%-token'", err)
    end)
  end)

  describe("run", function()
    it("lints, creates, waits and prints the cited report on stdout; progress on stderr (exit " ..
      "0)", function()
      local code, out, err = cli(concat({ "run", BRIEF }, FAST))
      assert.equals(0, code, err)
      local id = created_ids()[1]
      assert.is_string(id)
      -- stdout: the report, citations resolved as footnotes, and nothing else
      assert.is_true(is_report(out))
      assert.matches("%[%^%d+%]", out)
      assert.matches("\n%[%^%d+%]: https?://", out)
      assert.not_matches("deepresearch:", out)
      assert.not_matches("agents %d+/25", out)
      -- stderr: the id and the progress, one plain line per change (not a terminal)
      assert.truthy(err:find("created task " .. id, 1, true))
      assert.not_matches("\r", err)
      assert.not_matches("\27%[", err)
      local progress = {}
      for _, l in ipairs(lines(err)) do
        if l:find("^task " .. id:gsub("%-", "%%-") .. ": ") then
          progress[#progress + 1] = l:gsub("  %d+:%d%d  ", " ")
        end
      end
      assert.is_true(#progress >= 2)
      for i = 2, #progress do assert.are_not.equal(progress[i - 1], progress[i]) end
      assert.matches("^task %S+: done .*agents %d+/25", progress[#progress])
      assert.not_matches("Flexport %(flexport%.com%)", err)
    end)

    it("reads the brief from a file (-f) or stdin (-)", function()
      local f = tmp(BRIEF)
      local code, out = cli(concat({ "run", "-q", "-f", f }, FAST))
      assert.equals(0, code)
      assert.is_true(is_report(out))
      local code2, out2, err2 = cli(concat({ "run", "-" }, FAST, { "--quiet" }), { stdin = BRIEF })
      assert.equals(0, code2)
      assert.is_true(is_report(out2))
      assert.equals("", err2)
      assert.equals(2, #created_ids())
      assert.equals(BRIEF, s:tasks()[2].brief)
    end)

    it("prints the final task as JSON with --json, and each report style", function()
      local code, out = cli(concat({ "run", BRIEF, "--json", "--depth", "high" }, FAST))
      assert.equals(0, code)
      local task = cjson.decode(out)
      assert.equals("done", task.status)
      assert.equals("high", task.depth)
      assert.equals("markdown", task.report.kind)
      assert.equals(created_ids()[1], task.id)
      for style, pattern in pairs({ inline = "%[%[%d+%]%]%(https?://", plain = "%[%d+%]",
        footnotes = "%[%^%d+%]" }) do
        local c, text = cli({ "report", task.id, "--style", style })
        assert.equals(0, c)
        assert.matches(pattern, text)
      end
    end)

    it("takes a JSON Schema file or a Lua file with --schema", function()
      local json_file = tmp('{"type": "object", "properties": {"ceo": {"type": "string"}, ' ..
        '"tools": {"type": "array", "items": {"type": "string"}}}, "required": ["ceo"]}')
      local code, out, err = cli(
        concat({ "run", BRIEF, "--schema", json_file, "--json", "-q" }, FAST))
      assert.equals(0, code, err)
      local task = cjson.decode(out)
      assert.equals("schema", task.report.kind)
      assert.is_string(task.report.fields.ceo)
      local lua_file = tmp()
      os.remove(lua_file)
      lua_file = lua_file .. ".lua"
      support.remember(lua_file)
      write(lua_file, 'local S = require("deepresearch").schema\n' ..
        'return S.object{ hq = S.string{ description = "city" }, founded = ' ..
        'S.optional(S.integer()) }')
      code, out = cli(concat({ "run", BRIEF, "--schema", lua_file, "--json", "-q" }, FAST))
      assert.equals(0, code)
      assert.is_string(cjson.decode(out).report.fields.hq)
      local sent = s:tasks()[2].output_schema
      assert.equals("string", sent.properties.hq.type)
      assert.same({ "hq" }, sent.required)
      -- without --json: the fields rendered with their sources
      code, out = cli(concat({ "run", BRIEF, "--schema", lua_file, "-q" }, FAST))
      assert.equals(0, code)
      assert.matches("## hq", out)
      assert.matches("%[%^%d+%]: https?://", out)
      local bad = tmp('{"type": "array"}')
      code = cli({ "run", BRIEF, "--schema", bad })
      assert.equals(2, code)
    end)

    it("shows the schema's lint warnings from --schema (and sends it still)", function()
      local props = {}
      for i = 1, 60 do props[#props + 1] = string.format('"p%d": {"type": "string"}', i) end
      local wide = tmp('{"type": "object", "properties": {' .. table.concat(props, ", ") .. '}}')
      local code, _, err = cli(concat({ "run", BRIEF, "--schema", wide, "--json" }, FAST))
      assert.equals(0, code, err)
      assert.matches("warning: .*%[schema_properties%]", err)
    end)

    it("exits 1 when the task fails, with the failure reason on stderr", function()
      local code, out, err = cli(concat({ "run", NO_TARGET }, FAST))
      assert.equals(1, code)
      assert.equals("", out)
      assert.matches("failed: Brief rejected: no identifiable research target", err)
      local code2, out2 = cli(concat({ "run", NO_TARGET, "--json", "-q" }, FAST))
      assert.equals(1, code2)
      assert.equals("failed", cjson.decode(out2).status)
    end)

    it("stops on lint errors (exit 2), and on warnings with --strict; nothing is sent", function()
      local code, out, err = cli({
        "run", "Research [COMPANY NAME] for us (acme.com) so we can decide." })
      assert.equals(2, code)
      assert.equals("", out)
      assert.matches("error: unfilled placeholder", err)
      code, out, err = cli({ "run", "--strict", NO_TARGET })
      assert.equals(2, code)
      assert.equals("", out)
      assert.matches("warning: .*%[no_target%]", err)
      assert.matches("%-%-strict", err)
      assert.same({}, created_ids())
    end)

    it("exits 3 when --timeout passes first, and says how to resume", function()
      s:reset{ speed = 1 }
      local code, out, err = cli(concat({ "run", BRIEF, "--timeout", "0.2" }, FAST))
      assert.equals(3, code)
      assert.equals("", out)
      local id = created_ids()[1]
      assert.matches("did not finish within 0%.2s", err)
      assert.truthy(err:find("deepresearch wait " .. id, 1, true))
      -- the task keeps running and `wait` picks it up
      s:set_speed(2000)
      local code2, out2 = cli(concat({ "wait", id, "-q" }, FAST))
      assert.equals(0, code2)
      assert.is_true(is_report(out2))
    end)

    it("exits 4 on API errors with the one-line message: bad token, no plan, no credits", function()
      local code, out, err = cli({ "list" }, { env = { EXTRUCT_API_TOKEN = "not-a-token" } })
      assert.equals(4, code)
      assert.equals("", out)
      assert.matches("^deepresearch: unauthorized %(HTTP 401%)", err)
      assert.equals(1, #lines(err))
      assert.not_matches("not%-a%-token", err)
      code, out, err = cli({ "run", BRIEF }, { env = { EXTRUCT_API_TOKEN = "free-token" } })
      assert.equals(4, code)
      assert.equals("", out)
      assert.matches("plan_required %(HTTP 402%)", err)
      code, out, err = cli({ "run", BRIEF, "--depth", "high" },
        { env = { EXTRUCT_API_TOKEN = "poor-token" } })
      assert.equals(4, code)
      assert.equals("", out)
      assert.matches("insufficient_credits %(HTTP 402%)", err)
      assert.matches("needs 50 credits and 30 are available", err)
      assert.same({}, created_ids())
    end)

    it("exits 4 without a token, naming the variable", function()
      local code, out, err = cli({ "list" }, { env = { EXTRUCT_API_TOKEN = false } })
      assert.equals("", out)
      assert.equals(4, code)
      assert.matches("EXTRUCT_API_TOKEN", err)
      code, out, err = cli({ "--provider", "valyu", "list" }, { env = { VALYU_API_KEY = false } })
      assert.equals(4, code)
      assert.equals("", out)
      assert.matches("VALYU_API_KEY", err)
    end)

    it("exits 4 on a network error", function()
      local code, _, err = cli({ "list", "--base-url", "http://127.0.0.1:9" })
      assert.equals(4, code)
      assert.matches("^deepresearch: network", err)
    end)

    it("stops waiting on SIGINT (exit 130); the task keeps running", function()
      s:reset{ speed = 1 }
      local errf, rcf, pidf, brieff = tmp(), tmp(), tmp(), tmp(BRIEF)
      os.remove(rcf)
      local script = tmp(string.format("echo $$ > %s\nexec env -u LD_PRELOAD " ..
        "EXTRUCT_BASE_URL=%s EXTRUCT_API_TOKEN=test-token DEEPRESEARCH_TTY=0 lua5.4 " ..
        "bin/deepresearch run -f %s --interval 0.05 >/dev/null 2>%s\n", pidf, s.url, brieff, errf))
      os.execute(string.format("(sh %s; echo $? > %s) </dev/null >/dev/null 2>&1 &", script, rcf))
      local deadline = os.time() + 10
      while not slurp(errf):find("in_progress") and os.time() < deadline do
        os.execute("sleep 0.05")
      end
      local pid = tonumber(slurp(pidf))
      assert.is_number(pid)
      os.execute("kill -INT " .. pid)
      while slurp(rcf) == "" and os.time() < deadline do os.execute("sleep 0.05") end
      assert.equals("130", (slurp(rcf):gsub("%s+", "")))
      local id = created_ids()[1]
      local err = slurp(errf)
      assert.matches("interrupted", err)
      assert.truthy(err:find("Resume with: bin/deepresearch wait " .. id, 1, true))
      assert.equals("in_progress", s:tasks()[1].status)
    end)
  end)

  describe("create, get, wait, list, report", function()
    it("create prints only the id; get shows it; wait prints the report", function()
      local code, out, err = cli({ "create", BRIEF })
      assert.equals(0, code, err)
      local id = out:match("^(%S+)\n$")
      assert.equals(created_ids()[1], id)
      code, out = cli({ "get", id })
      assert.equals(0, code)
      assert.matches("id%s+" .. id:gsub("%-", "%%-"), out)
      assert.matches("\nstatus%s+%a", out)
      code, out = cli({ "get", id, "--json" })
      assert.equals(0, code)
      assert.equals(id, cjson.decode(out).id)
      code, out = cli(concat({ "wait", id }, FAST))
      assert.equals(0, code)
      assert.matches("%[%^%d+%]: https?://", out)
      code, out = cli({ "create", "--json", "--depth", "xhigh", BRIEF })
      assert.equals(0, code)
      assert.equals("xhigh", cjson.decode(out).depth)
    end)

    it("report exits 1 for a task that is not done, 4 for an unknown one", function()
      s:reset{ speed = 1 }
      local _, out = cli({ "create", BRIEF })
      local id = out:match("%S+")
      local code, rout, err = cli({ "report", id })
      assert.equals(1, code)
      assert.equals("", rout)
      assert.truthy(err:find("deepresearch wait " .. id, 1, true))
      code, out, err = cli({ "report", "no-such-task" })
      assert.equals(4, code)
      assert.equals("", out)
      assert.matches("not_found %(HTTP 404%)", err)
    end)

    it("list shows a table newest first, pages with --limit/--offset/--all, and --json", function()
      for i = 1, 3 do
        assert.equals(0, (cli({ "create", "--depth", i == 3 and "high" or "medium", BRIEF })))
      end
      local ids = created_ids()
      local code, out = cli({ "list" })
      assert.equals(0, code)
      local rows = lines(out)
      assert.equals(4, #rows)
      assert.matches("^ID%s+STATUS%s+DEPTH%s+AGENTS%s+SOURCES%s+CREATED%s+BRIEF$", rows[1])
      assert.truthy(rows[2]:find(ids[3], 1, true))
      assert.matches("high", rows[2])
      assert.matches("We sell freight%-visibility software", rows[2])
      code, out = cli({ "list", "--limit", "1", "--offset", "1" })
      assert.equals(0, code)
      rows = lines(out)
      assert.equals(2, #rows)
      assert.truthy(rows[2]:find(ids[2], 1, true))
      code, out = cli({ "list", "--all", "--json" })
      assert.equals(0, code)
      assert.equals(3, #cjson.decode(out))
    end)
  end)

  describe("brief", function()
    it("render fills placeholders from --var and exits 2 naming the missing ones", function()
      local template = tmp("Research {{company}} ({{domain}}) for {{team}}.")
      local code, out = cli({ "brief", "render", template, "--var", "company=Flexport", "--var",
        "domain=flexport.com", "--var", "team=sales" })
      assert.equals(0, code)
      assert.equals("Research Flexport (flexport.com) for sales.\n", out)
      local code2, out2, err2 = cli({ "brief", "render", template, "--var", "company=Flexport" })
      assert.equals(2, code2)
      assert.equals("", out2)
      assert.matches("'domain', 'team'", err2)
      local code3, out3 = cli({ "brief", "render", "-", "--var", "x=1" }, { stdin = "n={{x}}" })
      assert.equals(0, code3)
      assert.equals("n=1\n", out3)
    end)

    it("lint prints findings on stdout; exit 0 when clean, 1 on errors or (--strict) " ..
      "warnings", function()
      local good = tmp(BRIEF)
      local code, out = cli({ "brief", "lint", good })
      assert.equals(0, code)
      assert.equals("", out)
      code, out = cli({ "brief", "lint", "-" }, { stdin = "Research [COMPANY NAME]" })
      assert.equals(1, code)
      assert.matches("<stdin>:1:10: error: unfilled placeholder", out)
      code = cli({ "brief", "lint", "-" }, { stdin = NO_TARGET })
      assert.equals(0, code)
      code, out = cli({ "brief", "lint", "--strict", "-" }, { stdin = NO_TARGET })
      assert.equals(1, code)
      assert.matches("warning: .*%[no_target%]", out)
    end)
  end)

  describe("discover", function()
    it("creates and waits for a Deep Search, then prints the results table", function()
      local code, out, err = cli(
        concat({ "discover", "Freight visibility software vendors in Europe", "--results",
        "5", "--criterion", "size=Mid-market:Has between 50 and 1000 employees", "--wait" }, FAST))
      assert.equals(0, code, err)
      local rows = lines(out)
      assert.matches("^COMPANY%s+WEBSITE%s+RELEVANCE%s+HIGH%-FIT$", rows[1])
      assert.is_true(#rows >= 2)
      assert.matches("%s(yes)$", rows[2])
      assert.matches("discovered %d+", err)
    end)

    it("discover prints the id; get, results --all and resume work on it", function()
      local code, out = cli({
        "discover", "Freight visibility software vendors in Europe", "--results", "3" })
      assert.equals(0, code)
      local id = out:match("^(%S+)\n$")
      assert.is_string(id)
      code, out = cli({ "discover", "get", id })
      assert.equals(0, code)
      assert.matches("status%s+%a", out)
      assert.matches("high%-fit%s+%d+", out)
      cli(concat({ "discover", "wait", id, "-q" }, FAST))
      code, out = cli({ "discover", "results", id, "--all" })
      assert.equals(0, code)
      assert.matches("^COMPANY", out)
      code, out = cli({ "discover", "results", id, "--json" })
      assert.equals(0, code)
      assert.equals(id, cjson.decode(out).id)
      code, out = cli({ "discover", "resume", id, "--more", "2", "--json" })
      assert.equals(0, code)
      assert.equals(5, cjson.decode(out).desired_num_results)
      code = cli({ "discover", "get", "no-such-task" })
      assert.equals(4, code)
      code = cli({ "discover", "q", "--criterion", "bad" })
      assert.equals(2, code)
    end)
  end)

  describe("--provider valyu", function()
    it("runs a Valyu task with --mode and prints the report (exit 0)", function()
      local code, out, err = cli(
        concat({ "--provider", "valyu", "run", "--mode", "fast", BRIEF }, FAST))
      assert.equals(0, code, err)
      assert.is_true(is_report(out))
      assert.matches("%[%^%d+%]: https?://", out)
      assert.matches("step %d+/10", err)
      local code2, out2 = cli({ "list", "--provider", "valyu" })
      assert.equals(0, code2)
      assert.matches("^ID%s+STATUS%s+CREATED%s+QUERY", out2)
      assert.matches("completed", out2)
    end)

    it("creates, gets, cancels and reports a cancelled task (exit 1)", function()
      s:reset{ speed = 1 }
      local code, out = cli({ "--provider", "valyu", "create", BRIEF })
      assert.equals(0, code)
      local id = out:match("^(%S+)\n$")
      code, out = cli({ "--provider", "valyu", "get", id })
      assert.equals(0, code)
      assert.matches("mode%s+standard", out)
      code = cli({ "--provider", "valyu", "cancel", id })
      assert.equals(0, code)
      local err
      code, out, err = cli({ "--provider", "valyu", "report", id })
      assert.equals(1, code)
      assert.equals("", out)
      assert.equals("", out)
      assert.matches("cancelled", err)
      code, out, err = cli(concat({ "--provider", "valyu", "wait", id }, FAST))
      assert.equals(1, code)
      assert.equals("", out)
      assert.matches("cancelled", err)
    end)

    it("exits 4 on a bad key", function()
      local code, _, err = cli({ "--provider", "valyu", "list" },
        { env = { VALYU_API_KEY = "nope" } })
      assert.equals(4, code)
      assert.matches("unauthorized %(HTTP 401%)", err)
    end)
  end)
end)

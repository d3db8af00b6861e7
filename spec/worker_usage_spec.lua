-- Acceptance (issue 18 item 10, the worker's side): a mistyped option gets one line with "did
-- you mean", then where the help is; never the whole 60-line help after the line that matters.
local sim = require "support.sim"
local cli = require "support.cli"

local WORKER = "bin/deepresearch-worker"

local function run(args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sim.shell_quote(a) end
  local out, err = cli.tmp(), cli.tmp()
  local ok, _, code = os.execute(string.format("%s %s >%s 2>%s", WORKER,
    table.concat(quoted, " "), out, err))
  -- Lua 5.1 and LuaJIT return system()'s status (the exit code times 256), not true/nil.
  if type(ok) == "number" then return math.floor(ok / 256), cli.slurp(out), cli.slurp(err) end
  return ok and 0 or code, cli.slurp(out), cli.slurp(err)
end

describe("deepresearch-worker usage errors", function()
  teardown(cli.cleanup)

  it("an unknown option: one line with the closest option, a pointer to --help, exit 2", function()
    for word, hint in pairs({ ["--concurency"] = "--concurrency", ["--onse"] = "--once",
      ["--budget-usd-per-dya"] = "--budget-usd-per-day" }) do
      local code, out, err = run({ word, "3" })
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.are.equal("deepresearch-worker: unknown option " .. word .. "; did you mean '" ..
        hint .. "'?\nTry 'deepresearch-worker --help'.\n", err)
    end
    local code, _, err = run({ "status", "--jsno" })
    assert.are.equal(2, code)
    assert.truthy(err:find("did you mean '--json'?", 1, true), err)
  end)

  it("a wrong value: one line and the pointer; --help still prints the whole help", function()
    local code, _, err = run({ "--budget-usd-per-day", "abc" })
    assert.are.equal(2, code)
    assert.are.equal("deepresearch-worker: --budget-usd-per-day needs a number >= 0, got abc\n" ..
      "Try 'deepresearch-worker --help'.\n", err)
    local out
    code, out = run({ "--help" })
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: deepresearch-worker", 1, true))
  end)

  -- Nothing listens on port 1: --once gives up after one lease; the start lines are written.
  local function start_lines(extra)
    local args = { "--once", "--lease", "1", "--redis-url", "redis://127.0.0.1:1/0",
      "--budget-usd-per-day", "5" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = sim.shell_quote(a) end
    local err = cli.tmp()
    os.execute(string.format("EXTRUCT_API_TOKEN=t VALYU_API_KEY=k %s %s >/dev/null 2>%s",
      WORKER, table.concat(quoted, " "), err))
    return cli.slurp(err)
  end

  it("a dollar cap on a worker whose provider bills credits says so once at start", function()
    local err = start_lines()
    local _, n = err:gsub("cannot bound extruct jobs %(billed in credits%)", "")
    assert.are.equal(1, n, err)
    assert.is_nil(start_lines({ "--provider", "valyu" }):find("cannot bound", 1, true))
  end)

  it("resume/respond of an id no queue holds says so, not 'status: ' with nothing", function()
    -- Needs a Redis that answers (the worker fixture's); the job hash does not exist.
    local fixture = require "support.worker"
    if not fixture.enabled() then
      pending("needs redis-server and lua-redis")
      return
    end
    local F = fixture.new()
    local code, _, err = run({ "resume", "nobody-here", "--redis-url", F.R.url, "--queue", "qq" })
    F:teardown()
    assert.are.equal(1, code, err)
    assert.truthy(err:find("job nobody-here is not waiting for input: queue qq has no such job",
      1, true), err)
    assert.is_nil(err:find("status: )", 1, true), err)
  end)
end)

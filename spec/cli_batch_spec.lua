-- `deepresearch --provider valyu batch ...` as a user runs it: bin/deepresearch in a subprocess
-- against the simulator, which runs fast (2000x) so that a wait takes a fraction of a second.
local sim = require "support.sim"
local support = require "support.cli"
local cjson = require("cjson").new()

local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"
local FAST, tmp, concat = support.FAST, support.tmp, support.concat

describe("deepresearch batch", function()
  local s

  -- Runs bin/deepresearch --provider valyu with argv: exit code, stdout, stderr.
  -- o.provider: another provider, or false for none; o.stdin is fed on standard input.
  local function cli(argv, o)
    o = o or {}
    local words = {}
    if o.provider ~= false then words = { "--provider", o.provider or "valyu" } end
    return support.run(s.url, concat(words, argv),
      { stdin = o.stdin, env = { DEEPRESEARCH_TTY = "0" } })
  end

  local function create(extra)
    local code, out, err = cli(concat({ "batch", "create", "--mode", "fast" }, extra or {}))
    assert.equals(0, code, err)
    local id = out:match("^(%S+)\n$")
    assert.is_string(id)
    return id
  end

  setup(function() s = sim.shared() end)
  before_each(function() s:reset{ speed = 2000 } end)
  teardown(support.cleanup)

  it("lists the batch commands in the overview and in 'batch' alone (exit 2)", function()
    local code, out = cli({ "--help" }, { provider = false })
    assert.equals(0, code)
    for _, sub in ipairs({ "create", "add", "get", "tasks", "cancel", "list", "wait" }) do
      assert.matches("batch " .. sub, out, 1, true)
    end
    local _, err
    code, _, err = cli({ "batch" })
    assert.equals(2, code)
    assert.matches("deepresearch batch add ", err, 1, true)
    code, out = cli({ "help", "batch", "add" })
    assert.equals(0, code)
    assert.matches("JSON object", out, 1, true)
  end)

  it("says a provider without batches has none (exit 2)", function()
    local code, out, err = cli({ "batch", "list" }, { provider = "extruct" })
    assert.equals(2, code)
    assert.equals("", out)
    assert.matches("'batch list' is not available for %-%-provider extruct", err)
  end)

  it("creates, adds from arguments and a file, waits (exit 1: one task failed)", function()
    -- The clock stands still while tasks are added: at 2000x the first two finish within a
    -- few real milliseconds, the batch completes, and the second add is refused. It runs
    -- again for the wait.
    s:set_speed(0)
    local id = create({ "--name", "accounts" })
    local code, out, err = cli({ "batch", "add", id, QUERY .. " one", QUERY .. " two" })
    assert.equals(0, code, err)
    assert.matches("^ID%s+STATUS%s+TASK ID\n", out)
    local file = tmp(QUERY .. " three\n\n" ..
      cjson.encode({ query = QUERY .. " four [fail]", id = "row-4" }) .. "\n")
    code, out, err = cli({ "batch", "add", id, "-f", file, "--json" })
    assert.equals(0, code, err)
    local answers = cjson.decode(out)
    assert.equals(2, #answers[1].tasks)
    s:set_speed(2000)
    code, out, err = cli(concat({ "batch", "wait", id }, FAST))
    assert.equals(1, code)
    assert.matches("status%s+completed_with_errors", out)
    assert.matches("failed%s+1", out)
    assert.matches("1 of 4 tasks failed (bin/deepresearch --provider valyu batch tasks", err, 1,
      true)
    assert.matches("batch " .. id .. ": ", err, 1, true) -- progress lines on stderr
    code, out = cli({ "batch", "tasks", id, "--status", "failed" })
    assert.equals(0, code)
    assert.matches("row%-4", out)
    code, out = cli({ "batch", "get", id, "--json" })
    assert.equals(0, code)
    assert.equals(4, cjson.decode(out).counts.total)
    code, out = cli({ "batch", "list" })
    assert.equals(0, code)
    assert.matches("^ID%s+STATUS%s+MODE%s+TASKS", out)
    assert.matches(id, out, 1, true)
    assert.matches("accounts", out)
  end)

  it("reads briefs from stdin, pages tasks with --limit, waits to exit 0", function()
    local id = create()
    local code, _, err = cli({ "batch", "add", id, "-" },
      { stdin = QUERY .. " a\n" .. QUERY .. " b\n" .. QUERY .. " c\n" })
    assert.equals(0, code, err)
    local out
    code, out = cli({ "batch", "tasks", id, "--limit", "2", "--json" })
    assert.equals(0, code)
    assert.equals(2, #cjson.decode(out))
    code, out, err = cli(concat({ "batch", "wait", id, "--json" }, FAST))
    assert.equals(0, code, err)
    assert.equals("completed", cjson.decode(out).status)
  end)

  it("cancels a batch; waiting on it then exits 1", function()
    s:reset{ speed = 1 }
    local id = create()
    assert.equals(0, (cli({ "batch", "add", id, QUERY })))
    local code, out = cli({ "batch", "cancel", id })
    assert.equals(0, code)
    assert.matches("cancelled %(1 tasks stopped%)", out)
    local _, err
    code, _, err = cli(concat({ "batch", "wait", id }, FAST))
    assert.equals(1, code)
    assert.matches("cancelled", err)
  end)

  it("refuses bad input before sending anything (exit 2)", function()
    local code, _, err = cli({ "batch", "add", "some-batch" })
    assert.equals(2, code)
    assert.matches("no briefs", err)
    local file = tmp(cjson.encode({ qurey = QUERY }) .. "\n")
    code, _, err = cli({ "batch", "add", "some-batch", "-f", file })
    assert.equals(2, code)
    assert.matches("did you mean 'query'", err)
    code, _, err = cli({ "batch", "create", "--mode", "turbo" })
    assert.equals(2, code)
    assert.matches("mode must be one of", err)
    assert.equals(0, #s:requests())
  end)

  describe("against a server whose lists are not the API's", function()
    local server
    setup(function()
      server = require("support.hostile").start([[
return function(method, path)
  local scenario, rest = path:match("^/(%w+)(/.*)$")
  local lists = {
    nulls = { '{"batches":[1,"a",null]}', '{"tasks":[null,5],"pagination":{"has_more":false}}' },
    odd = { '{"batches":[{"batch_id":"b1","status":{},"counts":{"total":"3","failed":null},' ..
      '"name":7}]}', '{"tasks":[{"deepresearch_id":7,"status":{},"query":5,' ..
      '"batch_task_id":[]}],"pagination":{"has_more":false}}' },
  }
  if rest:match("^/v1/deepresearch/batches%?") then return 200, lists[scenario][1] end
  if rest:match("/tasks") then return 200, lists[scenario][2] end
  if rest:match("/batches/b1$") then
    return 200, '{"batch_id":"b1","status":"open","counts":{"total":"3","failed":null}}'
  end
  return 404, '{"error":"not found"}'
end]])
    end)
    teardown(function() server.stop() end)

    local function on(scenario, argv)
      local url = s.url
      s = { url = server.url .. "/" .. scenario }
      local code, out, err = cli(argv)
      s = sim.shared()
      assert.equals(url, s.url)
      return code, out, err
    end

    it("entries that are not objects: invalid_response (exit 4), not a crash (70)", function()
      local code, _, err = on("nulls", { "batch", "list" })
      assert.equals(4, code, err)
      assert.matches("not an object", err)
      code, _, err = on("nulls", { "batch", "tasks", "b1" })
      assert.equals(4, code, err)
      assert.matches("not an object", err)
    end)

    it("fields of odd types print as they can, without a crash", function()
      for _, argv in ipairs{ { "batch", "list" }, { "batch", "tasks", "b1" },
        { "batch", "get", "b1" } } do
        local code, _, err = on("odd", argv)
        assert.equals(0, code, table.concat(argv, " ") .. ": " .. err)
      end
    end)
  end)
end)

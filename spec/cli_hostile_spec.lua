-- Acceptance (issue 18, review): server data of the wrong shape never makes the command print a
-- Lua value ("table: 0x...") or raise. A failed task whose failure_reason is an object, a
-- boolean or null: wait, get, report and wait ID ID say something a user can read, and exit 1.
local sim = require "support.sim"
local cli = require "support.cli"

local ID = "abcdef1234"

describe("deepresearch with a hostile server's failed task", function()
  local S
  setup(function() S = sim.start{ speed = 2000, seed = 7 } end)
  teardown(function()
    if S then S:stop() end
    cli.cleanup()
  end)

  local function serve(task)
    S:reset()
    S:fault{ method = "GET", path = "/v1/deep_research_tasks/" .. ID, status = 200,
      body = require("cjson").encode(task), count = -1 }
  end

  local function each_command(check)
    for _, argv in ipairs({
      cli.concat({ "wait", ID }, cli.FAST), { "get", ID }, { "report", ID },
      cli.concat({ "wait", ID, ID }, cli.FAST),
    }) do
      local code, out, err = cli.run(S.url, argv)
      local all = out .. err
      assert.is_nil(all:find("table: 0x", 1, true), table.concat(argv, " ") .. ": " .. all)
      assert.is_nil(all:find("traceback", 1, true), all)
      check(argv, code, all)
    end
  end

  it("a failure_reason object is shown as JSON", function()
    serve({ id = ID, status = "failed", failure_reason = { code = "boom", n = 1 } })
    each_command(function(argv, code, all)
      if argv[1] ~= "get" then assert.are.equal(1, code, all) end
      assert.truthy(all:find('"code":"boom"', 1, true), table.concat(argv, " ") .. ": " .. all)
    end)
  end)

  it("a failure_reason boolean or null prints no Lua value", function()
    for _, reason in ipairs({ true, require("cjson").null }) do
      serve({ id = ID, status = "failed", failure_reason = reason })
      each_command(function(argv, code, all)
        if argv[1] ~= "get" then assert.are.equal(1, code, all) end
        assert.is_nil(all:find("userdata", 1, true), all)
      end)
    end
  end)

  it("a Valyu task's error object is shown as JSON", function()
    S:reset()
    S:fault{ method = "GET", path = "/v1/deepresearch/tasks/" .. ID .. "/status", status = 200,
      body = require("cjson").encode({ deepresearch_id = ID, status = "failed",
        error = { code = "boom" } }), count = -1 }
    for _, argv in ipairs({ cli.concat({ "--provider", "valyu", "wait", ID }, cli.FAST),
      { "--provider", "valyu", "get", ID }, { "--provider", "valyu", "report", ID } }) do
      local _, out, err = cli.run(S.url, argv)
      local all = out .. err
      assert.is_nil(all:find("table: 0x", 1, true), table.concat(argv, " ") .. ": " .. all)
      assert.truthy(all:find('"code":"boom"', 1, true), table.concat(argv, " ") .. ": " .. all)
    end
  end)

  it("history reads a journal with fields of the wrong type without raising", function()
    local journal = cli.tmp(table.concat({
      '{"id":5,"provider":{},"state":[]}', "[]", "null",
      '{"id":"abcdef9999","provider":"extruct","created_at":1e300,"state":"done",' ..
        '"cost":{"usd":"x"},"brief_head":{"a":1}}',
      '{"id":"abcdef8888","provider":"extruct","created_at":"x","state":"unknown","cost":"x"}',
      '{"torn',
    }, "\n"))
    local code, out, err = cli.run(S.url, { "history" },
      { env = { DEEPRESEARCH_JOURNAL = journal } })
    assert.are.equal(0, code, err)
    assert.is_nil(err:find("internal error", 1, true), err)
    assert.truthy(out:find("abcdef9999", 1, true), out)
    assert.truthy(err:find("Find it with: deepresearch list --provider extruct", 1, true), err)
    assert.is_nil((out .. err):find("nil", 1, true), out .. err)
  end)
end)

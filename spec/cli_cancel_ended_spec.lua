-- Acceptance (issue 18 item 11, cancel): cancelling a task that had already ended says so and
-- exits 1; it never claims "cancelled" (OpenAI answers a cancel of a completed response with
-- the response unchanged, 200, and the command printed "cancelled: ID"). The task stays done.
local sim = require "support.sim"
local cli = require "support.cli"

local BRIEF = "We are a logistics vendor deciding on a partnership. Research Initech " ..
  "(initech.example): products, pricing and leadership over the last 12 months."

-- The command's environment for provider p = { name, VARIABLE_PREFIX } on the simulator.
local function env_for(p, url)
  return { [p[2] .. "_BASE_URL"] = url,
    [p[2] .. "_API_KEY"] = ({ openai = "openai-key", perplexity = "pplx-key",
      gemini = "gemini-key", valyu = "valyu-key" })[p[1]] }
end

describe("deepresearch cancel of a task that had ended", function()
  local S
  setup(function() S = sim.start{ speed = 5000, seed = 3 } end)
  teardown(function()
    if S then S:stop() end
    cli.cleanup()
  end)

  for _, p in ipairs({ { "openai", "OPENAI" }, { "perplexity", "PERPLEXITY" },
    { "gemini", "GEMINI" }, { "valyu", "VALYU" } }) do
    it(p[1] .. ": exit 1, 'had already ended', no 'cancelled:' line", function()
      local env = env_for(p, S.url)
      local code, out, err = cli.run(S.url, cli.concat({ "--provider", p[1], "run", BRIEF,
        "--json" }, cli.FAST), { env = env })
      assert.are.equal(0, code, err)
      local task = require("cjson").decode(out)
      local id = task.id or task.deepresearch_id
      code, out, err = cli.run(S.url, { "--provider", p[1], "cancel", id }, { env = env })
      assert.are.equal(1, code, err)
      assert.are.equal("", out)
      assert.truthy(err:find("task " .. id .. " had already ended (", 1, true), err)
      assert.truthy(err:find("nothing was cancelled", 1, true), err)
      code, out = cli.run(S.url, { "--provider", p[1], "get", id, "--json" }, { env = env })
      assert.are.equal(0, code)
      assert.are.equal("done", require("deepresearch.providers").state(
        require("cjson").decode(out)))
    end)
  end
end)

-- Issue 18 item 11: a second cancel of a cancelled task exits 0 with "already cancelled" on
-- every provider that can cancel. OpenAI answers the second cancel 200 with the response
-- unchanged, so the command reads the task before cancelling.
describe("deepresearch cancel, twice", function()
  local S
  setup(function() S = sim.start{ speed = 1, seed = 4 } end)
  teardown(function()
    if S then S:stop() end
    cli.cleanup()
  end)

  for _, p in ipairs({ { "openai", "OPENAI" }, { "perplexity", "PERPLEXITY" },
    { "gemini", "GEMINI" }, { "valyu", "VALYU" } }) do
    it(p[1] .. ": cancelled, then 'already cancelled', both exit 0", function()
      local env = env_for(p, S.url)
      local code, out, err = cli.run(S.url, { "--provider", p[1], "create", BRIEF, "--json" },
        { env = env })
      assert.are.equal(0, code, err)
      local task = require("cjson").decode(out)
      local id = task.id or task.deepresearch_id
      code, out, err = cli.run(S.url, { "--provider", p[1], "cancel", id }, { env = env })
      assert.are.equal(0, code, err)
      assert.is_nil(out:find("already", 1, true), out)
      -- Perplexity's cancel is asynchronous (it shows in_progress, then cancelled): let the
      -- simulated minute pass, then a read shows the task cancelled on every provider.
      S:advance(60)
      code, out, err = cli.run(S.url, { "--provider", p[1], "cancel", id }, { env = env })
      assert.are.equal(0, code, err)
      assert.are.equal("already cancelled: " .. id .. "\n", out)
    end)
  end
end)

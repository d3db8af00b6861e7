-- Issue 18 items 10 and 14 for the worker: the lint findings stored on a job fit its provider.
-- Extruct's account-research advice (no_target, no_context, no_decision: "say who you are and
-- what you sell") is for Extruct jobs only; a Valyu (or any other provider's) job gets the
-- findings every brief gets. Drives worker/intake.lua's lint with a store that records what
-- it is given (no Redis needed).
local intake = require "deepresearch.worker.intake"
local cjson = require("cjson").new()

-- The findings intake:lint stores for a job, as code -> severity.
local function stored(job)
  local got
  local self = {
    store = { lint = function(_, id, json) got = { id = id, json = json } return true end },
    debug = function() end,
  }
  assert(intake.lint(self, job))
  assert.are.equal(job.id, got.id)
  local codes = {}
  for _, f in ipairs(cjson.decode(got.json)) do codes[f.code] = f.severity end
  return codes
end

describe("worker lint advice per provider", function()
  local short = "Research acme.com"

  it("an Extruct job gets the account-research advice", function()
    local codes = stored({ id = "e1", brief = short, provider = "extruct" })
    assert.are.equal("warning", codes.one_liner)
    assert.are.equal("warning", codes.no_context)
    assert.are.equal("warning", codes.no_decision)
  end)

  for _, name in ipairs({ "valyu", "openai", "perplexity", "gemini" }) do
    it("a " .. name .. " job gets no Extruct advice, the common findings still", function()
      if not require("deepresearch.providers").get(name) then
        pending(name .. " is not registered")
        return
      end
      local codes = stored({ id = "v1", brief = short, provider = name })
      assert.are.equal("warning", codes.one_liner)
      assert.is_nil(codes.no_context)
      assert.is_nil(codes.no_decision)
      assert.is_nil(codes.no_target)
    end)
  end

  it("a job whose provider is unknown to the registry lints without raising", function()
    local codes = stored({ id = "x1", brief = short, provider = "nope" })
    assert.are.equal("warning", codes.one_liner)
  end)
end)

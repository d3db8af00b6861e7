-- Acceptance (issue 18, the worker; "unknown options raise"): a job's fields are checked before
-- anything is sent. An unknown field (a typo such as "depht"), options under another provider's
-- name, or provider options that are not an object dead-letter the job (parse returns nil, err
-- with err.job_id), instead of running, and billing, a different job than the producer meant.
local jobs = require "deepresearch.worker.job"
local cjson = require("cjson").new()

local BRIEF = "We are a logistics vendor deciding on a partnership. Research Initech " ..
  "(initech.example): products, pricing and leadership over the last 12 months."

local function parse(t, provider)
  return jobs.parse(cjson.encode(t), provider or "extruct")
end

describe("worker job fields", function()
  it("the documented fields parse", function()
    assert.truthy(parse({ id = "a", brief = BRIEF, depth = "high" }))
    assert.truthy(parse({ id = "b", brief = BRIEF, provider = "valyu",
      valyu = { mode = "fast" } }))
    assert.truthy(parse({ id = "c", brief = BRIEF, valyu = { mode = "fast" } }, "valyu"))
    assert.truthy(parse({ id = "d", brief = BRIEF, output_schema = { type = "object" } }))
  end)

  it("an unknown field is a dead letter naming it", function()
    local job, err = parse({ id = "t1", brief = BRIEF, depht = "xhigh" })
    assert.is_nil(job)
    assert.are.equal("invalid_request", err.code)
    assert.are.equal("t1", err.job_id)
    assert.truthy(err.message:find('"depht"', 1, true), err.message)
  end)

  it("options under another provider's name are refused with the fix", function()
    local job, err = parse({ id = "t2", brief = BRIEF, valyu = { mode = "max" } })
    assert.is_nil(job)
    assert.are.equal("t2", err.job_id)
    assert.truthy(err.message:find('add "provider": "valyu"', 1, true), err.message)
  end)

  it("provider options that are not an object are refused", function()
    for _, bad in ipairs({ "x", 7, true, { 1, 2 } }) do
      local job, err = parse({ id = "t3", brief = BRIEF, provider = "valyu", valyu = bad })
      assert.is_nil(job, tostring(bad))
      assert.are.equal("t3", err.job_id)
      assert.truthy(err.message:find("valyu must be a JSON object", 1, true), err.message)
    end
  end)
end)

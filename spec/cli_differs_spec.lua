-- Acceptance (issue 18 item 8): list's DIFFERS column tells every task of one template apart,
-- also one whose brief is wholly inside a sibling's (a blank cell told nothing); tasks with one
-- brief alone add no column.
local ids = require "deepresearch.cli.ids"
local providers = require "deepresearch.providers"

local BASE = "We are a logistics vendor deciding on a partnership. Research Initech " ..
  "(initech.example): products, pricing and leadership over the last 12 months."

local function diffs(briefs)
  local tasks = {}
  for i, b in ipairs(briefs) do tasks[i] = { id = "t" .. i, brief = b } end
  return ids.differences(providers.get("extruct"), tasks)
end

describe("list's DIFFERS column", function()
  it("a brief that a sibling extends reads '(shorter brief)', never blank", function()
    local d = assert(diffs({ BASE, BASE .. " Also the board." }))
    assert.are.equal("(shorter brief)", d[1])
    assert.are.equal("Also the board.", d[2])
  end)

  it("tasks with one brief alone add no column (their words cannot tell them apart)", function()
    assert.is_nil(diffs({ BASE, BASE, "Something else entirely, about Globex and its rivals." }))
    local d = assert(diffs({ BASE, BASE, BASE .. " Also the board." }))
    assert.are.equal("(shorter brief)", d[1])
    assert.are.equal("(shorter brief)", d[2])
  end)

  it("no column for unrelated briefs", function()
    assert.is_nil(diffs({ BASE, "Something else entirely, about Globex and its rivals." }))
  end)
end)

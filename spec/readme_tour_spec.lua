-- README "A tour": its first Lua block runs as it stands on every provider, with only the
-- provider's name changed (issue 16). The block is read from README.md, so a tour that stops
-- working on one provider fails here. The client it makes is pointed at the simulator, with
-- the simulator's key and virtual clock; nothing else in the code is touched.
local env = require "support.env"
local readme_run = require "support.readme_run"

local KEYS = { extruct = "test-token", valyu = "valyu-key", openai = "openai-key",
  perplexity = "pplx-key", gemini = "gemini-key" }

local function tour_code()
  local f = assert(io.open("README.md", "r"))
  local text = f:read("*a")
  f:close()
  local from = assert(text:find("\n## A tour\n", 1, true), "README has its tour")
  local code = text:match("```lua\n(.-)\n```", from)
  return assert(code, "the tour has a Lua block")
end

-- Runs code against the simulator s with name's key (support.readme_run); what it printed.
local function run(code, s, name) return readme_run(code, s, KEYS[name], "=README tour") end

describe("README tour", function()
  local s
  setup(function() s = env.sim() end)

  local code = tour_code()
  it("names the provider once, as provider = \"extruct\"", function()
    local _, n = code:gsub('provider = "extruct"', "")
    assert.equals(1, n)
  end)

  for _, name in ipairs({ "extruct", "valyu", "openai", "perplexity", "gemini" }) do
    it("runs unchanged with provider = \"" .. name .. "\"", function()
      local mine = code:gsub('provider = "extruct"', 'provider = "' .. name .. '"')
      local printed = run(mine, s, name)
      local joined = table.concat(printed, "\n")
      -- r.state, #r.sources and the cost, then the rendered report with its footnotes.
      assert.truthy(joined:find("\ndone\t%d+\t", 1) or joined:find("^done\t%d+\t"),
        "the result line says done: " .. joined:sub(1, 400))
      assert.truthy(joined:find("%[%^%d+%]:"), "the report has footnotes: " .. joined:sub(1, 600))
      assert.truthy(#printed >= 3)
    end)
  end
end)

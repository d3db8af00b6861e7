-- README "A tour": its first Lua block runs as it stands on every provider, with only the
-- provider's name changed (issue 16). The block is read from README.md, so a tour that stops
-- working on one provider fails here. The client it makes is pointed at the simulator, with
-- the simulator's key and virtual clock; nothing else in the code is touched.
local dr = require "deepresearch"
local env = require "support.env"

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

-- Runs code with require "deepresearch" answering a front whose client() adds the simulator's
-- base URL, key and clock; returns what it printed.
local function run(code, s, name)
  local printed = {}
  local front = setmetatable({
    client = function(o)
      local opts = {}
      for k, v in pairs(o or {}) do opts[k] = v end
      opts.base_url, opts.token, opts.clock = s.url, KEYS[name], env.virtual_clock(s)
      return dr.client(opts)
    end,
  }, { __index = dr })
  local sandbox = setmetatable({
    require = function(m) if m == "deepresearch" then return front end return require(m) end,
    print = function(...)
      local parts = {}
      for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
      printed[#printed + 1] = table.concat(parts, "\t")
    end,
  }, { __index = _G })
  local chunk
  local set_env = rawget(_G, "setfenv") -- Lua 5.1 and LuaJIT: load takes no environment
  if set_env then
    chunk = assert(rawget(_G, "loadstring")(code, "=README tour"))
    set_env(chunk, sandbox)
  else
    chunk = assert(load(code, "=README tour", "t", sandbox))
  end
  chunk()
  return printed
end

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

-- Runs a Lua block from README (or docs/) as it stands: require "deepresearch" answers a
-- front whose client() adds the simulator's base URL, a key and its virtual clock; print is
-- captured. Nothing else in the code is touched. Shared by readme_tour_spec and docs_spec.
local dr = require "deepresearch"
local env = require "support.env"

--- run(code, s, token, chunkname) -> the lines printed (each print's values, tab-joined).
return function(code, s, token, chunkname)
  local printed = {}
  local front = setmetatable({
    client = function(o)
      local opts = {}
      for k, v in pairs(o or {}) do opts[k] = v end
      opts.base_url, opts.token, opts.clock = s.url, token, env.virtual_clock(s)
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
    chunk = assert(rawget(_G, "loadstring")(code, chunkname))
    set_env(chunk, sandbox)
  else
    chunk = assert(load(code, chunkname, "t", sandbox))
  end
  chunk()
  return printed
end

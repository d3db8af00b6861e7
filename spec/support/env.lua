-- What every client spec needs: the shared simulator and clients bound to it
-- whose clock is the simulator's (sleeping advances virtual time, never real time).
local sim = require "support.sim"
local dr = require "deepresearch"

local M = {}

function M.sim()
  return sim.shared()
end

--- A clock whose sleep advances the simulator; records every sleep.
function M.virtual_clock(s)
  local c = { t = 0, sleeps = {} }
  c.now = function() return c.t end
  c.sleep = function(sec)
    c.sleeps[#c.sleeps + 1] = sec
    c.t = c.t + sec
    s:advance(sec)
    return true
  end
  return c
end

--- A client on the simulator. opts override; token defaults to the built-in test token.
function M.client(s, opts)
  opts = opts or {}
  local o = { base_url = s.url, token = "test-token", clock = M.virtual_clock(s), timeout = 10 }
  for k, v in pairs(opts) do o[k] = v end
  return dr.client(o), o.clock
end

--- For a provider's client spec: resets the simulator, sets its `provider` section to config
-- (e.g. { time_scale = 0.05 }) and returns a client of that provider on it (no Extruct token,
-- short retry delays; opts override) and its clock.
function M.provider_client(s, provider, config, opts)
  s:reset()
  s:config{ [provider] = config }
  local o = { provider = provider, token = false, base_delay = 0.01 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return M.client(s, o)
end

--- Requests the simulator logged whose "METHOD path" matches a Lua pattern.
function M.count_requests(s, pattern)
  local n = 0
  for _, r in ipairs(s:requests()) do
    if (r.method .. " " .. (r.route or r.path)):match(pattern) then n = n + 1 end
  end
  return n
end

M.BRIEF = "We sell freight-visibility software to mid-market logistics firms. Research Flexport " ..
  "(flexport.com): their current tooling, leadership changes and public statements in the last " ..
  "12 months, so we can decide whether to pitch them this quarter."

return M

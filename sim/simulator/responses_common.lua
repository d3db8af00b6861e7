-- luacheck: std lua54
-- Pieces the two Responses-shaped simulators share (simulator.openai, simulator.perplexity):
-- Unix times on the virtual clock, hex ids, bearer keys, per-key request windows, and the one
-- /v1/responses route both providers answer (OpenAI's, and Perplexity's alias of /v1/agent).
local clock = require "simulator.clock"

local M = {}

--- Unix seconds of virtual time t (integer).
function M.unix(t)
  return clock.EPOCH + math.floor(t)
end

--- n lowercase hex digits from the app's seeded RNG.
function M.hex(app, n)
  local out = {}
  for i = 1, n do out[i] = string.format("%x", app:random(0, 15)) end
  return table.concat(out)
end

--- The bearer key of a request, or nil (missing header or another scheme).
function M.bearer(req)
  local h = req.headers.authorization
  return h and h:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)%s*$")
end

--- Whole seconds as a Go duration ("0s", "12s", "6m0s"): OpenAI's x-ratelimit-reset-* form.
function M.go_duration(s)
  s = math.max(0, math.ceil(s))
  if s < 60 then return s .. "s" end
  return string.format("%dm%ds", s // 60, s % 60)
end

--- A sliding window of `period` virtual seconds: records `now` unless full.
-- Returns allowed, used (after this request), seconds until the oldest entry leaves.
function M.take(window, now, limit, period)
  local n, j = #window, 0
  for k = 1, n do
    if window[k] > now - period then j = j + 1; window[j] = window[k] end
  end
  for k = j + 1, n do window[k] = nil end
  local wait = window[1] and (window[1] + period - now) or 0
  if #window >= limit then return false, #window, wait end
  window[#window + 1] = now
  return true, #window, window[1] + period - now
end

--- Registers one handler per method and pattern that several providers share: the first
-- claimant whose owns(req) is true answers; else the one registered without owns (the default).
function M.route(app, method, pattern, handler, owns)
  app.shared_routes = app.shared_routes or {}
  local id = method .. " " .. pattern
  local list = app.shared_routes[id]
  if not list then
    list = {}
    app.shared_routes[id] = list
    app:route(method, pattern, function(req)
      local fallback
      for _, e in ipairs(list) do
        if e.owns and e.owns(req) then return e.handler(req) end
        if not e.owns then fallback = fallback or e.handler end
      end
      if fallback then return fallback(req) end
      return list[1].handler(req)
    end)
  end
  list[#list + 1] = { handler = handler, owns = owns }
end

--- A deep copy of a JSON-like value.
function M.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.copy(x) end
  return out
end

--- Rounds to `d` decimals (prices).
function M.round(x, d)
  local f = 10 ^ (d or 5)
  return math.floor(x * f + 0.5) / f
end

--- Character (code point) length of a UTF-8 string: OpenAI's offsets count characters.
function M.chars(s)
  return utf8.len(s) or #s
end

return M

-- luacheck: std lua54
-- Virtual time: seconds since the simulator epoch (2026-01-01T00:00:00Z), running at `speed`
-- virtual seconds per real second. Speed 0 freezes it; the control channel advances it.
-- Time never goes backwards: lifecycles are settled lazily up to "now" and cannot be rewound.
local socket = require "socket"

local M = {}

local Clock = {}
Clock.__index = Clock

M.EPOCH = 1767225600 -- 2026-01-01T00:00:00Z as a Unix time

function M.new(speed, realtime)
  local clock = setmetatable({ realtime = realtime or socket.gettime }, Clock)
  clock:reset(speed)
  return clock
end

function Clock:reset(speed)
  self.base = 0
  self.anchor = self.realtime()
  self.speed = speed or 1
end

function Clock:now()
  if self.speed == 0 then return self.base end
  return self.base + (self.realtime() - self.anchor) * self.speed
end

-- Re-anchors so a later speed change does not rewrite the past.
function Clock:rebase()
  self.base = self:now()
  self.anchor = self.realtime()
end

function Clock:advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then return nil, "advance must be a number >= 0" end
  self:rebase()
  self.base = self.base + seconds
  return self.base
end

function Clock:set(t)
  if type(t) ~= "number" then return nil, "set must be a number" end
  self:rebase()
  if t < self.base then return nil, "the clock cannot go backwards (now " .. self.base .. ")" end
  self.base = t
  return t
end

function Clock:set_speed(speed)
  if type(speed) ~= "number" or speed < 0 then return nil, "speed must be a number >= 0" end
  self:rebase()
  self.speed = speed
  return speed
end

--- ISO-8601 UTC of virtual time t; ms=true adds milliseconds ("...00.000Z").
function M.iso(t, ms)
  local whole = math.floor(t)
  local s = os.date("!%Y-%m-%dT%H:%M:%S", M.EPOCH + whole)
  if ms then
    return string.format("%s.%03dZ", s, math.min(999, math.floor((t - whole) * 1000 + 0.5)))
  end
  return s .. "Z"
end

return M

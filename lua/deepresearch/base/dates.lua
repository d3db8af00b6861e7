-- Dates the servers send: ISO 8601 timestamps and HTTP-dates, as epoch seconds. Pure Lua.
local M = {}

--- Seconds since the epoch of a UTC calendar time, whatever the local zone.
function M.utc_epoch(t)
  local here = os.time(t)
  return here + (here - os.time(os.date("!*t", here)))
end

--- Parses an ISO-8601 date-time ("2026-11-23T19:00:00.123Z", "+02:00" offsets) to epoch seconds.
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, rest =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local t = M.utc_epoch({ year = tonumber(y), month = tonumber(mo), day = tonumber(d),
    hour = tonumber(h), min = tonumber(mi), sec = tonumber(sec), isdst = false })
  local frac = rest:match("^%.(%d+)")
  if frac then t = t + tonumber("0." .. frac) end
  local sign, oh, om = rest:match("([%+%-])(%d%d):?(%d%d)$")
  if sign then
    local off = tonumber(oh) * 3600 + tonumber(om) * 60
    t = sign == "+" and t - off or t + off
  end
  return t
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Parses an HTTP-date ("Sun, 06 Nov 1994 08:49:37 GMT") to epoch seconds.
function M.parse_http_date(value)
  if type(value) ~= "string" then return nil end
  local d, mon, y, h, mi, s = value:match("(%d+)%s+(%a%a%a)%s+(%d%d%d%d)%s+(%d+):(%d+):(%d+)%s+GMT")
  if not d or not MONTHS[mon] then return nil end
  return M.utc_epoch({ year = tonumber(y), month = MONTHS[mon], day = tonumber(d),
    hour = tonumber(h), min = tonumber(mi), sec = tonumber(s), isdst = false })
end

return M

-- Checks run before anything is sent. A wrong Lua type is a programming error
-- and raises; a bad value is the caller's input and returns nil, err.
local errors = require "deepresearch.base.errors"
local utf8 = require "deepresearch.base.utf8"

local M = {}

--- Raises a luaL_argerror-style error at the caller of the public method.
function M.argerror(fname, n, msg)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

function M.type(fname, n, v, want, optional)
  if v == nil and optional then return end
  if type(v) ~= want then
    error(string.format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, want,
      v == nil and "no value" or type(v)), 3)
  end
end

--- A text field counted in UTF-8 characters, 1..max.
function M.text(name, s, max)
  local n, pos = utf8.len(s)
  if not n then
    return nil, errors.invalid(string.format("%s is not valid UTF-8 (byte %d)", name, pos),
      { field = name })
  end
  if s:find("^%s*$") then
    return nil, errors.invalid(name .. " must not be empty", { field = name })
  end
  if n > max then
    return nil, errors.invalid(string.format("%s is %d characters long; the limit is %d", name, n,
      max),
      { field = name })
  end
  return true
end

function M.enum(name, v, allowed)
  for _, a in ipairs(allowed) do
    if v == a then return true end
  end
  return nil, errors.invalid(string.format("%s must be one of %s, got %q", name,
    table.concat(allowed, ", "), tostring(v)), { field = name })
end

-- Hosts where a plain http:// webhook is allowed: this machine only (the real APIs refuse
-- plain http; a local receiver, as in the specs, never leaves the host).
local LOOPBACK = { ["127.0.0.1"] = true, localhost = true, ["::1"] = true }

--- A webhook URL: https, or http to a loopback host (127.0.0.1, localhost, [::1]).
function M.webhook_url(name, url)
  local scheme, authority = tostring(url):match("^(%a[%w+.-]*)://([^/?#]*)")
  scheme = scheme and scheme:lower()
  local host = authority and authority:gsub("^.*@", "")
  host = host and (host:match("^%[(.-)%]") or host:match("^[^:]*"))
  if scheme == "https" and host and host ~= "" then return true end
  if scheme == "http" and host and LOOPBACK[host:lower()] then return true end
  return nil, errors.invalid(string.format("%s must be an https URL (plain http only for " ..
    "127.0.0.1, localhost or [::1]), got %q", name, tostring(url)), { field = name })
end

--- Task ids: non-empty strings without control characters.
function M.id(fname, id)
  if type(id) == "table" then id = id.id or id.deepresearch_id end
  M.type(fname, 1, id, "string")
  if id == "" then return nil, errors.invalid("task id must not be empty", { field = "id" }) end
  if id:find("%c") then
    return nil, errors.invalid("task id contains control characters", { field = "id" })
  end
  return id
end

local function nonneg_int(name, v, min)
  if v == nil then return true end
  if type(v) ~= "number" then
    error(string.format("bad option '%s' (number expected, got %s)", name, type(v)), 4)
  end
  if v % 1 ~= 0 or v < (min or 0) or v ~= v then
    return nil, errors.invalid(string.format("%s must be an integer >= %d, got %s", name, min or 0,
      tostring(v)), { field = name })
  end
  return true
end
M.nonneg_int = nonneg_int

--- offset/limit options of list calls.
function M.page(opts, max_limit)
  if opts == nil then return true end
  local ok, err = nonneg_int("offset", opts.offset)
  if not ok then return nil, err end
  ok, err = nonneg_int("limit", opts.limit)
  if not ok then return nil, err end
  if max_limit and opts.limit and opts.limit > max_limit then
    return nil, errors.invalid(string.format("limit must be at most %d", max_limit),
      { field = "limit" })
  end
  return true
end

return M

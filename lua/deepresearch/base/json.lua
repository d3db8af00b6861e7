-- JSON encoding for request bodies and schemas, in pure Lua (runs on 5.1-5.4, LuaJIT).
-- Why not cjson.encode: Debian's lua-cjson 2.1.0 encodes an empty table as {} and has no
-- empty_array, and its key order is unstable. Bodies are small, so clarity wins over speed.
local M = {}

local array_mt = { __name = "deepresearch.array" }
-- The C core gives decoded empty arrays this metatable too (init.lua hands it over).
M.array_mt = array_mt
local null = setmetatable({}, { __name = "deepresearch.null", __tostring = function() return "null" end })
M.null = null

-- Keys whose value is always a JSON array, even when the Lua table is empty.
local ARRAY_KEYS = {
  required = true, enum = true, criteria = true, data_sources = true, exclude_domains = true,
  exclude_task_ids = true, output_formats = true, urls = true, files = true, deliverables = true,
  mcp_servers = true, previous_reports = true, columns = true, anyOf = true, oneOf = true, allOf = true,
  included_sources = true, excluded_sources = true, allowed_tools = true, prefixItems = true, examples = true,
}
M.ARRAY_KEYS = ARRAY_KEYS

--- Marks a table as a JSON array so that it encodes as [] when empty.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array_marked(t)
  return getmetatable(t) == array_mt
end

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end
M.quote = quote

--- Whether v is JSON null: json.null, or cjson.null (a NULL light userdata, which
-- LuaJIT prints as NULL).
function M.is_null(v)
  if v == null then return true end
  if type(v) ~= "userdata" then return false end
  local s = tostring(v)
  return s == "userdata: (nil)" or s == "userdata: NULL" or s == "userdata: 0x0"
end

-- A table is a sequence when its keys are exactly 1..n.
local function sequence_length(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then return nil end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then return nil end
  end
  return n
end

--- Whether t's keys are exactly 1..n (an empty table counts).
function M.is_sequence(t)
  return sequence_length(t) ~= nil
end

local encode_value

local function encode_table(t, as_array, out, depth)
  if depth > 64 then error("json: nesting deeper than 64 levels", 0) end
  local n = sequence_length(t)
  if n and (n > 0 or as_array or M.is_array_marked(t)) then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], false, out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("json: object keys must be strings, got " .. type(k), 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = quote(k)
    out[#out + 1] = ":"
    encode_value(t[k], ARRAY_KEYS[k], out, depth + 1)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, as_array, out, depth)
  local tv = type(v)
  if v == null or v == nil then
    out[#out + 1] = "null"
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      error("json: cannot encode " .. tostring(v), 0)
    end
    if v % 1 == 0 and v > -2^53 and v < 2^53 then
      out[#out + 1] = string.format("%d", v)
    else
      -- the shortest of %.14g / %.17g that reads back as v: 0.1 stays 0.1
      local text = string.format("%.14g", v)
      if tonumber(text) ~= v then text = string.format("%.17g", v) end
      out[#out + 1] = text
    end
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "table" then
    if type(v.json_value) == "function" then v = v:json_value() end
    encode_table(v, as_array, out, depth)
  elseif M.is_null(v) then
    out[#out + 1] = "null" -- cjson.null
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

--- Encodes a Lua value as JSON text with sorted object keys (same value, same bytes).
-- Raises on values JSON cannot hold; callers validating user input use pcall.
function M.encode(v)
  local out = {}
  encode_value(v, false, out, 0)
  return table.concat(out)
end

return M

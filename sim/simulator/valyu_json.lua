-- JSON text for the Valyu simulator's responses.
-- Why not let the app encode tables with cjson: Debian's lua-cjson 2.1.0 turns an empty table into
-- {} (so `images: []` would come out as an object) and its key order follows the hash table, so the
-- same status body could change bytes, and its weak ETag, between two polls. Here arrays are marked,
-- object keys are sorted, and the same value always gives the same bytes.
local M = {}

local array_mt = { __name = "valyu.array" }
local null_value = {} -- replaced by the app's null in set_null

--- Tells the encoder which value stands for JSON null (the app's `app.null`).
function M.set_null(v)
  if v ~= nil then null_value = v end
end

-- Keys whose value is a JSON array even when empty, in tables we did not build (a caller's JSON
-- schema echoed back in output_formats).
local ARRAY_KEYS = {
  required = true, enum = true, anyOf = true, oneOf = true, allOf = true, prefixItems = true,
  examples = true,
}

--- Marks t (or a new table) as a JSON array: it encodes as [] when empty.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
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

local encode_value

local function encode_table(t, as_array, out)
  local n = sequence_length(t)
  if n and (n > 0 or as_array or getmetatable(t) == array_mt) then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], false, out)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = quote(k)
    out[#out + 1] = ":"
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end
    encode_value(v, ARRAY_KEYS[k], out)
  end
  out[#out + 1] = "}"
end

encode_value = function(v, as_array, out)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
      out[#out + 1] = string.format("%d", v)
    else
      -- %.14g keeps 0.1 as 0.1 (not 0.10000000000000001).
      out[#out + 1] = string.format("%.14g", v)
    end
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "table" and v ~= null_value then
    encode_table(v, as_array, out)
  else
    out[#out + 1] = "null" -- nil, cjson.null, app.null
  end
end

--- Encodes v as JSON text with sorted object keys.
function M.encode(v)
  local out = {}
  encode_value(v, false, out)
  return table.concat(out)
end

--- True for the values a JSON decoder uses for null (nil, cjson.null lightuserdata, app.null).
function M.is_null(v)
  return v == nil or v == null_value or type(v) == "userdata"
end

--- A 64-bit hash of s as 16 hex digits (two 32-bit polynomial hashes; enough for an ETag).
function M.hash(s)
  local a, b = 5381, 2166136261
  for i = 1, #s do
    local c = s:byte(i)
    a = (a * 33 + c) % 4294967296
    b = (b * 16777619 + c + i) % 4294967296
  end
  return string.format("%08x%08x", a, b)
end

return M

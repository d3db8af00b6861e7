-- JSON encoding for request bodies and schemas, in pure Lua (runs on 5.1-5.4, LuaJIT).
-- Why not cjson.encode: Debian's lua-cjson 2.1.0 encodes an empty table as {} and has no
-- empty_array, and its key order is unstable. Bodies are small, so clarity wins over speed.
local M = {}

local array_mt = { __name = "deepresearch.array" }
-- The C core gives decoded empty arrays this metatable too (init.lua hands it over).
M.array_mt = array_mt
local null = setmetatable({}, { __name = "deepresearch.null",
  __tostring = function() return "null" end })
M.null = null

-- Keys whose value is always a JSON array, even when the Lua table is empty: request fields and
-- JSON Schema keywords (for bodies built in Lua), and answer fields (for tasks printed by the
-- CLI: a decoder without empty-array marks cannot tell [] from {}). The one list: the CLI's
-- --json printer reads it too.
local ARRAY_KEYS = {
  required = true, enum = true, criteria = true, data_sources = true, exclude_domains = true,
  exclude_task_ids = true, output_formats = true, urls = true, files = true, deliverables = true,
  mcp_servers = true, previous_reports = true, columns = true, anyOf = true, oneOf = true,
  allOf = true,
  included_sources = true, excluded_sources = true, allowed_tools = true, prefixItems = true,
  examples = true,
  sources = true, degradation_reasons = true, messages = true, results = true, images = true,
  hitl_history = true, errors = true, tasks = true,
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

-- Decoding ---------------------------------------------------------------------------------------
-- The one shape every decoded value takes, whoever decoded it (this decoder, lua-cjson, vim.json):
-- objects lose their null keys (null means "absent"), a null inside an array is json.null (so the
-- array keeps its length), integral numbers are integers (25.0 -> 25 on Lua 5.3+), and empty
-- arrays carry json.array_mt, so encoding a decoded task back writes [] and {} as they came.

local tointeger = math.tointeger -- luacheck: ignore (nil before Lua 5.3)

local function integral(n)
  if tointeger and n % 1 == 0 then return tointeger(n) or n end
  return n
end

--- Gives a value decoded elsewhere the shape above. null: the decoder's null sentinel
-- (cjson.null and json.null are always recognised; pass vim.NIL for vim.json).
function M.normalise(v, null_value)
  local tv = type(v)
  if tv == "number" then return integral(v) end
  if tv ~= "table" then return v end
  local mt = getmetatable(v)
  local n = sequence_length(v)
  local out = {}
  if n and n > 0 then
    for i = 1, n do
      local x = v[i]
      if x == null_value or M.is_null(x) then
        out[i] = null
      else
        out[i] = M.normalise(x, null_value)
      end
    end
  else
    for k, x in pairs(v) do
      if x ~= null_value and not M.is_null(x) then out[k] = M.normalise(x, null_value) end
    end
  end
  if mt == array_mt then setmetatable(out, array_mt) end
  return out
end

local function fail(pos, what)
  error({ json_error = string.format("%s at character %d", what, pos) }, 0)
end

local function skip(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local ESCAPE = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r',
  t = '\t' }

local function utf8_char(c)
  if c < 0x80 then return string.char(c) end
  if c < 0x800 then return string.char(0xC0 + math.floor(c / 0x40), 0x80 + c % 0x40) end
  if c < 0x10000 then
    return string.char(0xE0 + math.floor(c / 0x1000), 0x80 + math.floor(c / 0x40) % 0x40,
      0x80 + c % 0x40)
  end
  return string.char(0xF0 + math.floor(c / 0x40000), 0x80 + math.floor(c / 0x1000) % 0x40,
    0x80 + math.floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
end

local function decode_string(text, pos)
  local parts, i = {}, pos + 1
  while true do
    local j = text:find('["\\%c]', i)
    if not j then fail(pos, "unterminated string") end
    parts[#parts + 1] = text:sub(i, j - 1)
    local c = text:sub(j, j)
    if c == '"' then return table.concat(parts), j + 1 end
    if c ~= "\\" then fail(j, "control character in string") end
    local e = text:sub(j + 1, j + 1)
    if ESCAPE[e] then
      parts[#parts + 1] = ESCAPE[e]
      i = j + 2
    elseif e == "u" then
      local hex = text:match("^%x%x%x%x", j + 2)
      if not hex then fail(j, "bad \\u escape") end
      local code = tonumber(hex, 16)
      i = j + 6
      if code >= 0xD800 and code <= 0xDBFF then
        local low = text:match("^\\u([dD][c-fC-F]%x%x)", i)
        if not low then fail(j, "lone surrogate") end
        code = 0x10000 + (code - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
        i = i + 6
      elseif code >= 0xDC00 and code <= 0xDFFF then
        fail(j, "lone surrogate")
      end
      parts[#parts + 1] = utf8_char(code)
    else
      fail(j, "bad escape")
    end
  end
end

local decode_at

local function decode_array(text, pos, depth)
  local out, n = {}, 0
  pos = skip(text, pos + 1)
  if text:sub(pos, pos) == "]" then return setmetatable(out, array_mt), pos + 1 end
  while true do
    local v
    v, pos = decode_at(text, pos, depth)
    n = n + 1
    if v == nil then out[n] = null else out[n] = v end
    pos = skip(text, pos)
    local c = text:sub(pos, pos)
    if c == "]" then return out, pos + 1 end
    if c ~= "," then fail(pos, "expected ',' or ']'") end
    pos = skip(text, pos + 1)
  end
end

local function decode_object(text, pos, depth)
  local out = {}
  pos = skip(text, pos + 1)
  if text:sub(pos, pos) == "}" then return out, pos + 1 end
  while true do
    if text:sub(pos, pos) ~= '"' then fail(pos, "expected a string key") end
    local k
    k, pos = decode_string(text, pos)
    pos = skip(text, pos)
    if text:sub(pos, pos) ~= ":" then fail(pos, "expected ':'") end
    local v
    v, pos = decode_at(text, skip(text, pos + 1), depth)
    out[k] = v -- nil for null: the key is absent
    pos = skip(text, pos)
    local c = text:sub(pos, pos)
    if c == "}" then return out, pos + 1 end
    if c ~= "," then fail(pos, "expected ',' or '}'") end
    pos = skip(text, pos + 1)
  end
end

local LITERALS = { t = { "true", true }, f = { "false", false }, n = { "null", nil } }

-- Returns the value at pos (nil for null) and the position after it.
decode_at = function(text, pos, depth)
  if depth > 200 then fail(pos, "nesting deeper than 200 levels") end
  local c = text:sub(pos, pos)
  if c == "{" then return decode_object(text, pos, depth + 1) end
  if c == "[" then return decode_array(text, pos, depth + 1) end
  if c == '"' then return decode_string(text, pos) end
  local lit = LITERALS[c]
  if lit then
    if text:sub(pos, pos + #lit[1] - 1) ~= lit[1] then fail(pos, "unexpected character") end
    return lit[2], pos + #lit[1]
  end
  local i = c == "-" and pos + 1 or pos
  local digits = text:match("^0", i) or text:match("^[1-9]%d*", i)
  if not digits then fail(pos, c == "" and "unexpected end of text" or "unexpected character") end
  i = i + #digits
  i = i + #(text:match("^%.%d+", i) or "")
  i = i + #(text:match("^[eE][-+]?%d+", i) or "")
  local num = text:sub(pos, i - 1)
  return integral(tonumber(num)), pos + #num
end

--- Decodes JSON text into the shape above. Pure Lua (no core, no lua-cjson): job text from
-- Redis and report files are read the same way on any Lua. Returns the value, or nil, message.
function M.decode(text)
  if type(text) ~= "string" then return nil, "JSON text must be a string, got " .. type(text) end
  local ok, v, pos = pcall(decode_at, text, skip(text, 1), 0)
  if not ok then
    if type(v) == "table" and v.json_error then return nil, v.json_error end
    error(v, 0)
  end
  pos = skip(text, pos)
  if pos <= #text then
    return nil, string.format("unexpected text after the value at character %d", pos)
  end
  if v == nil then return null end
  return v
end

--- A server value shown in a message: a string or number as is, an object or array as compact
-- JSON, default for nil/null, anything else by its JSON type. Server data of the wrong shape
-- never prints as a Lua value ("table: 0x55e9...").
function M.shown(v, default)
  if type(v) == "string" and v ~= "" then return v end
  if type(v) == "number" then return tostring(v) end
  if v == nil or M.is_null(v) then return default end
  if type(v) == "table" then
    local ok, text = pcall(M.encode, v)
    if ok then return text end
  end
  return "(a JSON " .. type(v) .. ")"
end

return M

-- JSON text for the Valyu simulator's responses, written for the simulator alone: it must never
-- share encoding code with the client it tests (docs/simulator.md), or a bug in one would hide in
-- both. Why not the app's cjson: Debian's lua-cjson 2.1.0 turns an empty table into {} (so
-- `images: []` would come out as an object) and its key order follows the hash table, so the
-- same status body could change bytes, and its weak ETag, between two polls. Keys come sorted.
local M = {}

local array_mt = { __name = "simulator.valyu_json.array" }
local null = setmetatable({}, {
  __name = "simulator.valyu_json.null",
  __tostring = function() return "null" end,
})
M.null = null

-- What the simulator echoes back was decoded by cjson, which gives [] and {} the same empty
-- table. These keys always hold arrays where Valyu answers with them: JSON Schema's array
-- keywords (the schema echoed in output_formats), the status body's lists, the HITL payloads
-- and the answers kept in hitl_history (contract B.8), a batch's echoed search source lists.
local ARRAY_KEYS = {
  required = true, enum = true, anyOf = true, oneOf = true, allOf = true, prefixItems = true,
  examples = true, output_formats = true, sources = true, messages = true, images = true,
  deliverables = true, hitl_history = true, answers = true, included_domains = true,
  excluded_domains = true, included_sources = true, excluded_sources = true, questions = true,
  domains = true, research_areas = true, sections = true, batches = true, data_series = true,
}

--- Marks t (or a new table) as a JSON array: it encodes as [] when empty.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return getmetatable(t) == array_mt
end

--- Kept for the app's null (cjson.null), which the encoder writes as null.
function M.set_null(v)
  M.app_null = v
end

--- True for the values a JSON decoder uses for null (nil, cjson.null, app.null, M.null).
function M.is_null(v)
  return v == nil or v == null or v == M.app_null or type(v) == "userdata"
end

local ESCAPES = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- n when t's keys are exactly 1..n (0 for an empty table), else nil.
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

local function number_text(v)
  if v ~= v or v == math.huge or v == -math.huge then
    error("valyu_json: cannot encode " .. tostring(v), 0)
  end
  if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then return string.format("%d", v) end
  -- the shortest of %.14g / %.17g that reads back as v: 0.1 stays 0.1
  local text = string.format("%.14g", v)
  if tonumber(text) ~= v then text = string.format("%.17g", v) end
  return text
end

local write

local function write_table(t, as_array, out, depth)
  if depth > 64 then error("valyu_json: nesting deeper than 64 levels", 0) end
  local n = sequence_length(t)
  if n and (n > 0 or as_array or M.is_array(t)) then
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      write(t[i], false, out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("valyu_json: object keys must be strings, got " .. type(k), 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = quote(k)
    out[#out + 1] = ":"
    write(t[k], ARRAY_KEYS[k], out, depth + 1)
  end
  out[#out + 1] = "}"
end

write = function(v, as_array, out, depth)
  local tv = type(v)
  if tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "number" then
    out[#out + 1] = number_text(v)
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif M.is_null(v) then
    out[#out + 1] = "null"
  elseif tv == "table" then
    write_table(v, as_array, out, depth)
  else
    error("valyu_json: cannot encode a " .. tv, 0)
  end
end

--- Encodes v as JSON text with sorted object keys: the same value, the same bytes.
function M.encode(v)
  local out = {}
  write(v, false, out, 0)
  return table.concat(out)
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

-- JSON text for the Valyu simulator's responses: the project's sorted-key encoder
-- (lua/deepresearch/json.lua). Why not cjson: Debian's lua-cjson 2.1.0 turns an empty table
-- into {} (so `images: []` would come out as an object) and its key order follows the hash
-- table, so the same status body could change bytes, and its weak ETag, between two polls.
local base = require "deepresearch.json"

local M = {}

--- Marks t (or a new table) as a JSON array: it encodes as [] when empty.
M.array = base.array
M.is_array = base.is_array_marked
M.null = base.null

--- Kept for the app's null (cjson.null), which the encoder already writes as null.
function M.set_null(v)
  M.app_null = v
end

--- Encodes v as JSON text with sorted object keys: the same value, the same bytes.
M.encode = base.encode

--- True for the values a JSON decoder uses for null (nil, cjson.null, app.null).
function M.is_null(v)
  return v == nil or v == M.app_null or base.is_null(v) or type(v) == "userdata"
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

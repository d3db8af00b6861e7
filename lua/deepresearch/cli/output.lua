-- What the command prints on stdout: aligned tables, key/value summaries, JSON.
local json = require "deepresearch.base.json"
local is_sequence = json.is_sequence
local quote = json.quote
local M = {}

local function columns(s)
  local _, cont = s:gsub("[\128-\191]", "")
  return #s - cont
end
M.columns = columns

--- s cut to at most `width` characters (UTF-8 aware), with "…" when cut.
function M.clip(s, width)
  s = tostring(s or "")
  if columns(s) <= width then return s end
  local out, n = {}, 0
  for ch in s:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
    if n >= width - 1 then break end
    out[#out + 1] = ch
    n = n + 1
  end
  return table.concat(out) .. "…"
end

--- The first `n` words of a text on one line.
function M.first_words(text, n, width)
  local words = {}
  for w in tostring(text or ""):gmatch("%S+") do
    words[#words + 1] = w
    if #words >= n then break end
  end
  local s = table.concat(words, " ")
  if #words >= n then s = s .. " …" end
  return width and M.clip(s, width) or s
end

--- Writes rows under headers, columns padded to their widest cell; the last column is not padded.
function M.table(stream, headers, rows)
  local widths = {}
  for i, h in ipairs(headers) do widths[i] = columns(h) end
  for _, row in ipairs(rows) do
    for i = 1, #headers do
      row[i] = tostring(row[i] == nil and "" or row[i])
      widths[i] = math.max(widths[i], columns(row[i]))
    end
  end
  local function line(cells)
    local out = {}
    for i = 1, #headers do
      local c = cells[i]
      out[i] = i < #headers and (c .. string.rep(" ", widths[i] - columns(c))) or c
    end
    stream:write((table.concat(out, "  "):gsub("%s+$", "")), "\n")
  end
  line(headers)
  for _, row in ipairs(rows) do line(row) end
end

--- Writes "key   value" lines for the fields that are present.
function M.fields(stream, list)
  local w = 0
  -- A server's value of an unexpected type (a failure object, a JSON null) is shown as compact
  -- JSON or left out, never as "table: 0x...".
  local shown = {}
  for i, kv in ipairs(list) do
    local v = kv[2]
    if v ~= nil and json.is_null(v) then v = nil end
    if type(v) == "table" then
      local ok, s = pcall(json.encode, v)
      v = ok and s or nil
    end
    shown[i] = v
    if v ~= nil then w = math.max(w, #kv[1]) end
  end
  for i, kv in ipairs(list) do
    if shown[i] ~= nil then
      local v = tostring(shown[i]):gsub("\n", "\n" .. string.rep(" ", w + 2))
      stream:write(kv[1], string.rep(" ", w - #kv[1] + 2), v, "\n")
    end
  end
end

-- Keys whose value is a JSON array even when empty: the one list, in deepresearch.base.json.
local ARRAY_KEYS = json.ARRAY_KEYS

local function encode(v, indent, as_array, out)
  local tv = type(v)
  if tv == "table" then
    local pad = string.rep("  ", indent + 1)
    if next(v) == nil then
      out[#out + 1] = as_array and "[]" or "{}"
    elseif is_sequence(v) then
      out[#out + 1] = "[\n"
      for i, x in ipairs(v) do
        out[#out + 1] = pad
        encode(x, indent + 1, false, out)
        out[#out + 1] = i < #v and ",\n" or "\n"
      end
      out[#out + 1] = string.rep("  ", indent) .. "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      table.sort(keys)
      out[#out + 1] = "{\n"
      for i, k in ipairs(keys) do
        local x = v[k]
        if x == nil then x = v[tonumber(k)] end
        out[#out + 1] = pad .. quote(k) .. ": "
        encode(x, indent + 1, ARRAY_KEYS[k], out)
        out[#out + 1] = i < #keys and ",\n" or "\n"
      end
      out[#out + 1] = string.rep("  ", indent) .. "}"
    end
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif v % 1 == 0 and v > -2^53 and v < 2^53 then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.17g", v)
    end
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  else
    out[#out + 1] = "null"
  end
end

--- Pretty JSON with sorted keys, for --json. as_array: an empty table is [].
function M.json(v, as_array)
  local out = {}
  encode(v, 0, as_array or false, out)
  return table.concat(out)
end

--- What every command prints: v as JSON with --json (a list: as_array), else human().
-- Returns 0, the command's exit code.
function M.json_or(stream, as_json, v, human, as_array)
  if as_json then
    stream:write(M.json(v, as_array), "\n")
  else
    human()
  end
  return 0
end

--- The items of a server list as lines of text (any item, any type: tostring).
function M.lines_of(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = tostring(v) end
  return table.concat(out, "\n")
end

return M

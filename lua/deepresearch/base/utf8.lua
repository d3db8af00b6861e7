-- Strict UTF-8 helpers for Lua 5.1-5.4 and LuaJIT (5.1 and LuaJIT have no utf8 library,
-- and 5.3's utf8.len accepts surrogates). The APIs count briefs and schema strings in
-- characters, so a byte count is never good enough.
local M = {}

-- Length of the sequence a lead byte starts, or nil for a byte that cannot lead.
local function lead_length(c)
  if c < 0x80 then return 1 end
  if c >= 0xC2 and c <= 0xDF then return 2 end
  if c >= 0xE0 and c <= 0xEF then return 3 end
  if c >= 0xF0 and c <= 0xF4 then return 4 end
  return nil
end

-- The allowed range of the second byte narrows for some lead bytes: that is where
-- overlong forms, surrogates (U+D800-DFFF) and code points above U+10FFFF are ruled out.
local SECOND_MIN = { [0xE0] = 0xA0, [0xF0] = 0x90 }
local SECOND_MAX = { [0xED] = 0x9F, [0xF4] = 0x8F }

-- Returns the byte length of the valid sequence at i, or nil.
local function sequence_at(s, i, c)
  local n = lead_length(c)
  if not n then return nil end
  if n == 1 then return 1 end
  local b = s:byte(i + 1)
  if not b or b < (SECOND_MIN[c] or 0x80) or b > (SECOND_MAX[c] or 0xBF) then return nil end
  for k = 2, n - 1 do
    b = s:byte(i + k)
    if not b or b < 0x80 or b > 0xBF then return nil end
  end
  return n
end

--- Number of characters in s, or nil and the byte position of the first invalid sequence.
function M.len(s)
  if type(s) ~= "string" then
    error(string.format("bad argument #1 to 'len' (string expected, got %s)", type(s)), 2)
  end
  if not s:find("[\128-\255]") then return #s end
  local i, n, size = 1, 0, #s
  while i <= size do
    local c = s:byte(i)
    if c < 0x80 then
      i = i + 1
    else
      local step = sequence_at(s, i, c)
      if not step then return nil, i end
      i = i + step
    end
    n = n + 1
  end
  return n
end

--- true when s is well-formed UTF-8.
function M.valid(s)
  return M.len(s) ~= nil
end

--- Byte position where character number n starts (n = len + 1 gives #s + 1), or nil.
-- s must be valid UTF-8.
function M.offset(s, n)
  local i, count = 1, 1
  while count < n do
    local c = s:byte(i)
    if not c then return nil end
    i = i + (lead_length(c) or 1)
    count = count + 1
  end
  if i > #s + 1 then return nil end
  return i
end

--- Encodes code points as UTF-8 (what utf8.char does on 5.3+).
function M.char(...)
  local out = {}
  for k = 1, select("#", ...) do
    local cp = select(k, ...)
    if type(cp) ~= "number" or cp < 0 or cp > 0x10FFFF or cp % 1 ~= 0 then
      error(string.format("bad argument #%d to 'char' (code point out of range)", k), 2)
    end
    if cp < 0x80 then
      out[k] = string.char(cp)
    elseif cp < 0x800 then
      out[k] = string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
    elseif cp < 0x10000 then
      out[k] = string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
        0x80 + cp % 0x40)
    else
      out[k] = string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
        0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
    end
  end
  return table.concat(out)
end

return M

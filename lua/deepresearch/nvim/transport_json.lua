-- JSON for the curl transport, decoded as the C core decodes it (src/json.c): with the decoder
-- the library hands over (lua-cjson's, or vim.json.decode), then JSON nulls taken out of objects
-- (never a vim.NIL or cjson.null field) and empty arrays marked with the library's array
-- metatable, so that [] encodes back as [] and an empty object stays an object.
local M = {}

local decoder, null_value, array_mt

--- core.set_decoder(decode, null): returns the previous pair.
function M.set_decoder(fn, null)
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'set_decoder' (function expected, got " .. type(fn) .. ")", 2)
  end
  local old_fn, old_null = decoder, null_value
  decoder, null_value = fn, null
  return old_fn, old_null
end

function M.has_decoder() return decoder ~= nil end

function M.set_array_metatable(mt)
  if type(mt) ~= "table" then
    error("bad argument #1 to 'set_array_metatable' (table expected, got " .. type(mt) .. ")", 2)
  end
  array_mt = mt
end

-- The marker an empty array becomes before decoding (as the core's DR_MARK): a one-element
-- array that no decoder confuses with an empty object.
local MARK = "\0deepresearch:[]"
local MARK_JSON = '["\\u0000deepresearch:[]"]'

-- Whether the quote at q is escaped: an odd run of backslashes right before it.
local function escaped(s, q)
  local n, i = 0, q - 1
  while i > 0 and s:byte(i) == 92 do
    n, i = n + 1, i - 1
  end
  return n % 2 == 1
end

-- The text with every empty array outside strings replaced by the marked array, and how many.
-- The candidates ("[" blanks "]") are found first (most bodies have few); whether each is inside
-- a string is told by the unescaped quotes before it, counted with plain finds (a 300 KB task
-- takes well under a millisecond: this runs on the editor's loop).
local function mark_empty_arrays(s)
  local first = s:find("%[%s*%]")
  if not first then return s, 0 end
  local out, n, from = {}, 0, 1
  local q, in_string = 1, false -- quotes before q are counted
  local open = first
  while open do
    local close = s:match("^%[%s*()%]", open)
    while true do
      local nq = s:find('"', q, true)
      if not nq or nq > open then break end
      if not escaped(s, nq) then in_string = not in_string end
      q = nq + 1
    end
    if not in_string then
      out[#out + 1] = s:sub(from, open - 1)
      out[#out + 1] = MARK_JSON
      from, n = close + 1, n + 1
    end
    open = s:find("%[%s*%]", close + 1)
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out), n
end

-- Nulls out of objects (string keys) when w.nulls, and marked arrays given the array
-- metatable; stops once nothing is left to do (w.marks: marked arrays not found yet).
local function strip(t, depth, w)
  if depth > 1000 or (w.marks == 0 and not w.nulls) then return end
  local n = #t
  if n == 1 and t[1] == MARK then
    t[1] = nil
    setmetatable(t, array_mt)
    w.marks = w.marks - 1
    return
  end
  for i = 1, n do
    local v = t[i]
    if type(v) == "table" and v ~= null_value then strip(v, depth + 1, w) end
  end
  local drop
  for k, v in pairs(t) do
    if type(k) == "string" then
      if w.nulls and v == null_value then
        drop = drop or {}
        drop[#drop + 1] = k
      elseif type(v) == "table" then
        strip(v, depth + 1, w)
      end
    end
  end
  for _, k in ipairs(drop or {}) do t[k] = nil end
end

-- Neovim's own decoder drops object nulls itself, at C speed (its luanil option, 0.7 and on);
-- array nulls stay its vim.NIL, as the core leaves the decoder's null in arrays.
local VIM_OPTS = { luanil = { object = true } }

--- core.decode(text): the value, or nil and the decoder's message. Raises without a decoder.
function M.decode(text)
  if type(text) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. type(text) .. ")", 2)
  end
  if not decoder then error("deepresearch.core: no JSON decoder set", 2) end
  local src, marks = text, 0
  if array_mt then src, marks = mark_empty_arrays(text) end
  local native = vim and vim.json and decoder == vim.json.decode
  local ok, v
  if native then ok, v = pcall(decoder, src, VIM_OPTS) else ok, v = pcall(decoder, src) end
  if not ok then return nil, tostring(v) end
  local nulls = not native and null_value ~= nil and text:find("null", 1, true) ~= nil
  if type(v) == "table" and v ~= null_value and (marks > 0 or nulls) then
    strip(v, 0, { marks = marks, nulls = nulls })
  end
  return v
end

return M

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

-- The text with every empty array outside strings replaced by the marked array, and how many.
-- Strings are skipped by walking quote to quote (an escaped quote does not end one).
local function mark_empty_arrays(s)
  if not s:find("%[%s*%]") then return s, 0 end
  local out, n, i, from, len = {}, 0, 1, 1, #s
  while i <= len do
    local q = s:find('["%[]', i)
    if not q then break end
    if s:sub(q, q) == '"' then
      local j = q + 1
      while true do
        local e = s:find('["\\]', j)
        if not e then return s, 0 end -- an unterminated string: the decoder says why
        if s:sub(e, e) == "\\" then j = e + 2 else i = e + 1 break end
      end
    else
      local close = s:match("^%[%s*()%]", q)
      if close then
        out[#out + 1] = s:sub(from, q - 1)
        out[#out + 1] = MARK_JSON
        from, n = close + 1, n + 1
        i = close + 1
      else
        i = q + 1
      end
    end
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out), n
end

-- Nulls out of objects (string keys), and marked arrays given the array metatable.
local function strip(t, depth)
  if depth > 1000 then return end
  local n = #t
  if n == 1 and t[1] == MARK and array_mt then
    t[1] = nil
    setmetatable(t, array_mt)
    return
  end
  for i = 1, n do
    local v = t[i]
    if type(v) == "table" and v ~= null_value then strip(v, depth + 1) end
  end
  local drop
  for k, v in pairs(t) do
    if type(k) == "string" then
      if null_value ~= nil and v == null_value then
        drop = drop or {}
        drop[#drop + 1] = k
      elseif type(v) == "table" then
        strip(v, depth + 1)
      end
    end
  end
  for _, k in ipairs(drop or {}) do t[k] = nil end
end

--- core.decode(text): the value, or nil and the decoder's message. Raises without a decoder.
function M.decode(text)
  if type(text) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. type(text) .. ")", 2)
  end
  if not decoder then error("deepresearch.core: no JSON decoder set", 2) end
  local src = text
  if array_mt then src = mark_empty_arrays(text) end
  local ok, v = pcall(decoder, src)
  if not ok then return nil, tostring(v) end
  if type(v) == "table" and v ~= null_value then strip(v, 0) end
  return v
end

return M

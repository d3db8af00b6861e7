-- What each public entry point accepts, checked before anything is sent. A misspelled option
-- raises, naming it and the option meant: a silently ignored `dpeth` would create a paid task
-- of the default depth. Pure Lua (any Lua); the tables checked against live with their
-- providers (`accepts` in providers/*.lua), so that each provider says once what it takes.
--
-- Levels: `level` counts as error()'s does from the function that calls in here (2: that
-- function's caller), so a public entry blames its caller's line, as luaL_argerror does. The
-- helpers below pass level + 1 down; none of them ends in a tail call that would drop a frame.
local M = {}

--- Optimal string alignment distance: insertions, deletions, substitutions and a swap of two
-- neighbours (`dpeth` -> `depth`) each count 1.
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local row = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local d = math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = math.min(d, prev2[j - 2] + 1)
      end
      row[j] = d
    end
    prev2, prev = prev, row
  end
  return prev[lb]
end

M.MAX_SUGGEST = 2

--- The accepted name closest to name (at most MAX_SUGGEST edits away), or nil.
-- fields: name -> type. Ties go to the name first in sorted order, so the text is stable.
function M.suggest(name, fields)
  if type(name) ~= "string" then return nil end
  local best, best_d
  for k in pairs(fields) do
    local d = M.distance(name, k)
    if d <= M.MAX_SUGGEST and (not best_d or d < best_d or (d == best_d and k < best)) then
      best, best_d = k, d
    end
  end
  return best
end

local function key_text(k)
  if type(k) == "string" then return "'" .. k .. "'" end
  return "[" .. tostring(k) .. "]"
end

-- The type names a field may hold: "string", "number", "table", "function", "boolean",
-- alternatives joined by "|" ("string|table"), or "any".
local function type_ok(want, v)
  if want == "any" then return true end
  local t = type(v)
  if t == want then return true end
  if not want:find("|", 1, true) then return false end
  for w in want:gmatch("[^|]+") do
    if w == t then return true end
  end
  return false
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y)
    if type(x) == type(y) and (type(x) == "string" or type(x) == "number") then return x < y end
    return type(x) < type(y)
  end)
  return keys
end

-- The first problem in opts (sorted, so that two mistakes always report the same one).
local function problem(fname, opts, fields)
  local unknown, badtype
  for _, k in ipairs(sorted_keys(opts)) do
    local want = fields[k]
    if want == nil then
      unknown = unknown or k
    elseif not badtype and not type_ok(want, opts[k]) then
      badtype = k
    end
  end
  if unknown ~= nil then
    local meant = M.suggest(unknown, fields)
    return string.format("bad option %s to '%s' (%s)", key_text(unknown), fname,
      meant and ("did you mean '" .. meant .. "'?") or "unknown option")
  end
  return string.format("bad option %s to '%s' (%s expected, got %s)", key_text(badtype), fname,
    fields[badtype]:gsub("|", " or "), type(opts[badtype]))
end

--- Raises unless every key of opts is in fields (name -> type) with a value of that type.
-- The common case (nothing wrong) allocates nothing.
function M.check(fname, opts, fields, level)
  for k, v in pairs(opts) do
    local want = fields[k]
    if want == nil or not type_ok(want, v) then
      error(problem(fname, opts, fields), level + 1)
    end
  end
end

--- Raises unless arg n of fname is a table (or nil, when optional).
function M.table_arg(fname, n, v, optional, level)
  if v == nil and optional then return end
  if type(v) ~= "table" then
    error(string.format("bad argument #%d to '%s' (table expected, got %s)", n, fname,
      v == nil and "no value" or type(v)), level + 1)
  end
end

--- Raises unless v is a task id: a string, or a task table holding one (id or deepresearch_id).
-- Empty ids and control characters are values, not types: the operation returns nil, err.
function M.id_arg(fname, n, v, level)
  local id = v
  if type(v) == "table" then id = v.id or v.deepresearch_id end
  if type(id) ~= "string" then
    error(string.format("bad argument #%d to '%s' (string expected, got %s)", n, fname,
      id == nil and "no value" or type(id)), level + 1)
  end
end

-- Raises unless opts holds each field sig.needs names; an entry that is a list is met by any
-- one of its names (Valyu: query, input or workflow_id), the first named when none is there.
local function check_needs(fname, opts, sig, level)
  for _, need in ipairs(sig.needs) do
    local names = type(need) == "table" and need or { need }
    local found = false
    for _, k in ipairs(names) do
      if opts[k] ~= nil then found = true end
    end
    if not found then
      error(string.format("bad option '%s' to '%s' (%s expected, got no value)", names[1], fname,
        (sig.fields[names[1]]:gsub("|", " or "))), level + 1)
    end
  end
end

--- Checks the arguments of method fname against sig, one entry of a provider's `accepts`:
-- { id = true } (arg 1 is a task id), { opts = n, fields = {...}, required = true,
-- needs = {...} } (arg n is an options table; needs: the fields it must hold),
-- { arg2 = "string" } (the type of arg 2). a, b: the method's first two arguments.
function M.check_call(fname, sig, level, a, b)
  if sig.id then M.id_arg(fname, 1, a, level + 1) end
  if sig.arg2 and type(b) ~= sig.arg2 then
    error(string.format("bad argument #2 to '%s' (%s expected, got %s)", fname, sig.arg2,
      b == nil and "no value" or type(b)), level + 1)
  end
  local n = sig.opts
  if n then
    local v = n == 1 and a or b
    M.table_arg(fname, n, v, not sig.required, level + 1)
    if v ~= nil then
      M.check(fname, v, sig.fields, level + 1)
      if sig.needs then check_needs(fname, v, sig, level + 1) end
    end
  end
end

--- fields with more names: a new table holding both.
function M.extend(fields, more)
  local t = {}
  for k, v in pairs(fields) do t[k] = v end
  for k, v in pairs(more) do t[k] = v end
  return t
end

return M

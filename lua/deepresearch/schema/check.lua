-- Checking schemas and values: the create-time check of an output_schema (the API's
-- rules; the vendor's size limits as warnings) and validation of a value, such as a schema
-- report's `fields`, against a schema. Accepts builder nodes and plain tables.
local json = require "deepresearch.base.json"
local utf8 = require "deepresearch.base.utf8"
local is_null = json.is_null
local is_sequence = json.is_sequence

local M = {}

-- The API reference says only that an output_schema is an object JSON Schema, validated in
-- full at create: a malformed schema is refused here. What the vendor's team notes add (a type
-- on every node, 5 levels, 50 properties; audit M7) the server may not enforce, so it only
-- warns: a valid schema is never refused on a guess.
M.MAX_DEPTH = 5       -- the vendor's notes: at most 5 nesting levels ...
M.MAX_PROPERTIES = 50 -- ... and 50 properties in all

local function as_table(s)
  if type(s) == "table" and type(s.to_table) == "function" then return s:to_table() end
  return s
end

-- The create-time check: the root and every nested node; the notes' limits as warnings.

local KNOWN_TYPES = { string = true, number = true, integer = true, boolean = true, object = true,
  array = true, null = true }

local function child_path(path, key)
  if path == "$" then return key end
  return path .. "." .. key
end

local function types_of(s)
  local t = s.type
  local set = {}
  if type(t) == "string" then
    set[t] = true
  elseif type(t) == "table" then
    for _, x in ipairs(t) do set[x] = true end
  end
  return set
end

-- A warning: { code, severity = "warning", message, path }, the shape of a brief lint finding.
local function warn(state, code, path, message)
  state.warnings[#state.warnings + 1] = { code = code, severity = "warning", path = path,
    message = "output_schema: " .. message }
end

local check_node

local function check_type(s, path, state)
  local t = s.type
  if t == nil then
    if s.enum == nil and s.const == nil and s.anyOf == nil and s.oneOf == nil and s.allOf == nil
      and s["$ref"] == nil then
      warn(state, "schema_no_type", path, path .. ": no type (the vendor's notes ask for a " ..
        "type on every node; the API reference does not)")
    end
    return true
  end
  if type(t) == "string" then
    if not KNOWN_TYPES[t] then return nil, string.format("%s: unknown type '%s'", path, t) end
    return true
  end
  if type(t) ~= "table" or #t == 0 then
    return nil, path .. ": type must be a string or a non-empty list of strings"
  end
  for _, x in ipairs(t) do
    if not KNOWN_TYPES[x] then
      return nil, string.format("%s: unknown type '%s'", path, tostring(x))
    end
  end
  return true
end

local function property_names(props, path)
  if type(props) ~= "table" or (props[1] ~= nil) then
    return nil, path .. ": properties must be a table mapping field names to schemas"
  end
  local names = {}
  for name in pairs(props) do
    if type(name) ~= "string" then
      return nil, path .. ": properties must be a table mapping field names to schemas"
    end
    names[#names + 1] = name
  end
  table.sort(names)
  return names
end

local function check_required(s, path)
  local req, props = s.required, s.properties
  if type(req) ~= "table" or (next(req) ~= nil and #req == 0) then
    return nil, path .. ": required must be a list of field names"
  end
  local seen = {}
  for k, name in pairs(req) do
    if type(k) ~= "number" or type(name) ~= "string" then
      return nil, path .. ": required must be a list of field names"
    end
    if type(props) ~= "table" or props[name] == nil then
      return nil, string.format("%s: required names '%s', which is not in properties", path, name)
    end
    if seen[name] then return nil, string.format("%s: required lists '%s' twice", path, name) end
    seen[name] = true
  end
  return true
end

local function check_object(s, path, depth, state)
  if s.properties ~= nil then
    local names, msg = property_names(s.properties, path)
    if not names then return nil, msg end
    state.count = state.count + #names
    for _, name in ipairs(names) do
      local at = child_path(path, name)
      if depth + 1 > M.MAX_DEPTH and not state.deep then
        state.deep = true -- one warning names the first field too deep
        warn(state, "schema_depth", at, string.format("%s: nested more than %d levels deep " ..
          "(the vendor's notes' limit; the API reference states none)", at, M.MAX_DEPTH))
      end
      local ok, err = check_node(s.properties[name], at, depth + 1, state)
      if not ok then return nil, err end
    end
  end
  if s.required ~= nil then return check_required(s, path) end
  return true
end

local function check_items(s, path, depth, state)
  local items = as_table(s.items)
  if items == nil then
    warn(state, "schema_no_items", path, path .. ": an array without items (the vendor's " ..
      "notes ask for a type on every node)")
    return true
  end
  if type(items) ~= "table" then return nil, path .. "[]: items must be a schema" end
  if items[1] == nil then return check_node(items, path .. "[]", depth, state) end
  for i, item in ipairs(items) do
    local ok, msg = check_node(item, path .. "[" .. i .. "]", depth, state)
    if not ok then return nil, msg end
  end
  return true
end

check_node = function(s, path, depth, state)
  s = as_table(s)
  if type(s) ~= "table" then
    return nil, string.format("%s: a schema must be a table, got %s", path, type(s))
  end
  local ok, msg = check_type(s, path, state)
  if not ok then return nil, msg end
  local types = types_of(s)
  if s.enum ~= nil and (type(s.enum) ~= "table" or #s.enum == 0) then
    return nil, path .. ": enum must be a non-empty list"
  end
  if types.object or s.properties ~= nil then
    ok, msg = check_object(s, path, depth, state)
    if not ok then return nil, msg end
  end
  if types.array then return check_items(s, path, depth, state) end
  return true
end

--- What the client checks before create: true and a list of warnings (empty when there is
-- nothing to say), or nil and a message naming the problem. Refused: what the API reference
-- documents (a table whose root has type "object") and what is not a JSON Schema (an unknown
-- type, malformed properties, required or enum). Warned: the vendor's notes' limits.
function M.check_output_schema(t)
  t = as_table(t)
  if type(t) ~= "table" then
    return nil, "output_schema must be a table (a JSON object), got " .. type(t)
  end
  if t.type ~= "object" then
    return nil, 'output_schema: the root must have type "object"'
  end
  local state = { count = 0, warnings = {} }
  local ok, err = check_node(t, "$", 0, state)
  if not ok then return nil, err end
  if state.count > M.MAX_PROPERTIES then
    warn(state, "schema_properties", "$", string.format("%d properties in all, more than %d " ..
      "(the vendor's notes' limit; the API reference states none)", state.count,
      M.MAX_PROPERTIES))
  end
  return true, state.warnings
end

--- The schema check as lint findings ({ code, severity, message, path? }): one error
-- (code "schema_invalid") when the check refuses the schema, else its warnings.
function M.lint_output_schema(t)
  local ok, res = M.check_output_schema(t)
  if not ok then
    return { { code = "schema_invalid", severity = "error", message = res } }
  end
  return res
end

----------------------------------------------------------------------------------------------
-- Validation of a value (a schema report's `fields`) against a schema.

local Violation = { __name = "deepresearch.schema.violation" }
Violation.__index = Violation
function Violation.__tostring(v) return v.message end

local function is_array(v)
  return type(v) == "table" and (json.is_array_marked(v) or is_sequence(v))
end

local function is_object(v)
  if type(v) ~= "table" or json.is_array_marked(v) then return false end
  return next(v) == nil or not is_sequence(v)
end

local function json_type(v)
  if v == nil or is_null(v) then return "null" end
  local t = type(v)
  if t == "table" then
    if next(v) ~= nil and is_sequence(v) or json.is_array_marked(v) then return "array" end
    return "object"
  end
  return t
end

local function is_integer(v)
  return type(v) == "number" and v % 1 == 0 and v == v and v ~= math.huge and v ~= -math.huge
end

local MATCHES = {
  string = function(v) return type(v) == "string" end,
  number = function(v) return type(v) == "number" and v == v end,
  integer = is_integer,
  boolean = function(v) return type(v) == "boolean" end,
  object = is_object,
  array = is_array,
  null = is_null,
}

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function index_path(path, i)
  return path .. "[" .. i .. "]"
end

local validate_node

local function add(list, path, text)
  list[#list + 1] = setmetatable({ path = path, message = path .. ": " .. text }, Violation)
end

local function plural(n, word)
  return string.format("%s %s%s", show(n), word, n == 1 and "" or "s")
end

-- A count (characters, items) against a schema's lower and upper bounds, either absent.
local function count_bounds(list, path, n, lo, hi, word)
  if lo and n < lo then
    add(list, path, string.format("expected at least %s, got %d", plural(lo, word), n))
  end
  if hi and n > hi then
    add(list, path, string.format("expected at most %s, got %d", plural(hi, word), n))
  end
end

local function check_bounds(s, v, path, list)
  if type(v) == "string" then
    local n = utf8.len(v)
    if not n then
      add(list, path, "not valid UTF-8")
    else
      count_bounds(list, path, n, s.minLength, s.maxLength, "character")
    end
  elseif type(v) == "number" then
    if type(s.minimum) == "number" and v < s.minimum then
      add(list, path, string.format("expected a number >= %s, got %s", show(s.minimum), show(v)))
    end
    if type(s.maximum) == "number" and v > s.maximum then
      add(list, path, string.format("expected a number <= %s, got %s", show(s.maximum), show(v)))
    end
    if type(s.exclusiveMinimum) == "number" and v <= s.exclusiveMinimum then
      add(list, path, string.format("expected a number > %s, got %s", show(s.exclusiveMinimum),
        show(v)))
    end
    if type(s.exclusiveMaximum) == "number" and v >= s.exclusiveMaximum then
      add(list, path, string.format("expected a number < %s, got %s", show(s.exclusiveMaximum),
        show(v)))
    end
  end
end

local function validate_array(s, v, path, list)
  local n = #v
  count_bounds(list, path, n, s.minItems, s.maxItems, "item")
  local items = as_table(s.items)
  if type(items) == "table" then
    if items[1] ~= nil then
      for i = 1, math.min(n, #items) do validate_node(items[i], v[i], index_path(path, i), list) end
    else
      for i = 1, n do validate_node(items, v[i], index_path(path, i), list) end
    end
  end
  if s.uniqueItems then
    local seen = {}
    for i = 1, n do
      local x = v[i]
      if type(x) ~= "table" then
        if seen[x] then add(list, index_path(path, i), "duplicate of item " .. seen[x]) end
        seen[x] = seen[x] or i
      end
    end
  end
end

local function allows_null(s)
  s = as_table(s)
  return type(s) == "table" and types_of(s).null == true
end

local function validate_object(s, v, path, list)
  local props = type(s.properties) == "table" and s.properties or {}
  local req = type(s.required) == "table" and s.required or {}
  for _, name in ipairs(req) do
    -- The client drops JSON nulls, so an absent field is fine where null is allowed.
    if v[name] == nil and not allows_null(props[name]) then
      add(list, child_path(path, name), "missing required field")
    end
  end
  local names = {}
  for name in pairs(props) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    if v[name] ~= nil then validate_node(props[name], v[name], child_path(path, name), list) end
  end
  local extra = as_table(s.additionalProperties)
  if extra ~= nil and extra ~= true then
    local keys = {}
    for k in pairs(v) do
      if props[k] == nil then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do
      if extra == false then
        add(list, child_path(path, tostring(k)), "unexpected field")
      elseif type(extra) == "table" then
        validate_node(extra, v[k], child_path(path, tostring(k)), list)
      end
    end
  end
end

validate_node = function(s, v, path, list)
  s = as_table(s)
  if type(s) ~= "table" then return end
  local types = types_of(s)
  if next(types) then
    local ok = false
    for t in pairs(types) do
      if MATCHES[t] and MATCHES[t](v) then ok = true end
    end
    if not ok then
      local names = {}
      if type(s.type) == "table" then
        for i, t in ipairs(s.type) do names[i] = t end
      else
        names[1] = s.type
      end
      add(list, path, string.format("expected %s, got %s", table.concat(names, " or "),
        json_type(v)))
      return
    end
  end
  if type(s.enum) == "table" then
    local found = false
    for _, e in ipairs(s.enum) do
      if e == v then found = true end
    end
    if not found then
      local shown = {}
      for i, e in ipairs(s.enum) do shown[i] = show(e) end
      add(list, path, string.format("expected one of %s, got %s", table.concat(shown, ", "),
        type(v) == "table" and json_type(v) or show(v)))
      return
    end
  end
  check_bounds(s, v, path, list)
  if is_array(v) and (types.array or s.items ~= nil) then
    validate_array(s, v, path, list)
  end
  if is_object(v) and (types.object or s.properties ~= nil or s.required ~= nil) then
    validate_object(s, v, path, list)
  end
end

--- Checks value against schema (builder or plain table). Returns true, or false and a list of
-- violations {path, message}; tostring(violation) is its message ("angles[2]: expected string, got
-- number").
function M.validate(schema, value)
  if type(schema) ~= "table" then
    error(string.format("bad argument #1 to 'validate' (schema expected, got %s)", type(schema)), 2)
  end
  local list = {}
  validate_node(schema, value, "$", list)
  if #list == 0 then return true end
  return false, list
end

return M

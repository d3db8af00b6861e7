-- Output schemas: a builder that derives `required`, a stable encoder, the create-time
-- check, and a validator for the `fields` a schema report returns.
-- Why a builder: hand-written schemas get `required` wrong, and an empty Lua table
-- encodes as {} where JSON Schema needs [].
local json = require "deepresearch.base.json"

local M = {}


local Node = {}
Node.__index = Node
Node.__name = "deepresearch.schema"

local function is_node(v)
  return getmetatable(v) == Node
end
M.is_schema = is_node

-- Lua option names (snake_case) to JSON Schema keywords, by the kinds that accept them.
local COMMON = { description = "description", title = "title", default = "default",
  examples = "examples" }
local KIND_OPTIONS = {
  string = { min_length = "minLength", max_length = "maxLength", pattern = "pattern",
  format = "format" },
  number = { minimum = "minimum", maximum = "maximum", exclusive_minimum = "exclusiveMinimum",
    exclusive_maximum = "exclusiveMaximum", multiple_of = "multipleOf" },
  array = { min_items = "minItems", max_items = "maxItems", unique_items = "uniqueItems" },
  object = { additional_properties = "additionalProperties" },
  boolean = {},
  enum = {},
  raw = {},
}
KIND_OPTIONS.integer = KIND_OPTIONS.number

local OPTION_TYPES = {
  description = "string", title = "string", format = "string", pattern = "string",
  minLength = "number", maxLength = "number", minimum = "number", maximum = "number",
  exclusiveMinimum = "number", exclusiveMaximum = "number", multipleOf = "number",
  minItems = "number", maxItems = "number", uniqueItems = "boolean",
}

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- Reads an options table into JSON Schema keywords. `skip` names keys that are not options
-- (the array part of S.enum's table, the fields of S.object).
local function read_options(fname, kind, opts, skip)
  local out, optional = {}, false
  if opts == nil then return out, optional end
  if type(opts) == "string" then return { description = opts }, optional end
  if type(opts) ~= "table" or is_node(opts) then
    error(string.format("bad argument to '%s' (options table expected, got %s)", fname, type(opts)),
      3)
  end
  local allowed = KIND_OPTIONS[kind]
  for k, v in pairs(opts) do
    if not (skip and skip(k, v)) then
      if k == "optional" then
        optional = v and true or false
      else
        local name = COMMON[k] or allowed[k]
        if not name then
          -- JSON Schema spellings are accepted as they are.
          for _, n in pairs(allowed) do
            if n == k then name = n end
          end
          for _, n in pairs(COMMON) do
            if n == k then name = n end
          end
        end
        if not name then
          error(string.format("bad option '%s' to '%s'", tostring(k), fname), 3)
        end
        local want = OPTION_TYPES[name]
        if want and type(v) ~= want then
          error(string.format("bad option '%s' to '%s' (%s expected, got %s)", tostring(k), fname,
            want,
            type(v)), 3)
        end
        if name == "additionalProperties" and type(v) ~= "boolean" and type(v) ~= "table" then
          error(string.format("bad option '%s' to '%s' (boolean or schema expected)", tostring(k),
            fname), 3)
        end
        out[name] = v
      end
    end
  end
  return out, optional
end

local function new(kind, opts, optional, extra)
  local node = extra or {}
  node.kind = kind
  node.opts = opts
  node.is_optional = optional
  return setmetatable(node, Node)
end

local function scalar(kind)
  return function(opts)
    local o, optional = read_options(kind, kind, opts)
    return new(kind, o, optional)
  end
end

--- S.string{min_length=, max_length=, pattern=, format=, description=}
M.string = scalar("string")
--- S.number{minimum=, maximum=, exclusive_minimum=, exclusive_maximum=, description=}
M.number = scalar("number")
--- S.integer{...} takes the options of S.number.
M.integer = scalar("integer")
--- S.boolean{description=}
M.boolean = scalar("boolean")

--- S.enum{"low", "high", description = "..."} or S.enum({"low", "high"}, opts)
function M.enum(values, opts)
  if type(values) ~= "table" then
    error(string.format("bad argument #1 to 'enum' (table expected, got %s)", type(values)), 2)
  end
  local n = #values
  local list = {}
  for i = 1, n do
    local v = values[i]
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      error(string.format("bad argument #1 to 'enum' (value %d must be a string, number or " ..
        "boolean)", i), 2)
    end
    list[i] = v
  end
  if n == 0 then error("bad argument #1 to 'enum' (at least one value expected)", 2) end
  local o, optional = read_options("enum", "enum", values, function(k)
    return type(k) == "number" and k >= 1 and k <= n and k % 1 == 0
  end)
  local o2, optional2 = read_options("enum", "enum", opts)
  for k, v in pairs(o2) do o[k] = v end
  return new("enum", o, optional or optional2, { values = list })
end

--- S.array(items, {min_items=, max_items=, unique_items=, description=})
function M.array(items, opts)
  if type(items) ~= "table" then
    error(string.format("bad argument #1 to 'array' (schema expected, got %s)", type(items)), 2)
  end
  local o, optional = read_options("array", "array", opts)
  return new("array", o, optional, { items = items })
end

local OBJECT_OPTION_KEYS = { description = true, title = true, additional_properties = true,
  additionalProperties = true, optional = true, default = true, examples = true }

--- S.object{name = S.string(), ...} with options in a second table (or, when the value is
-- not a schema, under their own names in the first: description = "...").
function M.object(fields, opts)
  if type(fields) ~= "table" or is_node(fields) then
    error(string.format("bad argument #1 to 'object' (table of fields expected, got %s)",
      is_node(fields) and "a schema" or type(fields)), 2)
  end
  local props = {}
  local function is_option(k, v)
    return OBJECT_OPTION_KEYS[k] and type(v) ~= "table" or (k == "additional_properties"
      and is_node(v))
  end
  for k, v in pairs(fields) do
    if not is_option(k, v) then
      if type(k) ~= "string" then
        error(string.format("bad argument #1 to 'object' (field names must be strings, got %s)",
          type(k)), 2)
      end
      if type(v) ~= "table" then
        error(string.format("bad argument #1 to 'object' (field '%s' must be a schema, got %s)", k,
          type(v)), 2)
      end
      props[k] = v
    end
  end
  local o, optional = read_options("object", "object", fields, function(k,
    v) return not is_option(k, v) end)
  local o2, optional2 = read_options("object", "object", opts)
  for k, v in pairs(o2) do o[k] = v end
  return new("object", o, optional or optional2, { props = props })
end

--- S.optional(schema): the same schema, left out of its parent's `required`.
function M.optional(schema)
  if type(schema) ~= "table" then
    error(string.format("bad argument #1 to 'optional' (schema expected, got %s)", type(schema)), 2)
  end
  if not is_node(schema) then
    return new("raw", {}, true, { raw = schema })
  end
  local c = setmetatable(copy(schema), Node)
  c.is_optional = true
  return c
end

function Node:optional()
  return M.optional(self)
end

function Node:required()
  local c = setmetatable(copy(self), Node)
  c.is_optional = false
  return c
end

--- node:describe(text): a copy with a description.
function Node:describe(text)
  if type(text) ~= "string" then
    error(string.format("bad argument #1 to 'describe' (string expected, got %s)", type(text)), 2)
  end
  local c = setmetatable(copy(self), Node)
  c.opts = copy(self.opts)
  c.opts.description = text
  return c
end

local function deep_copy(v, seen)
  if type(v) ~= "table" then return v end
  if is_node(v) then return v:to_table() end
  seen = seen or {}
  if seen[v] then error("schema: a table contains itself", 0) end
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x, seen) end
  seen[v] = nil
  local mt = getmetatable(v)
  if mt and json.is_array_marked(v) then json.array(out) end
  return out
end

local ENUM_TYPES = { string = "string", number = "number", boolean = "boolean" }

--- The plain JSON Schema table of a builder schema (`required` derived at every level).
function Node:to_table()
  local kind = self.kind
  if kind == "raw" then return deep_copy(self.raw) end
  local t = {}
  for k, v in pairs(self.opts) do t[k] = deep_copy(v) end
  if kind == "enum" then
    local types = {}
    for _, v in ipairs(self.values) do types[ENUM_TYPES[type(v)]] = true end
    local only = next(types)
    if next(types, only) == nil then t.type = only end
    t.enum = json.array(copy(self.values))
  elseif kind == "array" then
    t.type = "array"
    t.items = deep_copy(self.items)
  elseif kind == "object" then
    t.type = "object"
    local props, required = {}, json.array()
    for name, child in pairs(self.props) do
      props[name] = deep_copy(child)
      if not (is_node(child) and child.is_optional) then required[#required + 1] = name end
    end
    table.sort(required)
    t.properties = props
    t.required = required
  else
    t.type = kind
  end
  return t
end
Node.json_value = Node.to_table -- json.encode(node) works too

local function as_table(s)
  if is_node(s) then return s:to_table() end
  return s
end

----------------------------------------------------------------------------------------------
-- Encoding that knows which keywords hold schemas, which hold lists and which hold plain
-- values, so that no empty table is encoded as the wrong JSON type.

local SCHEMA_MAPS = { properties = true, patternProperties = true, definitions = true,
  ["$defs"] = true,
  dependentSchemas = true }
local SCHEMA_LISTS = { anyOf = true, oneOf = true, allOf = true, prefixItems = true }
local SCHEMA_ONE = { ["not"] = true, contains = true, ["if"] = true, ["then"] = true,
  ["else"] = true,
  propertyNames = true, additionalItems = true, unevaluatedProperties = true }
local VALUE_LISTS = { required = true, enum = true, examples = true, type = true }

local encode_schema

local function sorted_keys(t, where)
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error(string.format("schema.encode: %s has a %s key; JSON object keys are strings", where,
        type(k)), 0)
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function encode_list(list, out, where, each)
  if type(list) ~= "table" then
    error(string.format("schema.encode: %s must be a list, got %s", where, type(list)), 0)
  end
  local n = #list
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      error(string.format("schema.encode: %s must be a list", where), 0)
    end
  end
  out[#out + 1] = "["
  for i = 1, n do
    if i > 1 then out[#out + 1] = "," end
    each(list[i], out, where .. "[" .. i .. "]")
  end
  out[#out + 1] = "]"
end

local function encode_value(v, out)
  out[#out + 1] = json.encode(v)
end

encode_schema = function(s, out, where)
  s = as_table(s)
  if type(s) == "boolean" then
    out[#out + 1] = tostring(s)
    return
  end
  if type(s) ~= "table" then
    error(string.format("schema.encode: %s must be a schema table, got %s", where, type(s)), 0)
  end
  out[#out + 1] = "{"
  for i, k in ipairs(sorted_keys(s, where)) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = json.encode(k)
    out[#out + 1] = ":"
    local v = s[k]
    local at = where .. "." .. k
    if SCHEMA_MAPS[k] and type(v) == "table" then
      out[#out + 1] = "{"
      for j, name in ipairs(sorted_keys(v, at)) do
        if j > 1 then out[#out + 1] = "," end
        out[#out + 1] = json.encode(name)
        out[#out + 1] = ":"
        encode_schema(v[name], out, at .. "." .. name)
      end
      out[#out + 1] = "}"
    elseif SCHEMA_LISTS[k] then
      encode_list(v, out, at, encode_schema)
    elseif k == "items" and type(v) == "table" and not is_node(v) and v[1] ~= nil then
      encode_list(v, out, at, encode_schema) -- tuple form
    elseif k == "items" or ((SCHEMA_ONE[k] or k == "additionalProperties")
      and type(v) ~= "boolean") then
      encode_schema(v, out, at)
    elseif VALUE_LISTS[k] and (k ~= "type" or type(v) == "table") then
      encode_list(v, out, at, encode_value)
    else
      encode_value(v, out)
    end
  end
  out[#out + 1] = "}"
end

--- JSON text of a schema (builder or plain table): sorted keys, so the same schema always
-- gives the same bytes; required/enum/type lists are arrays even when empty. Raises on
-- tables JSON cannot hold.
function M.encode(schema)
  if type(schema) ~= "table" then
    error(string.format("bad argument #1 to 'encode' (schema expected, got %s)", type(schema)), 2)
  end
  local out = {}
  encode_schema(schema, out, "$")
  return table.concat(out)
end

function Node:json()
  return M.encode(self)
end

local check = require "deepresearch.schema.check"
M.MAX_DEPTH, M.MAX_PROPERTIES = check.MAX_DEPTH, check.MAX_PROPERTIES
M.check_output_schema = check.check_output_schema
M.lint_output_schema = check.lint_output_schema
M.validate = check.validate

function Node:validate(value)
  return check.validate(self, value)
end

return M

-- Structured output for simulated Valyu tasks: a value valid against the caller's JSON schema
-- (the subset structured-output schemas use: types, properties/required, items/prefixItems,
-- enum/const, anyOf/oneOf/allOf, $ref, string/array/number bounds, common formats; `pattern` is not
-- honoured), and the same value as TOON text.
local json = require("simulator.valyu_json")
local content = require("simulator.valyu_content")

local M = {}
local clip = content.clip

local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = copy(x) end
  return setmetatable(t, getmetatable(v))
end

local function resolve(root, schema)
  local seen = 0
  while type(schema) == "table" and type(schema["$ref"]) == "string" and seen < 16 do
    local node = root
    for part in schema["$ref"]:gsub("^#/?", ""):gmatch("[^/]+") do
      part = part:gsub("~1", "/"):gsub("~0", "~")
      node = type(node) == "table" and (node[part] or node[tonumber(part) and tonumber(part) + 1])
        or nil
    end
    schema, seen = node, seen + 1
  end
  return type(schema) == "table" and schema or {}
end

local function merge_all(root, schema)
  if type(schema.allOf) ~= "table" then return schema end
  local out = { properties = {}, required = {} }
  for k, v in pairs(schema) do if k ~= "allOf" then out[k] = v end end
  for _, part in ipairs(schema.allOf) do
    part = merge_all(root, resolve(root, part))
    for k, v in pairs(part) do
      if k == "properties" then
        for pk, pv in pairs(v) do out.properties[pk] = pv end
      elseif k == "required" then
        for _, r in ipairs(v) do out.required[#out.required + 1] = r end
      elseif out[k] == nil then
        out[k] = v
      end
    end
  end
  if schema.properties then
    for pk, pv in pairs(schema.properties) do out.properties[pk] = pv end
  end
  if schema.required then
    for _, r in ipairs(schema.required) do out.required[#out.required + 1] = r end
  end
  return out
end

local function schema_type(schema)
  local t = schema.type
  if type(t) == "table" then
    for _, x in ipairs(t) do if x ~= "null" then return x end end
    return "null"
  end
  if type(t) == "string" then return t end
  if schema.properties or schema.required then return "object" end
  if schema.items or schema.prefixItems then return "array" end
  return "string"
end

local function fit_string(s, schema)
  local max = tonumber(schema.maxLength)
  local min = tonumber(schema.minLength) or 0
  if max then s = clip(s, math.max(0, math.floor(max))) end
  while content.length(s) < min do s = s .. " data" end
  if max and content.length(s) > max then s = clip(s, math.floor(max)) end
  return s
end

local FORMATS = {
  date = function() return "2026-01-15" end,
  ["date-time"] = function() return "2026-01-15T12:00:00.000Z" end,
  time = function() return "12:00:00Z" end,
  email = function() return "research@example.com" end,
  uri = function(ctx, salt) return ctx.content.sources[(salt % #ctx.content.sources) + 1].url end,
  uuid = function(ctx) return ctx.rng:uuid() end,
  hostname = function() return "example.com" end,
  ipv4 = function() return "192.0.2.1" end,
}
FORMATS.url = FORMATS.uri
FORMATS["uri-reference"] = FORMATS.uri

local function number_in(schema, integer, salt)
  local lo, hi = tonumber(schema.minimum), tonumber(schema.maximum)
  local xlo, xhi = schema.exclusiveMinimum, schema.exclusiveMaximum
  local step = integer and 1 or 0.5
  if type(xlo) == "number" then lo = xlo + step elseif xlo == true and lo then lo = lo + step end
  if type(xhi) == "number" then hi = xhi - step elseif xhi == true and hi then hi = hi - step end
  local v
  if lo and hi then v = (lo + hi) / 2
  elseif lo then v = lo + salt
  elseif hi then v = hi - salt
  else v = 42 + salt * 7 end
  local m = tonumber(schema.multipleOf)
  if m and m > 0 then
    v = math.ceil(v / m) * m
    if hi and v > hi then v = v - m end
  end
  if integer then
    v = math.floor(v + 0.5)
    if lo and v < lo then v = math.ceil(lo) end
    if hi and v > hi then v = math.floor(hi) end
    return math.floor(v)
  end
  if v % 1 == 0 and not m then v = v + 0.5 end
  if hi and v > hi then v = hi end
  if lo and v < lo then v = lo end
  return v + 0.0
end

local generate

local function generate_object(ctx, schema, depth, salt)
  local out = {}
  local required = {}
  for _, r in ipairs(type(schema.required) == "table" and schema.required or {}) do
    required[r] = true
  end
  local names = {}
  for name in pairs(type(schema.properties) == "table" and schema.properties or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for i, name in ipairs(names) do
    if depth < 6 or required[name] then
      out[name] = generate(ctx, schema.properties[name], depth + 1, salt + i, name)
    end
  end
  for name in pairs(required) do
    if out[name] == nil then out[name] = generate(ctx, {}, depth + 1, salt, name) end
  end
  return out
end

local function generate_array(ctx, schema, depth, salt, key)
  local out = json.array()
  local prefix, items = schema.prefixItems, schema.items
  if type(items) == "table" and items[1] ~= nil then
    prefix, items = items, schema.additionalItems
  end
  local n = depth < 6 and 2 or 0
  if type(prefix) == "table" then n = #prefix else prefix = nil end
  n = math.max(n, tonumber(schema.minItems) or 0)
  if tonumber(schema.maxItems) then n = math.min(n, math.floor(tonumber(schema.maxItems))) end
  for i = 1, n do
    local s = (prefix and prefix[i]) or (type(items) == "table" and items) or {}
    out[i] = generate(ctx, s, depth + 1, salt + i, key)
  end
  return out
end

generate = function(ctx, schema, depth, salt, key)
  schema = merge_all(ctx.root, resolve(ctx.root, schema))
  if schema.const ~= nil then return copy(schema.const) end
  if type(schema.enum) == "table" and #schema.enum > 0 then return copy(schema.enum[1]) end
  local alt = schema.anyOf or schema.oneOf
  if type(alt) == "table" and #alt > 0 then
    local chosen = alt[1]
    for _, a in ipairs(alt) do
      local r = resolve(ctx.root, a)
      if r.type ~= "null" then chosen = a break end
    end
    return generate(ctx, chosen, depth, salt, key)
  end
  local t = schema_type(schema)
  if t == "object" then return generate_object(ctx, schema, depth, salt) end
  if t == "array" then return generate_array(ctx, schema, depth, salt, key) end
  if t == "integer" then return number_in(schema, true, salt) end
  if t == "number" then return number_in(schema, false, salt) end
  if t == "boolean" then return salt % 2 == 0 end
  if t == "null" then return ctx.null end
  local f = FORMATS[schema.format]
  if f then return fit_string(f(ctx, salt), schema) end
  local label = key and key:gsub("_", " ") or "value"
  return fit_string(string.format("%s for %s", label, ctx.content.topic), schema)
end

--- An object (or other value) valid against `schema`.
function M.generate(plan, schema, null)
  local ctx = { root = schema, content = plan, rng = content.rng(plan.seed), null = null }
  return generate(ctx, schema, 0, 0, nil)
end

---------------------------------------------------------------------------------------------------
-- TOON (token-oriented object notation): indentation for objects, [N] lengths for arrays.

local function toon_scalar(v)
  if type(v) == "string" then
    if v == "" or v:find('[,:"\n%[%]{}]') or v:find("^%s") or v:find("%s$") or v == "true"
      or v == "false"
        or v == "null" or tonumber(v) then
      return json.encode(v)
    end
    return v
  end
  if type(v) == "table" or v == nil then return "null" end
  return json.encode(v)
end

local function is_list(v)
  return type(v) == "table" and (json.is_array(v) or v[1] ~= nil)
end

local function toon_lines(v, indent, out, key)
  local pad = string.rep("  ", indent)
  local head = key and (key) or ""
  if is_list(v) then
    local all_scalar = true
    for _, x in ipairs(v) do if type(x) == "table" then all_scalar = false end end
    if all_scalar then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = toon_scalar(x) end
      out[#out + 1] = string.format("%s%s[%d]: %s", pad, head, #v, table.concat(parts, ","))
    else
      out[#out + 1] = string.format("%s%s[%d]:", pad, head, #v)
      for _, x in ipairs(v) do toon_lines(x, indent + 1, out, "-") end
    end
  elseif type(v) == "table" then
    if key then out[#out + 1] = pad .. head .. ":" end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do toon_lines(v[k], key and indent + 1 or indent, out, k) end
  else
    out[#out + 1] = pad .. head .. (key and ": " or "") .. toon_scalar(v)
  end
end

function M.toon(value)
  local out = {}
  toon_lines(value, 0, out, nil)
  return table.concat(out, "\n")
end

return M

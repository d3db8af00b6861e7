-- A schema (structured) report as an HTML table for report/html.lua: one row per field, in the
-- schema's order (propertyOrdering, then required, then the rest by name: a decoded JSON object
-- has no order of its own), nested objects as dotted paths, each row with the sources of its
-- basis as citation superscripts. Every value is escaped.
local read = require "deepresearch.report.read"
local json = require "deepresearch.base.json"
local md = require "deepresearch.report.html_md"

local M = {}

local esc = md.escape
local is_null, is_sequence = json.is_null, json.is_sequence

local SCHEMA_PATHS = { "output_schema", "schema", "json_schema", "text.format.schema",
  "response_format.json_schema.schema", "output_schema.schema", "response_format.schema" }

--- The JSON Schema a task was asked to fill (the first object with properties), or nil.
function M.schema_of(task)
  for _, path in ipairs(SCHEMA_PATHS) do
    local s = read.at_path(task, path)
    if type(s) == "table" and type(s.properties) == "table" then return s end
  end
  return nil
end

--- The keys of value in the schema's order.
function M.ordered_keys(value, schema)
  local keys, seen = {}, {}
  local function add(k)
    if value[k] ~= nil and not seen[k] then
      seen[k] = true
      keys[#keys + 1] = k
    end
  end
  if type(schema) == "table" then
    for _, name in ipairs({ "propertyOrdering", "required" }) do
      local list = schema[name]
      if type(list) == "table" then
        for _, k in ipairs(list) do
          if type(k) == "string" then add(k) end
        end
      end
    end
  end
  local rest = {}
  for k in pairs(value) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do add(k) end
  return keys
end

local function scalar(x)
  if type(x) == "number" then
    if x % 1 == 0 and x > -2 ^ 53 and x < 2 ^ 53 then return string.format("%d", x) end
    return string.format("%.14g", x)
  end
  if x == nil or is_null(x) then return "<em>none</em>" end
  return esc(tostring(x))
end

local function value_html(x)
  if type(x) ~= "table" or is_null(x) then return scalar(x) end
  if next(x) == nil then return "<em>none</em>" end
  local parts = {}
  if is_sequence(x) then
    for i, item in ipairs(x) do parts[i] = "<li>" .. value_html(item) .. "</li>" end
    return "<ul>" .. table.concat(parts) .. "</ul>"
  end
  for _, k in ipairs(M.ordered_keys(x)) do
    parts[#parts + 1] = "<strong>" .. esc(k) .. "</strong>: " .. value_html(x[k])
  end
  return table.concat(parts, "; ")
end

local function rows(value, schema, path, basis, cite, out)
  for _, k in ipairs(M.ordered_keys(value, schema)) do
    local x = value[k]
    local key = path and path .. "." .. tostring(k) or tostring(k)
    local props = type(schema) == "table" and type(schema.properties) == "table" and
      schema.properties or nil
    local ids = basis[key]
    local c = ids and #ids > 0 and cite(ids) or ""
    if type(x) == "table" and not is_null(x) and next(x) ~= nil and not is_sequence(x) then
      out[#out + 1] = '<tr class="group"><th>' .. esc(key) .. "</th><td></td><td>" .. c ..
        "</td></tr>"
      rows(x, props and props[k], key, basis, cite, out)
    else
      out[#out + 1] = "<tr><th>" .. esc(key) .. "</th><td>" .. value_html(x) .. "</td><td>" ..
        c .. "</td></tr>"
    end
  end
end

--- The table for view v (report/init.lua's reading of the task), R = report.internal.
function M.table(v, origin, R, cite)
  local out = { '<table class="fields">', "<tr><th>Field</th><th>Value</th><th>Sources</th></tr>" }
  local fields = type(v.fields) == "table" and v.fields or {}
  rows(fields, M.schema_of(origin), nil, R.flatten_basis(v.basis or {}, nil, {}), cite, out)
  out[#out + 1] = "</table>"
  return table.concat(out, "\n")
end

return M

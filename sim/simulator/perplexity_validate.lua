-- luacheck: std lua54
-- Perplexity Agent API create-body validation (perplexity-agent.md A.3, A.10; PART C PA4):
-- strict, unknown fields at any depth are refused (Go's json decoder with DisallowUnknownFields),
-- verbatim messages where the captures give them, "validation failed: <field>: <reason>" else.
local M = {}

-- cjson decodes every JSON number as a float on Lua 5.4: 5 arrives as 5.0.
function M.integer(v)
  return type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53
end

-- Known fields per object kind; `true` = any value, a string = the kind of the nested object,
-- a table { list = kind } = an array of objects of that kind.
local SHAPES = {
  request = { input = true, preset = true, model = true, models = true, profile = "profile",
    background = true, store = true, instructions = true, max_steps = true,
    max_output_tokens = true, reasoning = "reasoning", response_format = "response_format",
    tools = { list = "tool" }, tool_choice = true, max_tool_calls = true, metadata = true,
    previous_response_id = true, language_preference = true, stream = true, temperature = true,
    top_p = true, parallel_tool_calls = true, truncation = true, prompt_cache_key = true,
    service_tier = true, safety_identifier = true, user = true, top_logprobs = true,
    stream_options = "stream_options", skills = true, text = "text", effort = true },
  profile = { type = true, id = true, version = true },
  reasoning = { effort = true },
  response_format = { type = true, json_schema = "json_schema" },
  json_schema = { name = true, schema = true, description = true, strict = true },
  stream_options = { include_usage = true },
  text = {},
  tool = { type = true, filters = "filters", search_context_size = true, max_results = true,
    max_tokens = true, max_tokens_per_page = true, user_location = "user_location",
    max_urls = true, server_label = true, server_url = true, headers = true,
    allowed_tools = true, require_approval = true, name = true, description = true,
    parameters = true, strict = true, connector_id = true },
  filters = { search_domain_filter = true, search_recency_filter = true,
    search_after_date_filter = true, search_before_date_filter = true,
    last_updated_after_filter = true, last_updated_before_filter = true },
  user_location = { country = true, region = true, city = true, latitude = true,
    longitude = true },
  input_item = { type = true, role = true, content = true, call_id = true, name = true,
    arguments = true, output = true, id = true, status = true },
  content_part = { type = true, text = true, image_url = true },
}

local RECENCY = { hour = true, day = true, week = true, month = true, year = true }

local function bad(message, param, type_)
  return { status = 400, message = message, param = param, type = type_ or "invalid_request" }
end

local function is_object(v) return type(v) == "table" and (next(v) == nil or v[1] == nil) end
local function is_array(v) return type(v) == "table" and (next(v) == nil or v[1] ~= nil) end

local function unknown(obj, kind)
  if not is_object(obj) then return nil end
  local shape = SHAPES[kind]
  local keys = {}
  for k in pairs(obj) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local want = shape[k]
    if want == nil then
      return bad('invalid request body: json: unknown field "' .. k .. '"', k)
    elseif type(want) == "string" then
      local e = unknown(obj[k], want)
      if e then return e end
    elseif type(want) == "table" and is_array(obj[k]) then
      for _, x in ipairs(obj[k]) do
        local e = unknown(x, want.list)
        if e then return e end
      end
    end
  end
end

local function input_items(input)
  for _, item in ipairs(input) do
    local e = unknown(item, "input_item")
    if e then return e end
    if is_object(item) and is_array(item.content) then
      for _, part in ipairs(item.content) do
        e = unknown(part, "content_part")
        if e then return e end
      end
    end
  end
end

local function vfail(field, reason)
  return bad("validation failed: " .. field .. ": " .. reason, field)
end

local function check_input(input, null)
  if input == "" then return bad("validation failed: input cannot be empty", "input") end
  if type(input) == "string" then return nil end
  if input == nil or input == null or not is_array(input) or next(input) == nil then
    return bad("validation failed: input array cannot be empty", "input")
  end
  return input_items(input)
end

local function check_types(b, null)
  local function typed(name, want)
    local v = b[name]
    if v == nil or v == null then return nil end
    local ok = (want == "integer" and M.integer(v))
      or (want == "array" and is_array(v)) or (want == "object" and is_object(v))
      or type(v) == want
    if not ok then
      return vfail(name, "must be " .. (want == "integer" and "an " or "a ") .. want)
    end
  end
  for name, want in pairs({ preset = "string", model = "string", models = "array",
    background = "boolean", store = "boolean", instructions = "string", max_steps = "integer",
    max_output_tokens = "integer", max_tool_calls = "integer", metadata = "object",
    previous_response_id = "string", stream = "boolean", tools = "array", effort = "string",
    response_format = "object", reasoning = "object", profile = "object" }) do
    local e = typed(name, want)
    if e then return e end
  end
end

local function check_dates(f, strict)
  for _, k in ipairs({ "search_after_date_filter", "search_before_date_filter",
    "last_updated_after_filter", "last_updated_before_filter" }) do
    local v = f[k]
    if v ~= nil then
      local us = type(v) == "string" and v:match("^%d%d/%d%d/%d%d%d%d$")
      local iso = type(v) == "string" and v:match("^%d%d%d%d%-%d%d%-%d%d$")
      if not us and (strict or not iso) then
        return bad("invalid date format for " .. k .. ": expected MM/DD/YYYY", k,
          "invalid_date_format")
      end
    end
  end
end

local function check_domains(list, i, strict)
  if not is_array(list) then return vfail("tools[" .. i .. "].filters.search_domain_filter",
    "must be an array of strings") end
  if #list > 20 then
    return vfail("tools[" .. i .. "].filters.search_domain_filter", "at most 20 entries")
  end
  local allow, deny = false, false
  for _, d in ipairs(list) do
    if type(d) ~= "string" or #d > 253 or d == "" then
      return vfail("tools[" .. i .. "].filters.search_domain_filter", "invalid entry")
    end
    if d:sub(1, 1) == "-" then deny = true else allow = true end
  end
  if strict and allow and deny then
    return bad("search_domain_filter cannot mix allow and deny entries", "search_domain_filter",
      "invalid_search_domain_filter")
  end
end

local function check_tool(t, i, strict)
  if not is_object(t) or type(t.type) ~= "string" then
    return vfail("tools[" .. i .. "].type", "is required")
  end
  if t.type ~= "web_search" then return nil end
  if t.max_results ~= nil then
    if not M.integer(t.max_results) then
      return vfail("tools[" .. i .. "].max_results", "must be an integer")
    elseif t.max_results < 1 then
      return bad("validation failed: tools[" .. i .. "]: max results must be at least 1")
    elseif t.max_results > 50 then
      return vfail("tools[" .. i .. "].max_results", "must be at most 50")
    end
  end
  local f = t.filters
  if not is_object(f) then return nil end
  if f.search_recency_filter ~= nil and not RECENCY[f.search_recency_filter] then
    return bad("validation failed: tools[" .. i .. "]: search recency filter must be one of: "
      .. "hour day week month year")
  end
  if f.search_domain_filter ~= nil then
    local e = check_domains(f.search_domain_filter, i, strict)
    if e then return e end
  end
  return check_dates(f, strict)
end

local function check_format(rf)
  if rf == nil then return nil end
  if rf.type ~= "json_schema" then
    return vfail("response_format.type", 'must be "json_schema"')
  end
  local js = rf.json_schema
  if not is_object(js) then
    return bad('validation failed: response_format.json_schema is required when type is '
      .. '"json_schema"')
  end
  if not is_object(js.schema) then return bad("invalid request") end
  if js.schema.type ~= "object" then
    return bad(string.format("json_schema.schema must have a root type of 'object' (got "
      .. 'type="%s"). Wrap your schema in an object.', tostring(js.schema.type)), nil,
      "invalid_parameter")
  end
  if js.name ~= nil and (type(js.name) ~= "string" or not js.name:match("^[%w_%-]+$")
    or #js.name > 64) then
    return vfail("response_format.json_schema.name", "must match ^[a-zA-Z0-9_-]{1,64}$")
  end
end

local function check_rest(b, strict)
  if b.max_steps ~= nil and b.max_steps < 1 then
    return bad("validation failed: max steps must be at least 1")
  end
  if b.max_steps ~= nil and b.max_steps > 101 then
    return vfail("max_steps", "must be at most 100")
  end
  if b.models ~= nil and (#b.models == 0 or #b.models > 5) then
    return vfail("models", "must hold 1 to 5 entries")
  end
  if b.preset ~= nil and b.profile ~= nil then
    return vfail("profile", "cannot be combined with preset")
  end
  for i, t in ipairs(b.tools or {}) do
    local e = check_tool(t, i - 1, strict)
    if e then return e end
  end
  return check_format(b.response_format)
end

--- The request's problem as { status, message, type, param? }, or nil.
-- opts: strict (documented filter strictness), effort (accept the `effort` field).
function M.check(req, null, opts)
  if req.json_error or not is_object(req.json) then
    return bad("invalid request body: malformed JSON")
  end
  local b = req.json
  if b.text ~= nil and is_object(b.text) and b.text.format ~= nil then
    return bad('invalid request body: json: unknown field "format"', "format")
  end
  if b.effort ~= nil and not opts.effort then
    return bad('invalid request body: json: unknown field "effort"', "effort")
  end
  local clean = {} -- top-level nulls mean "not given"
  for k, v in pairs(b) do if v ~= null then clean[k] = v end end
  return unknown(b, "request") or check_input(b.input, null) or check_types(clean, null)
    or check_rest(clean, opts.strict)
end

return M

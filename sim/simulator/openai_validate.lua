-- luacheck: std lua54
-- OpenAI create-body validation (openai.md A.3, A.7; PART C O3): the error envelope OpenAI
-- answers, with `param` naming the field. Nothing is created when this says no.
local M = {}

-- cjson decodes every JSON number as a float on Lua 5.4: 5 arrives as 5.0.
function M.integer(v)
  return type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53
end

local KNOWN = {
  model = true, input = true, background = true, tools = true, reasoning = true,
  max_tool_calls = true, metadata = true, store = true, instructions = true,
  max_output_tokens = true, service_tier = true, stream = true, text = true, include = true,
  parallel_tool_calls = true, previous_response_id = true, temperature = true, top_p = true,
  truncation = true, user = true, tool_choice = true, prompt_cache_key = true,
  safety_identifier = true, top_logprobs = true, stream_options = true, conversation = true,
}

local TOOL_TYPES = {
  web_search_preview = true, web_search_preview_2025_03_11 = true, web_search = true,
  mcp = true, file_search = true, code_interpreter = true, ["function"] = true,
  image_generation = true, computer_use_preview = true,
}
-- The data sources a deep-research model needs at least one of.
local SOURCES = { web_search_preview = true, web_search_preview_2025_03_11 = true,
  web_search = true, mcp = true, file_search = true }
M.SEARCH = { web_search_preview = true, web_search_preview_2025_03_11 = true, web_search = true }

local ENUMS = {
  service_tier = { "auto", "default", "flex", "priority" },
  ["reasoning.summary"] = { "auto", "concise", "detailed" },
  ["reasoning.effort"] = { "minimal", "low", "medium", "high", "xhigh" },
}

local function err(message, param, code)
  return { status = 400, message = message, param = param, code = code }
end

local function json_type(v, null)
  if v == null then return "null" end
  local t = type(v)
  if t == "number" then return M.integer(v) and "an integer" or "a decimal" end
  if t == "table" then return (v[1] ~= nil or next(v) == nil) and "an array" or "an object" end
  if t == "boolean" then return "a boolean" end
  return "a string"
end

local function wrong_type(name, expected, v, null)
  return err(string.format("Invalid type for '%s': expected %s, but got %s instead.", name,
    expected, json_type(v, null)), name, "invalid_type")
end

local function is_object(v) return type(v) == "table" and (next(v) == nil or v[1] == nil) end
local function is_array(v) return type(v) == "table" and (next(v) == nil or v[1] ~= nil) end

local function enum(name, v, null)
  if v == nil then return nil end
  local allowed = ENUMS[name]
  for _, a in ipairs(allowed) do if v == a then return nil end end
  if type(v) ~= "string" then return wrong_type(name, "one of " .. table.concat(allowed, ", "),
    v, null) end
  return err(string.format("Invalid value: '%s'. Supported values are: '%s'.", v,
    table.concat(allowed, "', '")), name, "invalid_value")
end

local function check_tools(tools, null)
  if tools == nil then return nil end
  if not is_array(tools) then return wrong_type("tools", "an array", tools, null) end
  for i, t in ipairs(tools) do
    local name = string.format("tools[%d]", i - 1)
    if not is_object(t) then return wrong_type(name, "an object", t, null) end
    if type(t.type) ~= "string" then
      return err(string.format("Missing required parameter: '%s.type'.", name), name .. ".type",
        "missing_required_parameter")
    end
    if not TOOL_TYPES[t.type] then
      return err(string.format("Invalid value: '%s'. Supported values are: 'web_search_preview',"
        .. " 'web_search', 'mcp', 'file_search', 'code_interpreter' and 'function'.", t.type),
        name .. ".type", "invalid_value")
    end
  end
end

local function check_metadata(m, null)
  if m == nil or m == null then return nil end
  if not is_object(m) then return wrong_type("metadata", "an object", m, null) end
  local n = 0
  for k, v in pairs(m) do
    n = n + 1
    if #k > 64 then
      return err("Invalid 'metadata': key too long. Expected a key of at most 64 characters.",
        "metadata", "string_above_max_length")
    end
    if type(v) ~= "string" then return wrong_type("metadata." .. k, "a string", v, null) end
    if #v > 512 then
      return err(string.format("Invalid 'metadata.%s': string too long. Expected a string with "
        .. "maximum length 512, but got a string with length %d instead.", k, #v),
        "metadata." .. k, "string_above_max_length")
    end
  end
  if n > 16 then
    return err(string.format("Invalid 'metadata': too many properties. Expected an object with "
      .. "at most 16 properties, but got %d instead.", n), "metadata",
      "object_above_max_properties")
  end
end

local function check_int(body, name, min, null)
  local v = body[name]
  if v == nil or v == null then return nil end
  if not M.integer(v) then return wrong_type(name, "an integer", v, null) end
  if v < min then
    return err(string.format("Invalid '%s': integer below minimum value. Expected a value >= %d,"
      .. " but got %d instead.", name, min, v), name, "integer_below_min_value")
  end
end

local function check_scalars(body, null)
  for _, name in ipairs({ "background", "store", "stream", "parallel_tool_calls" }) do
    local v = body[name]
    if v ~= nil and v ~= null and type(v) ~= "boolean" then
      return wrong_type(name, "a boolean", v, null)
    end
  end
  if body.instructions ~= nil and body.instructions ~= null
    and type(body.instructions) ~= "string" then
    return wrong_type("instructions", "a string", body.instructions, null)
  end
  return check_int(body, "max_output_tokens", 16, null)
    or check_int(body, "max_tool_calls", 1, null)
    or enum("service_tier", body.service_tier, null)
end

local function check_reasoning(r, null)
  if r == nil or r == null then return nil end
  if not is_object(r) then return wrong_type("reasoning", "an object", r, null) end
  return enum("reasoning.summary", r.summary ~= null and r.summary or nil, null)
    or enum("reasoning.effort", r.effort ~= null and r.effort or nil, null)
end

local function check_input(input, null)
  if input == nil then
    return err("Missing required parameter: 'input'.", "input", "missing_required_parameter")
  end
  if type(input) == "string" then
    if input == "" then
      return err("Invalid 'input': empty string. Expected a string with minimum length 1.",
        "input", "empty_string")
    end
    return nil
  end
  if not is_array(input) or next(input) == nil then
    return wrong_type("input", "a string or an array of input items", input, null)
  end
end

--- The request's problem as { status, message, param, code }, or nil.
function M.check(req, null)
  if req.json_error or type(req.json) ~= "table" or not is_object(req.json) then
    return err("We could not parse the JSON body of your request. (HINT: This likely means you "
      .. "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but "
      .. "what was sent was not valid JSON.)", nil, nil)
  end
  local body = req.json
  for k in pairs(body) do
    if not KNOWN[k] then return err("Unknown parameter: '" .. k .. "'.", k, "unknown_parameter") end
  end
  if body.model == nil then
    return err("Missing required parameter: 'model'.", "model", "missing_required_parameter")
  end
  if type(body.model) ~= "string" then return wrong_type("model", "a string", body.model, null) end
  return check_input(body.input, null) or check_scalars(body, null)
    or check_tools(body.tools, null) or check_metadata(body.metadata, null)
    or check_reasoning(body.reasoning, null)
end

--- Whether a tool list holds a data source (web search, MCP or file search).
function M.has_source(tools)
  for _, t in ipairs(type(tools) == "table" and tools or {}) do
    if SOURCES[t.type] then return true end
  end
  return false
end

--- The tool types present, as a set.
function M.types(tools)
  local set = {}
  for _, t in ipairs(type(tools) == "table" and tools or {}) do set[t.type] = true end
  return set
end

return M

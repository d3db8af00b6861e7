-- luacheck: std lua54
-- Strict validation of a Gemini create body (gemini.md A.3, Part C G3). Returns nil when the body
-- is acceptable, else the HTTP status, Google status name and message. Nothing is created on error.
local M = {}

local FIELDS = {
  agent = true, model = true, input = true, background = true, store = true, stream = true,
  agent_config = true, tools = true, previous_interaction_id = true, system_instruction = true,
  labels = true, webhook_config = true, response_format = true, service_tier = true,
  safety_settings = true,
}

local CONFIG_FIELDS = { type = true, thinking_summaries = true, visualization = true,
  collaborative_planning = true, enable_bigquery_tool = true }

local ENUMS = {
  thinking_summaries = { auto = true, none = true },
  visualization = { auto = true, off = true },
}

local TOOLS = { google_search = true, url_context = true, code_execution = true,
  mcp_server = true, file_search = true }

local PARTS = { text = true, image = true, document = true, audio = true, video = true }

local function bad(message) return 400, "INVALID_ARGUMENT", message end

local function unknown_name(name, where)
  return bad(string.format('Invalid JSON payload received. Unknown name "%s"%s: Cannot find field.',
    tostring(name), where or ""))
end

local function is_array(v)
  return type(v) == "table" and (v[1] ~= nil or next(v) == nil)
end

local function check_part(p, i)
  if type(p) ~= "table" then return bad("input[" .. i .. "] must be an object") end
  if p.role ~= nil then -- a turn: {role, content}
    if type(p.content) ~= "string" and not is_array(p.content) then
      return bad("input[" .. i .. "].content must be a string or a list of content")
    end
    return nil
  end
  if not PARTS[p.type] then return bad("input[" .. i .. "].type is not a valid content type") end
  if p.type == "text" and type(p.text) ~= "string" then
    return bad("input[" .. i .. "].text must be a string")
  end
  return nil
end

local function check_input(input)
  if input == nil then return bad("input is required.") end
  if type(input) == "string" then
    if not input:find("%S") then return bad("input must not be empty.") end
    return nil
  end
  if not is_array(input) or next(input) == nil then
    return bad("input must be a string or a non-empty list of content.")
  end
  for i, p in ipairs(input) do
    local status, name, msg = check_part(p, i - 1)
    if status then return status, name, msg end
  end
  return nil
end

local function check_agent_config(c)
  if c == nil then return nil end
  if type(c) ~= "table" or is_array(c) and next(c) then
    return bad("agent_config must be an object.")
  end
  for k in pairs(c) do
    if not CONFIG_FIELDS[k] then return unknown_name(k, ' at \'agent_config\'') end
  end
  if c.type ~= "deep-research" then
    return bad('agent_config.type must be "deep-research" for a Deep Research agent.')
  end
  for field, values in pairs(ENUMS) do
    if c[field] ~= nil and not values[c[field]] then
      return bad(string.format('Invalid value at \'agent_config.%s\' (%s): "%s"', field,
        field == "visualization" and "auto|off" or "auto|none", tostring(c[field])))
    end
  end
  for _, field in ipairs({ "collaborative_planning", "enable_bigquery_tool" }) do
    if c[field] ~= nil and type(c[field]) ~= "boolean" then
      return bad("agent_config." .. field .. " must be a boolean.")
    end
  end
  return nil
end

local function check_tools(tools)
  if tools == nil then return nil end
  if not is_array(tools) then return bad("tools must be a list.") end
  for i, t in ipairs(tools) do
    local kind = type(t) == "table" and t.type
    if kind == "function" then
      return bad("Function calling is not supported by the Deep Research agent.")
    end
    if not TOOLS[kind] then
      return bad(string.format("tools[%d].type is not a supported tool: %s", i - 1, tostring(kind)))
    end
  end
  return nil
end

local function check_strings(body)
  for _, f in ipairs({ "agent", "model", "previous_interaction_id", "system_instruction",
    "service_tier" }) do
    if body[f] ~= nil and type(body[f]) ~= "string" then return bad(f .. " must be a string.") end
  end
  if body.labels ~= nil then
    if type(body.labels) ~= "table" or is_array(body.labels) and next(body.labels) then
      return bad("labels must be a map of strings.")
    end
    for k, v in pairs(body.labels) do
      if type(k) ~= "string" or type(v) ~= "string" then
        return bad("labels must be a map of strings.")
      end
    end
  end
  return nil
end

local function check_webhook(w)
  if w == nil then return nil end
  if type(w) ~= "table" or is_array(w) and next(w) then
    return bad("webhook_config must be an object.")
  end
  if w.uris ~= nil and not is_array(w.uris) then
    return bad("webhook_config.uris must be a list.")
  end
  for _, u in ipairs(w.uris or {}) do
    if type(u) ~= "string" or not u:match("^https?://") then
      return bad("webhook_config.uris must hold URLs.")
    end
  end
  if w.user_metadata ~= nil and type(w.user_metadata) ~= "table" then
    return bad("webhook_config.user_metadata must be an object.")
  end
  return nil
end

-- The agent: nil when usable, else the error. agents maps id -> "standard" | "max" | "retired".
local function check_agent(body, agents)
  if body.agent and body.model then
    return bad("Only one of agent or model may be set.")
  end
  if body.agent == nil then
    if body.model ~= nil then
      return bad("The simulator serves agent interactions only: set agent, not model.")
    end
    return bad("agent is required.")
  end
  local kind = agents[body.agent]
  if kind == "retired" then
    return 404, "NOT_FOUND", string.format("Agent %s is not found for API version v1beta, or is "
      .. "not supported for interactions. It was shut down; use a current agent.", body.agent)
  end
  if kind ~= "standard" and kind ~= "max" then
    return bad(string.format("Agent %s is not a valid agent.", body.agent))
  end
  return nil
end

local function check_flags(body)
  if body.background ~= true then
    return bad("background=true is required for Deep Research agents.")
  end
  if body.store == false then
    return bad("store=false is not supported with background=true.")
  end
  if body.stream ~= nil and body.stream ~= false then
    return bad("stream=true is not simulated: create with stream=false and poll.")
  end
  if body.response_format ~= nil then
    return bad("response_format (structured output) is not supported by Deep Research agents.")
  end
  return nil
end

--- nil, or status, status_name, message.
function M.create(body, agents)
  if type(body) ~= "table" or is_array(body) and next(body) then
    return bad("Invalid JSON payload received. Expected an object.")
  end
  for k in pairs(body) do
    if not FIELDS[k] then return unknown_name(k) end
  end
  local checks = {
    function() return check_strings(body) end,
    function() return check_agent(body, agents) end,
    function() return check_input(body.input) end,
    function() return check_flags(body) end,
    function() return check_agent_config(body.agent_config) end,
    function() return check_tools(body.tools) end,
    function() return check_webhook(body.webhook_config) end,
  }
  for _, check in ipairs(checks) do
    local status, name, msg = check()
    if status then return status, name, msg end
  end
  return nil
end

--- The prompt text of an input (string, content parts or turns), for markers and the target.
function M.text(input)
  if type(input) == "string" then return input end
  local out = {}
  for _, p in ipairs(type(input) == "table" and input or {}) do
    if type(p) == "table" then
      if type(p.text) == "string" then out[#out + 1] = p.text end
      if type(p.content) == "string" then out[#out + 1] = p.content end
      if type(p.content) == "table" then out[#out + 1] = M.text(p.content) end
    end
  end
  return table.concat(out, "\n")
end

return M

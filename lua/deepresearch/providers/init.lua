-- What differs between providers, as data: endpoints, auth, states, error bodies.
local M = {}

-- Extruct answers errors the FastAPI way: {"detail": string | object | [pydantic items]}.
local function fastapi_error(body)
  local info = {}
  local detail = type(body) == "table" and body.detail or nil
  if type(detail) == "string" then
    info.message = detail
  elseif type(detail) == "table" and detail.error then
    info.message, info.server_code = tostring(detail.error), detail.error
    info.required_credits = detail.required_credits
    info.available_credits = detail.available_credits
  elseif type(detail) == "table" and detail[1] then
    local fields, msgs = {}, {}
    for _, item in ipairs(detail) do
      local loc = type(item.loc) == "table" and item.loc or {}
      local name = loc[#loc] ~= nil and tostring(loc[#loc]) or "?"
      fields[#fields + 1] = { field = name, message = item.msg, type = item.type, loc = loc }
      msgs[#msgs + 1] = name .. ": " .. tostring(item.msg)
    end
    info.fields = fields
    info.message = table.concat(msgs, "; ")
  end
  info.details = detail
  -- Only FastAPI's own shapes: a string detail, an object with an error code, pydantic items.
  info.api = info.message ~= nil or nil
  return info
end

-- Valyu: {"success": false, "error": "..."} or {"error": "validation_failed", "message": ..., "errors": [...]}.
local function valyu_error(body)
  local info = {}
  if type(body) ~= "table" then return info end
  local msg = body.message or body.error
  if type(body.errors) == "table" and #body.errors > 0 then
    local parts, fields = { tostring(msg or "validation failed") }, {}
    for _, item in ipairs(body.errors) do
      local m = tostring(item.message or item.code or "")
      if item.key and not m:find(item.key, 1, true) then m = item.key .. ": " .. m end
      parts[#parts + 1] = m
      fields[#fields + 1] = { field = item.key, message = item.message, type = item.code }
    end
    msg = table.concat(parts, "; ")
    info.fields = fields
  end
  info.message = msg and tostring(msg) or nil
  info.server_code = type(body.error) == "string" and body.error:match("^[%l_]+$") and body.error or nil
  info.details = body
  -- Valyu's documented error bodies say success = false, or name a snake_case error code
  -- (validation_failed); a gateway's {"error": "Service Unavailable"} is neither.
  info.api = (body.success == false or info.server_code ~= nil) or nil
  return info
end

M.extruct = {
  name = "extruct",
  base_url = "https://api.extruct.ai",
  base_env = "EXTRUCT_BASE_URL",
  token_env = "EXTRUCT_API_TOKEN",
  token_option = "token",
  auth_header = "Authorization",
  auth_prefix = "Bearer ",
  parse_error = fastapi_error,
  kinds = {
    research = {
      path = "/v1/deep_research_tasks",
      id_field = "id",
      states = { created = "queued", in_progress = "running", done = "done", failed = "failed" },
      progress = { "status", "iterations", "agents", "sources" },
      failure_field = "failure_reason",
      label = "task",
    },
    discovery = {
      path = "/v1/discovery_tasks",
      id_field = "id",
      states = { created = "queued", in_progress = "running", done = "done", failed = "failed" },
      progress = { "status", "num_results_discovered", "num_results_enriched",
                   "num_results_evaluated", "num_results", "is_exhausted" },
      failure_field = "failure_reason",
      label = "discovery task",
    },
  },
}

M.valyu = {
  name = "valyu",
  base_url = "https://api.valyu.ai",
  base_env = "VALYU_BASE_URL",
  token_env = "VALYU_API_KEY",
  token_option = "api_key",
  auth_header = "X-API-Key",
  auth_prefix = "",
  parse_error = valyu_error,
  kinds = {
    research = {
      path = "/v1/deepresearch/tasks",
      status_suffix = "/status",
      id_field = "deepresearch_id",
      states = { queued = "queued", running = "running", completed = "done", failed = "failed",
                 cancelled = "cancelled", awaiting_input = "running", paused = "running" },
      progress = { "status", "progress.current_step", "progress.total_steps", "#messages" },
      failure_field = "error",
      label = "task",
    },
  },
}

--- The normalised state word of any provider's task, or nil for a status nobody knows.
function M.state(task)
  if type(task) ~= "table" then return nil end
  for _, p in pairs({ M.extruct, M.valyu }) do
    for _, kind in pairs(p.kinds) do
      if task[kind.id_field] ~= nil and kind.states[task.status] then
        return kind.states[task.status]
      end
    end
  end
  return nil
end

return M

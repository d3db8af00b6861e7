-- The one error model: every failure is `nil, err` with err built here.
local M = {}

local Error = {}
Error.__index = Error
Error.__name = "deepresearch.error"

function Error.__tostring(e)
  local parts = { "deepresearch: ", e.code }
  if e.status then parts[#parts + 1] = " (HTTP " .. e.status .. ")" end
  parts[#parts + 1] = ": "
  parts[#parts + 1] = (tostring(e.message or ""):gsub("[\r\n]+", " "))
  if e.request_id then parts[#parts + 1] = " [request " .. e.request_id .. "]" end
  return table.concat(parts)
end

M.Error = Error

-- Codes that are safe to retry after a while, for requests that change nothing.
local RETRYABLE = {
  network = true, timeout = true, rate_limited = true, unavailable = true, server_error = true,
}
M.RETRYABLE = RETRYABLE

--- Builds an error object. fields may add status, request_id, details and more.
function M.new(code, message, fields)
  local e = {}
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  e.code = code
  e.message = message
  if e.retryable == nil then e.retryable = RETRYABLE[code] or false end
  return setmetatable(e, Error)
end

function M.is(v)
  return getmetatable(v) == Error
end

function M.invalid(message, fields)
  return M.new("invalid_request", message, fields)
end

--- A method the provider's API lacks (list on an API that cannot list tasks, cancel where
-- nothing cancels): code "unsupported", never retryable.
-- label: how the message names the provider ("Gemini"), provider its name ("gemini").
function M.unsupported(provider, method, label)
  return M.new("unsupported", string.format("%s has no '%s': its API offers no such operation",
    tostring(label or provider), tostring(method)), { provider = provider, method = method })
end

return M

-- One request, end to end: URL and headers, the C transport, retries, and the
-- mapping of every outcome onto the error model.
local core = require "deepresearch.core"
local errors = require "deepresearch.base.errors"
local retry = require "deepresearch.base.policy"

local M = {}

-- Each public client's private state (its C handle, token, retry policy, caches), keyed by the
-- client table: nothing reachable from the client holds it. Weak keys: a dropped client goes,
-- and its handle's own __gc closes the transfers. Internal modules (and specs) reach it here.
local states = setmetatable({}, { __mode = "k" })
M.states = states

--- The private state of client; raises when client is not a deepresearch client (or was never one).
function M.state(client)
  local state = states[client]
  if state == nil then
    error("bad argument #1 (deepresearch.client expected, got " .. type(client) .. ")", 3)
  end
  return state
end

local c_methods = core.client_methods
local raw_request, finish, abandon = c_methods.request, c_methods.finish, c_methods.abandon

--- Percent-escapes one path segment: ids can never reach another endpoint ('/', '?', '#', '..').
local function escape_byte(c) return string.format("%%%02X", c:byte()) end

function M.escape(s)
  if not s:find("[^%w_%-]") then return s end -- ids are UUIDs: nothing to escape
  return (s:gsub("[^%w_%-]", escape_byte))
end

local function query_string(q)
  if not q then return "" end
  local keys = {}
  for k, v in pairs(q) do
    if v ~= nil then keys[#keys + 1] = k end
  end
  if #keys == 0 then return "" end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = q[k]
    if type(v) == "number" and v % 1 == 0 then v = string.format("%d", v) end
    parts[#parts + 1] = M.escape(k) .. "=" .. M.escape(tostring(v))
  end
  return "?" .. table.concat(parts, "&")
end

function M.url(state, path, query)
  return state.base_url .. path .. query_string(query)
end

local function resolve_token(state)
  local t = state.token
  if t == state.checked_token and t ~= nil then return t end -- a string already checked
  local p = state.provider
  if type(t) == "function" then
    local ok, v = pcall(t)
    if not ok then
      return nil, errors.new("unauthorized", "the token function raised an error: " .. tostring(v))
    end
    t = v
  end
  if t == nil or t == "" then
    return nil, errors.new("unauthorized", "no API token: set " .. p.token_env .. " or pass " ..
      p.token_option .. " = ... to dr.client")
  end
  if type(t) ~= "string" then
    return nil, errors.new("unauthorized", "the token must be a string, got " .. type(t))
  end
  if t:find("[%c\128-\255 ]") then
    return nil,
      errors.invalid("the token contains spaces or control characters; refusing to send it")
  end
  if type(state.token) == "string" then state.checked_token = t end
  return t
end

local function build_headers(state, token, has_body, extra, accept)
  local p = state.provider
  local h = {}
  -- token false: a signed URL on another host carries its own credential, never our key.
  if token then h[1] = p.auth_header .. ": " .. p.auth_prefix .. token end
  h[#h + 1] = "Accept: " .. (accept or "application/json")
  h[#h + 1] = "User-Agent: " .. state.user_agent
  if has_body then h[#h + 1] = "Content-Type: application/json" end
  for _, line in ipairs(extra or {}) do h[#h + 1] = line end
  return h
end

local function snippet(raw)
  raw = tostring(raw or "")
  if raw:find("<[Hh][Tt][Mm][Ll]") or raw:find("<!DOCTYPE", 1, true) then
    local title = raw:match("<title>(.-)</title>")
    return "an HTML page" .. (title and (" (" .. title .. ")") or "") .. ", not JSON"
  end
  if raw == "" then return "an empty body" end
  return string.format("%q", raw:sub(1, 120)):gsub("\\\n", "\\n")
end

--- The response headers by lower-case name (repeats joined by ", "), parsed from the
-- raw block the core returns on first use: most calls never read a header.
function M.headers(res)
  local h = res.headers
  if h then return h end
  h = {}
  for line in (res.head or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:%s]+):%s*(.-)%s*$")
    if k then
      k = k:lower()
      h[k] = h[k] and (h[k] .. ", " .. v) or v
    end
  end
  res.headers = h
  return h
end

local function status_code(status, info, req)
  if status == 400 then return req.on_400 or "invalid_request" end
  if status == 401 then return "unauthorized" end
  if status == 403 then
    return info.message == "Not authenticated" and "unauthorized" or "forbidden"
  end
  if status == 402 then
    local c = info.server_code
    if c == "plan_required" or c == "insufficient_credits" or c == "payment_failed" then
      return c
    end
    return "insufficient_credits"
  end
  if status == 404 then return "not_found" end
  if status == 408 then return "timeout" end
  if status == 429 then return "rate_limited" end
  if status == 503 then return "unavailable" end
  if status >= 500 then return "server_error" end
  return "invalid_request"
end

local function is_array(t)
  return type(t) == "table" and (t[1] ~= nil or next(t) == nil)
end

-- OpenAI's (and its SDKs') retry-after-ms, as whole seconds text (Retry-After's form).
local function ms_as_seconds(v)
  local ms = tonumber(v)
  if not ms or ms < 0 or ms ~= ms then return nil end
  return string.format("%d", math.ceil(math.min(ms, 86400000) / 1000)) -- a day at most
end

local function http_error(state, res, req)
  local headers = M.headers(res)
  local info = res.body ~= nil and state.provider.parse_error(res.body) or {}
  -- parse_error may name the code its body means (Gemini's 400 API_KEY_INVALID: unauthorized).
  local code = info.code or status_code(res.status, info, req)
  -- A body that is not JSON (a proxy's HTML page) is not the API speaking.
  if res.raw and res.raw ~= "" and res.body == nil then code = "invalid_response" end
  local msg = info.message
  if not msg then
    msg = "HTTP " .. res.status .. (res.raw and (" with " .. snippet(res.raw)) or "")
  end
  return errors.new(code, msg, {
    retryable = errors.RETRYABLE[info.code or status_code(res.status, info, req)] or false,
    -- The provider's own JSON error body: only such a 503 to a create means "nothing made".
    api = info.api or nil,
    status = res.status, request_id = headers["x-request-id"], details = info.details,
    fields = info.fields, required_credits = info.required_credits,
    available_credits = info.available_credits,
    -- The header, else the wait the body gives (Gemini's RetryInfo.retryDelay), as seconds text.
    retry_after = headers["retry-after"] or ms_as_seconds(headers["retry-after-ms"]) or
      info.retry_after,
  })
end

--- Turns a transport result into (body, nil, res) or (nil, err).
local function classify(state, res, req)
  if res.error then
    return nil, errors.new(res.error, res.message, { sent = res.sent })
  end
  local status = res.status
  if status == 304 and req.allow_304 then return nil, nil, res end
  if status >= 200 and status < 300 then
    local body, expect = res.body, req.expect
    local shape_ok = type(body) == "table" and
      (expect ~= "array" or is_array(body)) and (expect ~= "object" or not body[1])
    local problem = shape_ok and req.check and req.check(body)
    if (shape_ok and not problem) or expect == "any" then return body, nil, res end
    local what = res.decode_error and snippet(res.raw) or problem or
      ("JSON of the wrong shape (" .. type(body) .. ")")
    return nil, errors.new("invalid_response", string.format("%s %s answered HTTP %d with %s",
      req.method, req.path, status, what), {
        status = status, request_id = M.headers(res)["x-request-id"] })
  end
  if status == 304 then
    return nil, errors.new("invalid_response", req.method .. " " .. req.path ..
      " answered HTTP 304 Not Modified to a request that was not conditional", { status = 304 })
  end
  if status >= 300 and status < 400 then
    return nil, errors.new("invalid_response", string.format(
      "unexpected redirect (HTTP %d to %s); redirects are not followed", status,
      M.redact_url(tostring((M.headers(res).location or "?"):match("^%a+://[^/]+") or
        M.headers(res).location))),
      { status = status })
  end
  return nil, http_error(state, res, req)
end
M.classify = classify

local debug_on = os.getenv("DEEPRESEARCH_DEBUG") == "1"

--- The URL with the password of its user part shown as *** (user:***@host), for messages
-- and logs; a user part without a password may itself be a secret: ***@host. A signed asset
-- URL's token query parameter is a credential too: token=***.
function M.redact_url(url)
  url = tostring(url):gsub("^(%a[%w+.-]*://)([^/?#]*)@", function(scheme, userinfo)
    local user = userinfo:match("^([^:]*):")
    return scheme .. (user and (user .. ":***") or "***") .. "@"
  end, 1)
  return (url:gsub("([?&][Tt][Oo][Kk][Ee][Nn]=)[^&#]*", "%1***"))
end

local proxy_warned = false

--- In debug mode, once per process: a plain http:// base URL that goes through a proxy
-- sends the token to that proxy in clear. libcurl takes the proxy option, else http_proxy or
-- all_proxy/ALL_PROXY (never upper-case HTTP_PROXY for http://); "" and no_proxy=* turn it off.
function M.warn_clear_proxy(base_url, proxy)
  if not debug_on or proxy_warned or not base_url:lower():find("^http://") then return end
  local via = proxy
  if via == nil then
    local no = os.getenv("no_proxy") or os.getenv("NO_PROXY")
    if no == "*" then return end
    via = os.getenv("http_proxy") or os.getenv("all_proxy") or os.getenv("ALL_PROXY")
  end
  if via == nil or via == "" then return end
  proxy_warned = true
  io.stderr:write(string.format("deepresearch: warning: %s is plain http:// and goes through " ..
    "the proxy %s: " ..
    "the API token travels to the proxy in clear; use https://\n", M.redact_url(base_url),
      M.redact_url(via)))
end

local function log(req, spec, res, elapsed, attempt)
  local hdrs = {}
  for _, h in ipairs(spec.headers) do
    hdrs[#hdrs + 1] = h:match("^[Aa]uthorization:") and "Authorization: [redacted]"
      or h:match("^[Xx]%-[Aa][Pp][Ii]%-[Kk]ey:") and "X-API-Key: [redacted]" or h
  end
  io.stderr:write(string.format("deepresearch: %s %s -> %s (%.1f ms, attempt %d) [%s]\n",
    req.method, M.redact_url(spec.url), res.error or tostring(res.status), elapsed * 1000, attempt,
    table.concat(hdrs, "; ")))
end
M.set_debug = function(on) debug_on = on end

-- The header list of a plain read, kept per token: most requests are polls.
local function read_headers(state, token)
  if state.read_headers_token ~= token then
    state.read_headers = build_headers(state, token, false)
    state.read_headers_token = token
  end
  return state.read_headers
end

--- Prepares the transport spec for req; nil, err when the token is unusable.
-- A req marked reuse (the same request sent again and again: polls) keeps its spec while
-- the token, and so the header list, stays the same.
-- A download (req.file, the core writes a 2xx body there) may name a full req.url and go
-- anonymous (no key: a signed URL on another host) with its own Accept line (req.accept).
local function prepare(state, req)
  local token = state.token
  if req.anonymous then
    token = false
  elseif token == nil or token ~= state.checked_token then -- else a string already checked
    local err
    token, err = resolve_token(state)
    if not token then return nil, err end
  end
  local plain = req.body == nil and req.headers == nil and req.accept == nil and token
  local headers
  if plain then
    headers = state.read_headers_token == token and state.read_headers or read_headers(state, token)
    local spec = req.spec
    if spec and spec.headers == headers then return spec end
  else
    headers = build_headers(state, token, req.body ~= nil, req.headers, req.accept)
  end
  local spec = {
    method = req.method, url = req.url or M.url(state, req.path, req.query), body = req.body,
    headers = headers, timeout = req.timeout, fresh = req.effect ~= "read", effect = req.effect,
    file = req.file,
  }
  if req.reuse and plain then req.spec = spec end
  return spec
end
M.prepare = prepare

-- The longest the blocking transport stays in C at a time: lua.c's Ctrl-C hook fires only
-- when Lua code runs, so a request held by the server must return to Lua this often.
M.SLICE_MS = 100
local SLICE = M.SLICE_MS

-- Cancels the transfer an interrupted request left in flight (it closes that connection).
local function drop_interrupted(handle, state)
  local rec = state.interrupted
  state.interrupted = nil
  if rec.id and rec.result == nil then abandon(handle, rec.id) end
end

--- Cancels the transfer an error (Ctrl-C) left in flight on this client now, rather than
-- before its next request: a download's partial file goes with it.
function M.abandon_interrupted(state)
  if state.interrupted then drop_interrupted(state.handle, state) end
end

local function vanished()
  error("request vanished (client closed during the call?)", 0)
end

--- One request on a blocking client's own transfer, waited for in slices of SLICE ms, so
-- that an error raised between slices (the interrupt of Ctrl-C) can unwind out of it. The
-- request in flight is recorded as st.interrupted = { id, req, create } until it is done (the
-- C side sets rec.id as the transfer starts and rec.result as its answer arrives); a record
-- left behind is cancelled before the next request. Reads reuse one record per client; a
-- create gets its own, also kept as st.last_create with its answer for M.settle_interrupted.
local function transfer(handle, state, spec, req)
  if state.interrupted then drop_interrupted(handle, state) end
  local rec
  if req and req.effect == "create" then
    rec = { req = req, create = true }
    state.last_create = rec
  else
    rec = state.read_record
    if not rec then
      rec = { create = false }
      state.read_record = rec
    end
    rec.req = req
  end
  state.interrupted = rec
  local res = raw_request(handle, spec, SLICE, rec)
  while res == nil do res = finish(handle, rec.id, SLICE, rec) end
  state.interrupted = nil
  if not rec.create then rec.result = nil end -- a read's answer is its caller's alone
  if not res then vanished() end
  return res
end

--- After an interrupt (an error raised while a request was in flight, as lua.c does on
-- Ctrl-C) unwound out of a create on this client (create, run, discovery_create): waits up to
-- `seconds` for that create's answer if it is still in flight, then cancels it. Returns the
-- created task (a 2xx object that passes the create's checks), or nil and whether the outcome
-- is unknown: true when a task may exist (no answer within `seconds`, or one that may have made
-- a task: see extruct.maybe_created); false when no create was sent or its answer says none was
-- made. It answers about the client's latest create, once. stop (optional): a function polled
-- between slices; when it returns true the wait ends at once (a second Ctrl-C).
function M.settle_interrupted(client, seconds, stop)
  local state = M.state(client)
  local handle = state.handle
  local rec = state.last_create
  state.last_create = nil
  local open = not c_methods.closed(handle)
  if open and state.interrupted then
    local cur = state.interrupted
    if cur ~= rec then drop_interrupted(handle, state) end
  end
  if not rec or not rec.id then return nil, false end
  local res = rec.result
  if res == nil and open then
    local deadline = core.now() + (seconds or 0)
    repeat
      local left = math.floor((deadline - core.now()) * 1000)
      res = finish(handle, rec.id, math.max(0, math.min(SLICE, left)), rec)
    until res ~= nil or left <= 0 or (stop and stop())
  end
  if open and state.interrupted then drop_interrupted(handle, state) end
  if open and not res then abandon(handle, rec.id) end
  if not res then return nil, true end
  local body, err = classify(state, res, rec.req)
  if body ~= nil then return body, false end
  if not err then return nil, true end
  return nil, require("deepresearch.providers.extruct").maybe_created(err) and true or false
end

--- The blocking runtime of a client: the C transport and the client's clock.
-- The poller runs the same code with a runtime whose send and sleep yield instead.
function M.blocking(state)
  local runtime = state.rt
  if not runtime then
    local handle = state.handle
    runtime = {
      handle = handle, -- M.request calls the transport directly
      send = function(spec) return transfer(handle, state, spec) end,
      sleep = function(sec) return state.clock.sleep(sec) end,
      now = function() return state.clock.now() end,
    }
    state.rt = runtime
  end
  return runtime
end

--- Sends req with the retry rules of its effect; returns body, nil, res or nil, err.
-- req = { method, path, query, body (JSON text), effect = "read"|"create"|"mutate", expect,
--   on_400 }: the effect is what the request does to the server (the retry rules follow it);
--   "kind" means a kind of task only (research, discovery).
function M.request(runtime, state, req)
  local spec, err = prepare(state, req)
  if not spec then
    err.attempts = 0
    return nil, err
  end
  local max = req.max_retries or state.max_retries
  local handle = runtime.handle
  local attempt = 0
  while true do
    attempt = attempt + 1
    local t0 = debug_on and core.now()
    local res
    if handle then res = transfer(handle, state, spec, req) else res = runtime.send(spec) end
    if debug_on then log(req, spec, res, core.now() - t0, attempt) end
    local body, e, r = classify(state, res, req)
    if not e then
      -- The last answer's Date dates a task's age (cli/progress.lua); a create's ids get the
      -- wait's 404 grace (runtime/wait.lua), which other ids do not.
      state.last_response = res
      if req.effect == "create" then require("deepresearch.runtime.wait").note_created(state,
        body) end
      return body, nil, r
    end
    e.attempts = attempt
    local again = retry.should_retry(req.effect, e)
    if req.effect ~= "read" then e.retryable = again or e.code == "rate_limited" end
    if attempt > max or not again then return nil, e end
    runtime.sleep(retry.delay(attempt, e, state))
  end
end

return M

-- The result table of one finished curl process, shaped as the C core's (src/result.c): a
-- response { id, status, head, body | raw [, decode_error] [, file, bytes] } or an error
-- { id, error, message, sent [, not_sent], curl_code } with the core's codes: timeout,
-- invalid_response (a weird reply, a bad encoding, a body or header block over its limit),
-- io (a download's file) and network for the rest (refused, DNS, TLS). http.lua's classify
-- maps either onto the error model, as it does for the core.
-- luacheck: globals vim
local uv = vim.loop
local json = require "deepresearch.nvim.transport_json"
local run = require "deepresearch.nvim.transport_spawn"

local M = {}

-- curl's exit codes the core names otherwise than "network" (src/result.c dr_error_code).
local CODES = { [28] = "timeout", [8] = "invalid_response", [61] = "invalid_response",
  [63] = "invalid_response" }

local function too_large(x)
  return string.format("response larger than max_response_size (%d bytes)",
    x.limits.max_response_size)
end

-- curl's own error line ("curl: (7) Failed to connect ...") and the write-out trailer.
local function read_stderr(x)
  local text = x.payload and x.payload:sub(x.outlen + 1) or table.concat(x.err or {})
  local msg = text:match("curl: %(%d+%) ([^\n]*)")
  local status, sent, head_bytes
  for s, n, h in text:gmatch(run.TRAILER .. " (%d+) (%d+) (%d+)") do
    status, sent, head_bytes = tonumber(s), tonumber(n), tonumber(h)
  end
  return msg, status, sent, head_bytes
end

-- The last header block (a 100 Continue, or a proxy's CONNECT answer, comes first).
local function last_block(head)
  local from = 1
  local i = 1
  while true do
    local s = head:find("HTTP/", i, true)
    if not s then break end
    if s == 1 or head:sub(s - 1, s - 1) == "\n" then from = s end
    i = s + 5
  end
  return head:sub(from)
end

local function unsent(res, code, msg)
  res.error, res.message, res.sent, res.not_sent = code, msg, false, true
  return res
end

-- A 2xx download: the body to path ".part", then renamed; nil and a message when the disk fails.
local function save(path, body)
  local part = path .. ".part"
  local fd, err = uv.fs_open(part, "w", 420) -- 0644, as fopen's default under a usual umask
  if not fd then return nil, "download failed: cannot write " .. part .. ": " .. tostring(err) end
  local ok, werr = uv.fs_write(fd, body, 0)
  uv.fs_close(fd)
  if ok then ok, werr = uv.fs_rename(part, path) end
  if not ok then
    uv.fs_unlink(part)
    return nil, "download failed: cannot write " .. part .. ": " .. tostring(werr)
  end
  return true
end

--- The result table of transfer x (its process ended, or it never started).
function M.build(x)
  local res = { id = x.id }
  if x.unsent then return unsent(res, x.unsent_code or "network", x.unsent) end
  if x.spawn_error then
    return unsent(res, "network", "not sent: cannot run " .. run.program .. " (" ..
      x.spawn_error .. "); install curl or build deepresearch.core")
  end
  if x.helper_gone then -- its curl may have sent the request: never "not sent"
    return { id = x.id, error = "network", sent = true,
      message = "the curl helper process ended while the request ran" }
  end
  local msg, http_code, sent_bytes, head_bytes = read_stderr(x)
  -- The request was written unless curl says it wrote nothing; without its trailer (a curl
  -- killed on the way) it may have been: a create is then never sent again blindly.
  local sent = sent_bytes == nil or sent_bytes > 0
  if x.killed or x.code ~= 0 or (x.signal or 0) ~= 0 then
    res.sent, res.curl_code = sent, x.code
    local out = x.killed == "body" and (x.payload or table.concat(x.out or {})) or ""
    if x.killed == "body" and not out:find("\r\n\r\n", 1, true) then
      res.error, res.message, res.sent = "invalid_response",
        string.format("response headers larger than %d bytes", run.HEAD_MAX), true
    elseif x.killed == "body" or x.code == 63 then
      res.error, res.message, res.sent = "invalid_response", too_large(x), true
    elseif x.code == 56 and msg and msg:find("^Too large response headers") then
      res.error, res.message, res.sent = "invalid_response", msg, true -- as the core says it
    elseif x.killed == "timeout" then
      res.error, res.message = "timeout", "curl did not end within its time limit"
    else
      res.error = CODES[x.code] or "network"
      res.message = msg or (x.code ~= 0 and ("curl exited with status " .. tostring(x.code))
        or ("curl was ended by signal " .. tostring(x.signal)))
    end
    return res
  end
  -- stdout: x.payload's first outlen bytes (the helper's answer), else x.out's chunks.
  local out, outlen = x.payload, x.outlen
  if not out then
    out = table.concat(x.out or {})
    outlen = #out
  end
  head_bytes = head_bytes or outlen
  if head_bytes > run.HEAD_MAX then
    return { id = x.id, error = "invalid_response", sent = true, message =
      string.format("response headers larger than %d bytes", run.HEAD_MAX) }
  end
  local raw = out:sub(head_bytes + 1, outlen)
  if #raw > x.limits.max_response_size then
    return { id = x.id, error = "invalid_response", sent = true, message = too_large(x) }
  end
  local head = last_block(out:sub(1, head_bytes))
  res.status = tonumber(head:match("^HTTP/%S+ (%d%d%d)")) or http_code or 0
  res.head = head
  local spec = x.spec
  if spec.file and res.status >= 200 and res.status < 300 then
    local ok, err = save(spec.file, raw)
    if not ok then
      return { id = x.id, error = "io", message = err, sent = true }
    end
    res.file, res.bytes, res.raw = spec.file, #raw, ""
    return res
  end
  if spec.decode == false or raw == "" then
    res.raw = raw
    return res
  end
  local body, err = json.decode(raw)
  if err ~= nil then
    res.decode_error, res.raw = err, raw
  else
    res.body = body
  end
  return res
end

return M

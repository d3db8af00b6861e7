-- luacheck: std lua54
-- Standard Webhooks deliveries of the simulator, shared by the OpenAI and Gemini webhook tiers
-- (each keeps its own events and payloads). A delivery is a table {webhook_id, url, body, state}
-- that goes queued -> pending (signed) -> delivered/failed; its headers are
--   webhook-id: <webhook_id>   webhook-timestamp: <Unix seconds, virtual clock>
--   webhook-signature: v1,<base64 HMAC-SHA256(secret, id .. "." .. timestamp .. "." .. body)>
-- where secret is the base64 after "whsec_" of the configured secret.
local sha256 = require "simulator.sha256"

local M = {}

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chunk = {}
    for k = 1, 4 do
      local idx = (n >> (18 - 6 * (k - 1))) & 63
      chunk[k] = B64:sub(idx + 1, idx + 1)
    end
    if not b then chunk[3] = "=" end
    if not c then chunk[4] = "=" end
    out[#out + 1] = table.concat(chunk)
  end
  return table.concat(out)
end

local function unbase64(s)
  s = s:gsub("[^%w%+/]", "")
  local out, bits, n = {}, 0, 0
  for i = 1, #s do
    bits = (bits << 6) | (B64:find(s:sub(i, i), 1, true) - 1)
    n = n + 6
    if n >= 8 then
      n = n - 8
      out[#out + 1] = string.char((bits >> n) & 255)
    end
  end
  return table.concat(out)
end

--- Signs the queued deliveries of `list` at Unix time `unix` with the whsec_ `secret`.
-- opts.stale sends a timestamp 400 s in the past; opts.bad_signature spoils the MAC.
function M.sign(list, unix, secret, opts)
  opts = opts or {}
  local key = unbase64((secret or ""):gsub("^whsec_", ""))
  for _, d in ipairs(list) do
    if d.state == "queued" then
      d.timestamp = tostring(math.floor(unix) - (opts.stale and 400 or 0))
      local mac = sha256.hmac(key, d.webhook_id .. "." .. d.timestamp .. "." .. d.body)
      if opts.bad_signature then mac = sha256.hmac("wrong", mac) end
      d.signature = "v1," .. base64(mac)
      d.state = "pending"
    end
  end
end

-- One POST on a fresh connection (http on any host; https is not simulated).
local function post(d, timeout)
  local host, port, path = d.url:match("^http://([^/:]+):?(%d*)(.*)$")
  if not host then return nil, "only http:// deliveries are simulated" end
  local socket = require "socket"
  local c = socket.tcp()
  c:settimeout(timeout)
  local ok, err = c:connect(host, tonumber(port) or 80)
  if not ok then c:close(); return nil, "connect: " .. tostring(err) end
  local head = table.concat({ "POST " .. (path == "" and "/" or path) .. " HTTP/1.1",
    "Host: " .. host .. (port ~= "" and (":" .. port) or ""), "Content-Type: application/json",
    "Content-Length: " .. #d.body, "webhook-id: " .. d.webhook_id,
    "webhook-timestamp: " .. d.timestamp, "webhook-signature: " .. d.signature,
    "Connection: close", "", "" }, "\r\n")
  ok, err = c:send(head .. d.body)
  if not ok then c:close(); return nil, "send: " .. tostring(err) end
  local line, rerr = c:receive("*l")
  c:close()
  local code = line and tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not code then return nil, "no answer: " .. tostring(rerr) end
  return code
end

--- Sends every pending delivery once; count(prefix .. "delivered"/"failed") records each.
-- `fail` (the webhook_fail switch, where a tier has it) fails them without a connection.
function M.flush(list, timeout, count, prefix, fail)
  for _, d in ipairs(list) do
    if d.state == "pending" then
      d.attempts = d.attempts + 1
      local code, err
      if fail then
        err = "delivery failed (webhook_fail switch)"
      else
        code, err = post(d, timeout)
      end
      d.status, d.error = code, err
      d.state = (code and code >= 200 and code < 300) and "delivered" or "failed"
      count(prefix .. d.state)
    end
  end
end

--- The deliveries as /_sim/state shows them.
function M.view(list)
  local out = {}
  for i, d in ipairs(list) do
    out[i] = { event = d.event, id = d.id, url = d.url, state = d.state, attempts = d.attempts,
      status = d.status, error = d.error, webhook_id = d.webhook_id, timestamp = d.timestamp,
      signature = d.signature, body = d.body }
  end
  return out
end

M.base64, M.unbase64 = base64, unbase64

return M

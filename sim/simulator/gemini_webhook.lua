-- luacheck: std lua54
-- Per-request webhooks of the simulated Gemini API (gemini.md A.9, G15; optional tier). When a run
-- with webhook_config.uris reaches completed/incomplete, failed/budget_exceeded or requires_action,
-- each URI gets one POST following Standard Webhooks:
--   webhook-id: msg_<n>   webhook-timestamp: <Unix seconds, virtual clock>
--   webhook-signature: v1,<base64 HMAC-SHA256(secret, id .. "." .. timestamp .. "." .. body)>
-- where secret is the base64 after "whsec_" of config.gemini.webhook_secret. The payload shape is
-- unverified upstream (D5): {type, timestamp, data = {id, status, user_metadata}}. Transitions are
-- found when a request (or /_sim/state) arrives; deliveries go out from the engine's loop after it.
local sha256 = require "simulator.sha256"

local M = {}

local EVENTS = { completed = "interaction.completed", incomplete = "interaction.completed",
  failed = "interaction.failed", budget_exceeded = "interaction.failed",
  requires_action = "interaction.requires_action" }

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.base64(s)
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

function M.unbase64(s)
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

--- Queues the deliveries of runs that reached an event status (each run notifies once).
-- status_of(task) -> status; payload(task, status) -> body text. Returns how many were queued.
function M.sweep(sim, status_of, payload)
  local queued = 0
  for _, task in ipairs(sim.order) do
    local uris = type(task.webhook_config) == "table" and task.webhook_config.uris
    if uris and not task.notified then
      local status = status_of(task)
      if EVENTS[status] then
        task.notified = true
        local body = payload(task, EVENTS[status], status)
        for _, url in ipairs(uris) do
          sim.hook_n = sim.hook_n + 1
          sim.webhooks[#sim.webhooks + 1] = { event = EVENTS[status], id = task.id, url = url,
            webhook_id = "msg_" .. sim.hook_n, body = body, state = "queued", attempts = 0 }
          queued = queued + 1
        end
      end
    end
  end
  return queued
end

--- Signs the queued deliveries at Unix time `unix` with the whsec_ secret.
function M.sign(sim, unix, secret)
  local key = M.unbase64((secret or ""):gsub("^whsec_", ""))
  for _, d in ipairs(sim.webhooks) do
    if d.state == "queued" then
      d.timestamp = tostring(math.floor(unix))
      d.signature = "v1," .. M.base64(sha256.hmac(key,
        d.webhook_id .. "." .. d.timestamp .. "." .. d.body))
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

--- Sends every pending delivery once; count(name) records delivered/failed.
function M.flush(sim, cfg, count)
  for _, d in ipairs(sim.webhooks) do
    if d.state == "pending" then
      d.attempts = d.attempts + 1
      local code, err
      if cfg.webhook_fail then
        err = "delivery failed (webhook_fail switch)"
      else
        code, err = post(d, tonumber(cfg.webhook_timeout) or 2)
      end
      d.status, d.error = code, err
      d.state = (code and code >= 200 and code < 300) and "delivered" or "failed"
      count("gemini.webhooks_" .. d.state)
    end
  end
end

--- The deliveries as /_sim/state shows them.
function M.view(sim)
  local out = {}
  for i, d in ipairs(sim.webhooks) do
    out[i] = { event = d.event, id = d.id, url = d.url, state = d.state, attempts = d.attempts,
      status = d.status, error = d.error, webhook_id = d.webhook_id, timestamp = d.timestamp,
      signature = d.signature, body = d.body }
  end
  return out
end

return M

-- Signed webhook deliveries of the simulated Valyu API (contract B.11, C.4 V14): when a task with
-- a webhook_url completes or fails, or a batch with one ends, the status body is POSTed with
--   X-Webhook-Timestamp: <Unix seconds>   X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret,
--   timestamp .. "." .. body)>
-- Lifecycle of a delivery: queued (the event happened, on the virtual clock) -> signed when the
-- request that settled the clock finishes (timestamp = the virtual clock's Unix time then, or the
-- real time with webhook_clock = "real") -> sent from the engine's loop right after that answer
-- (one attempt, LuaSocket, webhook_timeout real seconds). Every delivery is listed in /_sim/state.
local sha256 = require("simulator.sha256")

local M = {}

local LOOPBACK = { ["127.0.0.1"] = true, localhost = true, ["[::1]"] = true }

local function split_url(url)
  local scheme, host, port, path = url:match("^(https?)://(%[[^%]]+%])(:?%d*)(.*)$")
  if not scheme then scheme, host, port, path = url:match("^(https?)://([^/:?#]+)(:?%d*)(.*)$") end
  if not scheme then return nil end
  port = tonumber(port:sub(2)) or (scheme == "https" and 443 or 80)
  if path == "" then path = "/" end
  return scheme, host:lower(), port, path
end

--- True for https URLs, and http ones on a loopback host (the real API refuses plain http; the
-- simulator lets a spec listen on 127.0.0.1).
function M.allowed(url)
  if type(url) ~= "string" or url:find("%s") then return false end
  local scheme, host = split_url(url)
  return scheme == "https" or (scheme == "http" and LOOPBACK[host] == true)
end

--- Queues a delivery for an event at virtual time t.
function M.queue(sim, kind, id, url, secret, body_text)
  local list = sim.webhooks
  list[#list + 1] = { event = kind, id = id, url = url, secret = secret, body = body_text,
    state = "queued", attempts = 0 }
end

--- Signs the queued deliveries at Unix time `unix`; returns how many are ready to send.
function M.sign(sim, unix)
  local n = 0
  for _, d in ipairs(sim.webhooks) do
    if d.state == "queued" then
      d.timestamp = tostring(math.floor(unix))
      d.signature = "sha256=" .. sha256.hmac_hex(d.secret, d.timestamp .. "." .. d.body)
      d.state = "pending"
    end
    if d.state == "pending" then n = n + 1 end
  end
  return n
end

-- One POST on a fresh connection; the answer's status code, or nil and an error.
local function post(url, d, timeout)
  local scheme, host, port, path = split_url(url)
  if scheme ~= "http" then return nil, "https delivery is not simulated" end
  local socket = require("socket")
  local c = socket.tcp()
  c:settimeout(timeout)
  local ok, err = c:connect(host:gsub("^%[(.*)%]$", "%1"), port)
  if not ok then
    c:close()
    return nil, "connect: " .. tostring(err)
  end
  local head = table.concat({
    "POST " .. path .. " HTTP/1.1", "Host: " .. host .. ":" .. port,
    "Content-Type: application/json", "Content-Length: " .. #d.body,
    "User-Agent: valyu-simulator-webhooks", "X-Webhook-Timestamp: " .. d.timestamp,
    "X-Webhook-Signature: " .. d.signature, "Connection: close", "", "" }, "\r\n")
  ok, err = c:send(head .. d.body)
  if not ok then
    c:close()
    return nil, "send: " .. tostring(err)
  end
  local line, rerr = c:receive("*l")
  c:close()
  local code = line and tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not code then return nil, "no answer: " .. tostring(rerr) end
  return code
end

--- Sends every pending delivery once (called from the engine's loop, outside any request).
function M.flush(sim, cfg)
  for _, d in ipairs(sim.webhooks) do
    if d.state == "pending" then
      d.attempts = d.attempts + 1
      local code, err
      if cfg.webhook_fail then
        err = "delivery failed (webhook_fail switch)"
      else
        code, err = post(d.url, d, tonumber(cfg.webhook_timeout) or 2)
      end
      d.status = code
      d.error = err
      d.state = (code and code >= 200 and code < 300) and "delivered" or "failed"
      sim.count("valyu.webhooks_" .. d.state)
    end
  end
end

--- The deliveries as /_sim/state shows them (secrets left out).
function M.view(sim)
  local out = {}
  for i, d in ipairs(sim.webhooks) do
    out[i] = { event = d.event, id = d.id, url = d.url, state = d.state, attempts = d.attempts,
      status = d.status, error = d.error, timestamp = d.timestamp, signature = d.signature,
      body = d.body }
  end
  return out
end

return M

-- luacheck: std lua54
-- Project webhooks of the simulated OpenAI API (openai.md A.8, PART C O14; optional tier). With
-- config.openai.webhook_url set, each background run that ends is announced once:
--   body {id = "evt_<hex>", object = "event", type = "response.<status>", created_at,
--         data = {id = "resp_..."}}
--   webhook-id: <the event id>   webhook-timestamp: <Unix seconds, virtual clock>
--   webhook-signature: v1,<base64 HMAC-SHA256(secret, id .. "." .. timestamp .. "." .. body)>
-- where secret is the base64 after "whsec_" of webhook_secret. Switches: webhook_bad_signature,
-- webhook_stale (timestamp 400 s in the past), webhook_duplicate (each event sent twice).
-- Deliveries go out from the engine's loop once the answer that noticed the end is sent.
local sha256 = require "simulator.sha256"

local M = {}

local EVENTS = { completed = "response.completed", failed = "response.failed",
  cancelled = "response.cancelled", incomplete = "response.incomplete" }

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

--- Queues one event per run that ended (background runs only). ended(task) -> status, unix time.
-- make_id() -> an event id; encode(table) -> text. Returns how many were queued.
function M.sweep(list, tasks, cfg, ended, make_id, encode)
  if type(cfg.webhook_url) ~= "string" then return 0 end
  local n = 0
  for _, task in ipairs(tasks) do
    local status, at = ended(task)
    if task.background and not task.notified and EVENTS[status] then
      task.notified = true
      local id = make_id()
      local body = encode({ id = id, object = "event", type = EVENTS[status], created_at = at,
        data = { id = task.id } })
      for _ = 1, cfg.webhook_duplicate and 2 or 1 do
        list[#list + 1] = { event = EVENTS[status], id = task.id, webhook_id = id,
          url = cfg.webhook_url, body = body, state = "queued", attempts = 0 }
        n = n + 1
      end
    end
  end
  return n
end

--- Signs the queued deliveries at Unix time `unix`.
function M.sign(list, unix, cfg)
  local key = unbase64((cfg.webhook_secret or ""):gsub("^whsec_", ""))
  for _, d in ipairs(list) do
    if d.state == "queued" then
      d.timestamp = tostring(math.floor(unix) - (cfg.webhook_stale and 400 or 0))
      local mac = sha256.hmac(key, d.webhook_id .. "." .. d.timestamp .. "." .. d.body)
      if cfg.webhook_bad_signature then mac = sha256.hmac("wrong", mac) end
      d.signature = "v1," .. base64(mac)
      d.state = "pending"
    end
  end
end

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
function M.flush(list, cfg, count)
  for _, d in ipairs(list) do
    if d.state == "pending" then
      d.attempts = d.attempts + 1
      local code, err = post(d, tonumber(cfg.webhook_timeout) or 2)
      d.status, d.error = code, err
      d.state = (code and code >= 200 and code < 300) and "delivered" or "failed"
      count("openai.webhooks_" .. d.state)
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

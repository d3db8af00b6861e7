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
local std = require "simulator.std_webhooks"

local M = {}

local EVENTS = { completed = "response.completed", failed = "response.failed",
  cancelled = "response.cancelled", incomplete = "response.incomplete" }

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
  std.sign(list, unix, cfg.webhook_secret,
    { stale = cfg.webhook_stale, bad_signature = cfg.webhook_bad_signature })
end

--- Sends every pending delivery once; count(name) records delivered/failed.
function M.flush(list, cfg, count)
  std.flush(list, tonumber(cfg.webhook_timeout) or 2, count, "openai.webhooks_")
end

--- The deliveries as /_sim/state shows them.
M.view = std.view
M.base64, M.unbase64 = std.base64, std.unbase64

return M

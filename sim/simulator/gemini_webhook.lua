-- luacheck: std lua54
-- Per-request webhooks of the simulated Gemini API (gemini.md A.9, G15; optional tier). When a run
-- with webhook_config.uris reaches completed/incomplete, failed/budget_exceeded or requires_action,
-- each URI gets one POST following Standard Webhooks:
--   webhook-id: msg_<n>   webhook-timestamp: <Unix seconds, virtual clock>
--   webhook-signature: v1,<base64 HMAC-SHA256(secret, id .. "." .. timestamp .. "." .. body)>
-- where secret is the base64 after "whsec_" of config.gemini.webhook_secret. The payload shape is
-- unverified upstream (D5): {type, timestamp, data = {id, status, user_metadata}}. Transitions are
-- found when a request (or /_sim/state) arrives; deliveries go out from the engine's loop after it.
local std = require "simulator.std_webhooks"

local M = {}

local EVENTS = { completed = "interaction.completed", incomplete = "interaction.completed",
  failed = "interaction.failed", budget_exceeded = "interaction.failed",
  requires_action = "interaction.requires_action" }

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
  std.sign(sim.webhooks, unix, secret)
end

--- Sends every pending delivery once; count(name) records delivered/failed.
function M.flush(sim, cfg, count)
  std.flush(sim.webhooks, tonumber(cfg.webhook_timeout) or 2, count, "gemini.webhooks_",
    cfg.webhook_fail)
end

--- The deliveries as /_sim/state shows them.
function M.view(sim)
  return std.view(sim.webhooks)
end

M.base64, M.unbase64 = std.base64, std.unbase64

return M

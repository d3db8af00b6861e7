-- Batches of the simulated Valyu API (contract B.9, C.4 V15). A batch groups ordinary tasks
-- (their status route works; they carry batch_id and batch_task_id); its counts are tallies of
-- its members' statuses and its status follows them on the virtual clock:
--   open (no task yet) -> processing (first task added) -> completed | completed_with_errors
--   (some member failed or was cancelled), or cancelled by POST .../cancel.
local tasks = require("simulator.valyu_task")

local M = {}

M.ACTIVE = { open = true, processing = true }
M.MAX_ADD = 100

function M.create(sim, org, spec, now, id, secret)
  sim.batch_seq = sim.batch_seq + 1
  local b = {
    id = id, seq = sim.batch_seq, org = org, name = spec.name, mode = spec.mode,
    output_formats = spec.output_formats, search = spec.search, webhook_url = spec.webhook_url,
    webhook_secret = secret, metadata = spec.metadata or {}, status = "open", created_at = now,
    members = {}, brand_collection_id = spec.brand_collection_id,
  }
  sim.batches[id] = b
  return b
end

function M.counts(b)
  local c = { total = #b.members, queued = 0, running = 0, completed = 0, failed = 0,
    cancelled = 0 }
  for _, t in ipairs(b.members) do
    local st = t.status
    if st == "awaiting_input" or st == "paused" then st = "running" end
    c[st] = (c[st] or 0) + 1
  end
  return c
end

local function cost(b)
  local cents = 0
  for _, t in ipairs(b.members) do cents = cents + t.cost_cents end
  return cents / 100
end

--- The batch object (GET /batches/{id}); the internal api_key_id/credit_id are not simulated.
function M.body(sim, b)
  return {
    batch_id = b.id, organisation_id = b.org, status = b.status, mode = b.mode,
    name = b.name, output_formats = b.output_formats, search_params = b.search or {},
    counts = M.counts(b), cost = cost(b), webhook_url = b.webhook_url,
    created_at = sim.iso(b.created_at),
    completed_at = b.completed_at and sim.iso(b.completed_at) or nil, metadata = b.metadata,
  }
end

--- A member task as GET /batches/{id}/tasks lists it.
function M.task_item(sim, t, include_output, now)
  local item = {
    deepresearch_id = t.id, batch_task_id = t.batch_task_id, query = t.query, status = t.status,
    created_at = sim.iso(t.created_at), mode = t.mode,
  }
  if t.ended_at and t.status == "completed" then item.completed_at = sim.iso(t.ended_at) end
  if tasks.TERMINAL[t.status] then item.cost = t.cost_cents / 100 end
  if t.error then item.error = t.error end
  if include_output and tasks.TERMINAL[t.status] then
    local full = tasks.status_body(sim, t, now)
    item.output, item.output_type, item.sources = full.output, full.output_type, full.sources
    item.pdf_url = full.pdf_url
  end
  return item
end

--- Settles every open batch whose members have all ended; `on_end(batch)` for each.
function M.settle(sim, on_end)
  local ended = {}
  for _, b in pairs(sim.batches) do
    if b.status == "processing" then
      local last, errors, done = 0, false, true
      for _, t in ipairs(b.members) do
        if not tasks.TERMINAL[t.status] then
          done = false
          break
        end
        if t.status ~= "completed" then errors = true end
        if t.ended_at > last then last = t.ended_at end
      end
      if done then
        b.status = errors and "completed_with_errors" or "completed"
        b.completed_at = last
        ended[#ended + 1] = b
      end
    end
  end
  table.sort(ended, function(x, y)
    if x.completed_at ~= y.completed_at then return x.completed_at < y.completed_at end
    return x.seq < y.seq
  end)
  for _, b in ipairs(ended) do on_end(b) end
end

--- Cancels a batch and its queued or running members; returns how many were cancelled.
function M.cancel(sim, b, now)
  local n = 0
  for _, t in ipairs(b.members) do
    if not tasks.TERMINAL[t.status] then
      tasks.cancel(sim, t, now)
      n = n + 1
    end
  end
  b.status = "cancelled"
  b.completed_at = now
  return n
end

--- One page of members: items, and the key of the last one when more follow.
function M.page(b, status, limit, last_key)
  local list, started = {}, last_key == nil
  local more = false
  for _, t in ipairs(b.members) do
    if started then
      if status == nil or t.status == status then
        if #list == limit then
          more = true
          break
        end
        list[#list + 1] = t
      end
    elseif t.id == last_key then
      started = true
    end
  end
  if not started then return nil end
  return list, more
end

return M

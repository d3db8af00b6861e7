-- Valyu DeepResearch task lifecycle, settled lazily against the virtual clock.
-- A task holds `work` (virtual seconds of research done when its current run segment began) and
-- `seg_start` (when that segment began; nil while queued or waiting for a human). Every change
-- (checkpoint, failure, completion, HITL timeout) is an event at a computable time; settle()
-- replays the due events in time order, starting queued tasks as slots free, so the answer does
-- not depend on when anyone polled.
local json = require("simulator.valyu_json")
local content = require("simulator.valyu_content")
local structured = require("simulator.valyu_structured")
local assets = require("simulator.valyu_assets")

local M = {}

-- instant's price is unpublished: 0.05 USD is the simulator's choice (docs/simulator_valyu.md).
M.PRICE_CENTS = { instant = 5, fast = 10, standard = 50, heavy = 250, max = 1500 }
M.TOTAL_STEPS = { instant = 3, fast = 10, standard = 15, heavy = 15, max = 25 }
M.TERMINAL = { completed = true, failed = true, cancelled = true }
-- A task waiting for a human; `respond` and `cancel` work in both.
M.WAITING = { awaiting_input = true, paused = true }

-- HITL checkpoints in the order a task meets them, at a fraction of its work.
local CHECKPOINTS = {
  { "planning_questions", 0 }, { "plan_review", 0 }, { "source_review", 0.4 },
  { "outline_review", 0.8 },
}

function M.new_state()
  return { tasks = {}, active = {}, seq = 0, ledger = {}, batches = {}, batch_seq = 0,
    webhooks = {} }
end

---------------------------------------------------------------------------------------------------
-- Billing: integer cents per organisation. available = starting balance - held - charged, so a
-- starting balance changed through /_sim/config applies at once.

function M.ledger(sim, org)
  local l = sim.ledger[org]
  if not l then
    l = { held = 0, charged = 0, refunded = 0 }
    sim.ledger[org] = l
  end
  return l
end

function M.available_cents(sim, org, start_usd)
  local l = M.ledger(sim, org)
  return math.floor(start_usd * 100 + 0.5) - l.held - l.charged
end

local function release(sim, task, refund)
  local l = M.ledger(sim, task.org)
  l.held = l.held - task.held
  if refund then
    l.refunded = l.refunded + task.held
    task.cost_cents = 0
  else
    l.charged = l.charged + task.held
    task.cost_cents = task.held
  end
  task.held = 0
end

---------------------------------------------------------------------------------------------------
-- Progress and messages.

local function work_at(task, t)
  if task.seg_start then return task.work + math.max(0, t - task.seg_start) end
  return task.work
end

local function step_for(task, work)
  local total = task.total_steps
  return math.max(1, math.min(total, math.floor(work / task.duration * total) + 1))
end

local function step_text(task, s)
  local total = task.total_steps
  if s == 1 then return "Planning research on " .. task.content.topic end
  if s == total then return "Writing the report" end
  if s == total - 1 then return "Analysing findings and cross-checking sources" end
  local src = task.content.sources[(s - 2) % #task.content.sources + 1]
  return "Reading " .. src.url
end

-- Appends a trace message for every step reached by time t (messages only grow).
local function sync_messages(task, t, final)
  if not task.started_at then return end
  local step = final and task.total_steps or step_for(task, work_at(task, t))
  while task.steps_logged < step do
    task.steps_logged = task.steps_logged + 1
    local s = task.steps_logged
    task.messages[#task.messages + 1] = { role = "assistant", type = "step", step = s,
      content = step_text(task, s) }
  end
end

function M.current_step(task, t)
  return step_for(task, work_at(task, t))
end

---------------------------------------------------------------------------------------------------
-- Events.

local function next_event(task)
  if task.status == "running" then
    local target, kind = task.duration, "complete"
    if task.fail_work and task.fail_work < target then target, kind = task.fail_work, "fail" end
    local cp = task.checkpoints[task.next_cp]
    if cp and cp.work <= target then target, kind = cp.work, "checkpoint" end
    return task.seg_start + math.max(0, target - task.work), kind
  elseif task.status == "awaiting_input" then
    return task.interaction_deadline, task.auto_continue and "timeout" or "pause"
  elseif task.status == "queued" and task.ready_at then
    return task.ready_at, "ready"
  end
end

-- Closes the open checkpoint; the caller decides how the task goes on.
local function close_checkpoint(task)
  task.interaction = nil
  task.interaction_deadline = nil
  task.next_cp = task.next_cp + 1
end

local function resume(task, t)
  close_checkpoint(task)
  task.status = "running"
  task.seg_start = t
end

local function finish(sim, task, t, status)
  sim.active[task.id] = nil
  task.status = status
  task.ended_at = t
  task.seg_start = nil
  task.ready_at = nil
end

local function partial_output(task, fraction, step)
  task.sources = content.sources_at(task.content, fraction)
  if task.output_kind == "markdown" then
    task.output = content.markdown(task.content, task.sources,
      { partial = true, step = step, total = task.total_steps, instructions = task.instructions })
  end
end

local apply = {}

function apply.checkpoint(sim, task, t)
  sync_messages(task, t)
  task.work = work_at(task, t)
  task.seg_start = nil
  local cp = task.checkpoints[task.next_cp]
  task.status = "awaiting_input"
  local cfg = sim.cfg()
  local wait = tonumber(cfg.hitl_pause_after) or 300
  -- Real API: no auto-continue; an unanswered checkpoint parks in `paused`. The old
  -- auto-continue survives only as an opt-in switch.
  task.auto_continue = cfg.hitl_auto_continue == true
  task.interaction = {
    interaction_id = cp.id, type = cp.type,
    data = content.checkpoint_data(task.content, cp.type, task),
    created_at = sim.unix_ms(t), timeout_ms = math.floor(wait * 1000 + 0.5),
  }
  task.interaction_deadline = t + wait
end

-- Five unanswered minutes: the state is saved and the slot freed; `respond` re-enqueues it.
function apply.pause(sim, task)
  task.status = "paused"
  task.interaction_deadline = nil
  sim.count("valyu.tasks_paused")
end

-- Opt-in (hitl_auto_continue): the old behaviour, the checkpoint continues by itself.
function apply.timeout(_, task, t)
  local i = task.interaction
  task.hitl_history[#task.hitl_history + 1] = {
    interaction_id = i.interaction_id, type = i.type, created_at = i.created_at,
    auto_continued = true,
  }
  resume(task, t)
end

-- A re-enqueued task becomes eligible for a slot (settle() fills slots after every event).
function apply.ready(_, task)
  task.ready_at = nil
end

function apply.fail(sim, task, t)
  sync_messages(task, t)
  task.work = work_at(task, t)
  local step = step_for(task, task.work)
  finish(sim, task, t, "failed")
  task.error =
    string.format("Research failed at step %d of %d: the research agent hit an unrecoverable error",
    step, task.total_steps)
  partial_output(task, task.work / task.duration, step)
  release(sim, task, sim.cfg().refund_on_failure ~= false)
  sim.count("valyu.tasks_failed")
  if sim.on_end then sim.on_end(task, t) end
end

function apply.complete(sim, task, t)
  sync_messages(task, t, true)
  task.work = task.duration
  finish(sim, task, t, "completed")
  task.sources = content.sources_at(task.content, 1)
  if task.output_kind == "markdown" then
    task.output = content.markdown(task.content, task.sources, { instructions = task.instructions })
  else
    local value = structured.generate(task.content, task.schema, sim.null)
    task.output = task.output_kind == "toon" and structured.toon(value) or value
  end
  if task.deliverables_requested then
    task.deliverables = content.deliverables(task.rng, task.deliverables_requested, task.url,
      sim.unix(t), task.asset_token)
  end
  -- drawn after the deliverables so their ids do not depend on the images switch
  task.images = assets.images(task, math.floor(tonumber(sim.cfg().images) or 0), sim.unix(t))
  release(sim, task, false)
  sim.count("valyu.tasks_completed")
  if sim.on_end then sim.on_end(task, t) end
end

-- Running tasks and tasks awaiting input hold a slot; queued and paused ones do not.
local function org_slots_used(sim, org)
  local n = 0
  for _, task in pairs(sim.active) do
    if task.org == org and (task.status == "running" or task.status == "awaiting_input") then
      n = n + 1
    end
  end
  return n
end

local function start(sim, task, t)
  if task.started_at then -- back from `paused`: the work done so far is kept
    task.status = "running"
    task.seg_start = t
    return
  end
  local cfg = sim.cfg()
  task.status = "running"
  task.started_at = t
  task.seg_start = t
  task.work = 0
  local d = cfg.duration[task.mode] or 900
  task.duration = math.max(0.001, d * (cfg.time_scale or 1))
  local pattern = cfg.fail_pattern
  if type(pattern) == "string" and pattern ~= "" and task.query:find(pattern, 1, true) then
    task.fail_work = task.duration * (cfg.fail_at or 0.5)
  end
  for _, cp in ipairs(task.checkpoints) do cp.work = cp.fraction * task.duration end
end

-- Starts the oldest queued tasks of `org` while it has free slots.
local function fill(sim, org, t)
  local limit = sim.concurrency(org)
  local used = org_slots_used(sim, org)
  while used < limit do
    local first
    for _, task in pairs(sim.active) do
      if task.org == org and task.status == "queued" and not task.ready_at
        and (not first or task.seq < first.seq) then
        first = task
      end
    end
    if not first then return end
    start(sim, first, t)
    used = used + 1
  end
end

--- Replays every event due by `now`, in time order (ties by creation order).
function M.settle(sim, now)
  while true do
    local best, bt, bkind
    for _, task in pairs(sim.active) do
      local t, kind = next_event(task)
      if t and t <= now and (not best or t < bt or (t == bt and task.seq < best.seq)) then
        best, bt, bkind = task, t, kind
      end
    end
    if not best then break end
    apply[bkind](sim, best, bt)
    fill(sim, best.org, bt)
  end
  local orgs = {}
  for _, task in pairs(sim.active) do
    if task.status == "queued" and not task.ready_at then orgs[task.org] = true end
  end
  for org in pairs(orgs) do fill(sim, org, now) end
end

---------------------------------------------------------------------------------------------------
-- Operations (callers have settled to `now` and checked ownership).

--- Creates a task from a validated request; the caller has reserved nothing yet.
function M.create(sim, org, req, now, seed, id, url)
  sim.seq = sim.seq + 1
  local rng = content.rng(seed)
  local task = {
    id = id, seq = sim.seq, org = org, query = req.query, mode = req.mode,
    total_steps = M.TOTAL_STEPS[req.mode], created_at = now, status = "queued", work = 0,
    output_formats = req.output_formats, output_kind = req.output_kind, schema = req.schema,
    pdf = req.pdf,
    metadata = req.metadata, public = false, deliverables_requested = req.deliverables,
    webhook_url = req.webhook_url,
    messages = json.array(), steps_logged = 0, instructions = {}, rng = rng, url = url,
    content = content.plan(rng, req.query, req.mode), checkpoints = {}, next_cp = 1,
    hitl_config = nil, hitl_history = json.array(), held = M.PRICE_CENTS[req.mode], cost_cents = 0,
  }
  task.duration = 1
  for _, cp in ipairs(CHECKPOINTS) do
    if req.hitl[cp[1]] == true then
      task.hitl_config = task.hitl_config or {}
      task.hitl_config[cp[1]] = true
      task.checkpoints[#task.checkpoints + 1] = { type = cp[1], fraction = cp[2], id = rng:uuid() }
    end
  end
  task.asset_token = rng:hex(32)
  if req.webhook_url then task.webhook_secret = rng:hex(64) end
  local l = M.ledger(sim, org)
  l.held = l.held + task.held
  sim.tasks[id] = task
  sim.active[id] = task
  fill(sim, org, now)
  return task
end

function M.cancel(sim, task, now)
  sync_messages(task, now)
  task.work = work_at(task, now)
  local step = task.started_at and step_for(task, task.work) or 0
  finish(sim, task, now, "cancelled")
  partial_output(task, task.started_at and task.work / task.duration or 0, step)
  local policy = sim.cfg().refund_on_cancel
  if policy == "unused" then
    local used = math.floor(task.held * (task.work / task.duration) + 0.5)
    local l = M.ledger(sim, task.org)
    l.held = l.held - task.held
    l.charged = l.charged + used
    l.refunded = l.refunded + task.held - used
    task.cost_cents, task.held = used, 0
  else
    release(sim, task, policy ~= false and policy ~= "none")
  end
  fill(sim, task.org, now)
end

function M.add_instruction(task, now, instruction)
  sync_messages(task, now)
  task.instructions[#task.instructions + 1] = instruction
  task.messages[#task.messages + 1] = { role = "user", type = "instruction", content = instruction }
end

--- Answers the open checkpoint. Returns the status the API reports: "running" (it was
-- awaiting input) or "queued" (it was paused: re-enqueued, eligible after requeue_delay).
function M.respond(sim, task, now, response)
  local i = task.interaction
  task.hitl_history[#task.hitl_history + 1] = {
    interaction_id = i.interaction_id, type = i.type, created_at = i.created_at,
    responded_at = sim.unix_ms(now), auto_continued = false, response = response,
  }
  if task.status == "awaiting_input" then
    resume(task, now)
    return "running"
  end
  close_checkpoint(task)
  task.status = "queued"
  local delay = tonumber(sim.cfg().requeue_delay) or 0
  task.ready_at = delay > 0 and now + delay or nil
  return "queued"
end

---------------------------------------------------------------------------------------------------
-- The status body.

local function usd(cents)
  return cents / 100
end

function M.status_body(sim, task, now)
  local b = {
    deepresearch_id = task.id, status = task.status, query = task.query, mode = task.mode,
    created_at = sim.iso(task.created_at), output_formats = task.output_formats,
    public = task.public, batch_id = task.batch_id, batch_task_id = task.batch_task_id,
  }
  -- Not documented on the status body (create echoes it); opt-in for clients that look for it.
  if sim.cfg().status_metadata then b.metadata = task.metadata end
  local st = task.status
  if st ~= "queued" then sync_messages(task, now) end
  if st == "running" then
    b.progress = { current_step = M.current_step(task, now), total_steps = task.total_steps }
  end
  if st ~= "queued" and task.started_at then b.messages = task.messages end
  if task.hitl_config then
    b.hitl_config = task.hitl_config
    b.hitl_history = task.hitl_history
  end
  if M.WAITING[st] then b.interaction = task.interaction end
  if M.TERMINAL[st] then
    b.sources = task.sources
    b.cost = usd(task.cost_cents)
    b.cost_breakdown = { task = usd(task.cost_cents) }
    if task.output ~= nil then
      b.output = task.output
      b.output_type = task.output_kind
    end
  end
  if st == "completed" then
    b.completed_at = sim.iso(task.ended_at)
    b.images = task.images or json.array()
    if task.pdf then b.pdf_url = task.url .. "/assets/report.pdf?token=" .. task.asset_token end
    if task.deliverables then b.deliverables = task.deliverables end
  elseif st == "failed" then
    b.error = task.error
  end
  return b
end

return M

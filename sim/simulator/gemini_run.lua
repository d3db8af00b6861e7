-- luacheck: std lua54
-- One simulated Gemini Deep Research run (gemini.md Part C, G4-G12): planned in full at create
-- time (timed steps, outcome, report), then read at any virtual time. Terminal runs are frozen.
local content = require "simulator.gemini_content"
local validate = require "simulator.gemini_validate"

local M = {}

local TERMINAL = { completed = true, incomplete = true, budget_exceeded = true, failed = true,
  cancelled = true, requires_action = true }

local ERRORS = {
  incomplete = { code = "generativelanguage.googleapis.com/max_tokens",
    message = "The report is incomplete: the output token limit was reached." },
  budget_exceeded = { code = "generativelanguage.googleapis.com/budget_exceeded",
    message = "The research was halted: the token budget was exceeded." },
  failed = { code = "generativelanguage.googleapis.com/internal",
    message = "An internal error occurred during research (a tool call failed)." },
  deadline = { code = "generativelanguage.googleapis.com/deadline_exceeded",
    message = "The research exceeded the 60 minute limit and was stopped." },
}

local FINAL = { completed = "completed", incomplete = "incomplete", failed = "failed",
  deadline = "failed", budget_exceeded = "budget_exceeded" }

local function filled_config(c)
  c = c or {}
  return { type = "deep-research", thinking_summaries = c.thinking_summaries or "none",
    visualization = c.visualization or "auto",
    collaborative_planning = c.collaborative_planning == true,
    enable_bigquery_tool = c.enable_bigquery_tool }
end

local function marked(text, cfg, name)
  local m = cfg.markers and cfg.markers[name]
  return type(m) == "string" and m ~= "" and text:find(m, 1, true) ~= nil
end

local function outcome_of(text, cfg, planning)
  if planning then return "plan" end
  if cfg.outcome then return cfg.outcome end
  for _, name in ipairs({ "failed", "budget_exceeded", "incomplete" }) do
    if marked(text, cfg, name) then return name end
  end
  return "completed"
end

local function size_of(o, kind)
  local s = o.cfg.sizes[kind]
  local function pick(range) return o.random(range[1], range[2]) end
  return { input = pick(s.input), output = pick(s.output), thought = pick(s.thought),
    tool = pick(s.tool), queries = pick(s.queries), rounds = pick(s.rounds),
    cached_share = o.random(50, 70) / 100 }
end

-- The report parts for a finished run; incomplete runs get the first half (whole sections).
local function report_parts(task, o, target, text)
  local report, notes = content.report(o.rng, { target = target,
    sections = task.kind == "max" and 4 or 3, redirect = o.cfg.citation_urls ~= "source" })
  if task.outcome == "incomplete" then
    local cut = report:find("\n\n##", #report // 2, true) or #report
    report = report:sub(1, cut + 1)
    local kept = {}
    for _, n in ipairs(notes) do if n.end_index <= cut then kept[#kept + 1] = n end end
    notes = kept
  end
  local parts = { { type = "text", text = report, annotations = notes } }
  if task.config.visualization == "auto" and text:lower():find("chart", 1, true) then
    parts[2] = { type = "image", mime_type = "image/png", data = content.PNG }
  end
  return parts
end

local function final_step(task, o, target, text)
  if task.outcome == "plan" then
    return { type = "model_output",
      content = { { type = "text", text = content.plan(target, task.revision) } } }
  elseif task.outcome == "completed" or task.outcome == "incomplete" then
    return { type = "model_output", content = report_parts(task, o, target, text) }
  elseif task.outcome == "failed" then
    return { type = "model_output", content = o.array({}),
      error = { code = 13, message = "Internal error encountered." } }
  end
  return nil
end

-- Run length and share of the nominal work done, from the outcome and the hard limit.
local function timing(task, cfg, span)
  if task.outcome == "failed" then return span * cfg.fail_at, cfg.fail_at end
  if task.outcome == "budget_exceeded" then return span * cfg.budget_at, cfg.budget_at end
  if not task.stuck and span > cfg.hard_limit then
    task.outcome = "deadline"
    return cfg.hard_limit, cfg.hard_limit / span
  end
  return span, 1
end

--- A new run. body: the validated create body; prev: the interaction it follows, or nil.
-- o: { id, now, project, tier, cfg, random(m, n), rng, null }.
function M.new(body, prev, o)
  local cfg, text = o.cfg, validate.text(body.input)
  local root = prev and prev.root or text
  local all = root .. "\n" .. text
  local config = filled_config(body.agent_config)
  local planning = config.collaborative_planning
  local task = { id = o.id, project = o.project, tier = o.tier, agent = body.agent,
    kind = cfg.agents[body.agent], config = config, input = body.input, root = root,
    labels = body.labels, webhook_config = body.webhook_config, tools = body.tools,
    previous_interaction_id = body.previous_interaction_id, service_tier = body.service_tier,
    system_instruction = body.system_instruction, created = o.now,
    stuck = not planning and (cfg.stuck or marked(all, cfg, "stuck")),
    hold = cfg.queued_hold or marked(all, cfg, "queued"),
    revision = prev and prev.outcome == "plan" and planning and prev.revision + 1 or 0 }
  task.outcome = outcome_of(all, cfg, planning)
  task.size = size_of(o, planning and "plan" or task.kind)
  local scale = tonumber(cfg.time_scale) or 1
  local queued = cfg.start_queued and o.random(cfg.duration.queued[1], cfg.duration.queued[2]) or 0
  local range = cfg.duration[planning and "plan" or task.kind]
  local span = o.random(range[1], range[2]) * scale
  task.start = o.now + queued * scale
  local length, share = timing(task, cfg, span)
  task.end_t, task.share, task.span = task.start + length, share, span
  task.final = task.outcome == "plan" and (cfg.planning_status == "requires_action"
    and "requires_action" or "completed") or FINAL[task.outcome]
  local target = content.target(root)
  local work = task.stuck and span or length
  task.schedule = content.schedule(o.rng, task.start + work * 0.01, work * 0.97, {
    target = target, rounds = task.size.rounds, summaries = config.thinking_summaries == "auto",
    queries = math.max(1, math.floor(task.size.queries * share + 0.5)) })
  task.last = final_step(task, { rng = o.rng, cfg = cfg, array = o.array }, target, all)
  return task
end

--- status, updated (virtual time of the last change) at time now.
function M.state(task, now)
  if task.cancelled_at then return "cancelled", task.cancelled_at end
  if task.hold or now < task.start then return "queued", task.created end
  if task.stuck or now < task.end_t then
    local t = task.start
    for _, e in ipairs(task.schedule) do if e.t <= now and e.t > t then t = e.t end end
    return "in_progress", t
  end
  return task.final, task.end_t
end

function M.running(task, now)
  local status = M.state(task, now)
  return status == "queued" or status == "in_progress"
end

--- Past retention (G12): finished runs are kept `retention[tier]` seconds after `updated`.
function M.expired(task, now, retention)
  local status, updated = M.state(task, now)
  local keep = tonumber(retention[task.tier]) or tonumber(retention.paid)
  return TERMINAL[status] and keep ~= nil and now > updated + keep
end

-- The share of the nominal work done by time now (usage and cost of partial runs).
local function progress(task, status, now)
  if status == "queued" then return 0 end
  if status == "cancelled" then
    local t = math.max(task.start, math.min(task.cancelled_at, task.end_t))
    return math.min(task.share, (t - task.start) / task.span)
  end
  if status == "in_progress" then return math.min(1, (now - task.start) / task.span) end
  return task.share
end

local function visible_steps(task, now)
  local limit = math.min(now, task.cancelled_at or now)
  local steps = {}
  for _, e in ipairs(task.schedule) do
    if e.t <= limit then steps[#steps + 1] = e.step end
  end
  return steps
end

local ECHO = { "labels", "webhook_config", "previous_interaction_id", "system_instruction",
  "tools", "service_tier" }

--- The Interaction as served at time now. o: { layout, include_input, iso(t), array(t) }.
function M.view(task, now, o)
  local status, updated = M.state(task, now)
  local body = { id = task.id, status = status, agent = task.agent, agent_config = task.config,
    created = o.iso(task.created), updated = o.iso(updated) }
  for _, k in ipairs(ECHO) do body[k] = task[k] end
  if o.include_input then body.input = task.input end
  local steps, outputs = visible_steps(task, now), {}
  if TERMINAL[status] then
    if status ~= "cancelled" and task.last then
      steps[#steps + 1] = task.last
      outputs = task.last.content
    end
    local err = status ~= "cancelled" and ERRORS[task.outcome]
    if err then body.errors = { err } end
    body.usage = content.usage(task.size, progress(task, status, now))
  end
  if o.layout ~= "outputs" then body.steps = o.array(steps) end
  if o.layout == "outputs" or o.layout == "both" then body.outputs = o.array(outputs) end
  return body
end

--- The side-channel record (/_sim/state): the view plus what only the simulator knows.
function M.side(task, now, cfg, view)
  local share = progress(task, view.status, now)
  local usage = content.usage(task.size, share)
  local rates = cfg.rates[task.kind] or cfg.rates.standard
  return { id = task.id, status = view.status, agent = task.agent, tier = task.tier,
    created = view.created, updated = view.updated, deleted = task.deleted_at ~= nil,
    running = M.running(task, now), outcome = task.outcome,
    queries = usage.grounding_tool_count[1].count,
    estimated_cost_usd = content.cost(usage, rates),
    previous_interaction_id = task.previous_interaction_id, labels = task.labels,
    interaction = view }
end

return M

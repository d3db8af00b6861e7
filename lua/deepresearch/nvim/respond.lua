-- A job stopped at a checkpoint (state input_required): asked when the editor is idle,
-- answered as proposed, or left for :DeepResearchRespond, as setup{ checkpoints } says; the
-- answer is sent on the job's driver and its wait goes on. The prompts are nvim/checkpoint.lua's.
local checkpoint = require "deepresearch.nvim.checkpoint"
local config = require "deepresearch.nvim.config"
local drivers = require "deepresearch.nvim.drivers"
local jobs = require "deepresearch.nvim.jobs"
local state = require "deepresearch.nvim.state"

local notify, levels, short = config.notify, config.levels, jobs.short
local M = {}

-- Whether a prompt may open now: in Normal mode with nothing half-typed, so that it never
-- takes keys meant for an insert, a command line or an operator.
local function idle()
  return vim.fn.mode(1) == "n" and not vim.api.nvim_get_mode().blocking and
    vim.fn.getcmdwintype() == ""
end

local function respond(job, response)
  local p, err = drivers.get(job.provider)
  if not p then return notify(err, levels.ERROR) end
  local interaction = job.interaction
  job.state = "responding"
  local ok, e = pcall(p.add, p, "respond", function(ack, rerr)
    if not ack then
      job.state = "input_required"
      return notify(string.format("deepresearch %s: the answer was not accepted: %s " ..
        "(:DeepResearchRespond %s to answer again)", short(job.id), tostring(rerr),
        tostring(job.id)), levels.ERROR)
    end
    job.answered[interaction.interaction_id or true] = true
    job.interaction, job.state = nil, "running"
    notify(string.format("deepresearch %s: answered (%s)", short(job.id),
      checkpoint.label(interaction)))
    jobs.start_wait(job)
  end, job.id, interaction, response)
  if not ok then
    job.state = "input_required"
    notify(tostring(e), levels.ERROR)
  end
  jobs.ensure_timer()
end

local function ask_job(job)
  state.asking = job
  local header = string.format("deepresearch %s: %s", short(job.id),
    checkpoint.label(job.interaction))
  local asked = checkpoint.ask(job.interaction, header, function(response)
    state.asking = nil
    if response then
      respond(job, response)
    else
      notify(string.format("deepresearch %s: still waiting for your input; " ..
        ":DeepResearchRespond %s to answer", short(job.id), tostring(job.id)), levels.WARN)
    end
    jobs.ensure_timer() -- more checkpoints may be queued
  end)
  if not asked then state.asking = nil end
end

--- Opens the next queued prompt if the editor is idle (each tick calls this).
function M.ask_next()
  if state.asking or not state.asks[1] or not idle() then return end
  local job = table.remove(state.asks, 1)
  if job.state ~= "input_required" or not job.interaction then return M.ask_next() end
  ask_job(job)
end

-- An interaction answered already, still shown by a poll: poll again a little later.
local function wait_again_later(job)
  job.deferred, job.state = true, "running"
  vim.defer_fn(function()
    job.deferred = nil
    if job.state == "running" then jobs.start_wait(job) end
  end, math.floor((config.values.interval or 1) * 1000))
end

--- The job's wait ended at a checkpoint: ask, notify or approve, as setup says.
function M.on_checkpoint(job, task, interaction)
  job.task = task or job.task
  job.interaction, job.state = interaction, "input_required"
  local iid = type(interaction) == "table" and interaction.interaction_id or nil
  if iid ~= nil and job.answered[iid] then return wait_again_later(job) end
  if not checkpoint.known(interaction) then
    return notify(string.format("deepresearch %s: waiting for input (%s) the editor cannot " ..
      "ask; answer with client:respond", short(job.id), checkpoint.label(interaction)),
      levels.WARN)
  end
  local c = config.values
  if c.checkpoints == "approve" then return respond(job, checkpoint.proposed(interaction)) end
  local how = c.checkpoints == "ask" and "" or
    ("; :DeepResearchRespond " .. tostring(job.id) .. " to answer")
  notify(string.format("deepresearch %s: needs your input (%s)%s", short(job.id),
    checkpoint.label(interaction), how), levels.WARN)
  if c.checkpoints == "ask" then
    state.asks[#state.asks + 1] = job
    jobs.ensure_timer()
  end
end

--- Answers a task's open checkpoint now (by id, or the first waiting one): prompts with
-- vim.ui.select / vim.ui.input. A task this session does not know is waited on first.
function M.respond(id, opts)
  opts = opts or {}
  if state.asking then return notify("deepresearch: a checkpoint prompt is already open") end
  for i = #state.order, 1, -1 do
    local job = state.jobs[state.order[i]]
    if job.state == "input_required" and job.interaction and
      (id == nil or tostring(job.id) == id or tostring(job.id):sub(1, #id) == id) then
      for k = #state.asks, 1, -1 do
        if state.asks[k] == job then table.remove(state.asks, k) end
      end
      return ask_job(job)
    end
  end
  if id == nil then return notify("deepresearch: no task is waiting for your input") end
  -- Its wait ends at the checkpoint, which then asks (or notifies, as setup says).
  return jobs.wait(id, opts)
end

return M

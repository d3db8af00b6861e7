-- Jobs: a brief being created, or an id, waited on until its report opens; and the vim.loop
-- timer that steps every driver while work is pending. The timer's callback only schedules a
-- tick (UI work happens in vim.schedule'd callbacks, never in the timer), so the editor never
-- waits on the network. A job stopping at a checkpoint goes on in nvim/respond.lua.
local providers = require "deepresearch.providers"
local config = require "deepresearch.nvim.config"
local descriptors = require "deepresearch.nvim.descriptors"
local drivers = require "deepresearch.nvim.drivers"
local library = require "deepresearch.nvim.library"
local report = require "deepresearch.nvim.report"
local state = require "deepresearch.nvim.state"

local notify, levels, id_of = config.notify, config.levels, descriptors.id_of
local M = {}

-- nvim/respond.lua requires this module: it is required here on use, when both are loaded.
local function respond() return require "deepresearch.nvim.respond" end

-- Jobs in these states wait on a driver's request (or a deferred poll).
local ACTIVE = { creating = true, queued = true, running = true, responding = true }
M.ACTIVE = ACTIVE

-- The timer ------------------------------------------------------------------------------------

local function stop_timer()
  if state.timer then
    state.timer:stop()
    if not state.timer:is_closing() then state.timer:close() end
    state.timer = nil
  end
end

-- Nothing pending, yet a job not finished: its wait ended by an error a step raised.
local function fail_orphans(err)
  for _, job in pairs(state.jobs) do
    if ACTIVE[job.state] and not job.deferred then
      job.state, job.err = "failed", err or "the wait ended without a result"
    end
  end
end

--- One step of every driver, on the main loop. Callbacks (and their UI work) run in here.
function M.tick()
  state.scheduled = false
  local failure
  for _, p in pairs(state.drivers) do
    local ok, err = pcall(p.step, p, 0)
    if not ok then
      failure = failure or err
      notify("deepresearch: " .. tostring(err), levels.ERROR)
    end
  end
  respond().ask_next() -- an answer given at once sends its request: counted below
  local pending = 0
  for _, p in pairs(state.drivers) do pending = pending + p:pending() end
  if pending > 0 or (state.asks[1] and not state.asking) then return end
  stop_timer()
  fail_orphans(failure)
end

--- Starts the timer unless it runs.
function M.ensure_timer()
  if state.timer then return end
  local t = vim.loop.new_timer()
  state.timer = t
  -- The timer callback is a fast context (no API calls allowed): it only schedules the tick,
  -- and never queues a second one while the first has not run.
  t:start(0, config.values.tick_ms, function()
    if state.scheduled then return end
    state.scheduled = true
    vim.schedule(M.tick)
  end)
end

-- Jobs -----------------------------------------------------------------------------------------

function M.short(id)
  return tostring(id or "?"):sub(1, 8)
end
local short = M.short

local function new_job(fields)
  state.seq = state.seq + 1
  local job = {
    key = state.seq, state = "creating", started = vim.loop.now(), last_notice = -math.huge,
    answered = {}, -- interaction ids answered: a poll that still shows one waits, never re-asks
  }
  for k, v in pairs(fields) do job[k] = v end
  state.jobs[job.key] = job
  state.order[#state.order + 1] = job.key
  return job
end

local function on_progress(job)
  return function(task)
    job.task = task
    job.id = id_of(job.provider, task) or job.id
    local lib = library.library()
    job.state = lib and lib.state(task, job.provider) or job.state
    if config.values.progress ~= "notify" then return end
    local now = vim.loop.now()
    local changed = job.notified_status ~= task.status
    if changed or (now - job.last_notice) / 1000 >= config.values.notify_every then
      job.notified_status, job.last_notice = task.status, now
      notify(string.format("deepresearch %s: %s", short(job.id),
        descriptors.describe(job.provider, task)))
    end
  end
end

local function finish(job, task, err)
  if not task and type(err) == "table" and err.code == "input_required" then
    return respond().on_checkpoint(job, err.task, err.interaction)
  end
  if task then
    job.state, job.task = "done", task
    local ok, e = pcall(report.open_report, task, job.provider)
    if not ok then
      notify("deepresearch: cannot open the report of " .. tostring(job.id) .. ": " ..
        tostring(e), levels.ERROR)
    else
      notify(string.format("deepresearch %s: done (%s)", short(job.id),
        descriptors.describe(job.provider, task)))
    end
  else
    job.state, job.err = "failed", err
    notify(tostring(err), levels.ERROR)
  end
end

-- The first poll comes no sooner than the provider's poll floor (its descriptor's poll: an API
-- with low rate limits), whatever setup's interval says.
local function wait_opts(job)
  local c = config.values
  local d = require("deepresearch.providers").get(job.provider)
  local floor = d and type(d.poll) == "table" and d.poll.floor or 0
  local interval = c.interval and math.max(c.interval, floor) or nil
  local max_interval = c.max_interval and interval and math.max(c.max_interval, interval) or
    c.max_interval
  return { on_progress = on_progress(job), interval = interval,
    max_interval = max_interval, timeout = c.timeout, task = job.task }
end

--- Waits (again) on the job's task through its provider's driver.
function M.start_wait(job)
  local p, err = drivers.get(job.provider)
  if not p then return finish(job, nil, err) end
  job.state = ACTIVE[job.state] and job.state ~= "creating" and job.state or "queued"
  local ok, e = pcall(p.wait, p, job.id, wait_opts(job), function(task, werr)
    finish(job, task, werr)
  end)
  if not ok then return finish(job, nil, e) end
  M.ensure_timer()
end

-- output_schema: the name research took before providers other than Extruct (kept working).
local RESEARCH_OPTIONS = { provider = true, schema = true, output_schema = true, params = true }

-- The create parameters the provider's descriptor makes of brief and opts (its flags, a
-- schema), with setup's and opts' extra params on top; or nil and a message.
local function create_params(name, brief, opts)
  local d = providers.get(name)
  if not d then
    return nil, "deepresearch: unknown provider '" .. tostring(name) .. "' (registered: " ..
      table.concat(providers.names(), ", ") .. ")"
  end
  local s = config.settings(name)
  for k, v in pairs(opts) do
    if not RESEARCH_OPTIONS[k] then
      local ok, msg = config.check_flag(d, k, "deepresearch")
      if not ok then return nil, msg end
      s.flags[k] = v
    end
  end
  local call, err = drivers.recorded(d.cli.create, brief, s.flags,
    opts.schema or opts.output_schema)
  if not call then return nil, err end
  local params = type(call[1]) == "table" and call[1] or {}
  for k, v in pairs(s.params) do params[k] = v end
  for k, v in pairs(opts.params or {}) do params[k] = v end
  call[1] = params
  return call
end

--- Starts a research task for brief and reports it when done. Returns the job (a table).
-- opts: provider, schema (an output schema), params (more create parameters, sent as they
-- are), and the provider's flags (its descriptor's cli.flags, as on the command line).
function M.research(brief, opts)
  opts = opts or {}
  local name = opts.provider or config.provider()
  local job = new_job({ brief = brief, provider = name })
  local call, err = create_params(name, brief, opts)
  local p
  if call then p, err = drivers.get(name) end
  if not p then
    finish(job, nil, err)
    return job
  end
  notify("deepresearch: creating a task for \"" .. brief:gsub("%s+", " "):sub(1, 60) .. "\"")
  local ok, e = pcall(drivers.replay, p, call, function(task, cerr)
    if not task then return finish(job, nil, cerr) end
    job.task, job.id = task, id_of(name, task)
    notify(string.format("deepresearch %s: created (%s)", short(job.id), tostring(job.id)))
    M.start_wait(job)
  end)
  if not ok then
    finish(job, nil, e)
    return job
  end
  M.ensure_timer()
  return job
end

--- Waits on an existing task and opens its report when done. Returns the job.
function M.wait(id, opts)
  opts = opts or {}
  local job = new_job({ id = id, state = "queued", provider = opts.provider or config.provider() })
  M.start_wait(job)
  return job
end

--- A short line for the statusline: "" when nothing runs or waits.
function M.status()
  local running, waiting, agents, sources = 0, 0, 0, 0
  for _, job in pairs(state.jobs) do
    if job.state == "input_required" then waiting = waiting + 1 end
    if ACTIVE[job.state] then
      running = running + 1
      if job.task then
        local c = descriptors.counters(job.provider, job.task)
        agents = agents + (tonumber(c.agents) or 0)
        sources = sources + (tonumber(c.sources) or 0)
        if agents ~= agents or sources ~= sources then agents, sources = 0, 0 end
      end
    end
  end
  if running == 0 and waiting == 0 then return "" end
  local parts = {}
  if running > 0 then parts[#parts + 1] = running .. " running" end
  if waiting > 0 then parts[#parts + 1] = waiting .. " need" .. (waiting == 1 and "s" or "") ..
    " input" end
  if running > 0 then
    parts[#parts + 1] = tostring(agents) .. " agents"
    parts[#parts + 1] = tostring(sources) .. " sources"
  end
  return "research: " .. table.concat(parts, ", ")
end

--- Every job of this session, oldest first.
function M.jobs()
  local out = {}
  for _, key in ipairs(state.order) do out[#out + 1] = state.jobs[key] end
  return out
end

--- Stops the timer and closes the drivers and clients (pending waits are dropped; tasks keep
-- running on the server). The next command starts afresh.
function M.close()
  stop_timer()
  drivers.close()
  state.scheduled = false
  state.asks, state.asking = {}, nil
  for _, job in pairs(state.jobs) do
    if job.state ~= "done" and job.state ~= "failed" then job.state = "stopped" end
  end
end

return M

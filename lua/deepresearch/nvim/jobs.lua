-- Jobs: a brief being created, or an id, waited on until its report is ready; and the
-- vim.loop timer that steps every driver while work is pending. The timer steps the drivers in
-- its own callback (a libuv, "fast" context), so requests go on in every mode, a hit-enter or
-- a vim.ui.input prompt included; what the callbacks show goes through nvim/screen.lua (on the
-- main loop; windows only in Normal mode). A checkpoint goes on in nvim/respond.lua.
local providers = require "deepresearch.providers"
local config = require "deepresearch.nvim.config"
local descriptors = require "deepresearch.nvim.descriptors"
local drivers = require "deepresearch.nvim.drivers"
local events = require "deepresearch.nvim.events"
local history = require "deepresearch.nvim.history"
local library = require "deepresearch.nvim.library"
local report = require "deepresearch.nvim.report"
local screen = require "deepresearch.nvim.screen"
local state = require "deepresearch.nvim.state"

local notify, levels, id_of = config.notify, config.levels, descriptors.id_of
local unpack = table.unpack or unpack -- luacheck: ignore
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
      events.fire("failed", job)
    end
  end
end

-- One step of every driver (never re-entered: a step's callback may reach here again).
local function step_all()
  if state.stepping then return nil end
  state.stepping = true
  local failure
  for _, p in pairs(state.drivers) do
    local ok, err = pcall(p.step, p, 0)
    if not ok then
      failure = failure or err
      notify("deepresearch: " .. tostring(err), levels.ERROR)
    end
  end
  state.stepping = false
  return failure
end

local function ask_later()
  if state.ask_scheduled then return end
  state.ask_scheduled = true
  vim.schedule(function()
    state.ask_scheduled = false
    respond().ask_next()
  end)
end

local function after_step(failure)
  if state.asks[1] and not state.asking then ask_later() end
  local pending = 0
  for _, p in pairs(state.drivers) do pending = pending + p:pending() end
  if pending > 0 or (state.asks[1] and not state.asking) or state.ask_scheduled then return end
  stop_timer()
  fail_orphans(failure)
end

--- One step of every driver, now (the timer does this by itself; tests may call it).
function M.tick()
  local failure = step_all()
  respond().ask_next() -- an answer given at once sends its request: counted below
  after_step(failure)
end

--- Starts the timer unless it runs.
function M.ensure_timer()
  if state.timer then return end
  local t = vim.loop.new_timer()
  state.timer = t
  t:start(0, config.values.tick_ms, function()
    if state.timer ~= t then return end
    after_step(step_all())
  end)
end

-- Jobs -----------------------------------------------------------------------------------------

--- fn, made to run on the main loop when setup gave its own driver: the poller's calls only
-- queue work and may be made from a libuv callback; a driver of setup's may block or call the
-- editor, which a libuv callback must not.
function M.on_main(fn)
  return function(...)
    if not config.values.driver or not vim.in_fast_event() then return fn(...) end
    local args = { n = select("#", ...), ... }
    vim.schedule(function() fn(unpack(args, 1, args.n)) end)
  end
end

--- The id as notifications and buffer names show it: a prefix every command accepts.
function M.short(id)
  return history.short(id)
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

--- One notification per job: with a notifier that returns a record (nvim-notify), each next
-- one replaces the last; a plain one gets a line per state change.
-- Sent on the main loop (the record comes back there). Safe from a libuv callback.
function M.notify_job(job, msg, level)
  screen.later(function()
    local rec = notify(msg, level, job.notice and { replace = job.notice } or nil)
    if type(rec) == "table" or type(rec) == "number" then job.notice = rec end
  end)
end

local function on_progress(job)
  return function(task)
    job.task = task
    job.id = id_of(job.provider, task) or job.id
    local lib = library.library()
    local before = job.state
    job.state = lib and lib.state(task, job.provider) or job.state
    -- The end is announced by finish (one line, one event), not as progress.
    if job.state == "done" or job.state == "failed" or job.state == "cancelled" then return end
    local changed = job.notified_status ~= task.status
    if changed then
      events.fire("progress", job)
      if job.state ~= before then history.update(job, { state = job.state }) end
    end
    if config.values.progress ~= "notify" then return end
    local now = vim.loop.now()
    if changed or (job.notice and (now - job.last_notice) / 1000 >= config.values.notify_every) then
      job.notified_status, job.last_notice = task.status, now
      M.notify_job(job, string.format("deepresearch %s: %s", short(job.id),
        descriptors.describe(job.provider, task)))
    end
  end
end

local function cost_of(task)
  local c = type(task) == "table" and (task.cost or task.usage) or nil
  if type(c) == "number" then return c end
  if type(c) == "table" and tonumber(c.usd or c.total_usd or c.total) then
    return { usd = tonumber(c.usd or c.total_usd or c.total) }
  end
  return nil
end

--- Announces a finished report once (marks it seen in the journal) and opens it where setup
-- says, at the next safe moment (never in insert, command-line, operator-pending or terminal
-- mode). Safe from a libuv callback.
function M.announce(job)
  local where = config.values.open
  screen.later(function()
    job.announced = true
    local ok, e = pcall(report.open_report, job.task, job.provider, nil, job.brief)
    if not ok then
      return notify("deepresearch: cannot render the report of " .. tostring(job.id) .. ": " ..
        tostring(e), levels.ERROR)
    end
    history.update(job, { seen = true })
    local s = short(job.id)
    M.notify_job(job, string.format("deepresearch %s: done (%s)%s", s,
      descriptors.describe(job.provider, job.task),
      where == "notify" and (" :DeepResearchOpen " .. s) or ""))
    if job.after then -- :DeepResearchOpen or :DeepResearchExport waited for this
      local after = job.after
      job.after = nil
      return after(job)
    end
    if where ~= "notify" then
      local buf = e -- filled above: shown as it is, not rendered again
      screen.when_safe(function()
        if vim.api.nvim_buf_is_valid(buf) then
          return require("deepresearch.nvim.buffer").show(buf, where)
        end
        report.open_report(job.task, job.provider, where, job.brief)
      end)
    end
  end)
end

local function finish(job, task, err)
  if not task and type(err) == "table" and err.code == "input_required" then
    events.fire("input_required", job)
    history.update(job, { state = "input_required" })
    return respond().on_checkpoint(job, err.task, err.interaction)
  end
  if task then
    job.state, job.task = "done", task
    history.update(job, { state = "done", cost = cost_of(task) })
    events.fire("done", job)
    M.announce(job)
  else
    job.state, job.err = "failed", err
    if type(err) == "table" and err.code == "not_found" and job.id then
      job.err = "deepresearch: no task " .. tostring(job.id) .. " at " .. job.provider ..
        " (404): " .. tostring(err.message or err)
    end
    -- seen: the notification below says it; a restart does not say it again.
    history.update(job, { state = "failed", seen = true,
      error = type(err) == "table" and err.code or "failed" })
    events.fire("failed", job)
    M.notify_job(job, tostring(job.err), levels.ERROR)
  end
end

-- The first poll comes no sooner than the provider's poll floor (its descriptor's poll: an API
-- with low rate limits), whatever setup's interval says. A task this session did not just
-- create gets no grace for a 404: the id is wrong, and saying so at once is kinder.
local function wait_opts(job)
  local c = config.values
  local d = providers.get(job.provider)
  local floor = d and type(d.poll) == "table" and d.poll.floor or 0
  local interval = c.interval and math.max(c.interval, floor) or nil
  local max_interval = c.max_interval and interval and math.max(c.max_interval, interval) or
    c.max_interval
  return { on_progress = on_progress(job), interval = interval,
    max_interval = max_interval, timeout = c.timeout, task = job.task,
    not_found_grace = not job.created_here and 0 or nil }
end

--- Waits (again) on the job's task through its provider's driver.
function M.start_wait(job)
  job.deferred = true -- reading the key may take a moment: not an orphan meanwhile
  drivers.with(job.provider, M.on_main(function(p, err)
    job.deferred = nil
    if not p then return finish(job, nil, err) end
    job.state = ACTIVE[job.state] and job.state ~= "creating" and job.state or "queued"
    local ok, e = pcall(p.wait, p, job.id, wait_opts(job), function(task, werr)
      finish(job, task, werr)
    end)
    if not ok then return finish(job, nil, e) end
    M.ensure_timer()
  end))
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
  local job = new_job({ brief = brief, provider = name, created_here = true })
  local call, err = create_params(name, brief, opts)
  if not call then
    finish(job, nil, err)
    return job
  end
  notify("deepresearch: creating a " .. name .. " task: " .. brief:gsub("%s+", " "))
  job.deferred = true
  drivers.with(name, M.on_main(function(p, derr)
    job.deferred = nil
    if not p then return finish(job, nil, derr) end
    -- Recorded before it is sent: a create that answers after a restart is never lost.
    job.deferred = true
    history.begin(job, M.on_main(function()
      job.deferred = nil
      local ok, e = pcall(drivers.replay, p, call, function(task, cerr)
        if not task then return finish(job, nil, cerr) end
        job.task, job.id = task, id_of(name, task)
        job.state = "queued"
        history.created(job, task)
        events.fire("created", job)
        M.notify_job(job, string.format("deepresearch %s: created (%s)", short(job.id), name))
        M.start_wait(job)
      end)
      if not ok then return finish(job, nil, e) end
      M.ensure_timer()
    end))
  end))
  return job
end

--- Waits on an existing task (a full id or a unique prefix of 6+ characters of a known one)
-- and announces its report when done. Returns the job, or nil after notifying why not.
function M.wait(typed, opts)
  opts = opts or {}
  local id, provider, known = history.resolve(typed, opts.provider)
  if not id then
    notify(provider, levels.ERROR)
    return nil
  end
  local job = new_job({ id = id, state = "queued",
    provider = provider or opts.provider or config.provider(),
    created_here = known and history.job_of(id) ~= nil and history.job_of(id).created_here,
    brief = opts.brief, ref = opts.ref })
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
  screen.reset()
  history.flush()
  state.journal, state.journal_ids = nil, nil
  state.scheduled = false
  state.asks, state.asking = {}, nil
  for _, job in pairs(state.jobs) do
    if job.state ~= "done" and job.state ~= "failed" then job.state = "stopped" end
  end
end

return M

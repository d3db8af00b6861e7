-- Neovim front: :DeepResearch, :DeepResearchWait, :DeepResearchList and a statusline function.
-- Every request runs on one poller that a vim.loop timer steps with step(0), so the editor
-- never waits on the network; UI work happens in vim.schedule'd callbacks, never in the timer.
local M = {}

local defaults = {
  base_url = nil,          -- EXTRUCT_BASE_URL, else https://api.extruct.ai
  token = nil,             -- EXTRUCT_API_TOKEN; a string or a function returning one
  depth = nil,             -- "medium" (server default) | "high" | "xhigh"
  interval = 5,            -- seconds before the first poll of a task
  max_interval = 30,       -- polls back off up to this many seconds apart
  timeout = 7200,          -- seconds to wait for one task before giving up (it keeps running)
  max_connections = 4,     -- sockets open at once to the API
  tick_ms = 50,            -- how often the timer steps the poller while work is pending
  open = "tab",            -- where reports open: "tab" | "split" | "vsplit" | "current"
  style = "footnotes",     -- citation style passed to deepresearch.report.render
  progress = "notify",     -- "notify": progress notifications; false: only status()
  notify_every = 15,       -- seconds between two progress notifications of one task
  notify = nil,            -- function(msg, level) replacing vim.notify
  client = nil,            -- extra options for deepresearch.client (timeout, proxy, ca_file, ...)
  driver = nil,            -- function(client, config) returning what runs the requests; the
                           -- default is the client's poller (see get_driver)
}

local KNOWN = {
  base_url = true, token = true, depth = true, notify = true, client = true, driver = true,
}
for k in pairs(defaults) do KNOWN[k] = true end

local config = {}
for k, v in pairs(defaults) do config[k] = v end
M.config = config

local state = {
  jobs = {},      -- key -> job; a job is one brief or id being created and waited on
  order = {},     -- keys in start order
  seq = 0,
  client = nil,
  poller = nil,
  timer = nil,
  scheduled = false,
}
M._state = state

local levels = (vim.log and vim.log.levels) or { DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4 }

local function notify(msg, level)
  local fn = config.notify or vim.notify
  fn(msg, level or levels.INFO, { title = "deepresearch" })
end

-- Paths ---------------------------------------------------------------------------------------

--- The plugin's root directory: this file is <root>/lua/deepresearch/nvim/init.lua.
function M.root()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or src
  return vim.fn.fnamemodify(src, ":p:h:h:h:h")
end

--- Puts <root>/build/luajit/?.so first on package.cpath (once), where `make LUA_VERSION=luajit`
-- leaves deepresearch/core.so. Returns the pattern added.
function M.add_cpath(root)
  local pattern = (root or M.root()) .. "/build/luajit/?.so"
  if not package.cpath:find(pattern, 1, true) then
    package.cpath = pattern .. ";" .. package.cpath
  end
  return pattern
end

--- require("deepresearch"), or nil and the loader's message (which names the ABI and the build
-- command).
function M.library()
  M.add_cpath()
  local ok, lib = pcall(require, "deepresearch")
  if ok then
    -- Without lua-cjson the front handed the core no decoder: Neovim's own, whose vim.NIL the
    -- core removes from objects as it does cjson's null.
    if not package.loaded["cjson"] then lib.core.set_decoder(vim.json.decode, vim.NIL) end
    return lib
  end
  -- Lua 5.1's require leaves a marker behind after an error ("loop or previous error loading
  -- module"): clear it, so the next command tries again (say, after building the module).
  package.loaded["deepresearch"], package.loaded["deepresearch.core"] = nil, nil
  return nil, tostring(lib)
end

-- Client and poller ---------------------------------------------------------------------------

local function client_options()
  local o = {}
  for k, v in pairs(config.client or {}) do o[k] = v end
  o.base_url = config.base_url or o.base_url
  o.token = config.token or o.token
  o.max_connections = config.max_connections
  return o
end

local function get_client()
  if state.client then return state.client end
  local lib, err = M.library()
  if not lib then return nil, err end
  local ok, c = pcall(lib.client, client_options())
  if not ok then return nil, tostring(c) end
  state.client = c
  return c
end

-- The driver runs the requests: create(params, cb), wait(id, opts, cb), list(query, cb),
-- step(timeout), pending() and close(), as a poller has them. The default is the client's
-- poller, which the timer steps; setup{ driver = fn } replaces it (fn(client, config) returns
-- the driver), so the editor never holds a second code path of its own.
local function default_driver(c)
  return c:poller{ max_connections = config.max_connections }
end

local function get_driver()
  if state.poller then return state.poller end
  local c, err = get_client()
  if not c then return nil, err end
  state.poller = (config.driver or default_driver)(c, config)
  return state.poller
end

local function active_jobs()
  local n = 0
  for _, job in pairs(state.jobs) do
    if job.state == "creating" or job.state == "queued" or job.state == "running" then
      n = n + 1
    end
  end
  return n
end

local function stop_timer()
  if state.timer then
    state.timer:stop()
    if not state.timer:is_closing() then state.timer:close() end
    state.timer = nil
  end
end

--- One step of the poller, on the main loop. Callbacks (and their UI work) run in here.
function M.tick()
  state.scheduled = false
  local p = state.poller
  if not p then return stop_timer() end
  local ok, err = pcall(p.step, p, 0)
  if not ok then notify("deepresearch: " .. tostring(err), levels.ERROR) end
  if p:pending() > 0 then return end
  stop_timer()
  -- Nothing pending, yet a job not finished: its wait ended by an error raised above.
  if active_jobs() > 0 then
    for _, job in pairs(state.jobs) do
      if job.state == "creating" or job.state == "queued" or job.state == "running" then
        job.state, job.err = "failed", err or "the wait ended without a result"
      end
    end
  end
end

local function ensure_timer()
  if state.timer then return end
  local t = vim.loop.new_timer()
  state.timer = t
  -- The timer callback is a fast context (no API calls allowed): it only schedules the tick,
  -- and never queues a second one while the first has not run.
  t:start(0, config.tick_ms, function()
    if state.scheduled then return end
    state.scheduled = true
    vim.schedule(M.tick)
  end)
end

-- Report buffers ------------------------------------------------------------------------------

local buffer = require "deepresearch.nvim.buffer"

-- The editor talks to the default provider: its tasks' id field and counters come from that
-- provider's descriptor (docs/providers.md), not from field names written here.
local function descriptor()
  local providers = require "deepresearch.providers"
  return providers.get(providers.DEFAULT)
end

local function id_of(task)
  return task[descriptor().kinds.research.id_field]
end

-- { agents, sources, ... }: the counters the worker publishes, read the same way here.
local function counters(task)
  return descriptor().worker.progress(task)
end

--- The report of a done task as markdown text, citations resolved.
function M.render(task) return buffer.render(task, config.style) end

--- Opens (or refreshes) the buffer deepresearch://<id> holding the rendered report.
function M.open_report(task) return buffer.open(task, config.open, config.style) end

-- Jobs ----------------------------------------------------------------------------------------

local function short(id)
  return tostring(id or "?"):sub(1, 8)
end

local function describe(task)
  -- Server counters are shown as text: a fractional or huge one never makes format raise.
  local c = counters(task)
  return string.format("%s, %s agents, %s sources", tostring(task.status),
    tostring(tonumber(c.agents) or 0), tostring(tonumber(c.sources) or 0))
end

local function new_job(fields)
  state.seq = state.seq + 1
  local job = {
    key = state.seq, state = "creating", started = vim.loop.now(), last_notice = -math.huge,
  }
  for k, v in pairs(fields) do job[k] = v end
  state.jobs[job.key] = job
  state.order[#state.order + 1] = job.key
  return job
end

local function on_progress(job)
  return function(task)
    job.task = task
    job.id = id_of(task)
    local lib = M.library()
    job.state = lib and lib.state(task) or job.state
    if config.progress ~= "notify" then return end
    local now = vim.loop.now()
    local changed = job.notified_status ~= task.status
    if changed or (now - job.last_notice) / 1000 >= config.notify_every then
      job.notified_status, job.last_notice = task.status, now
      notify(string.format("deepresearch %s: %s", short(id_of(task)), describe(task)))
    end
  end
end

local function finish(job, task, err)
  if task then
    job.state, job.task = "done", task
    local ok, e = pcall(M.open_report, task)
    if not ok then
      notify("deepresearch: cannot open the report of " .. tostring(id_of(task)) .. ": " ..
        tostring(e), levels.ERROR)
    else
      notify(string.format("deepresearch %s: done (%s)", short(id_of(task)), describe(task)))
    end
  else
    job.state, job.err = "failed", err
    notify(tostring(err), levels.ERROR)
  end
end

local function wait_opts(job)
  return { on_progress = on_progress(job), interval = config.interval,
    max_interval = config.max_interval, timeout = config.timeout, task = job.task }
end

local function start_wait(job)
  local p, err = get_driver()
  if not p then return finish(job, nil, err) end
  job.state = job.state == "creating" and "queued" or job.state
  p:wait(job.id, wait_opts(job), function(task, e) finish(job, task, e) end)
  ensure_timer()
end

--- Starts a research task for brief and reports it when done. Returns the job (a table).
function M.research(brief, opts)
  opts = opts or {}
  local params = {
    brief = brief, depth = opts.depth or config.depth, output_schema = opts.output_schema,
  }
  local job = new_job({ brief = brief })
  local p, err = get_driver()
  if not p then
    finish(job, nil, err)
    return job
  end
  notify("deepresearch: creating a task for \"" .. brief:gsub("%s+", " "):sub(1, 60) .. "\"")
  p:create(params, function(task, e)
    if not task then return finish(job, nil, e) end
    job.task, job.id = task, id_of(task)
    notify(string.format("deepresearch %s: created (%s)", short(id_of(task)), id_of(task)))
    start_wait(job)
  end)
  ensure_timer()
  return job
end

--- Waits on an existing task and opens its report when done. Returns the job.
function M.wait(id)
  local job = new_job({ id = id, state = "queued" })
  start_wait(job)
  return job
end

local function pad(s, n)
  s = tostring(s or "")
  return s .. string.rep(" ", math.max(0, n - #s))
end

--- Lists the newest tasks in a scratch buffer; <CR> on a line waits on (and opens) that task.
function M.list(opts)
  opts = opts or {}
  local function show(tasks, err)
    if not tasks then return notify(tostring(err), levels.ERROR) end
    local lines = {}
    for _, t in ipairs(tasks) do
      lines[#lines + 1] = table.concat({ pad(id_of(t), 36), pad(t.status, 11), pad(t.depth, 6),
        pad(t.created_at, 24), (tostring(t.brief or ""):gsub("%s+", " "):sub(1, 80)) }, "  ")
    end
    if #lines == 0 then lines[1] = "(no tasks)" end
    local buf, created = buffer.scratch("deepresearch://tasks", config.open)
    if created then
      vim.api.nvim_buf_set_keymap(buf, "n", "<CR>",
        "<cmd>lua require('deepresearch.nvim').wait(vim.fn.getline('.'):match('^(%S+)'))<CR>",
        { noremap = true, silent = true })
    end
    buffer.set_lines(buf, lines)
    return buf
  end
  local query = { limit = opts.limit or 50, offset = opts.offset }
  local p, err = get_driver()
  if not p then return show(nil, err) end
  p:list(query, show)
  ensure_timer()
end

--- A short line for the statusline: "" when nothing runs.
-- e.g. set statusline+=%{v:lua.require'deepresearch.nvim'.status()}
function M.status()
  local running, agents, sources = 0, 0, 0
  for _, job in pairs(state.jobs) do
    if job.state == "creating" or job.state == "queued" or job.state == "running" then
      running = running + 1
      if job.task then
        local c = counters(job.task)
        agents = agents + (tonumber(c.agents) or 0)
        sources = sources + (tonumber(c.sources) or 0)
        if agents ~= agents or sources ~= sources then agents, sources = 0, 0 end
      end
    end
  end
  if running == 0 then return "" end
  return string.format("research: %d running, %s agents, %s sources", running, tostring(agents),
    tostring(sources))
end

--- Every job of this session, oldest first: { key, id, brief, state, task, err }.
function M.jobs()
  local out = {}
  for _, key in ipairs(state.order) do out[#out + 1] = state.jobs[key] end
  return out
end

--- Stops the timer and closes the poller and client (pending waits are dropped; tasks keep
-- running on the server). The next command starts afresh.
function M.close()
  stop_timer()
  if state.poller then state.poller:close() end
  if state.client then state.client:close() end
  state.poller, state.client, state.scheduled = nil, nil, false
  for _, job in pairs(state.jobs) do
    if job.state ~= "done" and job.state ~= "failed" then job.state = "stopped" end
  end
end

--- Configures the plugin; see docs/neovim.md for every option. Closes the current client.
function M.setup(opts)
  vim.validate({ opts = { opts, "table", true } })
  opts = opts or {}
  for k in pairs(opts) do
    if not KNOWN[k] then
      error("deepresearch.nvim.setup: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  M.close()
  for k in pairs(config) do config[k] = nil end
  for k, v in pairs(defaults) do config[k] = v end
  for k, v in pairs(opts) do config[k] = v end
  if not buffer.OPEN[config.open] then
    error("deepresearch.nvim.setup: open must be tab, split, vsplit or current", 2)
  end
  return M
end

-- Commands ------------------------------------------------------------------------------------

--- :[range]DeepResearch [depth=high] {brief}: a range adds the selected lines to the brief.
function M.command_research(o)
  local args = o.args or ""
  local depth = args:match("^%s*depth=(%w+)%s")
  if depth then args = args:gsub("^%s*depth=%w+%s+", "") end
  local parts = {}
  if o.range and o.range > 0 then
    local lines = vim.api.nvim_buf_get_lines(0, o.line1 - 1, o.line2, false)
    parts[#parts + 1] = table.concat(lines, "\n")
  end
  if args:find("%S") then table.insert(parts, 1, args) end
  local brief = table.concat(parts, "\n\n")
  if not brief:find("%S") then
    return notify("usage: :DeepResearch [depth=medium|high|xhigh] {brief}", levels.ERROR)
  end
  return M.research(brief, { depth = depth })
end

--- Creates the user commands (plugin/deepresearch.lua calls this).
function M.create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("DeepResearch", function(o) M.command_research(o) end,
    { nargs = "*", range = true, desc = "Start a deep research task; the report opens when done" })
  cmd("DeepResearchWait", function(o) M.wait(o.fargs[1]) end,
    { nargs = 1, desc = "Wait on a deep research task by id and open its report" })
  cmd("DeepResearchList", function() M.list() end,
    { nargs = 0, desc = "List recent deep research tasks" })
end

return M

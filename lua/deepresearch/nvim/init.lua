-- Neovim front: :DeepResearch, :DeepResearchWait, :DeepResearchList, :DeepResearchRespond and a
-- statusline function. Every request runs on a poller (one per provider) that a vim.loop timer
-- steps with step(0), so the editor never waits on the network; UI work happens in
-- vim.schedule'd callbacks, never in the timer. What differs between providers (create
-- parameters, list columns, progress, states, tokens) is read from their descriptors
-- (docs/providers.md): nothing here names a provider or its fields.
local providers = require "deepresearch.providers"
local buffer = require "deepresearch.nvim.buffer"
local checkpoint = require "deepresearch.nvim.checkpoint"

local unpack = table.unpack or unpack -- luacheck: ignore
local M = {}

local defaults = {
  provider = nil,          -- the registry's default provider
  base_url = nil,          -- the provider's base_env variable, else its API
  token = nil,             -- the provider's token_env variable; a string or a function
  providers = nil,         -- per provider name: { token, base_url, params, <its flags> }
  interval = 5,            -- seconds before the first poll of a task
  max_interval = 30,       -- polls back off up to this many seconds apart
  timeout = nil,           -- seconds to wait for one task; nil: the provider's default
  max_connections = 4,     -- sockets open at once to each API
  tick_ms = 50,            -- how often the timer steps the pollers while work is pending
  open = "tab",            -- where reports open: "tab" | "split" | "vsplit" | "current"
  style = "footnotes",     -- citation style passed to deepresearch.report.render
  progress = "notify",     -- "notify": progress notifications; false: only status()
  notify_every = 15,       -- seconds between two progress notifications of one task
  notify = nil,            -- function(msg, level) replacing vim.notify
  client = nil,            -- extra options for deepresearch.client (timeout, proxy, ca_file, ...)
  driver = nil,            -- function(client, config, provider) returning what runs the
                           -- requests; the default is the client's poller (see get_driver)
  checkpoints = "ask",     -- a task waiting for input: "ask" (prompt when the editor is idle),
                           -- "notify" (answer with :DeepResearchRespond), "approve" (as proposed)
}

local KNOWN = {}
for _, k in ipairs({ "provider", "base_url", "token", "providers", "interval", "max_interval",
  "timeout", "max_connections", "tick_ms", "open", "style", "progress", "notify_every", "notify",
  "client", "driver", "checkpoints" }) do
  KNOWN[k] = true
end
local PER_PROVIDER = { token = true, base_url = true, params = true }
local CHECKPOINTS = { ask = true, notify = true, approve = true }

local config = {}
for k, v in pairs(defaults) do config[k] = v end
M.config = config

local state = {
  jobs = {},      -- key -> job; a job is one brief or id being created and waited on
  order = {},     -- keys in start order
  seq = 0,
  clients = {},   -- provider name -> client
  drivers = {},   -- provider name -> driver (a poller by default)
  asks = {},      -- jobs whose checkpoint waits for a prompt, first in first out
  asking = nil,   -- the job whose prompt is open
  listing = nil,  -- the task list buffer's rows: { provider, ids = { [line] = id } }
  timer = nil,
  scheduled = false,
}
M._state = state

local levels = (vim.log and vim.log.levels) or { DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4 }

-- One line each: a message of several lines would raise a hit-enter prompt.
local function notify(msg, level)
  local fn = config.notify or vim.notify
  fn((tostring(msg):gsub("%s*\n%s*", " ")), level or levels.INFO, { title = "deepresearch" })
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

-- Providers -----------------------------------------------------------------------------------

--- The provider a command uses unless told otherwise: setup's, else the registry's default.
function M.provider()
  return config.provider or providers.default_name()
end

-- The hint of the first provider that takes a flag (its descriptor's cli.flags), or nil.
local function flag_hint(key)
  for _, n in ipairs(providers.names()) do
    local hint = providers.get(n).cli.flags[key]
    if hint then return hint end
  end
  return nil
end

local function check_flag(d, key, where)
  if d.cli.flags[key] then return true end
  local hint = flag_hint(key)
  return nil, string.format("%s: %s tasks take no '%s'%s", where, d.cli.name, tostring(key),
    hint and (" (" .. hint .. ")") or "")
end

-- What setup says about one provider: token, base_url, create flags and extra create params.
-- The top-level token, base_url and flags are the setup provider's; `providers` adds to them.
local function settings(name)
  local d = providers.get(name)
  local s = { flags = {}, params = {} }
  if name == M.provider() then
    s.token, s.base_url = config.token, config.base_url
    for k in pairs(d.cli.flags) do s.flags[k] = config[k] end
  end
  local per = type(config.providers) == "table" and config.providers[name] or nil
  if per then
    if per.token ~= nil then s.token = per.token end
    if per.base_url ~= nil then s.base_url = per.base_url end
    for k, v in pairs(per) do
      if d.cli.flags[k] then s.flags[k] = v end
    end
    for k, v in pairs(per.params or {}) do s.params[k] = v end
  end
  return s
end
M._settings = settings

-- The command's view of each provider (cli/task.lua's adapter): describe, list rows, id.
local adapters = setmetatable({}, { __mode = "k" })
local function adapter(name)
  local d = providers.get(name)
  adapters[d] = adapters[d] or require("deepresearch.cli.task").adapter(d)
  return adapters[d]
end

local function id_of(name, task)
  return task[providers.get(name).kinds.research.id_field]
end

-- { agents, sources, ... }: the counters the worker publishes, read the same way here.
local function counters(name, task)
  return providers.get(name).worker.progress(task)
end

-- The descriptor's cli.create and cli.list call a blocking client (client:create{...}). The
-- editor hands them a stand-in that records the one call they make, and makes that call on its
-- non-blocking driver: what to send stays the descriptor's, and nothing here blocks.
local function recorded(fn, ...)
  local calls = {}
  local stand_in = setmetatable({}, { __index = function(_, method)
    return function(_, ...)
      calls[#calls + 1] = { name = method, n = select("#", ...), ... }
      return nil, "recorded"
    end
  end })
  local ok, err = pcall(fn, stand_in, ...)
  if not ok then return nil, tostring(err) end
  if #calls ~= 1 then
    return nil, string.format("deepresearch: the provider's call made %d requests; the editor " ..
      "replays exactly one", #calls)
  end
  return calls[1]
end

local function replay(p, call, cb)
  if call.name == "create" then return p:create(call[1], cb) end
  if call.name == "list" then return p:list(call[1], cb) end
  return p:add(call.name, cb, unpack(call, 1, call.n))
end

-- Client and drivers --------------------------------------------------------------------------

local function client_options(name)
  local s = settings(name)
  local o = {}
  for k, v in pairs(config.client or {}) do o[k] = v end
  o.provider = name
  o.base_url = s.base_url or o.base_url
  o.token = s.token or o.token
  o.max_connections = config.max_connections
  return o
end

local function get_client(name)
  if state.clients[name] then return state.clients[name] end
  local lib, err = M.library()
  if not lib then return nil, err end
  local ok, c = pcall(lib.client, client_options(name))
  if not ok then return nil, tostring(c) end
  state.clients[name] = c
  return c
end

-- The driver runs the requests: create(params, cb), wait(id, opts, cb), list(query, cb),
-- add(name, cb, ...), step(timeout), pending() and close(), as a poller has them. The default
-- is the client's poller, which the timer steps; setup{ driver = fn } replaces it (fn(client,
-- config, provider) returns the driver), so the editor never holds a second code path.
local function default_driver(c)
  return c:poller{ max_connections = config.max_connections }
end

local function get_driver(name)
  if state.drivers[name] then return state.drivers[name] end
  if not providers.get(name) then
    return nil, "deepresearch: unknown provider '" .. tostring(name) .. "' (registered: " ..
      table.concat(providers.names(), ", ") .. ")"
  end
  local c, err = get_client(name)
  if not c then return nil, err end
  state.drivers[name] = (config.driver or default_driver)(c, config, name)
  return state.drivers[name]
end

-- Jobs in these states wait on a driver's request (or a deferred poll).
local ACTIVE = { creating = true, queued = true, running = true, responding = true }

local function stop_timer()
  if state.timer then
    state.timer:stop()
    if not state.timer:is_closing() then state.timer:close() end
    state.timer = nil
  end
end

local ask_next -- defined with the checkpoints below

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
  ask_next() -- an answer given at once sends its request: counted below
  local pending = 0
  for _, p in pairs(state.drivers) do pending = pending + p:pending() end
  if pending > 0 or (state.asks[1] and not state.asking) then return end
  stop_timer()
  fail_orphans(failure)
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

-- The provider whose task this is: the first whose id field it carries (dr.state's rule).
local function owner(task)
  for _, n in ipairs(providers.names()) do
    if task[providers.get(n).kinds.research.id_field] ~= nil then return n end
  end
  return M.provider()
end

--- The report of a done task as markdown text, citations resolved.
function M.render(task, provider)
  return buffer.render(task, config.style, id_of(provider or owner(task), task))
end

--- Opens (or refreshes) the buffer deepresearch://<id> holding the rendered report.
-- provider: whose task it is (the default one when not given).
function M.open_report(task, provider)
  local name = provider or owner(task)
  return buffer.open(task, config.open, config.style, id_of(name, task))
end

-- Jobs ----------------------------------------------------------------------------------------

local function short(id)
  return tostring(id or "?"):sub(1, 8)
end

-- "in_progress, iterations 3, agents 5/25, sources 12": the command's progress fields.
local function describe(name, task)
  local ok, info = pcall(adapter(name).describe, task)
  if not ok or type(info) ~= "table" then return tostring(task.status) end
  local parts = { tostring(info.state or task.status) }
  for _, p in ipairs(info.parts or {}) do parts[#parts + 1] = tostring(p) end
  return table.concat(parts, ", ")
end

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
    local lib = M.library()
    job.state = lib and lib.state(task, job.provider) or job.state
    if config.progress ~= "notify" then return end
    local now = vim.loop.now()
    local changed = job.notified_status ~= task.status
    if changed or (now - job.last_notice) / 1000 >= config.notify_every then
      job.notified_status, job.last_notice = task.status, now
      notify(string.format("deepresearch %s: %s", short(job.id), describe(job.provider, task)))
    end
  end
end

local on_checkpoint -- defined with the checkpoints below

local function finish(job, task, err)
  if not task and type(err) == "table" and err.code == "input_required" then
    return on_checkpoint(job, err.task, err.interaction)
  end
  if task then
    job.state, job.task = "done", task
    local ok, e = pcall(M.open_report, task, job.provider)
    if not ok then
      notify("deepresearch: cannot open the report of " .. tostring(job.id) .. ": " ..
        tostring(e), levels.ERROR)
    else
      notify(string.format("deepresearch %s: done (%s)", short(job.id),
        describe(job.provider, task)))
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
  local p, err = get_driver(job.provider)
  if not p then return finish(job, nil, err) end
  job.state = ACTIVE[job.state] and job.state ~= "creating" and job.state or "queued"
  local ok, e = pcall(p.wait, p, job.id, wait_opts(job), function(task, werr)
    finish(job, task, werr)
  end)
  if not ok then return finish(job, nil, e) end
  ensure_timer()
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
  local s = settings(name)
  for k, v in pairs(opts) do
    if not RESEARCH_OPTIONS[k] then
      local ok, msg = check_flag(d, k, "deepresearch")
      if not ok then return nil, msg end
      s.flags[k] = v
    end
  end
  local call, err = recorded(d.cli.create, brief, s.flags, opts.schema or opts.output_schema)
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
  local name = opts.provider or M.provider()
  local job = new_job({ brief = brief, provider = name })
  local call, err = create_params(name, brief, opts)
  local p
  if call then p, err = get_driver(name) end
  if not p then
    finish(job, nil, err)
    return job
  end
  notify("deepresearch: creating a task for \"" .. brief:gsub("%s+", " "):sub(1, 60) .. "\"")
  local ok, e = pcall(replay, p, call, function(task, cerr)
    if not task then return finish(job, nil, cerr) end
    job.task, job.id = task, id_of(name, task)
    notify(string.format("deepresearch %s: created (%s)", short(job.id), tostring(job.id)))
    start_wait(job)
  end)
  if not ok then
    finish(job, nil, e)
    return job
  end
  ensure_timer()
  return job
end

--- Waits on an existing task and opens its report when done. Returns the job.
function M.wait(id, opts)
  opts = opts or {}
  local job = new_job({ id = id, state = "queued", provider = opts.provider or M.provider() })
  start_wait(job)
  return job
end

-- Checkpoints ---------------------------------------------------------------------------------

-- Whether a prompt may open now: in Normal mode with nothing half-typed, so that it never
-- takes keys meant for an insert, a command line or an operator.
local function idle()
  return vim.fn.mode(1) == "n" and not vim.api.nvim_get_mode().blocking and
    vim.fn.getcmdwintype() == ""
end

local function respond(job, response)
  local p, err = get_driver(job.provider)
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
    start_wait(job)
  end, job.id, interaction, response)
  if not ok then
    job.state = "input_required"
    notify(tostring(e), levels.ERROR)
  end
  ensure_timer()
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
    ensure_timer() -- more checkpoints may be queued
  end)
  if not asked then state.asking = nil end
end

ask_next = function()
  if state.asking or not state.asks[1] or not idle() then return end
  local job = table.remove(state.asks, 1)
  if job.state ~= "input_required" or not job.interaction then return ask_next() end
  ask_job(job)
end

-- An interaction answered already, still shown by a poll: poll again a little later.
local function wait_again_later(job)
  job.deferred, job.state = true, "running"
  vim.defer_fn(function()
    job.deferred = nil
    if job.state == "running" then start_wait(job) end
  end, math.floor((config.interval or 1) * 1000))
end

on_checkpoint = function(job, task, interaction)
  job.task = task or job.task
  job.interaction, job.state = interaction, "input_required"
  local iid = type(interaction) == "table" and interaction.interaction_id or nil
  if iid ~= nil and job.answered[iid] then return wait_again_later(job) end
  if not checkpoint.known(interaction) then
    return notify(string.format("deepresearch %s: waiting for input (%s) the editor cannot " ..
      "ask; answer with client:respond", short(job.id), checkpoint.label(interaction)),
      levels.WARN)
  end
  if config.checkpoints == "approve" then return respond(job, checkpoint.proposed(interaction)) end
  local how = config.checkpoints == "ask" and "" or
    ("; :DeepResearchRespond " .. tostring(job.id) .. " to answer")
  notify(string.format("deepresearch %s: needs your input (%s)%s", short(job.id),
    checkpoint.label(interaction), how), levels.WARN)
  if config.checkpoints == "ask" then
    state.asks[#state.asks + 1] = job
    ensure_timer()
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
  return M.wait(id, opts)
end

-- The task list -------------------------------------------------------------------------------

local function width(s) return vim.fn.strdisplaywidth(s) end

-- Rows of cells as lines, each column padded to its widest cell (the last one not).
local function table_lines(rows)
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, width(cell)) end
  end
  local lines = {}
  for r, row in ipairs(rows) do
    local out = {}
    for i, cell in ipairs(row) do
      out[i] = i < #row and (cell .. string.rep(" ", widths[i] - width(cell))) or cell
    end
    lines[r] = (table.concat(out, "  "):gsub("%s+$", ""))
  end
  return lines
end

local function cells(row, n)
  local out = {}
  for i = 1, n do out[i] = row[i] == nil and "" or (tostring(row[i]):gsub("%s+", " ")) end
  return out
end

local function show_list(name, tasks, err)
  if not tasks then return notify(tostring(err), levels.ERROR) end
  local ad = adapter(name)
  local n = #ad.list_headers
  local rows, ids = { cells(ad.list_headers, n) }, {}
  for _, t in ipairs(tasks) do
    rows[#rows + 1] = cells(ad.list_row(t), n)
    ids[#rows] = id_of(name, t)
  end
  local lines = table_lines(rows)
  if #tasks == 0 then lines[2] = "(no tasks)" end
  local buf, created = buffer.scratch("deepresearch://tasks", config.open)
  if created then
    vim.api.nvim_buf_set_keymap(buf, "n", "<CR>",
      "<cmd>lua require('deepresearch.nvim').wait_at_cursor()<CR>",
      { noremap = true, silent = true })
  end
  state.listing = { provider = name, ids = ids }
  buffer.set_lines(buf, lines)
  return buf
end

--- Lists the newest tasks in a scratch buffer (the provider's columns); <CR> on a line waits
-- on (and opens) that task. opts: provider, limit.
function M.list(opts)
  opts = opts or {}
  local name = opts.provider or M.provider()
  local d = providers.get(name)
  local p, err = get_driver(name)
  local call
  if p then call, err = recorded(d.cli.list, { limit = opts.limit or 50 }) end
  if not call then return show_list(name, nil, err) end
  local ok, e = pcall(replay, p, call, function(tasks, lerr) show_list(name, tasks, lerr) end)
  if not ok then return show_list(name, nil, e) end
  ensure_timer()
end

--- :DeepResearchWait on the task under the cursor in the task list.
function M.wait_at_cursor()
  local listing = state.listing
  local id = listing and listing.ids[vim.api.nvim_win_get_cursor(0)[1]]
  if id == nil then return end
  return M.wait(id, { provider = listing.provider })
end

--- A short line for the statusline: "" when nothing runs or waits.
-- e.g. set statusline+=%{v:lua.require'deepresearch.nvim'.status()}
function M.status()
  local running, waiting, agents, sources = 0, 0, 0, 0
  for _, job in pairs(state.jobs) do
    if job.state == "input_required" then waiting = waiting + 1 end
    if ACTIVE[job.state] then
      running = running + 1
      if job.task then
        local c = counters(job.provider, job.task)
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

--- Every job of this session, oldest first: { key, provider, id, brief, state, task, err,
-- interaction }.
function M.jobs()
  local out = {}
  for _, key in ipairs(state.order) do out[#out + 1] = state.jobs[key] end
  return out
end

--- Stops the timer and closes the drivers and clients (pending waits are dropped; tasks keep
-- running on the server). The next command starts afresh.
function M.close()
  stop_timer()
  for _, p in pairs(state.drivers) do p:close() end
  for _, c in pairs(state.clients) do c:close() end
  state.drivers, state.clients, state.scheduled = {}, {}, false
  state.asks, state.asking = {}, nil
  for _, job in pairs(state.jobs) do
    if job.state ~= "done" and job.state ~= "failed" then job.state = "stopped" end
  end
end

-- Setup ---------------------------------------------------------------------------------------

local function check_providers(per)
  if per == nil then return end
  if type(per) ~= "table" then
    error("deepresearch.nvim.setup: providers must be a table of provider name -> settings", 3)
  end
  for name, t in pairs(per) do
    local d = providers.get(name)
    if not d then
      error("deepresearch.nvim.setup: unknown provider '" .. tostring(name) .. "' (registered: "
        .. table.concat(providers.names(), ", ") .. ")", 3)
    end
    if type(t) ~= "table" then
      error("deepresearch.nvim.setup: providers." .. name .. " must be a table", 3)
    end
    for k in pairs(t) do
      if not PER_PROVIDER[k] then
        local ok, msg = check_flag(d, k, "deepresearch.nvim.setup: providers." .. name)
        if not ok then error(msg, 3) end
      end
    end
  end
end

local function check_setup(opts)
  local name = opts.provider or providers.default_name()
  local d = providers.get(name)
  if not d then
    error("deepresearch.nvim.setup: unknown provider '" .. tostring(name) .. "' (registered: " ..
      table.concat(providers.names(), ", ") .. ")", 3)
  end
  for k in pairs(opts) do
    if not KNOWN[k] and not d.cli.flags[k] then
      local hint = flag_hint(k)
      error("deepresearch.nvim.setup: unknown option '" .. tostring(k) .. "'" ..
        (hint and (" (" .. hint .. ")") or ""), 3)
    end
  end
  check_providers(opts.providers)
  if opts.checkpoints ~= nil and not CHECKPOINTS[opts.checkpoints] then
    error("deepresearch.nvim.setup: checkpoints must be ask, notify or approve", 3)
  end
end

--- Configures the plugin; see docs/neovim.md for every option. Closes the current clients.
function M.setup(opts)
  vim.validate({ opts = { opts, "table", true } })
  opts = opts or {}
  check_setup(opts)
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

-- Leading provider=NAME and flag=value words (any registered provider's flags); the rest.
-- A flag given twice is a list of its values, as the command's repeatable flags are.
local function named_args(args)
  local named = {}
  while true do
    local k, v, rest = args:match("^%s*([%a_][%w_]*)=(%S+)%s*(.-)$")
    if not k or not (k == "provider" or flag_hint(k)) then break end
    local old = named[k]
    if old == nil or k == "provider" then
      named[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      named[k] = { old, v }
    end
    args = rest
  end
  return named, args
end

local function usage()
  local flags = {}
  for k in pairs(providers.get(M.provider()).cli.flags) do flags[#flags + 1] = "[" .. k ..
    "=VALUE]" end
  table.sort(flags)
  return "usage: :DeepResearch [provider=" .. table.concat(providers.names(), "|") .. "] " ..
    table.concat(flags, " ") .. (#flags > 0 and " " or "") .. "{brief}"
end

--- :[range]DeepResearch [provider=NAME] [flag=value ...] {brief}: a range adds the selected
-- lines to the brief; flags are the provider's (depth=high, mode=fast, ...).
function M.command_research(o)
  local named, args = named_args(o.args or "")
  local parts = {}
  if o.range and o.range > 0 then
    local lines = vim.api.nvim_buf_get_lines(0, o.line1 - 1, o.line2, false)
    parts[#parts + 1] = table.concat(lines, "\n")
  end
  if args:find("%S") then table.insert(parts, 1, args) end
  local brief = table.concat(parts, "\n\n")
  if not brief:find("%S") then return notify(usage(), levels.ERROR) end
  return M.research(brief, named)
end

local function command_with_id(fn, what)
  return function(o)
    local named, args = named_args(o.args or "")
    local id = args:match("^%s*(%S+)")
    if not id and what then return notify("usage: " .. what, levels.ERROR) end
    return fn(id, { provider = named.provider })
  end
end

--- Creates the user commands (plugin/deepresearch.lua calls this).
function M.create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("DeepResearch", function(o) M.command_research(o) end,
    { nargs = "*", range = true, desc = "Start a deep research task; the report opens when done" })
  cmd("DeepResearchWait",
    command_with_id(M.wait, ":DeepResearchWait [provider=NAME] {id}"),
    { nargs = "+", desc = "Wait on a deep research task by id and open its report" })
  cmd("DeepResearchList", function(o)
    local named = named_args(o.args or "")
    M.list({ provider = named.provider })
  end, { nargs = "*", desc = "List recent deep research tasks" })
  cmd("DeepResearchRespond", command_with_id(M.respond),
    { nargs = "*", desc = "Answer a deep research task waiting for your input" })
end

return M

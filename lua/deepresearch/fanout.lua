-- dr.fanout: one brief on several providers at once.
--   local results, errors = dr.fanout{ brief = b, providers = { "extruct", "perplexity",
--     gemini = { agent = "deep-research-max-preview-04-2026" } }, budget = { usd = 20 },
--     on_progress = function(provider, task) end }
-- One client per provider (its key from the provider's usual environment variable, unless
-- opts.clients names one), each create and wait an operation of that client's poller, and ONE
-- loop driving every poller: no threads, and one provider failing never ends the others.
-- (A core poller's multi handle carries its client's transport settings, timeouts, CA and
-- proxy, so each client keeps its own; the loop below steps them together.)
-- A total budget is checked before anything is sent (budget.lua); the journal (the default one
-- unless journal = false; or a journal object) records each create before it is sent (source
-- "fanout").
local core = require "deepresearch.core"
local errors = require "deepresearch.base.errors"
local options = require "deepresearch.base.options"
local providers = require "deepresearch.providers"
local budget = require "deepresearch.budget"

local M = {}

-- The longest the loop sleeps while several pollers have work: a transfer's answer waits at
-- most this long for its poller's next step.
M.SLICE_MS = 10

local OPTIONS = { brief = "string", providers = "table", budget = "table",
  on_progress = "function", clients = "table", journal = "any", interval = "number",
  max_interval = "number", timeout = "number", max_connections = "number",
  client_options = "table" }

-- When each task's create was sent and its wait ended (weak: compare reads durations).
local timing = setmetatable({}, { __mode = "k" })

--- Seconds from a fanout task's create to the end of its wait, or nil.
function M.duration(task)
  local t = timing[task]
  return t and t.finished and (t.finished - t.started) or nil
end

--- { name, params } per provider, in the order given: the list's entries first (a name, or
-- { name, option = value ... }), then the keyed entries by name. Raises on an unknown provider,
-- a duplicate or a malformed entry.
function M.normalise(list, brief, fname)
  fname = fname or "fanout"
  local out, seen = {}, {}
  local function add(name, extra, level)
    if type(name) ~= "string" or not providers.get(name) then
      error(string.format("bad option 'providers' to '%s' (unknown provider %s)", fname,
        type(name) == "string" and ("'" .. name .. "'") or type(name)), level)
    end
    if seen[name] then
      error(string.format("bad option 'providers' to '%s' (provider '%s' given twice)", fname,
        name), level)
    end
    if extra ~= nil and extra ~= true and type(extra) ~= "table" then
      error(string.format("bad option 'providers' to '%s' (%s: a table of create options " ..
        "expected, got %s)", fname, name, type(extra)), level)
    end
    seen[name] = true
    local params = {}
    for k, v in pairs(type(extra) == "table" and extra or {}) do params[k] = v end
    if brief ~= nil and params.brief == nil and params.query == nil and params.input == nil then
      params.brief = brief
    end
    out[#out + 1] = { name = name, params = params }
  end
  local n = #list
  for i = 1, n do
    local item = list[i]
    if type(item) == "table" then -- { "gemini", agent = ... }: a name and its options, in order
      local extra = {}
      for k, v in pairs(item) do
        if k ~= 1 then extra[k] = v end
      end
      add(item[1], extra, 4)
    else
      add(item, nil, 4)
    end
  end
  local keys = {}
  for k in pairs(list) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do add(k, list[k], 4) end
  if #out == 0 then
    error(string.format("bad option 'providers' to '%s' (at least one provider expected)",
      fname), 3)
  end
  return out
end

local function close_all(list)
  for _, x in ipairs(list) do pcall(x.close, x) end
end

--- The client of each entry: opts.clients[name], else a new one (owned: closed at the end).
-- When making one raises (a bad client option), the ones already made are closed first: the
-- caller never got them, so nobody else could.
function M.clients(entries, given, client_options)
  local dr = require "deepresearch"
  local owned = {}
  local ok, err = pcall(function()
    for _, e in ipairs(entries) do
      local c = given and given[e.name]
      if not c then
        local o = { provider = e.name }
        for k, v in pairs(client_options or {}) do o[k] = v end
        c = dr.client(o)
        owned[#owned + 1] = c
      end
      e.client = c
    end
  end)
  if not ok then
    close_all(owned)
    error(err, 0)
  end
  return owned
end

--- The journal opts.journal asks for: a journal object, the default one (nil or true: issue 19
-- part 7, every task dr.fanout creates is journalled; DEEPRESEARCH_JOURNAL=off turns it off as
-- for the command), or nil for false (off).
function M.journal(opt, fname)
  if opt ~= nil and type(opt) ~= "boolean" and type(opt) ~= "table" then
    error(string.format("bad option 'journal' to '%s' (true, false or a journal expected, " ..
      "got %s)", fname or "fanout", type(opt)), 3)
  end
  if opt == false then return nil end
  if type(opt) == "table" then return opt end
  local ok, mod = pcall(require, "deepresearch.journal")
  if not ok then return nil end
  local j = mod.open{}
  return j
end

-- Journal writes never end a fanout: a failing one is skipped.
local function jcall(j, method, ...)
  if not j then return nil end
  local ok, r = pcall(j[method], j, ...)
  return ok and r or nil
end
M.jcall = jcall -- fallback's journal writes too

-- Creates refused with nothing made (the API said so, or it never left): their journal record
-- reads "refused". Any other failed create (ambiguous: a lost answer, a proxy's 5xx) may have
-- made a paid task, so its record stays "creating", which the journal reads as "unknown" with
-- the list command that finds it (issue 19 part 7), as the command's own creates do.
local NOTHING_MADE = { unsupported = true, retired = true, budget_exceeded = true,
  budget_unbounded = true }
for code in pairs(require("deepresearch.base.policy").CREATE_NOTHING_MADE) do
  NOTHING_MADE[code] = true
end

--- Records a failed create of journal record ref (fallback's use too).
function M.create_failed(j, ref, err)
  if not (j and ref) then return end
  local code = type(err) == "table" and err.code or nil
  if NOTHING_MADE[code] then
    jcall(j, "update", ref, { state = "refused", error = code })
  else
    jcall(j, "update", ref, { error = code or "unknown" })
  end
end

--- Steps every poller until none has work left. Raises what a step raised (an on_progress
-- error), after the others are closed by the caller.
-- Why one poller per client and not the issue's "one poller": a core poller's multi handle
-- carries its client's settings (timeouts, CA, proxy, key), and the providers are different
-- hosts, so no connection could be shared anyway. What a user sees is the same: every create
-- and poll is in flight at once, progress arrives per provider as it happens, one loop, no
-- threads. The cost is an answer waiting up to SLICE_MS for its poller's next step while
-- transfers are in flight on several pollers; between polls (only timers pending, most of a
-- long task's life) the loop sleeps until the nearest timer instead of waking every slice.
function M.drive(pollers)
  while true do
    local busy, wait_ms, nearest, flying = {}, nil, nil, false
    for _, p in ipairs(pollers) do
      if p:pending() > 0 then
        p:step(0)
        if p:pending() > 0 then
          busy[#busy + 1] = p
          local st = p:stats()
          if st.inflight > 0 or st.queued > 0 then flying = true end
          local t = p:next_timeout()
          if t and (not wait_ms or t < wait_ms) then wait_ms, nearest = t, p end
        end
      end
    end
    if #busy == 0 then return end
    if #busy == 1 then
      busy[1]:step(math.min(wait_ms or 100, 100)) -- alone: let libcurl wait on its sockets
    elseif not flying and nearest then
      -- nothing on the wire: the poller whose timer comes first naps until it (on its own
      -- clock); every other poller's timers come later
      nearest:step(math.min(wait_ms, 1000))
    else
      local ms = math.min(wait_ms or M.SLICE_MS, M.SLICE_MS)
      if ms > 0 then core.sleep(ms / 1000) end
    end
  end
end

-- The id of a provider's task (its kind's id field).
local function id_of(d, task)
  local kind = d.kinds.research
  return type(task) == "table" and (task[kind.id_field] or task.id) or nil
end
M.id_of = id_of

local function wait_opts(opts, on_progress, task)
  return { interval = opts.interval, max_interval = opts.max_interval, timeout = opts.timeout,
    on_progress = on_progress, task = task }
end

-- The refusal each provider gets when the total budget refuses the whole fanout.
local function refuse_all(entries, err)
  local errs = {}
  for _, e in ipairs(entries) do errs[e.name] = err end
  return {}, errs
end

--- The argument checks dr.fanout and dr.fallback (fname) share: opts a table of known
-- options (fields) with a brief string, a providers table and a well-formed budget. `level`
-- counts as error()'s does from the function that calls here.
function M.check_opts(fname, opts, fields, level)
  options.table_arg(fname, 1, opts, false, level + 1)
  options.check(fname, opts, fields, level + 1)
  if type(opts.brief) ~= "string" then
    error("bad option 'brief' to '" .. fname .. "' (string expected, got " ..
      type(opts.brief) .. ")", level + 1)
  end
  if type(opts.providers) ~= "table" then
    error("bad option 'providers' to '" .. fname .. "' (table expected, got " ..
      type(opts.providers) .. ")", level + 1)
  end
  budget.check_arg(fname, opts.budget, level + 1)
end

--- Every create's options are checked before any is sent: a typo raises with nothing made.
-- split: each entry's params still hold its budget (fallback's), split off here first.
function M.check_creates(fname, entries, split, level)
  for _, en in ipairs(entries) do
    local okm, mod = pcall(require, providers.get(en.name).module)
    local sig = okm and mod.accepts and mod.accepts.create
    local p = en.params
    if split then p = budget.split(fname, en.params, level + 1) end
    if sig then options.check_call("create", sig, level + 1, p) end
  end
end

--- dr.fanout(opts): results[provider] = task (finished), errors[provider] = err.
function M.fanout(opts)
  M.check_opts("fanout", opts, OPTIONS, 2)
  local entries = M.normalise(opts.providers, opts.brief, "fanout")
  -- Per-provider budgets ride in each entry's params; the total in opts.budget.
  local items = {}
  for i, e in ipairs(entries) do
    e.params, e.budget = budget.split("fanout", e.params, 2)
    items[i] = { e.name, e.params }
  end
  M.check_creates("fanout", entries, false, 2)
  if opts.budget then
    local total, err = budget.check_total(items, opts.budget)
    if not total then return refuse_all(entries, err) end
  end
  local results, errs = {}, {}
  local j = M.journal(opts.journal, "fanout")
  local owned = M.clients(entries, opts.clients, opts.client_options)
  local pollers = {}
  local on_progress = opts.on_progress
  local ok, e = pcall(function()
    for _, en in ipairs(entries) do
      local d = providers.get(en.name)
      local name = en.name
      local est, berr
      if en.budget then est, berr = budget.check(d, en.params, en.budget) end
      if en.budget and not est then
        errs[name] = berr
      else
        local p = en.client:poller{ max_connections = opts.max_connections }
        pollers[#pollers + 1] = p
        local ref = jcall(j, "begin", { provider = name, brief = opts.brief, source = "fanout" })
        local started = core.now()
        p:create(en.params, function(task, err)
          if not task then
            errs[name] = err
            M.create_failed(j, ref, err)
            return
          end
          if ref then jcall(j, "created", ref, task) end
          if on_progress then on_progress(name, task) end
          local function progress(t) if on_progress then on_progress(name, t) end end
          p:wait(id_of(d, task), wait_opts(opts, progress, task), function(done, werr)
            local finished = core.now()
            local last = done or (werr and werr.task)
            if last then timing[last] = { started = started, finished = finished } end
            if done then results[name] = done else errs[name] = werr end
            if ref then
              local res = last and require("deepresearch.result")(last, name)
              jcall(j, "update", ref, { state = last and providers.state(last, name) or "unknown",
                cost = res and res.cost or nil, error = werr and werr.code or nil })
            end
          end)
        end)
      end
    end
    M.drive(pollers)
  end)
  close_all(pollers)
  close_all(owned)
  if not ok then error(e, 0) end
  return results, errs
end

--- An error for a provider that was never tried (fallback's and the command's use).
function M.not_tried(name, why)
  return errors.new("cancelled", name .. " was not tried: " .. why, { sent = false })
end

return M

-- The journal: a local append-only JSON-lines file of the tasks this machine created (CLI,
-- Neovim, dr.fanout), so that no paid task is ever lost, even when its create never answered.
-- Each write is one event line ({ref, ev, t, ...}); reading merges the events of a ref into one
-- record. Lines are appended whole and fsynced (core.append_line); a torn line is skipped.
-- The journal never holds a token, and holds a brief's first 80 characters only unless
-- briefs = true.
local json = require "deepresearch.base.json"
local errors = require "deepresearch.base.errors"

local M = {}

local HEAD = 80 -- characters of the brief kept as brief_head
local MIN_PREFIX = 6

local ok_core, core = pcall(require, "deepresearch.core")
if not ok_core then core = nil end

-- Epoch seconds (core.now is a monotonic clock: no use for a date).
local function now()
  return os.time()
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Inside Neovim (the curl transport has no core): libuv's file calls. os.execute there forks
-- the whole editor, a stall of tens of milliseconds on its loop.
local vim_ = rawget(_G, "vim")
local uv = type(vim_) == "table" and vim_.loop or nil

local function is_dir(path)
  local st = uv.fs_stat(path)
  return st ~= nil and st.type == "directory"
end

-- mkdir -p with each new directory 0700 (448), through libuv.
local function uv_mkdir_private(dir)
  local prefix = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    prefix = prefix .. "/" .. part
    if not is_dir(prefix) then uv.fs_mkdir(prefix, 448) end
  end
  if is_dir(dir) then return true end
  return nil, "cannot create directory " .. dir
end

-- Creates dir and its parents 0700 (C core; libuv in Neovim; a shell's mkdir under umask 077).
local function mkdir_private(dir)
  if core and core.mkdir_private then return core.mkdir_private(dir) end
  if uv then return uv_mkdir_private(dir) end
  local rc = os.execute("umask 077 && mkdir -p " .. shell_quote(dir))
  if rc == true or rc == 0 then return true end
  return nil, "cannot create directory " .. dir
end

-- Appends one line: whole, fsynced, 0600 (C core); plain io append + flush otherwise.
local function append_line(path, line)
  if core and core.append_line then return core.append_line(path, line) end
  local f = io.open(path, "rb")
  local torn = false
  if f then
    -- A torn last line (a crash mid-write) is ended first, so this line stays readable.
    torn = f:seek("end") > 0 and f:seek("end", -1) and f:read(1) ~= "\n"
    f:close()
  else
    -- A new file is private (0600).
    local fd = uv and uv.fs_open(path, "a", 384)
    if fd then
      uv.fs_close(fd)
    elseif not uv then
      os.execute("umask 077 && : >> " .. shell_quote(path))
    end
  end
  local err
  f, err = io.open(path, "ab")
  if not f then return nil, err end
  f:write(torn and "\n" or "", line, "\n")
  f:flush()
  f:close()
  return true
end

--- The journal's path: opts.path, DEEPRESEARCH_JOURNAL, $XDG_STATE_HOME/deepresearch/...,
--- $HOME/.local/state/deepresearch/journal.jsonl. "off" when journalling is disabled.
function M.default_path()
  local env = os.getenv("DEEPRESEARCH_JOURNAL")
  if env and env ~= "" then return env end
  local state = os.getenv("XDG_STATE_HOME")
  if not (state and state:sub(1, 1) == "/") then
    local home = os.getenv("HOME")
    if not home or home == "" then return nil end
    state = home .. "/.local/state"
  end
  return state .. "/deepresearch/journal.jsonl"
end

-- Every provider's token, so that none is ever written (a brief a token was pasted into).
local function tokens()
  local out = {}
  local ok, providers = pcall(require, "deepresearch.providers")
  if not ok then return out end
  for _, name in ipairs(providers.names()) do
    local d = providers.get(name)
    local v = d and d.token_env and os.getenv(d.token_env)
    if v and #v >= 4 then out[#out + 1] = v end
  end
  return out
end

local function redact(s)
  if type(s) ~= "string" then return s end
  for _, tok in ipairs(tokens()) do
    local i = s:find(tok, 1, true)
    while i do
      s = s:sub(1, i - 1) .. "***" .. s:sub(i + #tok)
      i = s:find(tok, i + 3, true)
    end
  end
  return s
end

--- The first `n` characters of text on one line (UTF-8 aware; whitespace runs become one space).
function M.head(text, n)
  local s = tostring(text or ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  local out, count = {}, 0
  for ch in s:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
    if count >= (n or HEAD) then break end
    out[#out + 1] = ch
    count = count + 1
  end
  return table.concat(out)
end

local Journal = {}
Journal.__index = Journal

local OPEN_OPTS = { path = true, briefs = true }

--- Opens the journal (creating its directory 0700 on first write). Returns the journal, or
--- nil, err when its directory cannot be made. Unknown options raise.
function M.open(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("journal.open: options must be a table", 2) end
  for k in pairs(opts) do
    if not OPEN_OPTS[k] then error("journal.open: unknown option '" .. tostring(k) .. "'", 2) end
  end
  if opts.path ~= nil and type(opts.path) ~= "string" then
    error("journal.open: path must be a string", 2)
  end
  local path = opts.path or M.default_path()
  local j = setmetatable({ path = path, briefs = opts.briefs and true or false,
    provider_of = {} }, Journal)
  if path == nil or path == "off" then
    j.off = true
    return j
  end
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then
    local f = io.open(path, "rb")
    if f then
      f:close()
    else
      local ok, err = mkdir_private(dir)
      if not ok then return nil, errors.new("io", tostring(err), { path = path }) end
    end
  end
  return j
end

local counter = 0
-- A ref unique on this machine: seconds, process-ish entropy and a counter.
local function new_ref()
  counter = counter + 1
  local addr = tostring({}):match("0x(%x+)") or tostring(math.random(1, 2 ^ 30))
  return string.format("j%x-%s%x", os.time(), addr:sub(-6), counter)
end

function Journal:write(event)
  if self.off then return true end
  event.t = event.t or now()
  local ok, line = pcall(json.encode, event)
  if not ok then return nil, errors.new("invalid_request", tostring(line)) end
  local done, err = append_line(self.path, line)
  if not done then return nil, errors.new("io", tostring(err), { path = self.path }) end
  return true
end

local BEGIN_OPTS = { provider = true, brief = true, source = true, kind = true }

--- Records a create about to be sent; returns its ref. A failed write returns nil, err: the
--- caller decides whether to create anyway.
function Journal:begin(o)
  if type(o) ~= "table" then error("journal:begin: expects a table", 2) end
  for k in pairs(o) do
    if not BEGIN_OPTS[k] then error("journal:begin: unknown field '" .. tostring(k) .. "'", 2) end
  end
  local ref = new_ref()
  self.provider_of[ref] = o.provider
  local brief = type(o.brief) == "string" and o.brief or nil
  local ok, err = self:write({ ref = ref, ev = "begin", provider = o.provider,
    brief_head = redact(M.head(brief)), brief = self.briefs and redact(brief) or nil,
    created_at = now(), state = "creating", source = o.source or "lua", kind = o.kind })
  if not ok then return nil, err end
  return ref
end

-- The id of a task from any provider's descriptor (its kind's id_field), else task.id.
local function task_id(task, provider)
  if type(task) ~= "table" then return task end
  local ok, providers = pcall(require, "deepresearch.providers")
  if ok then
    local d = providers.get(provider)
    for _, kind in pairs(d and d.kinds or {}) do
      if kind.id_field and task[kind.id_field] ~= nil then return task[kind.id_field] end
    end
  end
  return task.id
end

--- The create answered: records the task's id and state (task: the task, or its id).
function Journal:created(ref, task, provider)
  provider = provider or self.provider_of[ref]
  local id = task_id(task, provider)
  local state
  if type(task) == "table" then
    local ok, providers = pcall(require, "deepresearch.providers")
    state = ok and providers.state(task, provider) or nil
  end
  if id ~= nil then id = tostring(id) end
  return self:write({ ref = ref, ev = "created", id = id, state = state or "queued" })
end

local UPDATE_FIELDS = { state = true, cost = true, report_path = true, seen = true, error = true }

--- Records what became of a task (ref_or_id: the ref begin returned, or the task's id).
function Journal:update(ref_or_id, fields)
  if type(fields) ~= "table" then error("journal:update: fields must be a table", 2) end
  local ev = { ev = "update" }
  for k, v in pairs(fields) do
    if not UPDATE_FIELDS[k] then
      error("journal:update: unknown field '" .. tostring(k) .. "'", 2)
    end
    ev[k] = v
  end
  if type(ev.cost) == "table" then
    ev.cost = { usd = tonumber(ev.cost.usd), credits = tonumber(ev.cost.credits) }
  end
  if type(ev.error) == "table" then ev.error = ev.error.code end
  local key = tostring(ref_or_id)
  if key:match("^j%x+%-%x+$") then ev.ref = key else ev.id = key end
  return self:write(ev)
end

-- Every line's event, in file order; lines that do not decode (a torn last line) are skipped.
local function events(path)
  local f = io.open(path, "rb")
  if not f then return {} end
  local out = {}
  for line in f:lines() do
    local ok, v = pcall(json.decode, line)
    if ok and type(v) == "table" and (type(v.ref) == "string" or type(v.id) == "string") then
      out[#out + 1] = v
    end
  end
  f:close()
  return out
end

local MERGED = { "provider", "id", "brief_head", "brief", "created_at", "state", "cost",
  "report_path", "seen", "source", "kind", "error" }

--- Every record, merged per ref, in the order first seen.
function Journal:records()
  if self.off then return {} end
  local by_ref, by_id, order = {}, {}, {}
  for _, ev in ipairs(events(self.path)) do
    local rec = ev.ref and by_ref[ev.ref] or (ev.id and by_id[ev.id])
    if not rec then
      rec = { ref = ev.ref or ev.id }
      order[#order + 1] = rec
      if ev.ref then by_ref[ev.ref] = rec end
    end
    for _, k in ipairs(MERGED) do
      if ev[k] ~= nil and not (k == "id" and rec.id ~= nil) then rec[k] = ev[k] end
    end
    if type(ev.t) == "number" then rec.updated_at = ev.t end
    if rec.id then by_id[rec.id] = rec end
  end
  for _, rec in ipairs(order) do
    rec.created_at = tonumber(rec.created_at) or rec.updated_at
    if rec.id == nil and (rec.state == "creating" or rec.state == nil) then
      rec.state = "unknown"
      rec.find = "deepresearch list" .. (rec.provider and (" --provider " .. rec.provider) or "")
    end
  end
  return order
end

local ENTRY_OPTS = { provider = true, state = true, since = true, source = true }

--- The journal's records, newest first, filtered by provider, state, since (epoch) and source.
function Journal:entries(o)
  o = o or {}
  for k in pairs(o) do
    if not ENTRY_OPTS[k] then
      error("journal:entries: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local recs = self:records()
  local out = {}
  for i = #recs, 1, -1 do
    local r = recs[i]
    if (o.provider == nil or r.provider == o.provider) and (o.state == nil or r.state == o.state)
      and (o.source == nil or r.source == o.source)
      and (o.since == nil or (r.created_at or 0) >= o.since) then
      out[#out + 1] = r
    end
  end
  -- Stable newest first: file order breaks ties (out is already newest-appended first).
  for i, r in ipairs(out) do r._pos = i end
  table.sort(out, function(a, b)
    local ta, tb = a.created_at or 0, b.created_at or 0
    if ta ~= tb then return ta > tb end
    return a._pos < b._pos
  end)
  for _, r in ipairs(out) do r._pos = nil end
  return out
end

--- The record of an exact id or a unique prefix of 6+ characters among journal ids.
--- nil, err: not_found, ambiguous_id (err.candidates) or invalid_request (a short prefix).
--- kind (optional): only records of that kind ("research" also takes records with no kind).
function Journal:resolve(prefix, provider, kind)
  if type(prefix) ~= "string" or prefix == "" then
    return nil, errors.invalid("a task id is required")
  end
  local recs = self:entries{ provider = provider }
  if kind ~= nil then
    local keep = {}
    for _, r in ipairs(recs) do
      if (r.kind or "research") == kind then keep[#keep + 1] = r end
    end
    recs = keep
  end
  for _, r in ipairs(recs) do
    if r.id == prefix then return r end
  end
  if #prefix < MIN_PREFIX then
    return nil, errors.invalid(string.format("'%s' is not a task id in the journal, and a " ..
      "prefix needs at least %d characters", prefix, MIN_PREFIX))
  end
  local found, seen = {}, {}
  for _, r in ipairs(recs) do
    if r.id and not seen[r.id] and r.id:sub(1, #prefix) == prefix then
      seen[r.id] = true
      found[#found + 1] = r
    end
  end
  if #found == 1 then return found[1] end
  if #found == 0 then
    return nil, errors.new("not_found", string.format("no task in the journal starts with '%s'",
      prefix), { prefix = prefix })
  end
  local ids = {}
  for i = 1, math.min(5, #found) do ids[i] = found[i].id end
  return nil, errors.new("ambiguous_id", string.format("'%s' matches %d tasks: %s%s", prefix,
    #found, table.concat(ids, ", "), #found > 5 and ", ..." or ""),
    { prefix = prefix, candidates = ids })
end

return M

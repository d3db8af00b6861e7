-- The editor's side of the journal (deepresearch.journal): tasks created here are recorded
-- (source "nvim") before their create is sent, so they survive a restart; ids typed in commands
-- are resolved against the journal and this session's jobs (any unique prefix of 6+
-- characters); short ids shown in notifications are prefixes those commands accept.
local config = require "deepresearch.nvim.config"
local state = require "deepresearch.nvim.state"

local M = {}

M.MIN_PREFIX = 6
local SHORT = 8

-- Lines waiting for the journal file, each { line, cb }: written in order, one at a time,
-- appended whole and fsynced by libuv's threads; cb runs once its line is on disk.
local pending, busy = {}, false
local on_written -- the callback of the next line (M.begin's)

local function pump(path)
  if busy or not pending[1] then return end
  busy = true
  local item = table.remove(pending, 1)
  local uv = vim.loop
  local function after()
    busy = false
    if item.cb then item.cb() end
    pump(path)
  end
  uv.fs_open(path, "a", 384, function(_, fd) -- 384: 0600
    if not fd then return after() end
    uv.fs_write(fd, item.line, -1, function()
      uv.fs_fsync(fd, function()
        uv.fs_close(fd, after)
      end)
    end)
  end)
end

--- How many journal lines are not on disk yet (0: everything written is in the file).
function M.pending_writes()
  return #pending + (busy and 1 or 0)
end

--- Writes what is still waiting now (Neovim is about to quit).
function M.flush()
  local j = state.journal
  if not j or not pending[1] then return end
  local f = io.open(j.path, "ab")
  if f then
    for _, item in ipairs(pending) do f:write(item.line) end
    f:close()
  end
  pending = {}
end

-- Whether the file's last line is torn (a crash mid-write): the next line then starts on a
-- line of its own, as the journal's own writes do.
local function torn(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local size = f:seek("end")
  local last = size and size > 0 and f:seek("set", size - 1) and f:read(1)
  f:close()
  return last ~= nil and last ~= false and last ~= "\n"
end

-- The journal fsyncs every line: in the editor, milliseconds each on the main loop. Here its
-- own events (begin, created, update; encoded by its json) are appended whole and fsynced off
-- the main loop, in order; a create is sent only once its begin line is on disk (M.begin).
local function async_writes(j)
  if j.off then return j end
  local json = require "deepresearch.base.json"
  local sync = j.write
  local start = torn(j.path) and "\n" or ""
  j.write = function(self, event)
    event.t = event.t or os.time() -- epoch seconds, as the journal's own
    local ok, line = pcall(json.encode, event)
    if not ok then return sync(self, event) end
    pending[#pending + 1] = { line = start .. line .. "\n", cb = on_written }
    start, on_written = "", nil
    pump(self.path)
    return true
  end
  return j
end

--- The journal (opened on first use; setup{ journal = path | false }), or nil.
function M.journal()
  if state.journal ~= nil then return state.journal or nil end
  local opt = config.values.journal
  if opt == false then
    state.journal = false
    return nil
  end
  local okr, journal = pcall(require, "deepresearch.journal")
  local ok, j = false, nil
  if okr then ok, j = pcall(journal.open, { path = type(opt) == "string" and opt or nil }) end
  state.journal = ok and j and async_writes(j) or false
  if state.journal and not state.journal.off then M.prime(state.journal.path) end
  return state.journal or nil
end

-- Journal calls never raise into the editor: a journal that cannot be written is no reason to
-- stop a task (the message says so once).
local warned = false
local function call(method, ...)
  local j = M.journal()
  if not j then return nil end
  local ok, a, b = pcall(j[method], j, ...)
  if ok and (a ~= nil or method == "entries") then return a end
  if not warned then
    warned = true
    require("deepresearch.nvim.screen").notify("deepresearch: the journal " ..
      tostring(j.path) .. " cannot be written: " ..
      tostring(type(b) == "table" and b.message or b or a), vim.log.levels.WARN, nil,
      config.values.notify)
  end
  return nil
end

--- Records a create about to be sent; then(), once the record is on disk (at once without a
-- journal, or when it cannot be written: no reason to stop a task).
function M.begin(job, after)
  on_written = after
  job.ref = call("begin", { provider = job.provider, brief = job.brief, source = "nvim" })
  if on_written then
    on_written = nil
    after()
  end
end

function M.created(job, task)
  if not job.ref then return end
  local t = {}
  if type(task) == "table" then for k, v in pairs(task) do t[k] = v end end
  call("created", job.ref, next(t) and t or job.id, job.provider)
end

-- Only tasks the journal holds: a task waited on by id from elsewhere gets no stray record.
function M.update(job, fields)
  if job.ref then return call("update", job.ref, fields) end
  if job.id ~= nil and M.journal() and M.known_in_journal(job.id) then
    call("update", tostring(job.id), fields)
  end
end

--- The journal's records, newest first (opts: entries' filters).
function M.entries(opts)
  return call("entries", opts or {}) or {}
end

-- The journal's ids (id -> provider) of lines (a file's whole text) from pos on, SLICE lines
-- per call; returns the position to go on from, or nil at the end. As Journal:records merges
-- them: an event belongs to its ref's record, or to its id's; the provider is its begin's.
local SLICE = 200
local function scan(text, pos, ids, by_ref, decode)
  for _ = 1, SLICE do
    local nl = text:find("\n", pos, true)
    local ok, ev = pcall(decode, text:sub(pos, (nl or #text + 1) - 1))
    if ok and type(ev) == "table" and (type(ev.ref) == "string" or type(ev.id) == "string") then
      local rec = (ev.ref and by_ref[ev.ref]) or (ev.id and ids[ev.id]) or {}
      if ev.ref then by_ref[ev.ref] = rec end
      rec.provider = ev.provider or rec.provider
      rec.id = rec.id or ev.id
      if rec.id then ids[tostring(rec.id)] = rec end
    end
    if not nl then return nil end
    pos = nl + 1
  end
  return pos
end

local function providers_of(recs)
  local ids = {}
  for id, rec in pairs(recs) do ids[id] = rec.provider end
  return ids
end

--- Reads the journal's ids in the background: the file by libuv's threads, its lines decoded
-- SLICE per turn of the loop. The first notification needed them all at once (short ids): the
-- whole journal decoded in one turn stalled the editor for as long (10 ms and more for a
-- hundred lines on a busy machine, growing with the file).
function M.prime(path)
  if state.journal_ids or state.priming == path then return end
  state.priming = path -- (a setup{} naming another journal meanwhile: this read is dropped)
  local uv = vim.loop
  local decode = require("deepresearch.base.json").decode
  local function done(recs)
    if state.priming ~= path then return end
    state.priming = nil
    if recs and not state.journal_ids then state.journal_ids = providers_of(recs) end
  end
  uv.fs_open(path, "r", 0, function(_, fd)
    if not fd then return done({}) end -- no file yet: no ids
    uv.fs_fstat(fd, function(_, st)
      if not st then return uv.fs_close(fd, function() done(nil) end) end
      uv.fs_read(fd, st.size, 0, function(_, text)
        uv.fs_close(fd, function() end)
        if not text then return done(nil) end
        local recs, by_ref, pos = {}, {}, 1
        local timer = uv.new_timer()
        -- 1 ms, not 0: a timer started again at 0 from its callback runs in the same turn.
        local function step()
          local stale = state.journal_ids or state.priming ~= path -- read otherwise meanwhile
          pos = not stale and scan(text, pos, recs, by_ref, decode) or nil
          if pos then return timer:start(1, 0, step) end
          timer:close()
          done(recs)
        end
        timer:start(1, 0, step)
      end)
    end)
  end)
end

-- The journal's ids (id -> provider), read once and again only when asked to (fresh): short
-- ids are computed for every notification, and reading the whole journal each time would
-- stall the editor as it grows. partial: while M.prime still reads, an empty set will do (a
-- short id is then 8 characters, whatever the journal holds).
local function journal_ids(fresh, partial)
  if partial and state.priming and not state.journal_ids then return {} end
  if fresh or not state.journal_ids then
    local ids = {}
    for _, e in ipairs(M.entries()) do
      if e.id then ids[tostring(e.id)] = e.provider end
    end
    state.journal_ids = ids
  end
  return state.journal_ids
end

function M.known_in_journal(id)
  return journal_ids()[tostring(id)] ~= nil
end

-- Every known id: this session's jobs and the journal's records; id -> provider. fresh:
-- reread the journal (a command typed by the user; other processes may have added tasks).
function M.known(fresh, partial)
  local ids = {}
  for id, p in pairs(journal_ids(fresh, partial)) do ids[id] = p end
  for _, job in pairs(state.jobs) do
    if job.id ~= nil then ids[tostring(job.id)] = job.provider end
  end
  return ids
end

--- The shortest prefix of id, 8 characters or more, that no other known id shares: what
-- notifications and buffer names show, and what every command accepts.
function M.short(id)
  if id == nil then return "?" end
  id = tostring(id)
  local n = SHORT
  for other in pairs(M.known(false, true)) do
    if other ~= id then
      local k = 0
      while k < #id and id:sub(k + 1, k + 1) == other:sub(k + 1, k + 1) do k = k + 1 end
      if k + 1 > n then n = k + 1 end
    end
  end
  return id:sub(1, n)
end

--- A typed id: exact, or a unique prefix of 6+ characters of a known id. Returns the full id
-- and its provider (nil when only the provider given knows it), or nil and a message naming
-- what was typed. An id nobody knows is returned as typed (known = false): its first 404 is
-- final.
function M.resolve(typed, provider)
  typed = tostring(typed)
  local known = M.known(true)
  if known[typed] and (provider == nil or known[typed] == provider) then
    return typed, known[typed], true
  end
  local found = {}
  if #typed >= M.MIN_PREFIX then
    for id, p in pairs(known) do
      if id:sub(1, #typed) == typed and (provider == nil or p == provider) then
        found[#found + 1] = id
      end
    end
  end
  table.sort(found)
  if #found == 1 then return found[1], known[found[1]], true end
  if #found > 1 then
    local shown = {}
    for i = 1, math.min(5, #found) do shown[i] = found[i] end
    return nil, string.format("deepresearch: '%s' matches %d tasks: %s%s", typed, #found,
      table.concat(shown, ", "), #found > 5 and ", ..." or "")
  end
  if #typed < M.MIN_PREFIX then
    return nil, string.format("deepresearch: no task '%s' (type 6 or more characters of an id)",
      typed)
  end
  return typed, provider, false
end

--- -complete=customlist: known ids (their short forms too) starting with what was typed.
function M.complete(lead)
  lead = lead or ""
  local out, seen = {}, {}
  for id in pairs(M.known(true)) do
    if id:sub(1, #lead) == lead and not seen[id] then
      seen[id] = true
      out[#out + 1] = id
    end
  end
  table.sort(out)
  return out
end

--- Finds the session's job for a full id (the newest one).
function M.job_of(id)
  for i = #state.order, 1, -1 do
    local job = state.jobs[state.order[i]]
    if job and tostring(job.id) == tostring(id) then return job end
  end
  return nil
end

return M

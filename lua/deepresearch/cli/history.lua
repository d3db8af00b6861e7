-- The command's journal: every task it creates is recorded (before the create is sent, again
-- when its id is known, and with its final state, cost and report file), and `history` lists
-- the record. See lua/deepresearch/journal.lua for the file itself.
local journal = require "deepresearch.journal"
local output = require "deepresearch.cli.output"
local providers = require "deepresearch.providers"

local M = {}

--- The command's journal (opened once; --journal-briefs keeps whole briefs). nil when it cannot
--- be opened: the task matters more than its record, so the command goes on after one warning.
function M.journal(ctx)
  if ctx.journal == nil then
    local j, err = journal.open{ briefs = ctx.g.journal_briefs and true or false }
    if not j then
      ctx.err:write("deepresearch: warning: no journal: ", tostring(err.message), "\n")
    end
    ctx.journal = j or false
  end
  return ctx.journal or nil
end

local function warn(ctx, err)
  if ctx.journal_warned then return end
  ctx.journal_warned = true
  ctx.err:write("deepresearch: warning: the journal was not written: ",
    tostring(type(err) == "table" and err.message or err), "\n")
end

--- A create is about to be sent (kind: nil for research, "discovery", ...).
function M.begin(ctx, brief, kind)
  ctx.journal_ref = nil
  local j = M.journal(ctx)
  if not j then return end
  local ref, err = j:begin{ provider = ctx:provider(), brief = brief, source = "cli", kind = kind }
  if not ref then return warn(ctx, err) end
  ctx.journal_ref = ref
end

--- The create answered with a task.
function M.created(ctx, task)
  local j, ref = M.journal(ctx), ctx.journal_ref
  if not (j and ref) then return end
  local ok, err = j:created(ref, task, ctx:provider())
  if not ok then warn(ctx, err) end
end

--- The create was cut short and no task was made (an interrupted create whose answer said so).
function M.not_created(ctx, code)
  local j, ref = M.journal(ctx), ctx.journal_ref
  if not (j and ref) then return end
  local ok, err = j:update(ref, { state = "refused", error = code })
  if not ok then warn(ctx, err) end
end

-- Refusals before or by the API: nothing was made. Anything else (a lost answer, a 5xx, a
-- network error) may have made a task, so its record stays "creating" and reads as unknown.
local LOCAL_REFUSALS = { invalid_request = true, unsupported = true, budget_exceeded = true,
  unauthorized = true, forbidden = true }

--- The create failed with err.
function M.refused(ctx, err)
  local j, ref = M.journal(ctx), ctx.journal_ref
  if not (j and ref and type(err) == "table") then return end
  local status = tonumber(err.status)
  local nothing_made = (status and status >= 400 and status < 500 and status ~= 408) or
    (status == nil and LOCAL_REFUSALS[err.code])
  if err.code == "ambiguous" or not nothing_made then return end
  local ok, werr = j:update(ref, { state = "refused", error = err.code })
  if not ok then warn(ctx, werr) end
end

-- The file stdout is, when it was redirected to one (`run ... > report.md`): Linux's /proc.
local function stdout_file()
  local p = io.popen('p=$(readlink /proc/$PPID/fd/1 2>/dev/null) && [ -f "$p" ] && ' ..
    'printf %s "$p"')
  if not p then return nil end
  local path = p:read("*a")
  p:close()
  return path ~= "" and path or nil
end

-- Final states from the errors a wait ends with (a timeout or Ctrl-C says nothing new).
local ERROR_STATES = { task_failed = "failed", cancelled = "cancelled",
  input_required = "input_required" }

--- A wait on id ended (task, or nil and err); report_written: the report went to stdout.
--- Writes only for a task this command created or one the journal already holds.
function M.finished(ctx, id, task, err, report_written)
  local j = M.journal(ctx)
  if not j then return end
  local key = ctx.journal_ref
  if not key then
    local entry = id and j:resolve(tostring(id), nil)
    if not (entry and entry.id == tostring(id)) then return end
    key = entry.ref
  end
  local dr = require "deepresearch"
  local t = task or (type(err) == "table" and err.task) or nil
  local fields = {}
  fields.state = t and providers.state(t, ctx:provider()) or
    (type(err) == "table" and ERROR_STATES[err.code]) or nil
  if type(err) == "table" and err.code then fields.error = err.code end
  if t then
    local ok, r = pcall(dr.result, t, ctx:provider())
    local cost = ok and type(r) == "table" and r.cost or nil
    if type(cost) == "table" and (cost.usd or cost.credits) then
      fields.cost = { usd = cost.usd, credits = cost.credits }
    end
  end
  if report_written then fields.report_path, fields.seen = stdout_file(), true end
  if next(fields) == nil then return end
  local ok, werr = j:update(key, fields)
  if not ok then warn(ctx, werr) end
end

--- A command wrote id's report to path (report -o FILE and the like): recorded on the
--- journal's record of id, when it has one.
function M.report_written(ctx, id, path)
  local j = M.journal(ctx)
  local entry = j and id and j:resolve(tostring(id), nil)
  if not (entry and entry.id == tostring(id)) then return end
  local ok, err = j:update(entry.ref, { report_path = path, seen = true })
  if not ok then warn(ctx, err) end
end

-- `history` ------------------------------------------------------------------------------------

local UNITS = { m = 60, h = 3600, d = 86400, w = 7 * 86400 }

--- The epoch time --since names: 2026-12-01 (local midnight), 3d, 12h, 30m, 2w.
function M.since(s, now)
  local n, unit = tostring(s):match("^(%d+)([mhdw])$")
  if n then return (now or os.time()) - tonumber(n) * UNITS[unit] end
  local y, mo, d = tostring(s):match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if y then
    return os.time{ year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = 0 }
  end
  return nil
end

-- A journal is a file anyone may edit (or an older version wrote): a field of the wrong type
-- shows as nothing, never raises.
local function num(v) return type(v) == "number" and v == v and v or nil end
local function str(v) return (type(v) == "string" or type(v) == "number") and tostring(v) or nil end
-- A date os.date can take (2^40 s is far beyond any journal; 1e300 raised "out-of-bounds").
local function epoch(v)
  v = num(v)
  return v and v >= 0 and v < 2 ^ 40 and math.floor(v) or nil
end

local function cost_text(c)
  if num(c) then return string.format("$%.2f", c) end
  if type(c) ~= "table" then return "" end
  if num(c.usd) then return string.format("$%.2f", c.usd) end
  if num(c.credits) then return string.format("%g cr", c.credits) end
  return ""
end
M.cost_text = cost_text

M.SHORT_ID = 12 -- characters of an id shown: enough to type back as a prefix

local function row(e, date_format)
  local id = str(e.id) and str(e.id):sub(1, M.SHORT_ID) or "-"
  return { epoch(e.created_at) and os.date(date_format, epoch(e.created_at)) or "",
    str(e.provider) or "", id, str(e.state) or "", cost_text(e.cost), str(e.brief_head) or "" }
end

local HEADERS = { "CREATED", "PROVIDER", "ID", "STATE", "COST", "BRIEF" }
M.WIDTH = 80

-- The table, its brief column cut so that every line fits WIDTH columns.
local function print_table(stream, entries)
  local rows, widths = {}, {}
  -- The year only when some task is from another year: the brief gets the room.
  local year, date_format = os.date("%Y"), "%m-%d %H:%M"
  for _, e in ipairs(entries) do
    if epoch(e.created_at) and os.date("%Y", epoch(e.created_at)) ~= year then
      date_format = "%Y-%m-%d %H:%M"
    end
  end
  for i, h in ipairs(HEADERS) do widths[i] = #h end
  for i, e in ipairs(entries) do
    rows[i] = row(e, date_format)
    for c = 1, #HEADERS - 1 do widths[c] = math.max(widths[c], output.columns(rows[i][c])) end
  end
  local used = 0
  for c = 1, #HEADERS - 1 do used = used + widths[c] + 2 end
  local room = math.max(8, M.WIDTH - used)
  for _, r in ipairs(rows) do r[#HEADERS] = output.clip(r[#HEADERS], room) end
  output.table(stream, HEADERS, rows)
end

local STATES = { "creating", "unknown", "refused", "queued", "running", "input_required", "done",
  "failed", "cancelled" }

local function history(ctx, opts, words)
  if #words > 0 then return ctx:usage("history takes no arguments, got '" .. words[1] .. "'") end
  local since
  if opts.since then
    since = M.since(opts.since)
    if not since then
      return ctx:usage("--since wants a date (2026-12-01) or an age (3d, 12h, 30m, 2w), got '" ..
        opts.since .. "'")
    end
  end
  local j = M.journal(ctx)
  if not j then return 1 end
  local entries = j:entries{ provider = ctx.g.provider, state = opts.state, since = since }
  if opts.json then
    ctx.out:write(output.json(entries, true), "\n")
    return 0
  end
  if #entries == 0 then
    local filtered = ctx.g.provider or opts.state or since
    ctx.out:write("no tasks in the journal", filtered and " match" or "", " (", tostring(j.path),
      ")\n")
    return 0
  end
  print_table(ctx.out, entries)
  for _, e in ipairs(entries) do
    if e.state == "unknown" then
      local d = providers.get(e.provider)
      local find = str(e.find) or ("deepresearch list --provider " .. (str(e.provider) or "?"))
      local how = (d and not providers.has_list(d)) and ("its API cannot list tasks, so check " ..
        "the provider's dashboard (" .. find .. " will not find it)") or
        ("Find it with: " .. find)
      ctx.err:write(string.format("deepresearch: a create on %s (%s) never answered; a task " ..
        "may exist. %s\n", str(e.provider) or "?", epoch(e.created_at) and
        os.date("%Y-%m-%d %H:%M", epoch(e.created_at)) or "?", how))
    end
  end
  return 0
end

M.commands = {
  history = {
    usage = "history [--provider NAME] [--state STATE] [--since WHEN] [--json]", run = history,
    summary = "the tasks this machine created, newest first, from the local journal",
    options = {
      { "state", value = "STATE", choices = STATES, doc = "only tasks in STATE (unknown: a " ..
        "create that never answered)" },
      { "since", value = "WHEN", doc = "only tasks created since WHEN: 2026-12-01, 3d, 12h, 30m" },
      { "json", doc = "print the journal's records as a JSON array" },
    },
    description =
      "The journal is $XDG_STATE_HOME/deepresearch/journal.jsonl (default\n" ..
      "~/.local/state/deepresearch/journal.jsonl; DEEPRESEARCH_JOURNAL names another file, or\n" ..
      "'off'). It keeps each task's provider, id, first 80 characters of the brief (the whole\n" ..
      "brief with --journal-briefs), state, cost and report file; never a token. wait, get,\n" ..
      "report and cancel take any unique prefix (6+ characters) of an id it holds.",
    examples = "  deepresearch history --since 3d\n  deepresearch history --state unknown",
  },
}

return M

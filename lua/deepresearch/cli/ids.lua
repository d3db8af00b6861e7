-- Ids people can type: wait, get, report and cancel take a task id or any unique prefix of 6+
-- characters of one, found in the journal or, failing that, on the provider's first list page.
local history = require "deepresearch.cli.history"
local providers = require "deepresearch.providers"

local M = {}

M.MIN = 6
-- A word this long is taken for a whole id when the journal does not know it: every provider's
-- ids are longer (UUIDs, resp_ + 20 hex or more), and a listing costs a request.
M.WHOLE = 20

local function usage_ambiguous(ctx, word, ids, more)
  return ctx:usage(string.format("'%s' matches %d tasks: %s%s; type more of the id", word,
    more or #ids, table.concat(ids, ", "), (more or #ids) > #ids and ", ..." or ""))
end

-- The first list page's ids that start with word (nil when the provider cannot list or the
-- listing failed: then the server decides about the word as typed).
local function listed(ctx, word)
  local d = providers.get(ctx:provider())
  if not (d and d.cli and providers.has_list(d)) then return nil end
  local token = os.getenv(d.token_env or "")
  if not token or token == "" then return nil end -- the command says so once, later
  local client = ctx:client()
  if not client then return nil end
  local ad = require("deepresearch.cli.task").for_provider(ctx:provider())
  local ok, tasks = pcall(ad.list, client, {})
  if not ok or type(tasks) ~= "table" then return nil end
  local found, seen = {}, {}
  for _, t in ipairs(tasks) do
    local id = type(t) == "table" and ad.id(t) or nil
    if type(id) == "string" and not seen[id] then
      if id == word then return { id } end
      if id:sub(1, #word) == word then
        seen[id] = true
        found[#found + 1] = id
      end
    end
  end
  return found
end

--- The id a word names: returns id, or nil and the exit code (after a usage error for an
--- ambiguous prefix). A word the journal gives a provider sets the command's provider when
--- --provider was not given.
function M.resolve(ctx, word)
  local j = history.journal(ctx)
  if j then
    local entry, err = j:resolve(word, ctx.g.provider, "research")
    if entry then
      if ctx.g.provider == nil and entry.provider and providers.get(entry.provider) then
        ctx.g.provider = entry.provider
      end
      return entry.id
    end
    if err.code == "ambiguous_id" then
      return nil, usage_ambiguous(ctx, word, err.candidates, tonumber(err.message:match(
        "matches (%d+) tasks")))
    end
    -- Another provider's task: sending it to this provider could only answer 404.
    local other = ctx.g.provider and j:resolve(word, nil, "research")
    if other and other.provider and other.provider ~= ctx.g.provider then
      return nil, ctx:usage(string.format("'%s' is a task of --provider %s (%s), not of %s",
        word, other.provider, tostring(other.id), ctx.g.provider))
    end
  end
  if #word < M.MIN or #word >= M.WHOLE then return word end
  local found = listed(ctx, word)
  if not found or #found == 0 then return word end
  if #found == 1 then return found[1] end
  local shown = {}
  for i = 1, math.min(5, #found) do shown[i] = found[i] end
  return nil, usage_ambiguous(ctx, word, shown, #found)
end

--- Every word resolved: ids, or nil and the exit code.
function M.resolve_all(ctx, words)
  local out = {}
  for i, w in ipairs(words) do
    local id, code = M.resolve(ctx, w)
    if not id then return nil, code end
    out[i] = id
  end
  return out
end

--- Like ctx:id_and_client, the one id resolved: id, client; or nil, exit code.
function M.id_and_client(ctx, words)
  if #words ~= 1 then return ctx:id_and_client(words) end
  local id, code = M.resolve(ctx, words[1])
  if not id then return nil, code end
  return ctx:id_and_client({ id })
end

-- `list` helpers: --status and the column that tells one template's tasks apart -------------

-- --status NAME: the dr.state values it takes (a task not finished is running).
M.STATUS = { running = { queued = true, running = true, input_required = true },
  done = { done = true }, failed = { failed = true }, cancelled = { cancelled = true } }
M.STATUS_NAMES = { "running", "done", "failed", "cancelled" }

--- The tasks whose dr.state --status names (all of them without one).
function M.filter_status(tasks, status, provider)
  local want = status and M.STATUS[status]
  if not want then return tasks end
  local out = {}
  for _, t in ipairs(tasks) do
    if want[providers.state(t, provider) or ""] then out[#out + 1] = t end
  end
  return out
end

local function words_of(s)
  local out = {}
  for w in tostring(s or ""):gmatch("%S+") do
    out[#out + 1] = w
    if #out >= 200 then break end
  end
  return out
end

-- Words a and b share at the start, and (after those) at the end.
local function shared(a, b)
  local p = 0
  while p < #a and p < #b and a[p + 1] == b[p + 1] do p = p + 1 end
  local q = 0
  while q < #a - p and q < #b - p and a[#a - q] == b[#b - q] do q = q + 1 end
  return p, q
end

M.SIBLING_WORDS = 3 -- words two briefs share (start and end) to come from one template
M.DIFF_WORDS = 4

--- For each task, what tells it from its closest sibling on the page: the target domain when
--- the descriptor names where it is (cli.target), else the first words where its brief
--- differs. nil when no two tasks share a template (no column is needed then).
function M.differences(d, tasks)
  local cli = d.cli or {}
  local progress = require "deepresearch.cli.progress"
  local brief_path
  for _, col in ipairs(cli.columns or {}) do
    if col[3] == "words" then brief_path = col[2] end
  end
  local texts = {}
  for i, t in ipairs(tasks) do
    local v = brief_path and progress.value_at(t, brief_path)
    texts[i] = words_of(type(v) == "string" and v or "")
  end
  local out, any = {}, false
  for i, a in ipairs(texts) do
    local best, bp, bq, longer = -1, 0, 0, false
    for j, b in ipairs(texts) do
      if i ~= j then
        local p, q = shared(a, b)
        if p + q > best then best, bp, bq = p + q, p, q end
        if p + q >= #a and #b > #a then longer = true end
      end
    end
    out[i] = ""
    if best >= M.SIBLING_WORDS and best >= #a and longer then
      -- Every word of this brief is in a longer sibling's: a blank cell told nothing. (Two
      -- briefs alike cannot be told apart by their words: no column for them alone.)
      any = true
      out[i] = "(shorter brief)"
    elseif best >= M.SIBLING_WORDS and best >= #a then
      out[i] = ""
    elseif best >= M.SIBLING_WORDS then
      any = true
      local target = cli.target and progress.value_at(tasks[i], cli.target)
      if type(target) == "string" and target ~= "" then
        out[i] = target
      else
        -- From the first differing word to where the sibling's shared ending starts.
        local last = math.max(bp + 1, math.min(#a - bq, bp + M.DIFF_WORDS))
        out[i] = table.concat(a, " ", bp + 1, last)
      end
    end
  end
  return any and out or nil
end

--- Writes the list table, with a DIFFERS column before the brief when tasks share a template.
function M.list_table(stream, ad, tasks, rows)
  local output = require "deepresearch.cli.output"
  local diffs = M.differences(ad.descriptor, tasks)
  local headers = ad.list_headers
  if diffs and #headers > 0 then
    local at = #headers
    headers = { (table.unpack or unpack)(headers) } -- luacheck: ignore (unpack: Lua 5.1)
    table.insert(headers, at, "DIFFERS")
    for i, r in ipairs(rows) do table.insert(r, at, output.clip(diffs[i], 32)) end
  end
  output.table(stream, headers, rows)
end

-- `wait ID ID ...` ------------------------------------------------------------------------------

local function short(id) return tostring(id):sub(1, history.SHORT_ID) end

-- One task's line: short id, state and the describer's counters; or how its wait ended.
local function line_of(ad, id, task, err)
  if err then
    local state = err.code == "task_failed" and "failed" or err.code
    local why = type(err.task) == "table" and ad.failure(err.task) or err.message
    return (string.format("%s  %s  %s", short(id), tostring(state), tostring(why or ""))
      :gsub("[\r\n]+", " "))
  end
  local ok, d = pcall(ad.describe, task)
  local parts = { short(id), ok and d and d.state or tostring(providers.state(task) or "?") }
  for _, p in ipairs(ok and d and d.parts or {}) do parts[#parts + 1] = p end
  return table.concat(parts, "  ")
end

--- Waits on several tasks at once through one poller: a terminal shows one live line each,
--- otherwise one line each as it ends; --json prints the tasks. Exit code: the worst.
function M.wait_many(ctx, words, opts)
  local list, code = M.resolve_all(ctx, words)
  if not list then return code end
  local client
  client, code = ctx:client()
  if not client then return code end
  local cli = require "deepresearch.cli"
  local output = require "deepresearch.cli.output"
  local ad = require("deepresearch.cli.task").for_provider(ctx:provider())
  local mode = ctx.g.quiet and "none" or (ctx:stderr_tty() and "tty" or "lines")
  local lines, drawn = {}, false
  for i, id in ipairs(list) do lines[i] = short(id) .. "  waiting for first answer..." end
  local index = {}
  for i, id in ipairs(list) do index[id] = i end
  local function draw()
    if mode ~= "tty" then return end
    if drawn then ctx.err:write("\27[", #lines, "A") end
    for _, l in ipairs(lines) do ctx.err:write("\r\27[K", output.clip(l, 79), "\n") end
    ctx.err:flush()
    drawn = true
  end
  draw()
  ctx.waiting = table.concat(list, " ")
  local done, errs = client:wait_all(list, { timeout = opts.timeout, interval = opts.interval,
    max_interval = opts.max_interval, on_progress = function(t)
      local i = index[ad.id(t)]
      if i then
        lines[i] = line_of(ad, list[i], t)
        draw()
      end
    end })
  ctx.waiting = nil
  local worst, tasks = 0, {}
  for i, id in ipairs(list) do
    local task, err = done[id], errs[id]
    if not task and not err then err = { code = "unknown", message = "no answer" } end
    lines[i] = line_of(ad, id, task, err)
    if mode == "lines" then ctx.err:write(lines[i], "\n") end
    local c = task and 0 or cli.exit_code(err)
    if c > worst then worst = c end
    tasks[#tasks + 1] = task or (type(err) == "table" and err.task) or nil
    history.finished(ctx, id, task, err, false)
  end
  draw()
  if opts.json then ctx.out:write(output.json(tasks, true), "\n") end
  return worst
end

return M

-- Issue 17 in one editor (headless, against the simulator): the key read once (item 3), ids by
-- prefix and completion (5), events, status and one replaceable notification per task (6),
-- buffer names, the journal's list, <CR> to an open report and export (7), open = "notify"
-- (1: nothing opens by itself; :DeepResearchOpen does). The restart and typing checks are in
-- spec/nvim/embed_test.lua (a second Neovim with a UI).
-- luacheck: globals vim
local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

local function brief(i)
  return "We sell freight-visibility software. Research Flexport (flexport.com): tooling, " ..
    "leadership changes and public statements in the last 12 months, editor angle " .. i .. "."
end

local function lines_of(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local out = {}
  for l in f:lines() do out[#out + 1] = l end
  f:close()
  return out
end

local function done(job) return job and ((job.state == "done" and job.announced) or
  job.state == "failed") end

return function(t, env)
  if not env.url then
    t.ok(false, "the simulator URL is given (DR_SIM_URL)")
    return
  end
  local nv = require "deepresearch.nvim"
  local tmp = vim.fn.tempname()
  vim.fn.mkdir(tmp, "p")
  if not os.getenv("DEEPRESEARCH_JOURNAL") then vim.env.DEEPRESEARCH_JOURNAL = tmp .. "/j.jsonl" end
  local notes = {}
  local function setup(extra)
    local opts = {
      base_url = env.url, interval = 0.05, max_interval = 0.05, tick_ms = 20, notify_every = 0,
      reattach = false,
      notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end,
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    nv.setup(opts)
  end
  local function last_job() return nv.jobs()[#nv.jobs()] end

  -- Item 3: :checkhealth never runs the key command (it would wait on it).
  setup{ api_key = "cmd:echo run >> " .. tmp .. "/health-runs; printf test-token" }
  vim.cmd("checkhealth deepresearch")
  local health = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), "\n")
  vim.cmd("tabclose")
  t.ok(has(health, "run on first use") and #lines_of(tmp .. "/health-runs") == 0,
    ":checkhealth says the key is a command and does not run it", health)

  -- Item 3: a key command runs once per provider per session, however many requests follow.
  local counter = tmp .. "/runs"
  -- vim.fn.system would freeze the editor while the command runs: count any call.
  local systems, real_system = 0, vim.fn.system
  rawset(vim.fn, "system", function(...) systems = systems + 1 return real_system(...) end)
  setup{ api_key = "cmd:echo run >> " .. counter .. "; printf test-token" }
  local runs0 = nv.secrets.runs
  local jobs = {}
  for i = 1, 3 do
    vim.cmd("DeepResearch " .. brief(i))
    jobs[i] = last_job()
  end
  local all = vim.wait(30000, function()
    return done(jobs[1]) and done(jobs[2]) and done(jobs[3])
  end, 10)
  t.ok(all and jobs[1].state == "done" and jobs[3].state == "done",
    "api_key = 'cmd:...': three tasks run to done with the command's key", tostring(jobs[1].err))
  t.is(#lines_of(counter), 1, "the key command ran once for three tasks and all their polls")
  t.is(nv.secrets.runs - runs0, 1, "secrets counts one run")
  rawset(vim.fn, "system", real_system)
  t.is(systems, 0, "the key command ran without vim.fn.system")
  local calls = 0
  setup{ api_key = function() calls = calls + 1 return "test-token" end }
  local j1 = nv.research(brief(4))
  local j2 = nv.research(brief(5))
  vim.wait(30000, function() return done(j1) and done(j2) end, 10)
  t.ok(j1.state == "done" and calls == 1, "api_key = function: called once for two tasks (" ..
    calls .. " calls)", tostring(j1.err))
  vim.env.DR_TEST_KEY = "test-token"
  setup{ api_key = "env:DR_TEST_KEY" }
  local j3 = nv.research(brief(6))
  vim.wait(30000, function() return done(j3) end, 10)
  t.is(j3.state, "done", "api_key = 'env:NAME' reads the variable")
  notes = {}
  setup{ api_key = "cmd:echo nope >&2; exit 3" }
  local j4 = nv.research(brief(7))
  vim.wait(10000, function() return j4.state == "failed" end, 10)
  vim.wait(2000, function() return #notes >= 2 end, 10)
  local errs = {}
  for _, n in ipairs(notes) do
    if n.level == vim.log.levels.ERROR then errs[#errs + 1] = n.msg end
  end
  t.ok(j4.state == "failed" and #errs == 1 and has(errs[1], "api_key command") and
    has(errs[1], "status 3") and has(errs[1], "nope"),
    "a failing key command is one clear error notification", vim.inspect(errs))

  -- Item 6: User autocmds with the task (data in 0.8+, last_event in 0.7), status().
  setup{ api_key = "test-token" }
  local seen = {}
  local group = vim.api.nvim_create_augroup("dr_editor_test", { clear = true })
  for _, name in ipairs({ "DeepResearchCreated", "DeepResearchProgress", "DeepResearchDone",
    "DeepResearchFailed", "DeepResearchInputRequired" }) do
    vim.api.nvim_create_autocmd("User", { group = group, pattern = name, callback = function(a)
      local data = a.data or (nv.last_event and nv.last_event.data)
      seen[#seen + 1] = { name = name, id = data and data.id, state = data and data.state }
    end })
  end
  -- A notifier like nvim-notify: returns a record; the next call for the task replaces it.
  local records, replaced_ok, calls_n = {}, true, 0
  nv.setup{ base_url = env.url, api_key = "test-token", interval = 0.05, max_interval = 0.05,
    tick_ms = 20, notify_every = 0, reattach = false,
    notify = function(msg, _, opts)
      calls_n = calls_n + 1
      local id = msg:match("^deepresearch (%S+):")
      if id and records[id] and (not opts or opts.replace ~= records[id]) then
        replaced_ok = false
      end
      local rec = { n = calls_n }
      if id then records[id] = rec end
      return rec
    end }
  local ej = nv.research(brief(8))
  local running_status
  vim.wait(10000, function()
    running_status = running_status or (nv.status() ~= "" and nv.status() or nil)
    return done(ej)
  end, 10)
  vim.wait(1000, function() return #seen > 0 and seen[#seen].name == "DeepResearchDone" end, 10)
  local names = {}
  for _, e in ipairs(seen) do
    if e.id == ej.id then names[e.name] = (names[e.name] or 0) + 1 end
  end
  t.ok(names.DeepResearchCreated == 1 and (names.DeepResearchProgress or 0) >= 1 and
    names.DeepResearchDone == 1, "User autocmds Created, Progress and Done carry the task's id",
    vim.inspect(seen))
  t.ok(has(running_status, "research: 1 running"), "status() while it runs: " ..
    tostring(running_status))
  t.ok(replaced_ok and calls_n >= 3, "with a notifier that returns a record, each next " ..
    "notification of the task replaces it (" .. calls_n .. " calls)")
  local bad = nv.research("please look into the general market for things like this")
  vim.wait(20000, function() return bad.state == "failed" or bad.state == "done" end, 10)
  vim.wait(1000, function() return seen[#seen] and seen[#seen].name == "DeepResearchFailed" end,
    10)
  t.ok(seen[#seen] and seen[#seen].name == "DeepResearchFailed" and seen[#seen].id == bad.id,
    "a rejected brief fires DeepResearchFailed", vim.inspect(seen[#seen]))
  vim.api.nvim_del_augroup_by_name("dr_editor_test")

  -- A plain notifier: at most one line per state change.
  setup{ api_key = "test-token" }
  local pj = nv.research(brief(9))
  vim.wait(10000, function() return done(pj) end, 10)
  local per_status, repeats = {}, 0
  local short = nv.short(pj.id)
  for _, n in ipairs(notes) do
    if has(n.msg, "deepresearch " .. short .. ":") then
      local k = n.msg
      if per_status[k] then repeats = repeats + 1 end
      per_status[k] = true
    end
  end
  t.is(repeats, 0, "a plain notifier gets no line twice for one task")

  -- Item 1 with open = "notify": nothing opens by itself; the notice names :DeepResearchOpen.
  notes = {}
  setup{ api_key = "test-token", open = "notify" }
  local tabs, win = vim.fn.tabpagenr("$"), vim.api.nvim_get_current_win()
  local oj = nv.research(brief(10))
  vim.wait(10000, function() return done(oj) end, 10)
  local hint
  for _, n in ipairs(notes) do
    if has(n.msg, ":DeepResearchOpen") then hint = n.msg end
  end
  t.ok(oj.state == "done" and vim.fn.tabpagenr("$") == tabs and
    vim.api.nvim_get_current_win() == win and hint ~= nil,
    "open = 'notify': the report is announced, nothing opens", tostring(hint))
  local cmd = hint and hint:match("(:DeepResearchOpen %S+)")
  if cmd then vim.cmd(cmd:sub(2)) end
  t.ok(vim.api.nvim_get_current_buf() == nv.report_buffer(oj.id),
    "the notice's own command opens the report", tostring(cmd))

  -- Item 7: the buffer's name and tab label.
  local name = vim.api.nvim_buf_get_name(nv.report_buffer(oj.id) or 0)
  local s8 = nv.short(oj.id)
  t.ok(name:find("^deepresearch://extruct/" .. vim.pesc(s8) .. " %S") ~= nil and #s8 >= 8,
    "report buffers are named deepresearch://<provider>/<short id> <title>", name)
  local label = vim.fn.fnamemodify(name, ":t")
  t.ok(label:sub(1, #s8) == s8 and #label > #s8 + 3, "the tab label reads short id and title: " ..
    label)
  vim.cmd("tabonly")

  -- Item 5: ids by prefix, completion, unknown ids failing at once.
  local id = oj.id
  t.is(select(1, nv.resolve_id(id:sub(1, 6))), id, "a 6-character prefix resolves to the id")
  t.ok(vim.tbl_contains(nv.complete_ids(id:sub(1, 3)), id), "completion offers the id")
  local ok_c = vim.fn.getcompletion("DeepResearchWait " .. id:sub(1, 4), "cmdline")
  t.ok(vim.tbl_contains(ok_c, id), ":DeepResearchWait completes ids (-complete=customlist)",
    vim.inspect(ok_c))
  notes = {}
  vim.cmd("DeepResearchWait " .. id:sub(1, 7))
  local wj = last_job()
  vim.wait(10000, function() return done(wj) end, 10)
  t.ok(wj.id == id and wj.state == "done", ":DeepResearchWait {7-char prefix} waits on the task",
    tostring(wj.id))
  notes = {}
  local before = #nv.jobs()
  vim.cmd("DeepResearchWait abc")
  t.ok(#nv.jobs() == before and notes[1] and has(notes[1].msg, "'abc'") and
    notes[1].level == vim.log.levels.ERROR, "a short unknown prefix fails at once, named",
    vim.inspect(notes))
  notes = {}
  local unknown = "00000000-dead-beef-0000-000000000000"
  local t0 = vim.loop.now()
  vim.cmd("DeepResearchWait " .. unknown)
  local uj = last_job()
  vim.wait(10000, function() return uj.state == "failed" end, 10)
  vim.wait(1000, function() return notes[1] ~= nil end, 10)
  t.ok(uj.state == "failed" and vim.loop.now() - t0 < 5000 and notes[1] and
    has(notes[1].msg, unknown), "an unknown id fails at its first 404, naming the id " ..
    "(no grace)", vim.inspect(notes))
  local j = require("deepresearch.journal").open{}
  for _, fake in ipairs({ "abcdef-1111", "abcdef-2222" }) do
    local ref = j:begin{ provider = "extruct", brief = "fake", source = "cli" }
    j:created(ref, fake, "extruct")
  end
  notes = {}
  before = #nv.jobs()
  vim.cmd("DeepResearchOpen abcdef")
  t.ok(#nv.jobs() == before and notes[1] and has(notes[1].msg, "abcdef-1111") and
    has(notes[1].msg, "abcdef-2222"), "an ambiguous prefix fails at once listing the ids",
    vim.inspect(notes))

  -- Item 4's list: the journal's tasks in vim.ui.select, a header, lines within 80 columns.
  local saved = vim.ui.select
  local asked
  vim.ui.select = function(items, opts, cb)
    asked = { items = items, opts = opts }
    for _, it in ipairs(items) do
      if it.id == oj.id then return cb(it) end
    end
    cb(nil)
  end
  vim.cmd("DeepResearchList")
  vim.ui.select = saved
  local widest, ours = 0, nil
  for _, it in ipairs(asked and asked.items or {}) do
    local line = asked.opts.format_item(it)
    widest = math.max(widest, vim.fn.strdisplaywidth(line))
    if it.id == oj.id then ours = line end
  end
  t.ok(asked and has(asked.opts.prompt, "Provider") and has(asked.opts.prompt, "State") and
    widest <= 80 and has(ours, "extruct") and has(ours, "done") and has(ours, "We sell"),
    ":DeepResearchList: vim.ui.select, a header, provider, state, brief, <= 80 columns",
    tostring(ours))
  t.ok(vim.api.nvim_get_current_buf() == nv.report_buffer(oj.id),
    "choosing a finished task opens its report")
  vim.cmd("tabonly")

  -- Item 7: <CR> on a list entry whose report is open jumps to it (no new wait).
  -- A fresh list (an earlier test's buffer would answer before the new rows came).
  if vim.fn.bufnr("deepresearch://tasks") > 0 then
    vim.cmd("bwipeout! " .. vim.fn.bufnr("deepresearch://tasks"))
  end
  vim.cmd("DeepResearchList!")
  vim.wait(10000, function() return vim.fn.bufnr("deepresearch://tasks") > 0 end, 10)
  local lb = vim.fn.bufnr("deepresearch://tasks")
  local row
  for i, l in ipairs(vim.api.nvim_buf_get_lines(lb, 0, -1, false)) do
    if has(l, oj.id) then row = i end
  end
  before = #nv.jobs()
  if row then
    vim.api.nvim_win_set_cursor(0, { row, 0 })
    vim.cmd("execute \"normal \\<CR>\"")
  end
  t.ok(row and vim.api.nvim_get_current_buf() == nv.report_buffer(oj.id) and
    #nv.jobs() == before, "<CR> on a list entry jumps to its open report")
  vim.cmd("tabonly")

  -- Item 7: export as markdown, and HTML (deepresearch.report.html exists).
  local out = tmp .. "/report.md"
  vim.cmd("DeepResearchExport " .. oj.id:sub(1, 8) .. " " .. out)
  vim.wait(3000, function() return vim.loop.fs_stat(out) ~= nil end, 10)
  local md = table.concat(lines_of(out), "\n")
  local html = table.concat(lines_of(tmp .. "/report.html"), "\n")
  t.ok(#md > 100 and md == nv.render(oj.task), ":DeepResearchExport writes the markdown report",
    md:sub(1, 200))
  if type(require("deepresearch.report").html) == "function" then
    t.ok(has(html:lower(), "<html"), "... and HTML beside it (report.html exists)")
  else
    t.skip("... and HTML beside it", "deepresearch.report.html is not there")
  end
  nv.close()
end

-- The editor reads providers from their descriptors (issue 14): setup{ provider = }, the
-- per-command provider=NAME, create parameters through descriptor.cli.create, the list through
-- descriptor.cli.columns, tokens from each descriptor's token_env. And checkpoints (issue 15
-- item 6): a task waiting for input is asked about through vim.ui.select / vim.ui.input
-- (stubbed here), answered, and polled on; never a hit-enter prompt, never a focus change.
-- Against the simulator (run at 300x: a fast task runs 180 virtual seconds, 0.6 s here).
-- luacheck: globals vim
local VALYU_KEY = "valyu-key" -- the simulator's built-in Valyu key (docs/simulator_valyu.md)
local HITL_ALL = { planning_questions = true, plan_review = true, source_review = true,
  outline_review = true }

local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

local function query(i)
  return "We sell freight-visibility software. Research Flexport (flexport.com): tooling and " ..
    "leadership changes in the last 12 months, for our pitch, angle " .. i .. "."
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

-- Done and announced (the report is filled on the main loop just after the task ends).
local function finished(job)
  return (job.state == "done" and job.announced) or job.state == "failed"
end

-- vim.ui replaced by scripted answers: each call takes the next one (a function of what was
-- asked). Records what was asked, in which window, and whether a prompt came with none left.
local function script_ui(answers)
  local ui = { asked = {}, windows = {}, extra = 0 }
  local saved = { select = vim.ui.select, input = vim.ui.input }
  local function next_answer(kind, items, opts, cb)
    ui.asked[#ui.asked + 1] = { kind = kind, prompt = opts.prompt, items = items }
    ui.windows[#ui.windows + 1] = vim.api.nvim_get_current_win()
    local answer = table.remove(answers, 1)
    if answer == nil then
      ui.extra = ui.extra + 1
      return cb(nil)
    end
    cb(answer(items, opts))
  end
  vim.ui.select = function(items, opts, cb) next_answer("select", items, opts, cb) end
  vim.ui.input = function(opts, cb) next_answer("input", nil, opts, cb) end
  function ui.restore()
    vim.ui.select, vim.ui.input = saved.select, saved.input
  end
  return ui
end

-- Picks the select item whose key (or text) is k.
local function pick(k)
  return function(items)
    for _, it in ipairs(items) do
      if it == k or (type(it) == "table" and it.key == k) then return it end
    end
    error("no item " .. k)
  end
end
local function say(text) return function() return text end end
local function cancel() return nil end

return function(t, env)
  if not env.url then
    t.ok(false, "the simulator URL is given (DR_SIM_URL)")
    return
  end
  local dr = require "deepresearch"
  local nv = require "deepresearch.nvim"
  local notes = {}
  local function setup(extra)
    local opts = {
      base_url = env.url, token = "test-token", interval = 0.05, max_interval = 0.05,
      tick_ms = 20, open = "tab", notify_every = 0, max_connections = 4,
      notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end,
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    nv.setup(opts)
  end
  local valyu = dr.client{ provider = "valyu", base_url = env.url, api_key = VALYU_KEY }
  local function last_job() return nv.jobs()[#nv.jobs()] end
  local function note_with(needle, level)
    for _, n in ipairs(notes) do
      if has(n.msg, needle) and (level == nil or n.level == level) then return n end
    end
    return nil
  end

  -- setup{ provider = }: the descriptor's create, id field, report buffer.
  setup{ provider = "valyu", token = VALYU_KEY, mode = "fast" }
  vim.cmd("DeepResearch " .. query(1))
  local job = last_job()
  t.ok(vim.wait(20000, function() return finished(job) end, 10) and job.state == "done",
    "setup{ provider = 'valyu' }: :DeepResearch runs a Valyu task to done", tostring(job.err))
  local task = job.id and valyu:get(job.id)
  t.ok(task and task.query == query(1) and task.mode == "fast" and job.provider == "valyu",
    "the create went through the descriptor (query, and setup's mode flag)", vim.inspect(task))
  local buf = (nv.report_buffer(job.id) or -1)
  t.ok(buf > 0 and vim.bo[buf].filetype == "markdown" and #buffer_text(buf) > 100,
    "the report opens in deepresearch://{deepresearch_id}", tostring(job.id))
  vim.cmd("tabonly")

  -- The per-command override: the top-level token and base_url are the setup provider's, and
  -- providers.<name> holds another's.
  setup{ providers = { valyu = { token = VALYU_KEY, base_url = env.url } } }
  vim.cmd("DeepResearch provider=valyu mode=heavy " .. query(2))
  job = last_job()
  local heavy = job
  t.ok(vim.wait(10000, function() return job.id ~= nil or finished(job) end, 10) and job.id,
    ":DeepResearch provider=valyu creates a task", tostring(job.err))
  task = job.id and valyu:get(job.id)
  t.ok(job.provider == "valyu" and task and task.mode == "heavy" and task.query == query(2),
    ":DeepResearch provider=valyu mode=heavy {query} creates a Valyu task in heavy mode",
    vim.inspect(task))
  notes = {}
  vim.cmd("DeepResearch provider=valyu depth=high " .. query(3))
  job = last_job()
  local n
  vim.wait(2000, function()
    n = note_with("take no 'depth'", vim.log.levels.ERROR)
    return n ~= nil
  end, 10)
  t.ok(job.state == "failed" and n and has(n.msg, "--depth") and job.id == nil,
    "another provider's flag is refused before sending, with that provider's hint",
    vim.inspect(notes))
  vim.cmd("DeepResearch depth=high " .. query(4))
  job = last_job()
  t.ok(vim.wait(10000, function() return job.task ~= nil or finished(job) end, 10) and
    job.provider == nv.provider() and job.task and job.task.depth == "high",
    "without provider=, the setup's provider takes its own flag", tostring(job.err))
  t.ok(not pcall(nv.setup, { mode = "fast" }) and pcall(nv.setup, { provider = "valyu",
    mode = "fast" }), "setup refuses a flag its provider does not take, and takes its own")
  local ok, err = pcall(nv.setup, { providers = { nobody = {} } })
  t.ok(not ok and has(tostring(err), "unknown provider 'nobody'"),
    "setup refuses an unknown provider in providers", tostring(err))

  -- The list reads the descriptor's columns; <CR> waits on the listed provider's task.
  setup{ providers = { valyu = { token = VALYU_KEY, base_url = env.url } } }
  vim.cmd("DeepResearchList! provider=valyu")
  local function list_lines()
    local b = vim.fn.bufnr("deepresearch://tasks")
    return b > 0 and vim.api.nvim_buf_get_lines(b, 0, -1, false) or {}
  end
  vim.wait(10000, function()
    return (list_lines()[1] or ""):match("^ID%s+STATUS%s+CREATED%s+QUERY$") ~= nil
  end, 10)
  local lbuf = vim.fn.bufnr("deepresearch://tasks")
  local lines = list_lines()
  t.ok(lines[1] and lines[1]:match("^ID%s+STATUS%s+CREATED%s+QUERY$") and
    has(table.concat(lines, "\n"), tostring(heavy.id)),
    ":DeepResearchList provider=valyu shows the descriptor's columns and the tasks",
    table.concat(lines, "\n"))
  vim.api.nvim_set_current_buf(lbuf)
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  local line_id = lines[2] and lines[2]:match("^(%S+)")
  nv.wait_at_cursor()
  job = last_job()
  t.ok(job.provider == "valyu" and job.id == line_id and
    vim.wait(20000, function() return finished(job) end, 10) and job.state == "done",
    "<CR> in the list waits on that Valyu task", tostring(job.err))
  vim.cmd("tabonly")

  -- The token from the descriptor's token_env when setup gives none.
  vim.env.VALYU_API_KEY = VALYU_KEY
  setup{ provider = "valyu", token = false, mode = "fast" }
  vim.cmd("DeepResearch " .. query(5))
  job = last_job()
  t.ok(vim.wait(10000, function() return job.id ~= nil or finished(job) end, 10) and job.id,
    "the token comes from the descriptor's token_env (VALYU_API_KEY)", tostring(job.err))
  vim.wait(20000, function() return finished(job) end, 10)
  vim.env.VALYU_API_KEY = nil
  vim.cmd("tabonly")

  -- Checkpoints: asked, answered, polled on to the end. The answers depend on what is asked:
  -- the source review lists as many domains as the task cites (the first excluded, the rest
  -- included).
  setup{ provider = "valyu", token = VALYU_KEY, mode = "fast" }
  notes = {}
  local win = vim.api.nvim_get_current_win()
  local answers = {
    say("The last 24 months"), say(""),
    pick("amend"), say("Focus on Europe"),
    pick("choose"),
  }
  local domain_answers, outline_given = 0, false
  local ui = script_ui({})
  local function answer(kind, items, opts)
    local prompt = opts.prompt or ""
    if has(prompt, "review the report outline") then
      outline_given = true
      return pick("approve")(items)
    end
    if kind == "select" and not has(prompt, "review the") then
      domain_answers = domain_answers + 1
      return domain_answers == 1 and "exclude" or "include"
    end
    local a = table.remove(answers, 1)
    return a and a(items, opts)
  end
  vim.ui.select = function(items, opts, cb)
    ui.asked[#ui.asked + 1] = { kind = "select", prompt = opts.prompt, items = items }
    ui.windows[#ui.windows + 1] = vim.api.nvim_get_current_win()
    cb(answer("select", items, opts))
  end
  vim.ui.input = function(opts, cb)
    ui.asked[#ui.asked + 1] = { kind = "input", prompt = opts.prompt }
    ui.windows[#ui.windows + 1] = vim.api.nvim_get_current_win()
    cb(answer("input", nil, opts))
  end
  nv.research(query(6), { params = { hitl = HITL_ALL } })
  job = last_job()
  local done = vim.wait(30000, function() return finished(job) end, 10)
  ui.restore()
  t.ok(done and job.state == "done", "a task with all four checkpoints, answered through " ..
    "vim.ui, runs to done", tostring(job.err) .. " " .. vim.inspect(notes))
  task = job.id and valyu:get(job.id)
  local hist = task and task.hitl_history or {}
  local by_type = {}
  for _, h in ipairs(hist) do by_type[h.type] = h.response end
  local pq, pr, sr, orv = by_type.planning_questions, by_type.plan_review,
    by_type.source_review, by_type.outline_review
  t.ok(pq and pq.answers and pq.answers[1].answer == "The last 24 months" and
    pq.answers[2].answer == "No preference: use your judgement." and
    has(pq.answers[1].question, "time period"),
    "planning questions: each answered through vim.ui.input (an empty answer leaves it to " ..
      "the agent)", vim.inspect(pq))
  t.ok(pr and pr.approved == true and pr.modifications == "Focus on Europe",
    "plan review: 'approve with changes' sends approved and the modifications", vim.inspect(pr))
  t.ok(sr and #sr.excluded_domains == 1 and #sr.included_domains == domain_answers - 1 and
    domain_answers > 1, "source review: include or exclude per domain through vim.ui.select",
    vim.inspect(sr))
  t.ok(orv and orv.approved == true and outline_given, "outline review: approved as proposed",
    vim.inspect(orv))
  local same_win = true
  for _, w in ipairs(ui.windows) do same_win = same_win and w == win end
  t.ok(#ui.windows > 0 and same_win, "the prompts open in place: the current window never " ..
    "changed while asking", vim.inspect(ui.windows))
  local multi
  for _, n2 in ipairs(notes) do
    if has(n2.msg, "\n") then multi = n2.msg end
  end
  t.ok(multi == nil and note_with("needs your input", vim.log.levels.WARN) ~= nil,
    "checkpoint notices are one-line notifications (no hit-enter prompt)", tostring(multi))
  vim.cmd("tabonly")

  -- checkpoints = "notify": nothing asked until :DeepResearchRespond; the task pauses after five
  -- unanswered (virtual) minutes, and a response resumes it.
  ui = script_ui({ pick("approve") })
  setup{ provider = "valyu", token = VALYU_KEY, mode = "fast", checkpoints = "notify" }
  notes = {}
  nv.research(query(7), { params = { hitl = { plan_review = true } } })
  job = last_job()
  t.ok(vim.wait(10000, function() return job.state == "input_required" and
    note_with(":DeepResearchRespond " .. tostring(job.id), vim.log.levels.WARN) ~= nil end, 10)
    and #ui.asked == 0 and has(nv.status(), "1 needs input") and
    note_with(":DeepResearchRespond " .. tostring(job.id), vim.log.levels.WARN) ~= nil,
    "checkpoints = 'notify': the job waits for input, nothing is asked, the notice says how " ..
      "to answer", nv.status() .. " " .. vim.inspect(notes))
  local paused = vim.wait(15000, function()
    local tk = valyu:get(job.id)
    return tk and tk.status == "paused"
  end, 100)
  t.ok(paused, "unanswered, the task pauses on the server")
  vim.cmd("DeepResearchRespond " .. tostring(job.id))
  t.ok(#ui.asked == 1 and has(ui.asked[1].prompt, "review the research plan"),
    ":DeepResearchRespond {id} asks about the open checkpoint", vim.inspect(ui.asked))
  done = vim.wait(30000, function() return finished(job) end, 10)
  ui.restore()
  task = valyu:get(job.id)
  t.ok(done and job.state == "done" and task and task.hitl_history[1] and
    task.hitl_history[1].response.approved == true,
    "answered while paused, the task is queued again and runs to done", tostring(job.err))
  vim.cmd("tabonly")

  -- A cancelled prompt leaves the checkpoint open; :DeepResearchRespond asks again.
  ui = script_ui({ cancel, pick("approve") })
  setup{ provider = "valyu", token = VALYU_KEY, mode = "fast" }
  notes = {}
  nv.research(query(8), { params = { hitl = { outline_review = true } } })
  job = last_job()
  t.ok(vim.wait(10000, function() return #ui.asked == 1 end, 10) and
    vim.wait(200, function() return false end, 10) == false and
    job.state == "input_required" and note_with("still waiting for your input") ~= nil,
    "a cancelled prompt leaves the task waiting and says how to answer later",
    job.state .. " " .. vim.inspect(notes))
  vim.cmd("DeepResearchRespond")
  done = vim.wait(30000, function() return finished(job) end, 10)
  ui.restore()
  t.ok(done and job.state == "done" and #ui.asked == 2,
    ":DeepResearchRespond (no id) asks about the first waiting task; it runs to done",
    tostring(job.err))
  vim.cmd("tabonly")

  -- checkpoints = "approve": the proposals accepted, nothing asked.
  ui = script_ui({})
  setup{ provider = "valyu", token = VALYU_KEY, mode = "fast", checkpoints = "approve" }
  nv.research(query(9), { params = { hitl = HITL_ALL } })
  job = last_job()
  done = vim.wait(30000, function() return finished(job) end, 10)
  ui.restore()
  task = job.id and valyu:get(job.id)
  t.ok(done and job.state == "done" and #ui.asked == 0 and task and #task.hitl_history == 4,
    "checkpoints = 'approve': four checkpoints accepted as proposed, nothing asked",
    tostring(job.err))
  vim.cmd("tabonly")

  nv.close()
  valyu:close()
end

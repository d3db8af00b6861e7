-- :DeepResearch for 20 tasks against the simulator while a 10 ms vim.loop timer measures how
-- long the editor's event loop ever goes without running it. The same measurement with the
-- plugin given a blocking driver (setup{ driver = blocking_driver }, defined here: each request
-- runs to its end in the foreground with the blocking client) must fail, which shows the check
-- can fail.
-- luacheck: globals vim
local GAP_LIMIT_MS = 50
local N = 20

local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

-- The driver the blocking check injects: the poller's calls, each answered at once by the
-- blocking client, so the editor waits in the foreground. Nothing is ever left to step.
local function blocking_driver(client)
  return {
    create = function(_, params, cb) cb(client:create(params)) end,
    wait = function(_, id, opts, cb) cb(client:wait(id, opts)) end,
    list = function(_, query, cb) cb(client:list(query)) end,
    add = function(_, name, cb, ...) cb(client[name](client, ...)) end,
    step = function() return 0 end,
    pending = function() return 0 end,
    close = function() end,
  }
end

local function brief(i)
  return "We sell freight-visibility software. Research Flexport (flexport.com): tooling, " ..
    "leadership changes and public statements in the last 12 months, angle " .. i .. "."
end

-- A 10 ms repeating timer recording the gaps between its ticks (in the fast, luv context).
local function recorder()
  local r = { gaps = {}, max = 0 }
  local last = vim.loop.hrtime()
  local timer = vim.loop.new_timer()
  timer:start(10, 10, function()
    local now = vim.loop.hrtime()
    local gap = (now - last) / 1e6
    last = now
    r.gaps[#r.gaps + 1] = gap
    if gap > r.max then r.max = gap end
  end)
  function r.stop()
    timer:stop()
    timer:close()
  end
  return r
end

--- The check under test: did the event loop ever stall for GAP_LIMIT_MS or more?
local function gap_check(r)
  return r.max < GAP_LIMIT_MS and #r.gaps >= 5,
    string.format("largest gap %.1f ms over %d ticks (limit %d ms)", r.max, #r.gaps, GAP_LIMIT_MS)
end

local function split_lines(s)
  local lines = {}
  for line in (s .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  return lines
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

-- Every footnote reference [^n] has its definition line "[^n]: ...".
local function citations_resolve(text)
  local defs, refs = {}, 0
  for n in text:gmatch("\n%[%^(%d+)%]:") do defs[n] = true end
  for n, after in text:gmatch("%[%^(%d+)%](.?)") do
    if after ~= ":" then
      refs = refs + 1
      if not defs[n] then return false, "[^" .. n .. "] has no definition" end
    end
  end
  if refs == 0 then return false, "no citations" end
  if has(text, "no matching source") then return false, "a dangling citation" end
  return true
end

local function all_finished(jobs)
  for _, j in ipairs(jobs) do
    if j.state ~= "done" and j.state ~= "failed" then return false end
  end
  return true
end

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
      base_url = env.url, token = "test-token", interval = 0.05, max_interval = 0.05, tick_ms = 20,
      open = "tab",
      notify_every = 0, max_connections = 4,
      notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end,
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    nv.setup(opts)
  end
  local checker = dr.client{ base_url = env.url, token = "test-token" }

  -- Non-blocking: 20 tasks at once.
  setup()
  local rec = recorder()
  local first = #nv.jobs() + 1
  for i = 1, N do vim.cmd("DeepResearch " .. brief(i)) end
  local jobs = {}
  for i = first, #nv.jobs() do jobs[#jobs + 1] = nv.jobs()[i] end
  t.is(#jobs, N, ":DeepResearch started " .. N .. " jobs without waiting")
  t.ok(has(nv.status(), "research: " .. N .. " running"), "status() shows the running tasks",
    nv.status())
  local finished = vim.wait(90000, function() return all_finished(jobs) end, 10)
  rec.stop()
  -- A report is filled on the main loop just after its task ends.
  vim.wait(5000, function()
    for _, j in ipairs(jobs) do
      if j.state == "done" and not nv.report_buffer(j.id) then return false end
    end
    return true
  end, 10)
  t.ok(finished, "all " .. N .. " tasks finished")
  local ok, why = gap_check(rec)
  t.ok(ok, "the editor never blocked while " .. N .. " tasks ran: " .. why, why)
  t.is(nv.status(), "", "status() is empty when nothing runs")

  local done, same, resolved, from_report = 0, 0, 0, 0
  local report_ok, report = pcall(require, "deepresearch.report")
  local problems = {}
  for i, job in ipairs(jobs) do
    if job.state == "done" then
      done = done + 1
      local buf = (nv.report_buffer(job.id) or -1)
      local fresh = dr.assert(checker:get(job.id))
      if buf > 0 then
        local text = buffer_text(buf)
        if text == table.concat(split_lines(nv.render(fresh)), "\n") and fresh.brief == brief(i)
          and vim.bo[buf].filetype == "markdown" then
          same = same + 1
        else
          problems[#problems + 1] = job.id .. ": buffer differs from the rendered report"
        end
        if report_ok then
          local want = report.render(fresh, { style = "footnotes" })
          if want and text == table.concat(split_lines(want), "\n") then
            from_report = from_report + 1
          end
        end
        local cited, cwhy = citations_resolve(text)
        if cited then
          resolved = resolved + 1
        else
          problems[#problems + 1] = job.id .. ": " .. cwhy
        end
      else
        problems[#problems + 1] = job.id .. ": no buffer deepresearch://" .. job.id
      end
    else
      problems[#problems + 1] = tostring(job.id) .. ": " .. tostring(job.state) .. " " ..
        tostring(job.err)
    end
  end
  t.is(done, N, "every task ended done")
  t.is(same, N, "each report opened in its own markdown buffer holding the rendered report",
    table.concat(problems, "\n"))
  if report_ok then
    t.is(from_report, N, "the buffers hold deepresearch.report.render(task, {style = 'footnotes'})")
  else
    t.skip("the buffers hold deepresearch.report.render output",
      "deepresearch.report not available")
  end
  t.is(resolved, N, "every citation in the report buffers resolves to a source")
  local progress = 0
  for _, n in ipairs(notes) do
    if has(n.msg, "in_progress") then progress = progress + 1 end
  end
  if dr.core.transport == "curl" then
    -- A process and a handshake per request (tens of ms, hundreds on a busy machine): 20 tasks
    -- over max_connections = 4 are polled too seldom to catch each one in_progress at the
    -- simulator's speed. Reused connections are what the core adds (issue 17 item 9).
    t.skip("progress reached vim.notify for every task (" .. progress .. " notifications)",
      "the curl transport polls 20 tasks over 4 connections too slowly to see every " ..
        "in_progress state at simulator speed 300; the core's reused connections do")
  else
    t.ok(progress >= N,
      "progress reached vim.notify for every task (" .. progress .. " notifications)")
  end

  -- :DeepResearchWait on a finished task refreshes its buffer; :DeepResearchList lists tasks.
  local some = jobs[1]
  local before = (nv.report_buffer(some.id) or -1)
  vim.cmd("DeepResearchWait " .. tostring(some.id))
  local waited = nv.jobs()[#nv.jobs()]
  t.ok(vim.wait(10000, function() return waited.state == "done" end, 10),
    ":DeepResearchWait on a done task ends done", tostring(waited.err))
  t.is((nv.report_buffer(some.id) or -1), before,
    ":DeepResearchWait reuses the report buffer")

  vim.cmd("DeepResearchList!")
  local listed = vim.wait(10000, function() return vim.fn.bufnr("deepresearch://tasks") > 0 end, 10)
  local list_text = listed and buffer_text(vim.fn.bufnr("deepresearch://tasks")) or ""
  local found = 0
  for _, job in ipairs(jobs) do
    if has(list_text, job.id) then found = found + 1 end
  end
  t.is(found, N, ":DeepResearchList shows the tasks in a buffer")

  -- Errors are notifications, never raised: a rejected brief, and no brief at all.
  notes = {}
  vim.cmd("DeepResearch please look into the general market for things like this")
  local rejected = nv.jobs()[#nv.jobs()]
  local err_note
  vim.wait(30000, function()
    for _, n in ipairs(notes) do
      if n.level == vim.log.levels.ERROR then err_note = n.msg end
    end
    return err_note ~= nil or rejected.state == "done"
  end, 10)
  t.ok(rejected.state == "failed" and has(err_note, "task_failed")
    and has(err_note, "no identifiable"),
    "a rejected brief ends in an error notification", tostring(err_note))
  vim.cmd("DeepResearch depth=high " .. brief(200))
  local deep = nv.jobs()[#nv.jobs()]
  vim.wait(10000, function() return deep.task ~= nil end, 10)
  t.ok(deep.task and deep.task.depth == "high" and deep.task.brief == brief(200),
    ":DeepResearch depth=high {brief} creates the task at that depth", vim.inspect(deep.task))
  notes = {}
  vim.cmd("DeepResearch")
  t.ok(notes[1] and notes[1].level == vim.log.levels.ERROR and has(notes[1].msg, "usage"),
    ":DeepResearch without a brief notifies its usage")

  -- :checkhealth with everything in place.
  vim.cmd("checkhealth deepresearch")
  local health = buffer_text(0)
  t.ok((has(health, "OK: deepresearch.core") or (dr.core.transport == "curl" and
    has(health, "OK: transport: curl"))) and has(health, "accepted the token")
    and not has(health, "ERROR"),
    ":checkhealth deepresearch reports no error when the module, cjson and the token " ..
      "are in place", health)
  -- Issue 16: every other registered provider's key variable is named (provider=NAME needs it).
  local named, reg = true, require("deepresearch.providers")
  for _, n in ipairs(reg.names()) do
    if n ~= reg.default_name() then named = named and has(health, reg.get(n).token_env) end
  end
  t.ok(named, ":checkhealth deepresearch names each other provider's key variable", health)
  vim.cmd("tabclose")

  -- A blocking driver (injected by this test): the same check must fail, proving it can.
  setup{ driver = blocking_driver }
  local brec = recorder()
  local bjobs = {}
  for i = 1, 2 do
    vim.cmd("DeepResearch " .. brief(100 + i))
    bjobs[i] = nv.jobs()[#nv.jobs()]
    -- Let the timer see the loop again (the create goes out once its journal line is written).
    vim.wait(5000, function() return bjobs[i].state == "done" or bjobs[i].state == "failed" end,
      10)
  end
  brec.stop()
  t.ok(bjobs[1].state == "done" and bjobs[2].state == "done", "a blocking driver also ends done",
    tostring(bjobs[1].err))
  local bok, bwhy = gap_check(brec)
  t.ok(not bok, "with a blocking wait the gap check fails, as it must: " .. bwhy, bwhy)
  vim.wait(2000, function() return nv.report_buffer(bjobs[1].id) ~= nil end, 10)
  t.ok((nv.report_buffer(bjobs[1].id) or -1) > 0,
    "a blocking driver opens the report too")

  -- research's older option name output_schema still sends the schema (as schema does).
  setup()
  local schema = { type = "object", properties = { ceo = { type = "string" } } }
  local sjob = nv.research(brief(200), { output_schema = schema })
  vim.wait(30000, function() return all_finished({ sjob }) end, 10)
  local sent = sjob.id and checker:get(sjob.id)
  t.ok(type(sent) == "table" and type(sent.output_schema) == "table"
    and type(sent.output_schema.properties) == "table"
    and sent.output_schema.properties.ceo ~= nil,
    "research{ output_schema = } creates the task with that schema", tostring(sjob.err))

  nv.close()
  checker:close()
end

-- Issue 17 items 1, 2 and 4 in a second Neovim with an 80x24 UI (spec/nvim/child.lua), keys
-- typed as from a keyboard, against the simulator (its virtual clock runs on while the editor
-- restarts):
--   2. :DeepResearch with a 600-character brief raises no hit-enter prompt, and the create
--      reaches the simulator with no key pressed; polls go on in command-line mode.
--   1. typing in insert mode while a task finishes: the buffer gets every key, the window
--      never changes; the report opens (open = "tab") once back in Normal mode.
--   4. quit Neovim between create and completion: the next start waits on the task again and
--      announces it once; the start after that announces nothing.
-- luacheck: globals vim
local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

local function brief(tag, n)
  local b = "We sell freight-visibility software. Research Flexport (flexport.com): tooling, " ..
    "leadership changes and public statements in the last 12 months, " .. tag .. "."
  while n and #b < n do b = b .. " Cover its customers, pricing and partners in detail." end
  return n and b:sub(1, n) or b
end

return function(t, env)
  if not env.url then
    t.ok(false, "the simulator URL is given (DR_SIM_URL)")
    return
  end
  if vim.fn.executable("nvim") ~= 1 then
    t.skip("a second Neovim", "nvim is not on PATH")
    return
  end
  if not os.getenv("DEEPRESEARCH_JOURNAL") then
    vim.env.DEEPRESEARCH_JOURNAL = vim.fn.tempname() .. "-journal.jsonl"
  end
  local child = dofile(env.root .. "/spec/nvim/child.lua")
  local dr = require "deepresearch"
  local checker = dr.client{ base_url = env.url, token = "test-token" }

  -- Item 2: a 600-character brief, typed, in an 80-column UI, with the built-in vim.notify.
  local c = child.start(env.root)
  c:setup(env.url, { builtin_notify = true })
  local long = brief("hit-enter check", 600)
  c:input(":DeepResearch " .. long .. "<CR>")
  local prompt, id = false, nil
  child.wait(10000, function()
    local m = c:mode()
    if m.mode == "r" or m.blocking then prompt = true return true end
    id = c:lua([[local j = require("deepresearch.nvim").jobs(); j = j[#j]
      return j and j.id or nil]])
    if id == vim.NIL then id = nil end
    return id ~= nil
  end)
  t.ok(not prompt, ":DeepResearch {600 characters} raises no hit-enter prompt",
    vim.inspect(c:mode()))
  local task = id and checker:get(id)
  t.ok(task and task.brief == long, "the create reached the simulator with no key pressed",
    tostring(id))
  if prompt then
    c:stop()
  else
    local msgs = vim.rpcrequest(c.ch, "nvim_exec", "messages", true)
    local widest = 0
    for l in (msgs .. "\n"):gmatch("(.-)\n") do
      widest = math.max(widest, vim.fn.strdisplaywidth(l))
    end
    t.ok(widest <= 80 and has(msgs, "creating"), "every message fits one 80-column line (" ..
      widest .. ")", msgs)
    -- Polls go on while the user types a command line: the task ends done meanwhile.
    c:input(":echo 'typing a command")
    local finished = child.wait(20000, function()
      return c:lua([[local j = require("deepresearch.nvim").jobs(); return j[#j].state]]) ==
        "done"
    end)
    local m = c:mode()
    t.ok(finished and m.mode == "c", "the task was polled to done while in command-line mode",
      vim.inspect(m))
    c:input("<Esc>")
    -- Two errors in one turn of the loop (nvim_err_writeln twice would ask for Enter).
    c:lua([[local config = require("deepresearch.nvim.config")
      config.notify("deepresearch: first error", vim.log.levels.ERROR)
      config.notify("deepresearch: second error", vim.log.levels.ERROR)]])
    child.wait(300, function() return false end)
    local m2 = c:mode()
    t.ok(m2.mode == "n" and not m2.blocking, "two error messages at once raise no prompt",
      vim.inspect(m2))
    c:stop()
  end

  -- Item 1: typing in insert mode while a task finishes, open = "tab".
  c = child.start(env.root)
  c:setup(env.url, { open = "tab" })
  c:lua([[vim.cmd("edit " .. vim.fn.tempname() .. ".txt")]])
  local win = c:lua("return vim.api.nvim_get_current_win()")
  local buf = c:lua("return vim.api.nvim_get_current_buf()")
  c:lua("vim.cmd(...)", "DeepResearch " .. brief("typing check"))
  c:input("i")
  local typed, extra = {}, 0
  local letters = "abcdefghijklmnopqrstuvwxyz"
  local changed = false
  child.wait(30000, function()
    local k = letters:sub(#typed % 26 + 1, #typed % 26 + 1)
    c:input(k)
    typed[#typed + 1] = k
    local s = c:lua([[local j = require("deepresearch.nvim").jobs(); j = j[#j]
      return { j.state, j.announced == true, vim.api.nvim_get_current_win(),
        vim.api.nvim_get_mode().mode }]])
    if s[3] ~= win then changed = true end
    if s[1] == "done" and s[2] then extra = extra + 1 end
    return extra >= 10 or s[1] == "failed"
  end, 20)
  local after = c:lua([[local b = ...
    return { vim.api.nvim_buf_get_lines(b, 0, -1, false)[1], vim.api.nvim_get_current_win(),
      vim.fn.tabpagenr("$"), vim.api.nvim_get_mode().mode }]], buf)
  t.ok(extra >= 10, "the task finished while typing in insert mode (" .. #typed .. " keys)")
  t.ok(after[1] == table.concat(typed), "the user's buffer got every keystroke",
    vim.inspect({ after[1], table.concat(typed) }))
  t.ok(not changed and after[2] == win and after[3] == 1 and after[4] == "i",
    "the current window never changed and no tab opened in insert mode", vim.inspect(after))
  c:input("<Esc>")
  local opened = child.wait(5000, function()
    return c:lua([[local nv = require("deepresearch.nvim"); local j = nv.jobs(); j = j[#j]
      return vim.fn.tabpagenr("$") == 2 and
        vim.api.nvim_get_current_buf() == nv.report_buffer(j.id)]])
  end)
  t.ok(opened, "back in Normal mode, the report opens in a tab")
  c:stop()

  -- Item 4: quit between create and completion; the next start waits again, announces once.
  c = child.start(env.root)
  c:setup(env.url, { open = "notify" })
  c:lua("vim.cmd(...)", "DeepResearch depth=xhigh " .. brief("restart check"))
  local rid
  child.wait(10000, function()
    rid = c:lua([[local j = require("deepresearch.nvim").jobs(); return j[#j].id]])
    if rid == vim.NIL then rid = nil end
    return rid ~= nil
  end)
  c:input(":qa!<CR>")
  vim.fn.jobwait({ c.ch }, 5000)
  local at_quit = rid and checker:get(rid)
  t.ok(at_quit and at_quit.status ~= "done", "Neovim quit while the task ran (" ..
    tostring(at_quit and at_quit.status) .. ")")
  c = child.start(env.root)
  c:setup(env.url, { open = "notify" })
  local announced = child.wait(30000, function()
    return c:lua([[local id = ...
      local nv = require("deepresearch.nvim")
      for _, n in ipairs(_G.notes) do
        if n.msg:find(nv.short(id) .. ": done", 1, true) then return true end
      end
      return false]], rid) == true
  end)
  local state = c:lua([[local id = ...
    local nv = require("deepresearch.nvim")
    local done = 0
    for _, n in ipairs(_G.notes) do
      if n.msg:find(": done", 1, true) then done = done + 1 end
    end
    return { done = done, jobs = #nv.jobs(), buf = nv.report_buffer(id) ~= nil }]], rid)
  t.ok(announced and state.done == 1 and state.jobs == 1 and state.buf,
    "after a restart the task is waited on again and announced once", vim.inspect(state))
  -- The journal's lines are written off the main loop, a moment after the announcement: the
  -- child says when none is left to write (its seen line is then in the file); read after that.
  local flushed = child.wait(30000, function()
    return c:lua([[return require("deepresearch.nvim.history").pending_writes()]]) == 0
  end)
  t.ok(flushed, "the child's journal lines are all written")
  local entry = require("deepresearch.journal").open{}:resolve(rid)
  t.ok(entry and entry.state == "done" and entry.seen == true and entry.source == "nvim",
    "the journal holds the task (source nvim), done and seen", vim.inspect(entry))
  c:stop()
  c = child.start(env.root)
  c:setup(env.url, { open = "notify" })
  local again = c:lua([[return { #require("deepresearch.nvim").jobs(), #_G.notes }]])
  t.ok(again[1] == 0 and again[2] == 0, "the start after that waits on nothing and " ..
    "announces nothing", vim.inspect(again))
  c:stop()
  checker:close()
end

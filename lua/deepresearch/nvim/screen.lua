-- Screen updates at safe moments. Network work runs in libuv callbacks (nvim/jobs.lua), which
-- may not touch the editor: what they want shown goes through M.later (vim.schedule). What
-- changes windows (opening a report) goes through M.when_safe: only in Normal mode with nothing
-- half-typed, so a report never takes keys meant for an insert, a command line, an operator or
-- a terminal. Messages are one line that fits v:echospace, so none raises a hit-enter prompt.
local M = {}

M.messages = {} -- the full text of the newest messages (a long one is cut on screen)
local MAX_MESSAGES = 100

-- Work for the main loop, first in first out, one piece per turn of the event loop: a
-- report rendered is a few milliseconds, and twenty of them in one turn would stall the
-- editor (and its timers) for as long.
local main = {}
local pump_timer, pump_armed

local pump
local function arm_pump()
  if pump_armed then return end
  pump_armed = true
  pump_timer = pump_timer or vim.loop.new_timer()
  pump_timer:start(0, 0, function() vim.schedule(pump) end)
end

pump = function()
  pump_armed = false
  local fn = table.remove(main, 1)
  if fn then
    local ok, err = pcall(fn)
    if not ok then M.notify("deepresearch: " .. tostring(err), vim.log.levels.ERROR) end
  end
  if main[1] then arm_pump() end
end

--- Runs fn now, or on the main loop when called from a libuv callback (a fast context) or
-- while earlier work still waits there (the order is kept).
function M.later(fn)
  if vim.in_fast_event() or main[1] then
    main[#main + 1] = fn
    return arm_pump()
  end
  return fn()
end

--- Whether windows may change now: Normal mode, no pending operator or typeahead wait, not in
-- the command-line window.
function M.safe()
  if vim.in_fast_event() then return false end
  -- mode(1) is "n" in plain Normal mode only ("no" with an operator pending, "niI" after
  -- i_CTRL-O); blocking: waiting for more of a mapping or a count.
  return vim.fn.mode(1) == "n" and not vim.api.nvim_get_mode().blocking and
    vim.fn.getcmdwintype() == ""
end

local queue = {}
local retry

-- Runs the first window change waiting, if it is safe now; the next one a turn later.
local function flush()
  if not M.safe() then return false end
  local fn = table.remove(queue, 1)
  if fn then
    local ok, err = pcall(fn)
    if not ok then M.notify("deepresearch: " .. tostring(err), vim.log.levels.ERROR) end
  end
  if queue[1] then
    main[#main + 1] = function() if flush() and not queue[1] then M.disarm() end end
    arm_pump()
  end
  return true
end

local function arm()
  if retry then return end
  -- ModeChanged (Neovim 0.7) catches the return to Normal mode; the timer covers a state
  -- that ends without a mode change (a pending operator, a prompt).
  vim.api.nvim_create_autocmd("ModeChanged", {
    group = vim.api.nvim_create_augroup("deepresearch_screen", { clear = true }),
    pattern = "*:n",
    callback = function()
      vim.schedule(function() if flush() and not queue[1] then M.disarm() end end)
    end,
  })
  retry = vim.loop.new_timer()
  retry:start(200, 200, vim.schedule_wrap(function()
    if flush() and not queue[1] then M.disarm() end
  end))
end

function M.disarm()
  if retry then
    retry:stop()
    if not retry:is_closing() then retry:close() end
    retry = nil
  end
  pcall(vim.api.nvim_del_augroup_by_name, "deepresearch_screen")
end

--- Runs fn (which may open windows) at the next safe moment: now when safe.
function M.when_safe(fn)
  M.later(function()
    queue[#queue + 1] = fn
    if flush() and not queue[1] then return end
    arm()
  end)
end

--- Drops what waits for a safe moment (setup, close).
function M.reset()
  queue, main = {}, {}
  M.disarm()
end

-- The notifier: setup's notify, else vim.notify. The built-in one echoes, so a message wider
-- than v:echospace would raise a hit-enter prompt: it is cut to fit (the full text stays in
-- M.messages). A replacement (nvim-notify) gets the whole line.
local builtin = vim.notify

local function fit(msg)
  local room = tonumber(vim.v.echospace) or 60
  if room < 12 then room = 12 end
  if vim.fn.strdisplaywidth(msg) <= room then return msg end
  local out = vim.fn.strcharpart(msg, 0, room - 1)
  while vim.fn.strdisplaywidth(out) > room - 1 do
    out = vim.fn.strcharpart(out, 0, vim.fn.strchars(out) - 1)
  end
  return out .. "…"
end

--- One line to the notifier; returns what it returned (nvim-notify: a record to replace).
-- opts.replace: that record. Safe from a fast context (it is then sent on the main loop, and
-- returns nothing).
function M.notify(msg, level, opts, notifier)
  msg = (tostring(msg):gsub("%s*\n%s*", " "))
  if vim.in_fast_event() then
    vim.schedule(function() M.notify(msg, level, opts, notifier) end)
    return nil
  end
  table.insert(M.messages, msg)
  if #M.messages > MAX_MESSAGES then table.remove(M.messages, 1) end
  local fn = notifier or vim.notify
  local o = { title = "deepresearch" }
  for k, v in pairs(opts or {}) do o[k] = v end
  if fn == builtin then
    -- Echoed after the command that called us: a message echoed while a command typed over
    -- several screen lines runs raises a hit-enter prompt, one echoed after it does not. And
    -- echoed rather than vim.notify's nvim_err_writeln: two errors in one turn of the loop
    -- would raise one too.
    msg = fit(msg)
    local lv = vim.log.levels
    local hl = (level == lv.ERROR and "ErrorMsg") or (level == lv.WARN and "WarningMsg") or nil
    vim.schedule(function() pcall(vim.api.nvim_echo, { { msg, hl } }, true, {}) end)
    return nil
  end
  local ok, rec = pcall(fn, msg, level or vim.log.levels.INFO, o)
  if ok then return rec end
  return nil
end

return M

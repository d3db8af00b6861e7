-- :DeepResearchList: the journal's tasks through vim.ui.select (so telescope, fzf-lua and
-- dressing.nvim show them), one line each within 80 columns: local time, provider, state,
-- cost, brief head, under a header line. Choosing a task jumps to its open report, opens a
-- finished one, or waits on one still running.
local buffer = require "deepresearch.nvim.buffer"
local config = require "deepresearch.nvim.config"
local history = require "deepresearch.nvim.history"

local M = {}

M.WIDTH = 80
M.HEADER = "When         Provider    State      Cost    Id        Brief"

local function pad(s, n)
  s = tostring(s or "")
  local w = vim.fn.strdisplaywidth(s)
  if w > n then return vim.fn.strcharpart(s, 0, n) end
  return s .. string.rep(" ", n - w)
end

local function cost_text(c)
  local usd = type(c) == "table" and tonumber(c.usd) or tonumber(c)
  return usd and string.format("$%.2f", usd) or "-"
end

--- One entry as a line of at most M.WIDTH display columns.
function M.format(e)
  local when = e.created_at and os.date("%m-%d %H:%M", math.floor(tonumber(e.created_at))) or "?"
  local line = pad(when, 11) .. "  " .. pad(e.provider, 10) .. "  " .. pad(e.state, 9) .. "  " ..
    pad(cost_text(e.cost), 6) .. "  " .. pad(e.id and history.short(e.id) or "-", 8) .. "  " ..
    tostring(e.brief_head or ""):gsub("%s+", " ")
  if vim.fn.strdisplaywidth(line) > M.WIDTH then
    line = vim.fn.strcharpart(line, 0, M.WIDTH - 1) .. "…"
    while vim.fn.strdisplaywidth(line) > M.WIDTH do
      line = vim.fn.strcharpart(line, 0, vim.fn.strchars(line) - 2) .. "…"
    end
  end
  return line
end

--- What choosing an entry does: jump to its open report, open a done one, wait on the rest.
function M.choose(e)
  if not e then return end
  if not e.id then
    return config.notify("deepresearch: this create never answered; find the task with: " ..
      tostring(e.find or "deepresearch list"), config.levels.WARN)
  end
  local buf = buffer.find(e.id)
  local where = config.values.open == "notify" and "tab" or config.values.open
  if buf then return buffer.show(buf, where) end
  return require("deepresearch.nvim.open").open(e.id, { provider = e.provider })
end

--- Lists the journal's tasks (opts: provider, state, source) in vim.ui.select.
function M.list(opts)
  opts = opts or {}
  local entries = history.entries({ provider = opts.provider, state = opts.state,
    source = opts.source })
  if not entries[1] then
    return config.notify("deepresearch: no tasks in the journal" ..
      (history.journal() and "" or " (journalling is off)"))
  end
  vim.ui.select(entries, { prompt = M.HEADER, kind = "deepresearch.tasks",
    format_item = M.format }, M.choose)
end

return M

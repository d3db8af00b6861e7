-- :DeepResearchList! (the API's own list): the newest tasks in a scratch buffer, in the
-- provider's columns (the command's table); <CR> on a line jumps to its report when one is
-- open, else waits on that task. :DeepResearchList (the journal) is nvim/picker.lua's.
local providers = require "deepresearch.providers"
local buffer = require "deepresearch.nvim.buffer"
local config = require "deepresearch.nvim.config"
local descriptors = require "deepresearch.nvim.descriptors"
local drivers = require "deepresearch.nvim.drivers"
local jobs = require "deepresearch.nvim.jobs"
local state = require "deepresearch.nvim.state"

local M = {}

local function width(s) return vim.fn.strdisplaywidth(s) end

-- Rows of cells as lines, each column padded to its widest cell (the last one not).
local function table_lines(rows)
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, width(cell)) end
  end
  local lines = {}
  for r, row in ipairs(rows) do
    local out = {}
    for i, cell in ipairs(row) do
      out[i] = i < #row and (cell .. string.rep(" ", widths[i] - width(cell))) or cell
    end
    lines[r] = (table.concat(out, "  "):gsub("%s+$", ""))
  end
  return lines
end

local function cells(row, n)
  local out = {}
  for i = 1, n do out[i] = row[i] == nil and "" or (tostring(row[i]):gsub("%s+", " ")) end
  return out
end

local function show_list(name, tasks, err)
  if not tasks then return config.notify(tostring(err), config.levels.ERROR) end
  local ad = descriptors.adapter(name)
  local n = #ad.list_headers
  local rows, ids = { cells(ad.list_headers, n) }, {}
  for _, t in ipairs(tasks) do
    rows[#rows + 1] = cells(ad.list_row(t), n)
    ids[#rows] = descriptors.id_of(name, t)
  end
  local lines = table_lines(rows)
  if #tasks == 0 then lines[2] = "(no tasks)" end
  local where = config.values.open
  local buf, created = buffer.scratch("deepresearch://tasks", where == "notify" and "tab" or where)
  if created then
    vim.api.nvim_buf_set_keymap(buf, "n", "<CR>",
      "<cmd>lua require('deepresearch.nvim').wait_at_cursor()<CR>",
      { noremap = true, silent = true })
  end
  state.listing = { provider = name, ids = ids }
  buffer.set_lines(buf, lines)
  return buf
end

--- Lists the newest tasks in a scratch buffer (the provider's columns); <CR> on a line waits
-- on (and opens) that task. opts: provider, limit.
function M.list(opts)
  opts = opts or {}
  local name = opts.provider or config.provider()
  local d = providers.get(name)
  if d and not providers.has_list(d) then
    -- The API cannot list tasks: say so, as the command does (err code "unsupported").
    return show_list(name, nil, require("deepresearch.base.errors").unsupported(name, "list",
      d.cli.name))
  end
  local show = function(tasks, lerr)
    require("deepresearch.nvim.screen").when_safe(function() show_list(name, tasks, lerr) end)
  end
  drivers.with(name, function(p, err)
    local call
    if p then call, err = drivers.recorded(d.cli.list, { limit = opts.limit or 50 }) end
    if not call then return show(nil, err) end
    local ok, e = pcall(drivers.replay, p, call, show)
    if not ok then return show(nil, e) end
    jobs.ensure_timer()
  end)
end

--- <CR> in the task list: jumps to the task's report when its buffer exists, else waits on it.
function M.wait_at_cursor()
  local listing = state.listing
  local id = listing and listing.ids[vim.api.nvim_win_get_cursor(0)[1]]
  if id == nil then return end
  local buf = buffer.find(id)
  if buf then return buffer.show(buf, "tab") end
  return jobs.wait(id, { provider = listing.provider })
end

return M

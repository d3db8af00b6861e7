-- Neovim report buffers: deepresearch://<id>, the rendered report as markdown.
local M = {}

local function split_lines(s)
  local lines = {}
  for line in (s .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  return lines
end

--- The report of a done task as markdown text, citations resolved (deepresearch.report).
-- id: the task's id (its field differs between providers), for the message when there is none.
function M.render(task, style, id)
  local text, err = require("deepresearch.report").render(task, { style = style })
  if text then return text end
  return "_No report in task " .. tostring(id) .. ": " .. tostring(err and err.message or err) ..
    "._"
end

local OPEN = { tab = "tabnew", split = "new", vsplit = "vnew", current = "enew" }
M.OPEN = OPEN

--- The scratch buffer called name, opened where ("tab" | "split" | "vsplit" | "current") when
-- it does not exist yet. Returns it, and whether it was created.
function M.scratch(name, where)
  local n = vim.fn.bufnr(name)
  if n > 0 and vim.api.nvim_buf_is_valid(n) then return n, false end
  vim.cmd(OPEN[where] or OPEN.tab)
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_name(buf, name)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  return buf, true
end

function M.set_lines(buf, lines)
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
end

--- Opens (or refreshes) the buffer deepresearch://<id> holding the rendered report.
function M.open(task, where, style, id)
  local buf = M.scratch("deepresearch://" .. tostring(id), where)
  M.set_lines(buf, split_lines(M.render(task, style, id)))
  vim.bo[buf].filetype = "markdown"
  vim.b[buf].deepresearch_task_id = id
  return buf
end

return M

-- Report buffers: named deepresearch://<provider>/<short id> <title>, so the default tab label
-- (the name's last part) reads "3f2a9c1e Flexport: tooling ...", holding the rendered report as
-- markdown; b:deepresearch_task_id holds the full id (M.find looks buffers up by it).
local M = {}

local function split_lines(s)
  local lines = {}
  for line in (s .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  return lines
end
M.split_lines = split_lines

--- The report of a done task as markdown text, citations resolved (deepresearch.report).
-- id: the task's id (its field differs between providers), for the message when there is none.
function M.render(task, style, id)
  local text, err = require("deepresearch.report").render(task, { style = style })
  if text then return text end
  return "_No report in task " .. tostring(id) .. ": " .. tostring(err and err.message or err) ..
    "._"
end

-- "notify" opens nothing by itself; :DeepResearchOpen then opens in a tab. "current" is kept
-- for setups written before "float".
local OPEN = { notify = "tabnew", tab = "tabnew", split = "new", vsplit = "vnew", float = true,
  current = "enew" }
M.OPEN = OPEN

local function float()
  local cols, lines = vim.o.columns, vim.o.lines
  local w, h = math.max(20, math.floor(cols * 0.8)), math.max(5, math.floor(lines * 0.8))
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_open_win(buf, true, { relative = "editor", width = w, height = h,
    row = math.floor((lines - h) / 2), col = math.floor((cols - w) / 2), style = "minimal",
    border = "rounded" })
  return buf
end

--- The buffer named name, or one holding b:<var> == value, if it exists.
function M.find(id)
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_valid(b) then
      local ok, v = pcall(vim.api.nvim_buf_get_var, b, "deepresearch_task_id")
      if ok and tostring(v) == tostring(id) then return b end
    end
  end
  return nil
end

--- Shows buf: jumps to a window holding it, else opens one where says.
function M.show(buf, where)
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_buf(w) == buf then
      vim.api.nvim_set_current_win(w)
      return buf
    end
  end
  if where == "float" then
    local b = float()
    vim.api.nvim_win_set_buf(0, buf)
    if b ~= buf and vim.api.nvim_buf_is_valid(b) then
      vim.api.nvim_buf_delete(b, { force = true })
    end
  else
    vim.cmd(OPEN[where] or OPEN.tab)
    local scratch = vim.api.nvim_get_current_buf()
    vim.api.nvim_win_set_buf(0, buf)
    if scratch ~= buf and vim.api.nvim_buf_get_name(scratch) == "" then
      pcall(vim.api.nvim_buf_delete, scratch, { force = true })
    end
  end
  return buf
end

local function scratch_options(buf)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
end

--- The scratch buffer called name, shown where ("tab" | "split" | "vsplit" | "float" |
-- "current"). Returns it, and whether it was created.
function M.scratch(name, where)
  local n = vim.fn.bufnr(name)
  if n > 0 and vim.api.nvim_buf_is_valid(n) then return n, false end
  local buf = vim.api.nvim_create_buf(true, true)
  vim.api.nvim_buf_set_name(buf, name)
  scratch_options(buf)
  M.show(buf, where)
  return buf, true
end

function M.set_lines(buf, lines)
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  vim.bo[buf].modified = false
end

-- A title for the name: the report's first heading, else the brief's first words; one line,
-- no slashes (the tab label is what follows the last one).
local function title_of(text, brief)
  local t = text:match("^#+%s*([^\n]+)") or text:match("\n#+%s*([^\n]+)") or brief or ""
  t = tostring(t):gsub("[%c/\\]", " "):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if vim.fn.strchars(t) > 40 then t = vim.fn.strcharpart(t, 0, 39) .. "…" end
  return t
end

--- The name of a report buffer: deepresearch://<provider>/<short id> <title>.
function M.name(provider, short, text, brief)
  local title = title_of(text or "", brief)
  return "deepresearch://" .. tostring(provider) .. "/" .. tostring(short) ..
    (title ~= "" and (" " .. title) or "")
end

--- Fills (creating when needed) the report buffer of task id, shown where says unless where
-- is nil (then nothing opens: the buffer waits, hidden, for :DeepResearchOpen).
-- o: { provider, short, brief, style }.
function M.open(task, where, id, o)
  local text = M.render(task, o.style, id)
  local buf = M.find(id)
  if not buf then
    buf = vim.api.nvim_create_buf(true, true)
    scratch_options(buf)
    local name = M.name(o.provider, o.short or id, text, o.brief)
    if not pcall(vim.api.nvim_buf_set_name, buf, name) then
      pcall(vim.api.nvim_buf_set_name, buf, name .. " (" .. tostring(id) .. ")")
    end
    vim.b[buf].deepresearch_task_id = id
  end
  M.set_lines(buf, split_lines(text))
  vim.bo[buf].filetype = "markdown"
  if where then M.show(buf, where) end
  return buf
end

return M

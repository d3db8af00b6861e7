-- User autocmds for what happens to a task: DeepResearchCreated, DeepResearchProgress,
-- DeepResearchDone, DeepResearchFailed, DeepResearchInputRequired. Neovim 0.8+ passes the
-- task in the autocmd's `data`; Neovim 0.7's nvim_exec_autocmds has no `data`, so the same
-- table is also require("deepresearch.nvim").last_event (read it in the autocmd's callback).
local screen = require "deepresearch.nvim.screen"

local M = {}

M.NAMES = { created = "DeepResearchCreated", progress = "DeepResearchProgress",
  done = "DeepResearchDone", failed = "DeepResearchFailed",
  input_required = "DeepResearchInputRequired" }

M.last = nil -- { event = "DeepResearchDone", data = { ... } }
local with_data -- whether nvim_exec_autocmds takes data (tried once)

-- What an autocmd gets: plain values only (no functions, no userdata from the client).
local function data_of(job)
  return {
    id = job.id, provider = job.provider, state = job.state, brief = job.brief,
    task = job.task, error = job.err and (type(job.err) == "table" and job.err.code or
      tostring(job.err)) or nil,
  }
end

local function exec(name, data)
  local api = vim.api
  if with_data ~= false then
    local ok, err = pcall(api.nvim_exec_autocmds, "User",
      { pattern = name, modeline = false, data = data })
    if ok then with_data = true return end
    if with_data == nil and tostring(err):find("data", 1, true) then
      with_data = false
    else
      return
    end
  end
  pcall(api.nvim_exec_autocmds, "User", { pattern = name, modeline = false })
end

--- Fires the event (kind: a key of NAMES) for job, on the main loop.
function M.fire(kind, job)
  local name = M.NAMES[kind]
  if not name then return end
  local data = data_of(job)
  screen.later(function()
    M.last = { event = name, data = data }
    exec(name, data)
  end)
end

return M

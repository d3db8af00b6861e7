-- Runs inside a second, throw-away Neovim whose runtimepath holds a copy of the plugin (the
-- module missing, built for the wrong Lua, or fine but without lua-cjson on the C path): tries
-- :DeepResearch and :checkhealth and writes what the user would see to $DR_OUT as JSON.
-- (load_test.lua starts it.)
-- luacheck: globals vim
local out = { notes = {} }
local ok, err = pcall(function()
  local sim = os.getenv("DR_SIM_URL")
  if os.getenv("DR_NO_CJSON") then
    -- Nothing but the plugin's own build: the C core must fall back to vim.json.
    package.cpath = ""
  else
    -- Only lua-cjson on the C path: nothing installed system-wide may stand in for the build.
    package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so"
  end
  vim.cmd("runtime plugin/deepresearch.lua")
  local nv = require "deepresearch.nvim"
  nv.setup{
    base_url = sim or "http://127.0.0.1:9",
    token = sim and "test-token" or nil,
    notify = function(msg, level) out.notes[#out.notes + 1] = { msg = msg, level = level } end,
    transport = os.getenv("DR_NESTED_TRANSPORT"), -- nil: auto (the core, else curl)
  }
  out.cjson = pcall(require, "cjson")
  out.transport = require("deepresearch.nvim.transport_select").prepare()
  local lib = nv.library()
  if lib and sim then
    local c = lib.client{ base_url = sim, token = "test-token" }
    local user, uerr = c:user()
    out.user = user and user.email or tostring(uerr)
    local task = c:create{
      brief = "Research Flexport (flexport.com) for our pitch, with [1] sources.",
    }
    out.task_status = task and task.status or nil
    -- JSON nulls (report, failure_reason of a new task) are absent keys, never vim.NIL.
    out.nulls_absent = task ~= nil and task.report == nil and task.failure_reason == nil
    c:close()
  else
    -- Twice: the second attempt must give the same message, not Lua 5.1's "loop or previous
    -- error loading module".
    vim.cmd("DeepResearch Research Flexport (flexport.com) for our pitch")
    vim.cmd("DeepResearch Research Flexport (flexport.com) for our pitch")
  end
  vim.cmd("checkhealth deepresearch")
  out.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  out.cpath = package.cpath
end)
if not ok then out.error = tostring(err) end
local f = assert(io.open(os.getenv("DR_OUT"), "w"))
f:write(vim.json.encode(out))
f:close()
vim.cmd("qall!")

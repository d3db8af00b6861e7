-- Runs inside a second, throw-away Neovim whose runtimepath holds a copy of the plugin with
-- the module missing or built for the wrong Lua: tries :DeepResearch and :checkhealth and
-- writes what the user would see to $DR_OUT as JSON. (load_test.lua starts it.)
-- luacheck: globals vim
local out = { notes = {} }
local ok, err = pcall(function()
  -- Only lua-cjson on the C path: nothing installed system-wide may stand in for the build.
  package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so"
  vim.cmd("runtime plugin/deepresearch.lua")
  local nv = require "deepresearch.nvim"
  nv.setup{
    base_url = "http://127.0.0.1:9",
    notify = function(msg, level) out.notes[#out.notes + 1] = { msg = msg, level = level } end,
  }
  vim.cmd("DeepResearch Research Flexport (flexport.com) for our pitch")
  vim.cmd("checkhealth deepresearch")
  out.health = vim.api.nvim_buf_get_lines(0, 0, -1, false)
  out.cpath = package.cpath
end)
if not ok then out.error = tostring(err) end
local f = assert(io.open(os.getenv("DR_OUT"), "w"))
f:write(vim.json.encode(out))
f:close()
vim.cmd("qall!")

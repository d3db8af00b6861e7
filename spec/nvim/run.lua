-- Entry of the headless Neovim tests (scripts/run-nvim-test runs it):
--   DR_ROOT=<repo> DR_SIM_URL=http://127.0.0.1:PORT DR_TAP=build/results/nvim.tap \
--   nvim --headless -u NONE -i NONE --cmd 'set rtp^=<repo>' -c 'luafile spec/nvim/run.lua'
-- Each test file returns function(tap, env). Whatever happens, Neovim quits at the end.
-- luacheck: globals vim
local root = os.getenv("DR_ROOT") or vim.fn.getcwd()
local tap = dofile(root .. "/spec/nvim/tap.lua")
tap.open(os.getenv("DR_TAP") or (root .. "/build/results/nvim.tap"))

local env = {
  root = root,
  url = os.getenv("DR_SIM_URL"),
  abi54 = os.getenv("DR_OTHER_ABI_SO"), -- a core.so built for Lua 5.4, to load under the wrong ABI
}

-- The build/luajit module and the system's lua-cjson for Lua 5.1 (the C core falls back to
-- vim.json without it).
package.cpath = root .. "/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;" ..
  package.cpath

local files = { "load_test.lua", "plugin_test.lua", "provider_test.lua",
  "descriptor_test.lua", "transport_curl_test.lua", "editor_test.lua", "embed_test.lua",
  "journal_test.lua" }
for _, f in ipairs(files) do
  local ok, err = xpcall(function()
    dofile(root .. "/spec/nvim/" .. f)(tap, env)
  end, debug.traceback)
  if not ok then tap.ok(false, f .. " ran to the end", err) end
end
tap.finish()
vim.cmd("qall!")

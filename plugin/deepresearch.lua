-- :DeepResearch, :DeepResearchWait, :DeepResearchList, :DeepResearchRespond. Loading this file
-- is cheap: the C module and the client load on the first command (see docs/neovim.md). The
-- commands themselves are lua/deepresearch/nvim/commands.lua's.
if vim.g.loaded_deepresearch then return end
vim.g.loaded_deepresearch = true

if vim.fn.has("nvim-0.7") == 0 then
  vim.api.nvim_err_writeln("deepresearch: Neovim 0.7 or newer is required")
  return
end

local nv = require "deepresearch.nvim"
-- <plugin root>/build/luajit/?.so: where `make LUA_VERSION=luajit` puts deepresearch/core.so.
nv.add_cpath()
nv.create_commands()

vim.api.nvim_create_autocmd("VimLeavePre", {
  group = vim.api.nvim_create_augroup("deepresearch", { clear = true }),
  callback = function() nv.close() end,
})

-- :checkhealth deepresearch: Neovim finds this file by its name and calls check(). The checks
-- live with the rest of the editor's code (nvim/health.lua); this file only hands them over.
return require "deepresearch.nvim.health"

-- Finding and loading the library from the editor: the plugin's root, its luajit build on
-- package.cpath, and require("deepresearch") with a message that says what to build.
local M = {}

--- The plugin's root directory: this file is <root>/lua/deepresearch/nvim/library.lua.
local root_dir -- found once: the editor's functions are not callable from libuv callbacks
function M.root()
  if root_dir then return root_dir end
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or src
  root_dir = vim.fn.fnamemodify(src, ":p:h:h:h:h")
  return root_dir
end

--- Puts <root>/build/luajit/?.so first on package.cpath (once), where `make LUA_VERSION=luajit`
-- leaves deepresearch/core.so. Returns the pattern added.
function M.add_cpath(root)
  local pattern = (root or M.root()) .. "/build/luajit/?.so"
  if not package.cpath:find(pattern, 1, true) then
    package.cpath = pattern .. ";" .. package.cpath
  end
  -- A forced curl transport (no compiler) is in place before anything loads the library.
  require("deepresearch.nvim.transport_select").early()
  return pattern
end

--- require("deepresearch"), or nil and the loader's message (which names the ABI and the build
-- command).
function M.library()
  M.add_cpath()
  -- setup{ transport }: the C core, or curl through vim.loop.spawn when it is not built.
  require("deepresearch.nvim.transport_select").prepare()
  local ok, lib = pcall(require, "deepresearch")
  if ok then
    -- Without lua-cjson the front handed the core no decoder: Neovim's own, whose vim.NIL the
    -- core removes from objects as it does cjson's null.
    if not package.loaded["cjson"] then lib.core.set_decoder(vim.json.decode, vim.NIL) end
    return lib
  end
  -- Lua 5.1's require leaves a marker behind after an error ("loop or previous error loading
  -- module"): clear it, so the next command tries again (say, after building the module).
  package.loaded["deepresearch"], package.loaded["deepresearch.core"] = nil, nil
  return nil, tostring(lib)
end

return M

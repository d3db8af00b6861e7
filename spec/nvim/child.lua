-- A second Neovim for the specs, as a user has it: `nvim --embed` with an 80x24 UI attached
-- through RPC (so messages have a width and a long one would raise a hit-enter prompt), the
-- plugin on its runtimepath, keys typed with nvim_input. (embed_test.lua uses it.)
-- luacheck: globals vim
local M = {}

local Child = {}
Child.__index = Child

--- Starts a child; root: the plugin's root.
function M.start(root)
  local ch = vim.fn.jobstart({ "nvim", "--embed", "-u", "NONE", "-i", "NONE", "-n",
    "--cmd", "set rtp^=" .. root }, { rpc = true })
  assert(ch > 0, "nvim --embed did not start")
  local c = setmetatable({ ch = ch, root = root }, Child)
  vim.rpcrequest(ch, "nvim_ui_attach", 80, 24, { ext_linegrid = true })
  c:lua([[
    package.cpath = ... .. "/build/luajit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;" ..
      package.cpath
    vim.cmd("runtime plugin/deepresearch.lua")
    _G.notes = {}
  ]], root)
  return c
end

--- Its mode ({ mode, blocking }): answered in every state, a hit-enter prompt included.
function Child:mode()
  return vim.rpcrequest(self.ch, "nvim_get_mode")
end

--- Runs Lua in the child (not while it shows a hit-enter prompt: check mode() first).
function Child:lua(code, ...)
  return vim.rpcrequest(self.ch, "nvim_exec_lua", code, { ... })
end

--- Types keys (as from a keyboard; answered at once in every mode).
function Child:input(keys)
  return vim.rpcrequest(self.ch, "nvim_input", keys)
end

--- setup{} in the child with the simulator and a notifier recording into _G.notes (a table of
-- { msg, level }); extra: more options (plain values).
function Child:setup(url, extra)
  return self:lua([[
    local url, extra = ...
    local opts = { base_url = url, token = "test-token", interval = 0.05, max_interval = 0.05,
      tick_ms = 20, notify_every = 0 }
    for k, v in pairs(extra or {}) do opts[k] = v end
    if not extra or extra.builtin_notify ~= true then
      opts.notify = function(msg, level) _G.notes[#_G.notes + 1] = { msg = msg, level = level } end
    end
    opts.builtin_notify = nil
    require("deepresearch.nvim").setup(opts)
  ]], url, extra or vim.empty_dict())
end

--- Waits (pumping this editor's loop) until fn() is true, at most ms; returns whether it was.
function M.wait(ms, fn, step)
  return vim.wait(ms, fn, step or 20)
end

function Child:stop()
  pcall(vim.fn.jobstop, self.ch)
  vim.fn.jobwait({ self.ch }, 2000)
end

return M

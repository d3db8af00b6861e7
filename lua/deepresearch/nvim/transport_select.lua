-- Which transport the editor's library runs on: the C module deepresearch.core ("core"), or the
-- curl stand-in (transport_curl.lua, "curl") for a Neovim without a compiler. setup{ transport =
-- "auto" | "core" | "curl" } chooses (auto: the core when it loads, else curl), and the
-- environment variable DEEPRESEARCH_NVIM_TRANSPORT overrides setup (the specs' second pass).
-- The choice is made once, as the library first loads: every module of the library holds the
-- core it loaded with, so a later setup{} asking for another transport takes a restart
-- (:checkhealth says so).
-- luacheck: globals vim
local M = {}

M.ENV = "DEEPRESEARCH_NVIM_TRANSPORT"
M.MODES = { auto = true, core = true, curl = true }

-- What loaded, once the library has: { name = "core"|"curl", why = text }.
local active

--- The transport asked for, and where that comes from ("$DEEPRESEARCH_NVIM_TRANSPORT",
-- "setup{ transport }" or "default"). An unknown value in the environment is ignored (and
-- returned third, for :checkhealth).
function M.mode()
  local env = os.getenv(M.ENV)
  if env and env ~= "" then
    if M.MODES[env] then return env, "$" .. M.ENV end
  end
  local v = require("deepresearch.nvim.config").values.transport
  local bad = env and env ~= "" and env or nil
  if v ~= nil then return v, "setup{ transport }", bad end
  return "auto", "default", bad
end

local function is_stand_in(core) return type(core) == "table" and core.transport == "curl" end

local function install_curl(why)
  package.loaded["deepresearch.core"] = require "deepresearch.nvim.transport_curl"
  active = { name = "curl", why = why }
  -- The helper process starts as the library loads, not under the first requests: its one
  -- fork of the editor then falls before the work, not in the middle of it. Now, not a turn of
  -- the loop later (scheduled, it landed among the first requests setup{} was followed by).
  local function warm() pcall(require("deepresearch.nvim.transport_spawn").warm) end
  if vim.in_fast_event() then vim.schedule(warm) else warm() end
end

--- At plugin load: only a forced curl transport is put in place this early, so that whatever
-- loads the library next (a spec, a user's own require) gets it. Loading stays cheap otherwise.
function M.early()
  local mode = M.mode()
  if mode == "curl" and not package.loaded["deepresearch"] then
    install_curl("forced by " .. select(2, M.mode()))
  end
end

--- Right before the plugin's require("deepresearch"): puts the chosen transport in place.
-- Returns the active transport's name.
function M.prepare()
  local loaded = package.loaded["deepresearch.core"]
  if package.loaded["deepresearch"] then
    if not active then
      active = { name = is_stand_in(loaded) and "curl" or "core", why = "loaded before setup" }
    end
    return active.name
  end
  local mode, source = M.mode()
  if mode == "curl" then
    install_curl("forced by " .. source)
  elseif mode == "core" then
    if is_stand_in(loaded) then package.loaded["deepresearch.core"] = nil end
    active = { name = "core", why = "forced by " .. source }
  elseif is_stand_in(loaded) then
    active = active or { name = "curl", why = "deepresearch.core does not load" }
  else
    local ok, err = pcall(require, "deepresearch.core")
    if ok then
      active = { name = "core", why = "deepresearch.core loads" }
    else
      package.loaded["deepresearch.core"] = nil -- 5.1's marker would block a later try
      install_curl("deepresearch.core does not load: " .. tostring(err):match("^[^\n]*"))
      M.core_error = tostring(err)
    end
  end
  return active.name
end

--- The active transport { name, why }, or nil before the library loaded.
function M.active() return active end

--- Tries the C module without disturbing what is loaded: true, or false and the loader's message.
function M.probe_core()
  local saved = package.loaded["deepresearch.core"]
  if saved ~= nil and not is_stand_in(saved) then return true end
  package.loaded["deepresearch.core"] = nil
  local ok, err = pcall(require, "deepresearch.core")
  package.loaded["deepresearch.core"] = saved
  return ok, not ok and tostring(err) or nil
end

M.CORE_ADDS = "building deepresearch.core adds speed (no process and no TLS handshake per " ..
  "request) and many tasks over few connections (one libcurl multi handle keeps " ..
  "max_connections sockets open and reuses them), plus webhook signature checks"

return M

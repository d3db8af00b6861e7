-- :checkhealth's transport section: which transport runs the requests (the C core or curl
-- through vim.loop.spawn), why, and, on curl, what building the core would add.
-- luacheck: globals vim
local select_ = require "deepresearch.nvim.transport_select"

local M = {}

-- curl 7.63 has every config option and write-out variable the transport uses (%{stderr}).
local MIN_CURL = { 7, 63 }

local function old_curl(v)
  local major, minor = tostring(v):match("^(%d+)%.(%d+)")
  major, minor = tonumber(major), tonumber(minor)
  if not major then return false end
  return major < MIN_CURL[1] or (major == MIN_CURL[1] and minor < MIN_CURL[2])
end

local function search_cpath(name)
  local searchpath = rawget(package, "searchpath")
  return searchpath and searchpath(name, package.cpath) or nil
end

-- The C module, seen from a session that runs on curl: not built, broken, or built but unused.
local function core_state(r, root, diagnose, mode, source)
  local build = "Build it: cd " .. root .. " && make LUA_VERSION=luajit"
  local so = search_cpath("deepresearch.core")
  if not so then
    r.info("deepresearch.core is not built (not found on package.cpath): " .. select_.CORE_ADDS,
      { build, "(with lazy.nvim: build = \"make LUA_VERSION=luajit\")" })
    return
  end
  local ok, err = select_.probe_core()
  if not ok then
    local title, advice = diagnose(err, root)
    r.warn(title .. " [" .. so .. "]; the curl transport stands in. " .. select_.CORE_ADDS,
      advice)
  elseif mode == "curl" then
    r.info("deepresearch.core is built (" .. so .. ") but the curl transport is forced by " ..
      source .. "; without it, " .. select_.CORE_ADDS:gsub("^building deepresearch.core adds",
        "the core adds"))
  else
    r.info("deepresearch.core loads now (" .. so .. "); restart Neovim to use it: " ..
      select_.CORE_ADDS:gsub("^building deepresearch.core adds", "it adds"))
  end
end

--- Reports the transport; returns what check_module returns (core, lib) on the core, and
-- nil, lib on curl.
function M.check(r, root, check_module, diagnose)
  local mode, source, bad = select_.mode()
  if bad then
    r.warn("$" .. select_.ENV .. "=" .. bad .. " is not auto, core or curl; ignored")
  end
  local name = select_.prepare()
  local why = select_.active() and select_.active().why or ""
  if name == "core" then
    local core, lib = check_module(r, root)
    if core then
      r.ok("transport: deepresearch.core (libcurl in this process; " .. why .. ")")
      if mode == "curl" then
        r.warn("the curl transport was asked (" .. source .. ") after the library loaded on " ..
          "the core; restart Neovim to switch")
      end
    end
    return core, lib
  end
  local curl = require "deepresearch.nvim.transport_curl"
  local v, err = curl.probe()
  if not v then
    r.error("transport: curl, but " .. tostring(err), { "Install curl (Debian/Ubuntu: sudo " ..
      "apt-get install curl), or build deepresearch.core: cd " .. root ..
      " && make LUA_VERSION=luajit" })
  elseif old_curl(v) then
    r.error(string.format("transport: curl %s is older than %d.%d, which the curl transport " ..
      "needs", v, MIN_CURL[1], MIN_CURL[2]), { "Update curl, or build deepresearch.core" })
  else
    r.ok("transport: curl " .. v .. " through vim.loop.spawn (" .. why .. "); keys go to curl " ..
      "on its stdin, never on its command line")
  end
  if mode == "core" then
    r.warn("the core transport was asked (" .. source .. ") after the library loaded on curl; " ..
      "restart Neovim to switch")
  end
  core_state(r, root, diagnose, mode, source)
  local lib, lerr = require("deepresearch.nvim.library").library()
  if not lib then r.error("the deepresearch Lua module does not load: " .. tostring(lerr)) end
  return nil, lib
end

return M

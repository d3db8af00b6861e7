-- :checkhealth deepresearch — names what is wrong and the command that fixes it.
-- Neovim 0.7 finds lua/deepresearch/health.lua (which returns this module) and calls check();
-- the reporting functions are require("health").report_* there, vim.health.report_* in 0.8/0.9
-- and vim.health.start/ok/... from 0.10.
-- luacheck: globals vim jit
local M = {}

local function reporter()
  local h = vim.health
  if type(h) ~= "table" or not (h.start or h.report_start) then h = require "health" end
  return {
    start = h.start or h.report_start,
    ok = h.ok or h.report_ok,
    info = h.info or h.report_info,
    warn = h.warn or h.report_warn,
    error = h.error or h.report_error,
  }
end

local function exists(path)
  return vim.loop.fs_stat(path) ~= nil
end

-- Builds for other Lua versions sitting next to the one Neovim needs.
local function other_builds(root)
  local found = {}
  for _, v in ipairs({ "5.1", "5.2", "5.3", "5.4" }) do
    local p = root .. "/build/" .. v .. "/deepresearch/core.so"
    if exists(p) then found[#found + 1] = "Lua " .. v .. " (" .. p .. ")" end
  end
  return found
end

local function search_cpath(name)
  local searchpath = rawget(package, "searchpath") -- LuaJIT has it; PUC 5.1 does not
  if searchpath then return searchpath(name, package.cpath) end
  local file = name:gsub("%.", "/")
  for pattern in package.cpath:gmatch("[^;]+") do
    local p = pattern:gsub("%?", file)
    if exists(p) then return p end
  end
  return nil
end

--- Diagnoses a failed require of deepresearch.core: a title and the advice.
function M.diagnose(msg, root)
  local build = "cd " .. root .. " && make LUA_VERSION=luajit"
  local sym = msg:match("undefined symbol: ([%w_]+)")
  if sym and sym:match("^lua") then
    return "deepresearch.core is built for another Lua ABI (it needs " .. sym ..
      ", which Neovim's LuaJIT does not have). Neovim needs the Lua 5.1 ABI build",
      { "Rebuild it: " .. build }
  end
  if msg:find("libcurl", 1, true) then
    return "libcurl is missing: deepresearch.core cannot load",
      { "Install libcurl (Debian/Ubuntu: sudo apt-get install libcurl4; " ..
        "to build: libcurl4-openssl-dev)" }
  end
  if msg:find("cjson", 1, true) then
    return "lua-cjson is missing and vim.json is not available",
      { "Install lua-cjson for Lua 5.1 (Debian/Ubuntu: sudo apt-get install lua-cjson)" }
  end
  if msg:find("wrong ELF class", 1, true) or msg:find("invalid ELF header", 1, true) then
    return "deepresearch.core was built for another machine", { "Rebuild it: " .. build }
  end
  return "deepresearch.core does not load", { "Rebuild it: " .. build, msg }
end

--- What `make LUA_VERSION=luajit` needs: a C compiler, LuaJIT's headers, libcurl's headers.
function M.check_build_tools(r)
  local no_cc = vim.fn.executable("cc") == 0 and vim.fn.executable("gcc") == 0
  if vim.fn.executable("make") == 0 or no_cc then
    r.error("no C compiler or make to build the module",
      { "Install them (Debian/Ubuntu: sudo apt-get install build-essential)" })
  end
  if not exists("/usr/include/luajit-2.1/lua.h") then
    r.warn("LuaJIT headers not found in /usr/include/luajit-2.1",
      { "Install them (Debian/Ubuntu: sudo apt-get install libluajit-5.1-dev) " ..
        "or pass LUA_INCDIR=... to make" })
  end
  local headers = exists("/usr/include/curl/curl.h")
    or exists("/usr/include/x86_64-linux-gnu/curl/curl.h")
  if not headers and vim.fn.executable("pkg-config") == 1 then
    vim.fn.system({ "pkg-config", "--exists", "libcurl" })
    headers = vim.v.shell_error == 0
  end
  if not headers then
    r.error("libcurl development files are missing: the build needs them",
      { "Install them (Debian/Ubuntu: sudo apt-get install libcurl4-openssl-dev)" })
  end
end

local function check_module(r, root)
  local so = search_cpath("deepresearch.core")
  if not so then
    local advice = { "Build it: cd " .. root .. " && make LUA_VERSION=luajit",
      "(with lazy.nvim: build = \"make LUA_VERSION=luajit\"; it lands in " .. root ..
        "/build/luajit/)" }
    local others = other_builds(root)
    if #others > 0 then
      advice[#advice + 1] = "Builds for other Lua versions exist, " ..
        "but Neovim runs LuaJIT (the Lua 5.1 ABI): " .. table.concat(others, ", ")
    end
    r.error("deepresearch.core is not built (not found on package.cpath)", advice)
    M.check_build_tools(r)
    return nil
  end
  local ok, core = pcall(require, "deepresearch.core")
  if not ok then
    package.loaded["deepresearch.core"] = nil -- 5.1 leaves a marker that would block a retry
    local title, advice = M.diagnose(tostring(core), root)
    r.error(title .. " [" .. so .. "]", advice)
    return nil
  end
  r.ok("deepresearch.core " .. tostring(core.version) .. " loaded (" .. so .. ")")
  local lib_ok, lib = pcall(require, "deepresearch")
  if not lib_ok then
    package.loaded["deepresearch"] = nil
    r.error("the deepresearch Lua module does not load: " .. tostring(lib))
    return nil
  end
  return core, lib
end

local function check_json(r)
  local ok = pcall(require, "cjson")
  if ok then
    r.ok("lua-cjson found")
  elseif vim.json then
    r.ok("lua-cjson not found for LuaJIT; using vim.json instead")
  else
    r.error("neither lua-cjson nor vim.json is available",
      { "Install lua-cjson for Lua 5.1 (Debian/Ubuntu: sudo apt-get install lua-cjson)" })
  end
end

-- The token of one provider: where it comes from (setup, or the descriptor's token_env), then,
-- when the provider has an account call (user), one request to show it is accepted.
local function check_token(r, nv, lib, name)
  local d = require("deepresearch.providers").get(name)
  local s = nv._settings(name)
  local client_opts = nv.config.client or {}
  -- setup's api_key ("cmd:...", "env:NAME", a string, a function): a command is never run
  -- here (:checkhealth must not wait); its key is checked once a command has read it.
  local key, why
  if s.token ~= nil and s.token ~= false then
    key, why = require("deepresearch.nvim.secrets").peek(name, s.token)
    if why == "command" then
      r.info(d.cli.name .. ": api_key is a command, run on first use (not by :checkhealth)")
      return
    elseif why then
      r.error(d.cli.name .. ": " .. why)
      return
    end
  end
  local token = key or client_opts.token or os.getenv(d.token_env)
  if token == nil or token == "" then
    r.error(d.cli.name .. ": no API token", { "export " .. d.token_env ..
      "=... before starting Neovim", "or require('deepresearch.nvim').setup{ api_key = ... } " ..
        "(\"cmd:pass show ...\", \"env:NAME\", a string or a function; per provider: " ..
        "providers = { " .. name .. " = { api_key = ... } })" })
    return
  end
  local source = s.token and "setup" or client_opts.token and "setup{ client.token }" or
    d.token_env
  r.ok(d.cli.name .. ": API token set (" .. source .. ")")
  if not lib then return end
  local base = s.base_url or client_opts.base_url or os.getenv(d.base_env) or d.base_url
  local ok, c = pcall(lib.client, {
    provider = name, base_url = base, token = token, timeout = 5, connect_timeout = 3,
    max_retries = 0, ca_file = client_opts.ca_file, proxy = client_opts.proxy,
  })
  if not ok then
    r.error(d.cli.name .. ": cannot make a client: " .. tostring(c))
    return
  end
  base = require("deepresearch.runtime.http").redact_url(base) -- never show a password
  if not c.user then
    c:close()
    r.info(d.cli.name .. ": " .. base .. " has no account call; the token is checked on the " ..
      "first request")
    return
  end
  local user, err = c:user()
  c:close()
  if user then
    r.ok(string.format("%s accepted the token (%s, %s credits)", base, tostring(user.email),
      tostring(user.available_credits)))
  elseif err.code == "unauthorized" or err.code == "forbidden" then
    r.error(base .. " rejected the token: " .. tostring(err.message))
  else
    r.warn(base .. " could not be reached to check the token: " .. tostring(err))
  end
end

-- Every other registered provider: whether its key variable is set (provider=NAME needs it),
-- never its value and no request.
local function check_other_keys(r, in_use)
  local providers = require "deepresearch.providers"
  local seen = {}
  for _, n in ipairs(in_use) do seen[n] = true end
  for _, name in ipairs(providers.names()) do
    local d = providers.get(name)
    if not seen[name] then
      local v = os.getenv(d.token_env)
      r.info(string.format("%s: %s %s", d.cli.name, d.token_env, (v and v ~= "") and
        "is set (for provider=" .. name .. ")" or "is not set (needed for provider=" ..
        name .. " only)"))
    end
  end
end

-- The providers in use: setup's, then those setup configures under `providers`.
local function providers_in_use(nv)
  local names, seen = { nv.provider() }, { [nv.provider()] = true }
  local per = type(nv.config.providers) == "table" and nv.config.providers or {}
  local more = {}
  for name in pairs(per) do
    if not seen[name] then more[#more + 1] = name end
  end
  table.sort(more)
  for _, n in ipairs(more) do names[#names + 1] = n end
  return names
end

function M.check()
  local r = reporter()
  local nv = require "deepresearch.nvim"
  local root = nv.root()
  nv.add_cpath(root)
  r.start("deepresearch")
  if not jit then
    r.warn("this Neovim is not built with LuaJIT; " ..
      "build the module for its Lua: make LUA_VERSION=5.1")
  else
    r.ok("Neovim runs " .. tostring(jit.version) .. " (Lua 5.1 ABI: the build/luajit module)")
  end
  -- The transport (the C core, or curl when it is not built) and, on curl, what building adds.
  local core, lib = require("deepresearch.nvim.transport_health").check(r, root, check_module,
    M.diagnose)
  if core then r.ok("libcurl " .. tostring(core.curl_version)) end
  check_json(r)
  local in_use = providers_in_use(nv)
  for _, name in ipairs(in_use) do check_token(r, nv, lib, name) end
  check_other_keys(r, in_use)
end

return M

-- deepresearch: run deep-research tasks (Extruct, Valyu) from Lua.
local function load_core()
  local ok, core = pcall(require, "deepresearch.core")
  if ok then return core end
  local is_jit = rawget(_G, "jit") ~= nil
  local abi = is_jit and "luajit (Lua 5.1 ABI)" or _VERSION
  local build = is_jit and "make LUA_VERSION=luajit" or ("make LUA_VERSION=" ..
    _VERSION:match("%d+%.%d+"))
  -- Let a later require try again (after a build) instead of "loop or previous error".
  package.loaded["deepresearch"] = nil
  local why = tostring(core)
  if why:find("module 'deepresearch.core' not found", 1, true) then why = why:match("^[^\n]*") end
  error(string.format("deepresearch: the C module deepresearch.core is missing or built for " ..
    "another Lua " ..
    "(this is %s). Build it with `%s` and put build/<version>/?.so on package.cpath.\n%s",
    abi, build, why), 0)
end

local core = load_core()
local errors = require "deepresearch.base.errors"
local providers = require "deepresearch.providers"
local clock = require "deepresearch.runtime.clock"
local retry = require "deepresearch.base.policy"
local validate = require "deepresearch.base.validate"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local options = require "deepresearch.base.options"

-- Decoded empty JSON arrays carry json.lua's array metatable, so they encode back as [].
core.set_array_metatable(json.array_mt)

-- The core decodes with what it is handed: a private lua-cjson instance, so that a user changing
-- the global cjson settings does not change ours; NaN, Infinity and hex numbers are not JSON.
-- Its null is what the core removes from objects. Without lua-cjson the editor side hands over
-- the editor's own decoder; until one is set, requests are refused unsent.
local has_cjson, cjson = pcall(require, "cjson")
if has_cjson then
  local decoder = cjson.new()
  decoder.decode_invalid_numbers(false)
  core.set_decoder(decoder.decode, decoder.null)
end

local M = {
  version = core.version,
  core = core,
  null = core.null,
  errors = errors,
  providers = providers,
}

-- The public client is a table whose metatable is protected; its C handle, token and policy
-- live in http.states (keyed by the client), so that nothing reachable from it holds a secret
-- and only validated requests leave (no data, request, finish or abandon on its surface).
local c_methods = core.client_methods
local handle_data, handle_closed, handle_close = c_methods.data, c_methods.closed, c_methods.close
local states = http.states

-- Each provider's method table, looked up through the client's own state. The provider's
-- own module loads with the client; the others (Deep Search, many at once) on the first
-- method the table lacks, so a script that only creates and polls holds less code, and Lua's
-- collector has less to mark on every cycle.
-- A provider's modules, from its descriptor: its operations module first, then one module per
-- task kind beyond research (deepresearch.providers.<kind>, when installed), then the poller.
local method_modules = {}
local function modules_of(p)
  local mods = method_modules[p.name]
  if not mods then
    mods = { p.module }
    local extra = {}
    for kind in pairs(p.kinds) do
      if kind ~= "research" then extra[#extra + 1] = "deepresearch.providers." .. kind end
    end
    table.sort(extra)
    for _, m in ipairs(extra) do mods[#mods + 1] = m end
    mods[#mods + 1] = "deepresearch.runtime.poller"
    method_modules[p.name] = mods
  end
  return mods
end
local method_tables = {}

-- Closing a client first ends its pollers' operations (err.code "closed", see many.lua), so that
-- none of them sends another request. __gc needs no such step: a poller holds its client.
local function close_client(self)
  local state = http.state(self)
  if not handle_closed(state.handle) then
    local pollers = state.pollers
    if pollers then
      for p in pairs(pollers) do p:_client_closed() end
    end
  end
  return handle_close(state.handle)
end

local function client_closed(self) return handle_closed(http.state(self).handle) end

-- Adds modname's methods that t lacks; a module that is not installed adds none.
local function merge(t, modname)
  local ok, mod = pcall(require, modname)
  if ok then
    for k, v in pairs(mod.methods) do
      if rawget(t, k) == nil then rawset(t, k, v) end
    end
  elseif not tostring(mod):find("module '" .. modname .. "' not found", 1, true) then
    error(mod, 0)
  end
end

-- The methods every client answers. One its provider lacks (Extruct's cancel; list on an API
-- with none, has_list = false) returns nil, err code "unsupported", so that generic code (the
-- command, the worker, the editor) branches on the code instead of on a provider's name.
M.GENERIC_METHODS = { "create", "get", "wait", "run", "list", "cancel", "delete" }
M.EXTRA_METHODS = { "cancel", "delete" } -- generic, offered when D.operations names them

local function unsupported(p, method)
  return function()
    return nil, errors.unsupported(p.name, method, p.cli and p.cli.name)
  end
end

-- Adds the unsupported stand-ins for the generic methods t still lacks.
local function fill_unsupported(t, p)
  for _, k in ipairs(M.GENERIC_METHODS) do
    if rawget(t, k) == nil then rawset(t, k, unsupported(p, k)) end
  end
end

local function methods_for(p)
  local name = p.name
  if method_tables[name] then return method_tables[name] end
  local mods = modules_of(p)
  local t = {}
  -- No list on the API, or an extra (cancel, delete) its operations do not name: whatever the
  -- operations module holds (one module may serve two APIs), the method answers unsupported.
  if p.has_list == false then t.list = unsupported(p, "list") end
  for _, k in ipairs(M.EXTRA_METHODS) do
    if not (p.operations and p.operations[k]) then t[k] = unsupported(p, k) end
  end
  merge(t, mods[1])
  require("deepresearch.budget").wrap_create(t, p) -- create{ budget = ... } (budget.lua)
  t.close = close_client
  t.closed = client_closed
  setmetatable(t, {
    __index = function(_, k)
      for i = 2, #mods do merge(t, mods[i]) end
      fill_unsupported(t, p)
      setmetatable(t, nil)
      return rawget(t, k)
    end,
  })
  method_tables[name] = t
  return t
end

local function client_tostring(self)
  local state = http.state(self)
  return string.format("deepresearch.client (%s, %s)%s", state.provider.name,
    http.redact_url(state.base_url), handle_closed(state.handle) and " (closed)" or "")
end

-- One metatable per provider: __index is its method table itself (client:get is the hot path).
-- No __gc: the handle's own finalizer closes its transfers when the client (and so it) goes.
local client_mts = {}
local function client_mt(p)
  local mt = client_mts[p.name]
  if not mt then
    mt = { __index = methods_for(p), __tostring = client_tostring, __close = close_client,
      __name = "deepresearch.client", __metatable = "deepresearch.client" }
    client_mts[p.name] = mt
  end
  return mt
end

-- The range of each number option (README "Configuration"); whole: an integer is expected.
-- The C core clamps too, so that no value can reach a cast that C leaves undefined.
local NUMBER_OPTIONS = {
  { "timeout", 0.001, 86400 }, { "connect_timeout", 0.001, 86400 },
  { "low_speed_limit", 0, 2 ^ 31 - 1, whole = true }, { "low_speed_time", 0, 86400, whole = true },
  { "max_response_size", 1, 2 ^ 32, whole = true }, { "max_connections", 1, 1024, whole = true },
  { "max_retries", 0, 100, whole = true }, { "max_retry_after", 0, 86400 },
  { "base_delay", 0, 3600 }, { "max_delay", 0, 86400 },
}
local STRING_OPTIONS = { "base_url", "user_agent", "ca_file", "proxy", "provider" }
-- Sent in a header line or handed to libcurl as they are: a CR/LF would smuggle a header.
local NO_CONTROL = { user_agent = true, ca_file = true, proxy = true }

local function number_text(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  return string.format("%.14g", v)
end

-- Every option README "Configuration" lists, by type; the provider's token option is added
-- per provider (client_options), so that Extruct's client refuses Valyu's `api_key`.
-- Token options: their types are checked in M.client (`token` may stand in for a provider's own).
local CLIENT_OPTIONS = { clock = "table", token = "any" }
for _, o in ipairs(NUMBER_OPTIONS) do CLIENT_OPTIONS[o[1]] = "number" end
for _, k in ipairs(STRING_OPTIONS) do CLIENT_OPTIONS[k] = "string" end
local client_options_of = {}
local function client_options(p)
  local t = client_options_of[p.name]
  if not t then
    t = options.extend(CLIENT_OPTIONS, { [p.token_option] = "any" })
    client_options_of[p.name] = t
  end
  return t
end

local function check_options(opts)
  for _, o in ipairs(NUMBER_OPTIONS) do
    local k, lo, hi = o[1], o[2], o[3]
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or not (v >= lo and v <= hi) or (o.whole
      and v % 1 ~= 0)) then
      error(string.format("bad option '%s' to 'client' (%s in %s..%s expected, got %s)", k,
        o.whole and "integer" or "number", number_text(lo), number_text(hi),
        type(v) == "number" and number_text(v) or type(v)), 3)
    end
  end
  for _, k in ipairs(STRING_OPTIONS) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error(string.format("bad option '%s' to 'client' (string expected, got %s)", k,
        type(opts[k])), 3)
    end
    if NO_CONTROL[k] and opts[k] and opts[k]:find("%c") then
      error(string.format("bad option '%s' to 'client' (a string without control characters " ..
        "expected)", k), 3)
    end
  end
  if opts.insecure then
    error("deepresearch: there is no option to turn TLS verification off; use ca_file for a " ..
      "private CA", 3)
  end
end

--- A base URL as the client uses it: without trailing slashes, and without a trailing version
-- the descriptor lists in base_suffixes ("/v1", "/v1beta": the SDKs' convention puts it in the
-- base URL; the descriptor's paths carry it already).
function M.base_url(p, base)
  base = tostring(base):gsub("/+$", "")
  for _, suffix in ipairs(p.base_suffixes or {}) do
    local n = #suffix
    if base:sub(-n) == suffix and base:sub(1, -n - 1):match("^https?://[^/%s]+") then
      return (base:sub(1, -n - 1):gsub("/+$", ""))
    end
  end
  return base
end

--- Creates a client. See README "Configuration" for every option and its default.
function M.client(opts)
  validate.type("client", 1, opts, "table", true)
  opts = opts or {}
  check_options(opts)
  local name = opts.provider or providers.default_name()
  local p = providers[name]
  if type(p) ~= "table" or not p.kinds then
    error(string.format("bad option 'provider' to 'client' (unknown provider %q)", tostring(name)),
      2)
  end
  options.check("client", opts, client_options(p), 2)
  local token = opts[p.token_option]
  if token == nil and p.token_option ~= "token" then token = opts.token end
  if token ~= nil and type(token) ~= "string" and type(token) ~= "function" then
    error("bad option '" .. p.token_option .. "' to 'client' (string or function expected)", 2)
  end
  local base = M.base_url(p, opts.base_url or os.getenv(p.base_env) or p.base_url)
  if not base:match("^https?://[^/%s]+") or base:find("%c") then
    error(string.format("bad option 'base_url' to 'client' (an http(s) URL expected, got %q)",
      http.redact_url(base)), 2)
  end
  local handle = core.new_client(opts)
  local state = handle_data(handle)
  state.handle = handle
  state.provider = p
  state.modules = modules_of(p) -- the poller runs the same operations
  state.token = token or os.getenv(p.token_env)
  state.base_url = base
  state.poll = p.poll -- the wait's default first interval (floor) and cap (runtime/wait.lua)
  state.user_agent = (opts.user_agent and (opts.user_agent .. " ") or "") ..
    "deepresearch-lua/" .. core.version .. " libcurl/" .. core.curl_version
  state.max_retries = opts.max_retries or retry.defaults.max_retries
  state.max_retry_after = opts.max_retry_after or retry.defaults.max_retry_after
  state.base_delay = opts.base_delay
  state.max_delay = opts.max_delay
  state.clock = opts.clock or clock.default
  state.options = opts
  http.warn_clear_proxy(state.base_url, opts.proxy)
  local client = setmetatable({}, client_mt(p))
  states[client] = state
  return client
end

--- The normalised state of any provider's task: queued, running, done, failed, cancelled.
M.state = providers.state

--- Across providers (README "Across providers"): the worst case of a create, one brief on
-- several providers, their comparison, and falling back from one to the next.
function M.estimate(provider, params) return require("deepresearch.budget").estimate(provider,
  params) end
function M.fanout(opts) return require("deepresearch.fanout").fanout(opts) end
function M.compare(results, opts) return require("deepresearch.compare").compare(results, opts) end
function M.fallback(opts) return require("deepresearch.fallback").fallback(opts) end

--- assert that raises the error object with its message on every Lua version.
-- PUC 5.1/5.2's assert rejects a table message, and their lua.c cannot print one.
function M.assert(v, err, ...)
  if v then return v, err, ... end
  if err == nil then err = "assertion failed!" end
  if type(err) == "table" and (_VERSION == "Lua 5.1" or _VERSION == "Lua 5.2") then
    error(tostring(err), 2)
  end
  error(err, 2)
end

-- brief, schema, report and discovery helpers load on first use.
local LAZY = { brief = "deepresearch.brief", schema = "deepresearch.schema",
  report = "deepresearch.report", discovery = "deepresearch.providers.discovery", json =
    "deepresearch.base.json", webhooks = "deepresearch.webhooks",
  result = "deepresearch.result", journal = "deepresearch.journal" }
setmetatable(M, {
  __index = function(t, k)
    local name = LAZY[k]
    if not name then return nil end
    local mod = require(name)
    -- report.check_links sends requests, so it lives outside report/ and joins it here.
    if k == "report" then require "deepresearch.linkcheck" end
    rawset(t, k, mod)
    return mod
  end,
})

return M

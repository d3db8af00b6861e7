-- The clients and drivers, one per provider, that run the editor's requests without blocking;
-- and a descriptor's call (cli.create, cli.list), recorded and replayed on a driver.
local providers = require "deepresearch.providers"
local config = require "deepresearch.nvim.config"
local library = require "deepresearch.nvim.library"
local secrets = require "deepresearch.nvim.secrets"
local state = require "deepresearch.nvim.state"

local unpack = table.unpack or unpack -- luacheck: ignore
local M = {}

local function client_options(name, key)
  local s = config.settings(name)
  local o = {}
  for k, v in pairs(config.values.client or {}) do o[k] = v end
  o.provider = name
  o.base_url = s.base_url or o.base_url
  o.token = key or o.token
  o.max_connections = config.values.max_connections
  return o
end

local function get_client(name, key)
  if state.clients[name] then return state.clients[name] end
  local lib, err = library.library()
  if not lib then return nil, err end
  local ok, c = pcall(lib.client, client_options(name, key))
  if not ok then return nil, tostring(c) end
  state.clients[name] = c
  return c
end

-- The driver runs the requests: create(params, cb), wait(id, opts, cb), list(query, cb),
-- add(name, cb, ...), step(timeout), pending() and close(), as a poller has them. The default
-- is the client's poller, which the timer steps; setup{ driver = fn } replaces it (fn(client,
-- config, provider) returns the driver), so the editor never holds a second code path.
local function default_driver(c)
  return c:poller{ max_connections = config.values.max_connections }
end

local function make(name, key)
  local c, err = get_client(name, key)
  if not c then return nil, err end
  state.drivers[name] = (config.values.driver or default_driver)(c, config.values, name)
  return state.drivers[name]
end

--- The provider's driver through cb(driver) or cb(nil, message), made on first use once its
-- key (setup's api_key: nvim/secrets.lua) is read; cb may run later, in a libuv callback.
function M.with(name, cb)
  if state.drivers[name] then return cb(state.drivers[name]) end
  if not providers.get(name) then
    return cb(nil, "deepresearch: unknown provider '" .. tostring(name) .. "' (registered: " ..
      table.concat(providers.names(), ", ") .. ")")
  end
  secrets.resolve(name, config.settings(name).token, function(key, err)
    if err then return cb(nil, "deepresearch: " .. name .. " key: " .. err) end
    if state.drivers[name] then return cb(state.drivers[name]) end
    return cb(make(name, key))
  end)
end

--- The provider's driver now, or nil and a message (also while its key is still being read).
function M.get(name)
  local got, p, err = false, nil, nil
  M.with(name, function(a, b) got, p, err = true, a, b end)
  if got then return p, err end
  return nil, "deepresearch: the " .. name .. " key is still being read"
end

--- Closes every driver and client; the next request makes new ones.
function M.close()
  for _, p in pairs(state.drivers) do p:close() end
  for _, c in pairs(state.clients) do c:close() end
  state.drivers, state.clients = {}, {}
end

-- The descriptor's cli.create and cli.list call a blocking client (client:create{...}). The
-- editor hands them a stand-in that records the one call they make, and makes that call on its
-- non-blocking driver: what to send stays the descriptor's, and nothing here blocks.
function M.recorded(fn, ...)
  local calls = {}
  local stand_in = setmetatable({}, { __index = function(_, method)
    return function(_, ...)
      calls[#calls + 1] = { name = method, n = select("#", ...), ... }
      return nil, "recorded"
    end
  end })
  local ok, err = pcall(fn, stand_in, ...)
  if not ok then return nil, tostring(err) end
  if #calls ~= 1 then
    return nil, string.format("deepresearch: the provider's call made %d requests; the editor " ..
      "replays exactly one", #calls)
  end
  return calls[1]
end

function M.replay(p, call, cb)
  if call.name == "create" then return p:create(call[1], cb) end
  if call.name == "list" then return p:list(call[1], cb) end
  return p:add(call.name, cb, unpack(call, 1, call.n))
end

return M

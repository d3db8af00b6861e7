-- setup's options: their defaults and checks, the live values (require("deepresearch.nvim")
-- .config), what they say about one provider (settings), and notify, which setup may replace.
local providers = require "deepresearch.providers"
local buffer = require "deepresearch.nvim.buffer"

local M = {}

local defaults = {
  provider = nil,          -- the registry's default provider
  base_url = nil,          -- the provider's base_env variable, else its API
  token = nil,             -- the provider's token_env variable; a string or a function
  providers = nil,         -- per provider name: { token, base_url, params, <its flags> }
  interval = 5,            -- seconds before the first poll of a task
  max_interval = 30,       -- polls back off up to this many seconds apart
  timeout = nil,           -- seconds to wait for one task; nil: the provider's default
  max_connections = 4,     -- sockets open at once to each API
  tick_ms = 50,            -- how often the timer steps the pollers while work is pending
  open = "tab",            -- where reports open: "tab" | "split" | "vsplit" | "current"
  style = "footnotes",     -- citation style passed to deepresearch.report.render
  progress = "notify",     -- "notify": progress notifications; false: only status()
  notify_every = 15,       -- seconds between two progress notifications of one task
  notify = nil,            -- function(msg, level) replacing vim.notify
  client = nil,            -- extra options for deepresearch.client (timeout, proxy, ca_file, ...)
  driver = nil,            -- function(client, config, provider) returning what runs the
                           -- requests; the default is the client's poller (see nvim/drivers.lua)
  checkpoints = "ask",     -- a task waiting for input: "ask" (prompt when the editor is idle),
                           -- "notify" (answer with :DeepResearchRespond), "approve" (as proposed)
}

local KNOWN = {}
for _, k in ipairs({ "provider", "base_url", "token", "providers", "interval", "max_interval",
  "timeout", "max_connections", "tick_ms", "open", "style", "progress", "notify_every", "notify",
  "client", "driver", "checkpoints" }) do
  KNOWN[k] = true
end
local PER_PROVIDER = { token = true, base_url = true, params = true }
local CHECKPOINTS = { ask = true, notify = true, approve = true }

-- The one table of values: setup refills it in place, so every module may keep it.
local config = {}
for k, v in pairs(defaults) do config[k] = v end
M.values = config

M.levels = (vim.log and vim.log.levels) or { DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4 }

-- One line each: a message of several lines would raise a hit-enter prompt.
function M.notify(msg, level)
  local fn = config.notify or vim.notify
  fn((tostring(msg):gsub("%s*\n%s*", " ")), level or M.levels.INFO, { title = "deepresearch" })
end

--- The provider a command uses unless told otherwise: setup's, else the registry's default.
function M.provider()
  return config.provider or providers.default_name()
end

-- The hint of the first provider that takes a flag (its descriptor's cli.flags), or nil.
function M.flag_hint(key)
  for _, n in ipairs(providers.names()) do
    local hint = providers.get(n).cli.flags[key]
    if hint then return hint end
  end
  return nil
end

function M.check_flag(d, key, where)
  if d.cli.flags[key] then return true end
  local hint = M.flag_hint(key)
  return nil, string.format("%s: %s tasks take no '%s'%s", where, d.cli.name, tostring(key),
    hint and (" (" .. hint .. ")") or "")
end

-- What setup says about one provider: token, base_url, create flags and extra create params.
-- The top-level token, base_url and flags are the setup provider's; `providers` adds to them.
function M.settings(name)
  local d = providers.get(name)
  local s = { flags = {}, params = {} }
  if name == M.provider() then
    s.token, s.base_url = config.token, config.base_url
    for k in pairs(d.cli.flags) do s.flags[k] = config[k] end
  end
  local per = type(config.providers) == "table" and config.providers[name] or nil
  if per then
    if per.token ~= nil then s.token = per.token end
    if per.base_url ~= nil then s.base_url = per.base_url end
    for k, v in pairs(per) do
      if d.cli.flags[k] then s.flags[k] = v end
    end
    for k, v in pairs(per.params or {}) do s.params[k] = v end
  end
  return s
end

-- Error levels count from here: 2 is check, 3 is setup (as they did before the split).
local function check_providers(per)
  if per == nil then return end
  if type(per) ~= "table" then
    error("deepresearch.nvim.setup: providers must be a table of provider name -> settings", 3)
  end
  for name, t in pairs(per) do
    local d = providers.get(name)
    if not d then
      error("deepresearch.nvim.setup: unknown provider '" .. tostring(name) .. "' (registered: "
        .. table.concat(providers.names(), ", ") .. ")", 3)
    end
    if type(t) ~= "table" then
      error("deepresearch.nvim.setup: providers." .. name .. " must be a table", 3)
    end
    for k in pairs(t) do
      if not PER_PROVIDER[k] then
        local ok, msg = M.check_flag(d, k, "deepresearch.nvim.setup: providers." .. name)
        if not ok then error(msg, 3) end
      end
    end
  end
end

--- Raises (at setup's caller) on an unknown option, provider or checkpoints value.
function M.check(opts)
  local name = opts.provider or providers.default_name()
  local d = providers.get(name)
  if not d then
    error("deepresearch.nvim.setup: unknown provider '" .. tostring(name) .. "' (registered: " ..
      table.concat(providers.names(), ", ") .. ")", 3)
  end
  for k in pairs(opts) do
    if not KNOWN[k] and not d.cli.flags[k] then
      local hint = M.flag_hint(k)
      error("deepresearch.nvim.setup: unknown option '" .. tostring(k) .. "'" ..
        (hint and (" (" .. hint .. ")") or ""), 3)
    end
  end
  check_providers(opts.providers)
  if opts.checkpoints ~= nil and not CHECKPOINTS[opts.checkpoints] then
    error("deepresearch.nvim.setup: checkpoints must be ask, notify or approve", 3)
  end
end

--- The values become the defaults with opts on top; raises (at setup's caller) on a bad `open`.
function M.apply(opts)
  for k in pairs(config) do config[k] = nil end
  for k, v in pairs(defaults) do config[k] = v end
  for k, v in pairs(opts) do config[k] = v end
  if not buffer.OPEN[config.open] then
    error("deepresearch.nvim.setup: open must be tab, split, vsplit or current", 3)
  end
end

return M

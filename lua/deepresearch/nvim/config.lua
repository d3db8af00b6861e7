-- setup's options: their defaults and checks, the live values (require("deepresearch.nvim")
-- .config), what they say about one provider (settings), and notify, which setup may replace.
local providers = require "deepresearch.providers"
local buffer = require "deepresearch.nvim.buffer"

local M = {}

local defaults = {
  provider = nil,          -- the registry's default provider
  base_url = nil,          -- the provider's base_env variable, else its API
  api_key = nil,           -- "cmd:<command>" | "env:NAME" | a string | a function; read once
                           -- per session (nvim/secrets.lua); nil: the provider's token_env
  token = nil,             -- the older name of api_key (the same values)
  providers = nil,         -- per provider name: { api_key, base_url, params, <its flags> }
  interval = 5,            -- seconds before the first poll of a task
  max_interval = 30,       -- polls back off up to this many seconds apart
  timeout = nil,           -- seconds to wait for one task; nil: the provider's default
  max_connections = 4,     -- sockets open at once to each API
  tick_ms = 50,            -- how often the timer steps the pollers while work is pending
  open = "notify",         -- a finished report: "notify" (announced; :DeepResearchOpen opens it)
                           -- or opened in a "split" | "vsplit" | "tab" | "float", in Normal mode
  reattach = true,         -- on setup, wait again on the journal's unfinished tasks from Neovim
                           -- and announce the finished ones not yet seen
  journal = nil,           -- the journal's path (nil: deepresearch.journal's); false: none
  style = "footnotes",     -- citation style passed to deepresearch.report.render
  progress = "notify",     -- "notify": progress notifications; false: only status()
  notify_every = 15,       -- seconds between two progress notifications of one task
  notify = nil,            -- function(msg, level) replacing vim.notify
  client = nil,            -- extra options for deepresearch.client (timeout, proxy, ca_file, ...)
  driver = nil,            -- function(client, config, provider) returning what runs the
                           -- requests; the default is the client's poller (see nvim/drivers.lua)
  transport = nil,         -- "auto" (nil): the C core when built, else curl; "core"; "curl"
  checkpoints = "ask",     -- a task waiting for input: "ask" (prompt when the editor is idle),
                           -- "notify" (answer with :DeepResearchRespond), "approve" (as proposed)
}

local KNOWN = {}
for _, k in ipairs({ "provider", "base_url", "token", "providers", "interval", "max_interval",
  "timeout", "max_connections", "tick_ms", "open", "style", "progress", "notify_every", "notify",
  "client", "driver", "checkpoints", "transport", "api_key", "reattach", "journal" }) do
  KNOWN[k] = true
end
local PER_PROVIDER = { api_key = true, token = true, base_url = true, params = true }
local CHECKPOINTS = { ask = true, notify = true, approve = true }

-- The one table of values: setup refills it in place, so every module may keep it.
local config = {}
for k, v in pairs(defaults) do config[k] = v end
M.values = config

M.levels = (vim.log and vim.log.levels) or { DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4 }

-- One line each, fitting the command line: a longer one would raise a hit-enter prompt
-- (nvim/screen.lua). Callable from libuv callbacks. Returns the notifier's record, if any.
function M.notify(msg, level, opts)
  return require("deepresearch.nvim.screen").notify(msg, level or M.levels.INFO, opts,
    config.notify)
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
    s.token, s.base_url = config.api_key or config.token, config.base_url
    for k in pairs(d.cli.flags) do s.flags[k] = config[k] end
  end
  local per = type(config.providers) == "table" and config.providers[name] or nil
  if per then
    if per.api_key ~= nil or per.token ~= nil then s.token = per.api_key or per.token end
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
  if opts.transport ~= nil and opts.transport ~= "auto" and opts.transport ~= "core" and
    opts.transport ~= "curl" then
    error("deepresearch.nvim.setup: transport must be auto, core or curl", 3)
  end
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
    error("deepresearch.nvim.setup: open must be notify, split, vsplit, tab or float", 3)
  end
end

return M

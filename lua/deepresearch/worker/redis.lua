-- One Redis connection that survives Redis going away: every call returns
-- value or nil, message; a broken connection is dropped and reopened with
-- backoff on a later call. Built on Debian's redis-lua (plain Lua over LuaSocket).
local M = {}
local unpack = table.unpack or unpack -- luacheck: ignore

-- Debian installs redis-lua for 5.1-5.3 only (5.2/5.3 are symlinks to the same
-- file, which runs unchanged on 5.4: it uses `_G.unpack or table.unpack` and
-- nothing else version-specific). Load that one file, not the whole 5.3 tree.
local REDIS_LUA_PATHS = "/usr/local/share/lua/5.3/?.lua;/usr/share/lua/5.3/?.lua;" ..
  "/usr/local/share/lua/5.1/?.lua;/usr/share/lua/5.1/?.lua"

function M.load_library()
  local ok, mod = pcall(require, "redis")
  if ok then return mod end
  local searchpath = package.searchpath -- luacheck: ignore (5.2+; the worker runs on 5.4)
  local path = searchpath and searchpath("redis", REDIS_LUA_PATHS)
  if not path then
    error("deepresearch-worker: redis-lua is not installed (Debian: apt-get install lua-redis)", 0)
  end
  mod = assert(loadfile(path))("redis")
  package.loaded.redis = mod
  return mod
end

local redis = M.load_library()
local socket = require "socket"
local policy = require "deepresearch.base.policy"

--- Whether an error is lua.c's Ctrl-C hook ("interrupted!"), which the worker must never swallow.
function M.is_interrupt(err)
  return type(err) == "string" and err:find("interrupted!$") ~= nil
end

--- Parses redis://[[user]:password@]host[:port][/db]; returns a table or nil, message.
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "a redis:// URL is required" end
  local rest = url:match("^redis://(.*)$")
  if not rest then return nil, "not a redis:// URL: " .. url end
  local userinfo, hostpart = rest:match("^([^@/]*)@(.*)$")
  hostpart = hostpart or rest
  local host, tail
  if hostpart:sub(1, 1) == "[" then
    host, tail = hostpart:match("^%[([^%]]+)%](.*)$")
  else
    host, tail = hostpart:match("^([^:/]+)(.*)$")
  end
  if not host then return nil, "no host in " .. url end
  local port, db = tail:match("^:?(%d*)/?(%d*)$")
  if not port then return nil, "cannot read port and database in " .. url end
  local user, password
  if userinfo then
    user, password = userinfo:match("^([^:]*):(.*)$")
    if not user then password = userinfo end
    if user == "" then user = nil end
  end
  return { host = host, port = tonumber(port) or 6379, db = tonumber(db) or 0, user = user,
    password = password }
end

local Conn = {}
Conn.__index = Conn

--- opts: url, timeout (socket seconds, 5), max_backoff (seconds, 2), on_state(up, message)
function M.new(opts)
  local cfg, err = M.parse_url(opts.url)
  if not cfg then return nil, err end
  return setmetatable({
    cfg = cfg, timeout = opts.timeout or 5, max_backoff = opts.max_backoff or 2,
    on_state = opts.on_state, failures = 0, retry_at = 0, commands = {}, client = nil,
    now = opts.now or socket.gettime,
  }, Conn)
end

local function command(self, name)
  local f = self.commands[name]
  if not f then
    f = redis.command(name)
    self.commands[name] = f
  end
  return f
end

-- A reply error means the connection is fine; anything else means it is not.
-- LOADING (Redis replaying its AOF after a restart) is treated as "not up yet".
local function is_reply_error(msg)
  return tostring(msg):find("redis error: ", 1, true) and not tostring(msg):find("LOADING", 1, true)
end

local function clean(msg)
  return (tostring(msg):gsub("^.-redis%.lua:%d+: ", ""))
end

function Conn:_down(msg)
  if M.is_interrupt(msg) then
    self:close()
    error(msg, 0)
  end
  if self.client then pcall(function() self.client.network.socket:close() end) end
  self.client = nil
  self.failures = self.failures + 1
  -- reconnects: about 0.1 s after the first failure, doubling up to max_backoff
  self.retry_at = self.now() + policy.backoff(self.failures, { base_delay = 0.1,
    max_delay = self.max_backoff })
  if self.failures == 1 and self.on_state then self.on_state(false, clean(msg)) end
  return nil, clean(msg)
end

function Conn:connect()
  if self.client then return true end
  if self.now() < self.retry_at then return nil, "redis unavailable (reconnecting)" end
  local cfg = self.cfg
  local ok, client = pcall(redis.connect, { host = cfg.host, port = cfg.port,
    timeout = self.timeout })
  if not ok then return self:_down(client) end
  self.client = client
  local setup = {}
  if cfg.password then
    setup[#setup + 1] = cfg.user and { "AUTH", cfg.user, cfg.password } or { "AUTH", cfg.password }
  end
  if cfg.db ~= 0 then setup[#setup + 1] = { "SELECT", tostring(cfg.db) } end
  setup[#setup + 1] = { "PING" }
  for _, c in ipairs(setup) do
    local good, e = pcall(command(self, c[1]), client, unpack(c, 2))
    if not good then return self:_down(e) end
  end
  local was_down = self.failures > 0
  self.failures = 0
  if was_down and self.on_state then self.on_state(true) end
  self.reconnected = was_down
  return true
end

--- Sends one command; returns the reply, or nil, message, "reply" | "down".
function Conn:call(name, ...)
  local ok, err = self:connect()
  if not ok then return nil, err, "down" end
  local good, reply = pcall(command(self, name), self.client, ...)
  if good then return reply end
  if is_reply_error(reply) then return nil, clean(reply), "reply" end
  -- (an interrupt raises from _down: cut off mid-command, the connection cannot be reused)
  local _, msg = self:_down(reply)
  return nil, msg, "down"
end

--- EVAL script with keys and args (arrays); same returns as call.
function Conn:eval(script, keys, args)
  local argv = { script, #keys }
  for _, k in ipairs(keys) do argv[#argv + 1] = k end
  for _, a in ipairs(args or {}) do argv[#argv + 1] = tostring(a) end
  return self:call("EVAL", unpack(argv))
end

--- EVALSHA of a script loaded once per connection's life (SCRIPT LOAD), falling back to EVAL
-- when Redis answers NOSCRIPT (restarted, or its script cache flushed); same returns as call.
function Conn:evalsha(script, keys, args)
  self.shas = self.shas or {}
  local sha = self.shas[script]
  if not sha then
    local s, err, kind = self:call("SCRIPT", "LOAD", script)
    if not s then return nil, err, kind end
    sha, self.shas[script] = s, s
  end
  local argv = { sha, #keys }
  for _, k in ipairs(keys) do argv[#argv + 1] = k end
  for _, a in ipairs(args or {}) do argv[#argv + 1] = tostring(a) end
  local r, err, kind = self:call("EVALSHA", unpack(argv))
  if kind == "reply" and tostring(err):find("NOSCRIPT", 1, true) then
    self.shas[script] = nil
    self.evalsha_fallbacks = (self.evalsha_fallbacks or 0) + 1
    return self:eval(script, keys, args)
  end
  return r, err, kind
end

function Conn:up() return self.client ~= nil end

function Conn:close()
  if self.client then pcall(function() self.client.network.socket:close() end) end
  self.client = nil
end

return M

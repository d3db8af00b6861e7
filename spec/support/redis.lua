-- A real redis-server for specs, on a free loopback port, in a temporary directory,
-- started and stopped by PID (never by name). AOF on and RDB off, so stopping and
-- starting it again on the same port and directory keeps its data.
--   local redis = require "support.redis"
--   local r = redis.start()        -- r.url, r.port, r.dir, r.pid
--   r:call("LPUSH", "q", "x")      -- one command: value, or nil, message
--   r:stop(); r:start()            -- restart with its data
--   r:destroy()                    -- stop and remove the directory
local socket = require "socket"
local conn_mod = require "deepresearch.worker.redis"

local M = {}

local Redis = {}
Redis.__index = Redis

M.MAX_LIFETIME = 1800 -- seconds: a server a crashed spec run leaves behind stops by itself

function M.available()
  return os.execute("command -v redis-server >/dev/null 2>&1") == true
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local shell_quote = require("support.sim").shell_quote

--- Whether a process is running (a zombie or a missing /proc entry is not).
function M.running(pid)
  local f = pid and io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local state = (f:read("*a") or ""):match("^%d+ %b() (%a)")
  f:close()
  return state ~= nil and state ~= "Z"
end

--- Sends a signal to one process by PID and waits (bounded) until it is gone.
function M.kill(pid, signal, timeout)
  os.execute(string.format("kill -%s %d 2>/dev/null", signal or "TERM", pid))
  local deadline = socket.gettime() + (timeout or 10)
  while M.running(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  return not M.running(pid)
end

function M.start(opts)
  opts = opts or {}
  local dir = opts.dir
  if not dir then
    local p = assert(io.popen("mktemp -d /tmp/deepresearch-redis.XXXXXX"))
    dir = p:read("*l")
    p:close()
  end
  local r = setmetatable({ dir = dir, host = "127.0.0.1" }, Redis)
  for attempt = 1, 5 do
    r.port = opts.port or free_port()
    local ok, err = r:start()
    if ok then return r end
    if opts.port or attempt == 5 then error("redis-server did not start: " .. tostring(err), 2) end
  end
  return r
end

--- Starts the server (again) on its port and directory; waits until it answers PING.
function Redis:start()
  if self.pid and M.running(self.pid) then return true end
  self.url = string.format("redis://%s:%d/0", self.host, self.port)
  -- `timeout` bounds the server's life if this process dies without stopping it;
  -- it forwards our SIGTERM to redis-server and exits with it.
  local cmd = string.format("cd %s && exec timeout -s TERM %d redis-server --port %d --bind " ..
    "127.0.0.1 --save '' --appendonly yes --dir %s --logfile %s --daemonize no </dev/null " ..
    ">/dev/null 2>&1 & echo $!",
    shell_quote(self.dir), M.MAX_LIFETIME, self.port, shell_quote(self.dir),
    shell_quote(self.dir .. "/redis.log"))
  local p = assert(io.popen(cmd, "r"))
  self.pid = tonumber(p:read("*l"))
  p:close()
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    if not M.running(self.pid) then return nil, "exited (see " .. self.dir .. "/redis.log)" end
    local c = socket.tcp()
    c:settimeout(0.5)
    if c:connect(self.host, self.port) then
      c:send("PING\r\n")
      local line = c:receive("*l")
      c:close()
      if line == "+PONG" then return true end
    else
      c:close()
    end
    socket.sleep(0.02)
  end
  return nil, "no answer to PING on port " .. self.port
end

--- Stops the server by PID (SIGTERM: it writes its AOF) and waits until the port is free.
function Redis:stop()
  if not self.pid then return end
  if self.conn then self.conn:close() end
  if not M.kill(self.pid, "TERM", 10) then M.kill(self.pid, "KILL", 5) end
  self.pid = nil
end

function Redis:destroy()
  self:stop()
  if self.dir and self.dir:match("^/tmp/deepresearch%-redis%.") then
    os.execute("rm -rf " .. shell_quote(self.dir))
  end
end

--- One command on a connection kept by this object; value or nil, message.
function Redis:call(...)
  if not self.conn then self.conn = assert(conn_mod.new{ url = self.url, max_backoff = 0.05 }) end
  local v, err = self.conn:call(...)
  if err then v, err = self.conn:call(...) end -- once more after a reconnect
  return v, err
end

--- HGETALL as a table.
function Redis:hash(key)
  local flat = assert(self:call("HGETALL", key))
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

return M

-- luacheck: std lua54
-- The simulator's HTTP/1.1 engine: one thread, socket.select, non-blocking sockets.
-- Keep-alive, Content-Length bodies, Expect: 100-continue, timers for delayed or dripping
-- replies (a slow reply never blocks other connections), and connection accounting.
-- The engine knows nothing about the APIs: a handler turns a request into a reply descriptor:
--   { status, headers = {{name, value}, ...}, body = string,
--     close = bool,            -- close the connection after this reply
--     delay = seconds,         -- hold the reply (real time); compute() is called after the delay
--     compute = fn() -> descriptor,
--     drop = bool,             -- close at once, no reply
--     cut = n, rst = bool,     -- send the head and n body bytes, then close (RST when rst)
--     drip = seconds,          -- send the head, then the body one byte per interval
--     no_length = bool }       -- do not add Content-Length
local socket = require "socket"

local M = {}

local Server = {}
Server.__index = Server

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout",
  [409] = "Conflict", [413] = "Payload Too Large", [422] = "Unprocessable Entity",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

local MAX_HEAD = 64 * 1024
local MAX_BODY = 64 * 1024 * 1024
local IDLE_TIMEOUT = 300 -- real seconds a keep-alive connection may sit idle

local now = socket.gettime

--- Binds a listening socket. opts: host, port, handler(req, conn) -> descriptor, on_tick().
function M.new(opts)
  local sock, err = socket.bind(opts.host or "127.0.0.1", opts.port or 0, 1024)
  if not sock then return nil, err end
  sock:settimeout(0)
  local host, port = sock:getsockname()
  return setmetatable({
    sock = sock, host = host, port = tonumber(port), handler = opts.handler, on_tick = opts.on_tick,
    list = {}, serial = 0, timers = {},
    stats = { accepted = 0, open = 0, max_open = 0 },
  }, Server)
end

--- Runs fn after `delay` real seconds, from the loop.
function Server:timer(delay, fn)
  local t = { at = now() + delay, fn = fn }
  local timers = self.timers
  local i = #timers
  while i > 0 and timers[i].at > t.at do i = i - 1 end
  table.insert(timers, i + 1, t)
end

--- Starts a new measurement window: accepted counts from 0, max_open from the sockets open now.
function Server:reset_accounting()
  self.stats.accepted = 0
  self.stats.max_open = self.stats.open
end

-- A connection counts once its first request is an API request (not /_sim/): the test
-- harness's own control calls never show up in "sockets open at once".
function Server:classify(conn, path)
  if conn.kind then return end
  if path:sub(1, 6) == "/_sim/" then conn.kind = "control"; return end
  conn.kind = "api"
  local st = self.stats
  st.accepted = st.accepted + 1
  st.open = st.open + 1
  if st.open > st.max_open then st.max_open = st.open end
end

function Server:close(conn, rst)
  if conn.closed then return end
  conn.closed = true
  if rst then pcall(conn.sock.setoption, conn.sock, "linger", { on = true, timeout = 0 }) end
  conn.sock:close()
  if conn.kind == "api" then
    self.stats.open = self.stats.open - 1
  elseif not conn.kind then
    self.stats.accepted = self.stats.accepted + 1 -- connected and left without a request
  end
end

function Server:flush(conn)
  local out = conn.out
  while out[1] do
    local chunk = out[1]
    local last, err, partial = conn.sock:send(chunk, conn.out_i)
    if last == #chunk then
      table.remove(out, 1)
      conn.out_i = 1
    elseif err == "timeout" then
      conn.out_i = partial + 1
      return
    else
      self:close(conn)
      return
    end
  end
  if conn.closing and not conn.dripping then self:close(conn, conn.rst) end
end

function Server:queue(conn, data)
  if conn.closed or data == "" then return end
  conn.out[#conn.out + 1] = data
  self:flush(conn)
end

local function head(resp, body_len)
  local status = resp.status or 200
  local reason = resp.reason or REASONS[status] or "Unknown"
  local lines = { string.format("HTTP/1.1 %d %s", status, reason) }
  for _, h in ipairs(resp.headers or {}) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  if not resp.no_length then lines[#lines + 1] = "Content-Length: " .. body_len end
  if resp.close then lines[#lines + 1] = "Connection: close" end
  lines[#lines + 1] = "\r\n"
  return table.concat(lines, "\r\n")
end

--- Sends (or schedules) a reply descriptor on a connection.
function Server:deliver(conn, resp)
  if conn.closed then return end
  if resp.delay and resp.delay > 0 then
    conn.busy = true
    self:timer(resp.delay, function()
      if conn.closed then return end
      local r = resp.compute and resp.compute() or resp
      r.delay = nil
      self:deliver(conn, r)
    end)
    return
  end
  if resp.compute then resp = resp.compute() end
  if resp.drop then self:close(conn); return end
  local body = resp.body or ""
  if conn.close_after then resp.close = true end
  if resp.cut or resp.drip then resp.close = true end
  if resp.drip and #body > 0 then
    conn.busy, conn.dripping = true, true
    self:queue(conn, head(resp, #body))
    local i = 0
    local function step()
      if conn.closed then return end
      i = i + 1
      self:queue(conn, body:sub(i, i))
      if i < #body then self:timer(resp.drip, step) else
        conn.dripping = false
        conn.closing = true
        self:flush(conn)
      end
    end
    self:timer(resp.drip, step)
    return
  end
  if resp.cut then body = body:sub(1, resp.cut) end
  local full = resp.cut and #(resp.body or "") or #body
  if resp.close then conn.closing, conn.rst = true, resp.rst end
  conn.busy = false
  self:queue(conn, head(resp, full) .. body)
  if not conn.closing then self:parse(conn) end
end

local function parse_head(text)
  local method, target, version = text:match("^(%u+) (%S+) HTTP/(%d%.%d)\r\n")
  if not method then return nil end
  local headers = {}
  for name, value in text:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    name = name:lower()
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
  end
  return method, target, version, headers
end

local function bad_request(self, conn, status, msg)
  self:classify(conn, "/")
  self:deliver(conn, { status = status, close = true, body = '{"detail":"' .. msg .. '"}',
    headers = { { "Content-Type", "application/json" } } })
end

-- Takes as many complete requests from the input buffer as the connection may serve now.
function Server:parse(conn)
  while not conn.busy and not conn.closing and not conn.closed do
    local buf = conn.inbuf
    local e = buf:find("\r\n\r\n", 1, true)
    if not e then
      if #buf > MAX_HEAD then bad_request(self, conn, 431, "Request header too large") end
      return
    end
    local method, target, version, headers = parse_head(buf:sub(1, e + 1))
    if not method then bad_request(self, conn, 400, "Malformed request"); return end
    local len = tonumber(headers["content-length"] or "0")
    if not len or len < 0 or len > MAX_BODY then
      bad_request(self, conn, 400, "Bad Content-Length")
      return
    end
    if #buf < e + 3 + len then
      if not conn.continued and (headers.expect or ""):lower() == "100-continue" then
        conn.continued = true
        self:queue(conn, "HTTP/1.1 100 Continue\r\n\r\n")
      end
      return
    end
    conn.inbuf = buf:sub(e + 4 + len)
    conn.continued = false
    local connection = (headers.connection or ""):lower()
    if connection:find("close", 1, true)
      or (version == "1.0" and not connection:find("keep-alive", 1, true)) then
      conn.close_after = true
    end
    local path = target:match("^[^?]*")
    self:classify(conn, path)
    conn.busy = true
    conn.requests = conn.requests + 1
    local req = { method = method, target = target, version = version, headers = headers,
      body = buf:sub(e + 4, e + 3 + len) }
    local ok, resp = xpcall(self.handler, debug.traceback, req, conn)
    if not ok then
      io.stderr:write("simulator: handler error: ", tostring(resp), "\n")
      resp = { status = 500, body = '{"detail":"Internal Server Error"}',
        headers = { { "Content-Type", "application/json" } } }
    end
    self:deliver(conn, resp)
  end
end

function Server:read(conn)
  local data, err, partial = conn.sock:receive(65536)
  data = data or partial
  conn.last = now()
  if data and #data > 0 then conn.inbuf = conn.inbuf .. data end
  if err == "closed" then
    self:close(conn)
  elseif err and err ~= "timeout" then
    self:close(conn, true)
  else
    self:parse(conn)
  end
end

function Server:accept()
  while true do
    local client = self.sock:accept()
    if not client then return end
    client:settimeout(0)
    client:setoption("tcp-nodelay", true)
    self.serial = self.serial + 1
    self.list[#self.list + 1] = { sock = client, serial = self.serial, inbuf = "", out = {},
      out_i = 1, requests = 0, last = now() }
    if #self.list >= 1000 then return end -- stay below FD_SETSIZE
  end
end

--- One turn of the loop: wait at most `max_wait` real seconds for sockets or timers.
function Server:step(max_wait)
  local recvt, sendt, live = { self.sock }, {}, {}
  local by_sock = {}
  local t = now()
  for _, conn in ipairs(self.list) do
    if not conn.closed and not conn.busy and not conn.out[1] and t - conn.last > IDLE_TIMEOUT then
      self:close(conn)
    end
    if not conn.closed then
      live[#live + 1] = conn
      by_sock[conn.sock] = conn
      recvt[#recvt + 1] = conn.sock
      if conn.out[1] then sendt[#sendt + 1] = conn.sock end
    end
  end
  self.list = live
  if #live >= 1000 then table.remove(recvt, 1) end
  local wait = max_wait or 1
  local first = self.timers[1]
  if first then wait = math.max(0, math.min(wait, first.at - t)) end
  local readable, writable = socket.select(recvt, sendt, wait)
  for _, s in ipairs(writable) do
    local conn = by_sock[s]
    if conn and not conn.closed then self:flush(conn) end
  end
  for _, s in ipairs(readable) do
    if s == self.sock then self:accept() else
      local conn = by_sock[s]
      if conn and not conn.closed then self:read(conn) end
    end
  end
  t = now()
  local due = {}
  while self.timers[1] and self.timers[1].at <= t do
    due[#due + 1] = table.remove(self.timers, 1)
  end
  for _, timer in ipairs(due) do timer.fn() end
  if self.on_tick then self.on_tick() end
end

function Server:run()
  self.running = true
  while self.running do self:step(1) end
  for _, conn in ipairs(self.list) do
    if not conn.closed then self:flush(conn); self:close(conn) end
  end
  self.sock:close()
end

function Server:stop()
  self.running = false
end

M.REASONS = REASONS
return M

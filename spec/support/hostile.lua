-- A tiny scripted HTTP server in its own process, for answers the simulator does not give
-- (a cursor that never ends, a checkpoint that stays pending after its answer...). The client
-- under test blocks, hence the process. routes: Lua source of a chunk returning
-- function(method, path, body, n) -> status, body (n: the request's number, from 1); no status:
-- the connection closes unanswered.
-- GET /_count?<pattern> says how many earlier "METHOD path" lines matched the Lua pattern.
local sim = require "support.sim"
local socket = require "socket"

local M = {}

local SERVER = [==[
local socket = require "socket"
local routes = assert(load(io.open(arg[1]):read("*a")))()
local watch = tonumber(arg[2])
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0.5)
local _, port = srv:getsockname()
io.stdout:write("listening 127.0.0.1 ", port, "\n")
io.stdout:flush()
local seen, n = {}, 0
local function count(pattern)
  local k = 0
  for _, line in ipairs(seen) do if line:match(pattern) then k = k + 1 end end
  return k
end
while true do
  local c = srv:accept()
  if c then
    c:settimeout(5)
    local method, path = (c:receive("*l") or ""):match("^(%u+) (%S+)")
    local len = 0
    repeat
      local h = c:receive("*l")
      local v = h and h:lower():match("^content%-length:%s*(%d+)")
      if v then len = tonumber(v) end
    until not h or h == ""
    local body = len > 0 and c:receive(len) or ""
    local status, out
    if path and path:match("^/_count%?") then
      local pattern = path:match("^/_count%?(.*)$"):gsub("%%(%x%x)", function(x)
        return string.char(tonumber(x, 16))
      end)
      status, out = 200, tostring(count(pattern))
    elseif path then
      n = n + 1
      seen[n] = method .. " " .. path
      status, out = routes(method, path, body, n)
    end
    if status then
      out = out or ""
      c:send("HTTP/1.1 " .. status .. " X\r\nContent-Type: application/json\r\nContent-Length: " ..
        #out .. "\r\nConnection: close\r\n\r\n" .. out)
    end
    c:close()
  elseif watch then
    local f = io.open("/proc/" .. watch .. "/stat")
    if not f then os.exit(0) end
    f:close()
  end
end
]==]

local function write_temp(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

--- Starts a server; returns { url, count(pattern), stop() }.
function M.start(routes)
  local script, routes_file = write_temp(SERVER), write_temp(routes)
  local pipe = assert(io.popen("echo $$; exec env -u LD_PRELOAD -u ASAN_OPTIONS " ..
    "-u LSAN_OPTIONS lua5.4 " .. sim.shell_quote(script) .. " " .. sim.shell_quote(routes_file) ..
    " " .. tostring(sim.own_pid() or ""), "r"))
  local pid = tonumber(pipe:read("*l"))
  local port = tonumber(((pipe:read("*l") or ""):match("^listening %S+ (%d+)$")))
  os.remove(script) -- both read by now
  os.remove(routes_file)
  assert(port, "the hostile server did not start")
  local h = { url = "http://127.0.0.1:" .. port }
  --- How many requests so far matched the Lua pattern (on "METHOD path?query").
  function h.count(pattern)
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(10)
    local q = pattern:gsub("[^%w]", function(ch) return string.format("%%%02X", ch:byte()) end)
    c:send("GET /_count?" .. q .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local raw = c:receive("*a")
    c:close()
    return tonumber(raw:match("\r\n\r\n(%d+)$"))
  end
  function h.stop()
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    pipe:close()
  end
  return h
end

return M

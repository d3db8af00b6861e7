-- Starts, drives and stops the API simulator for specs (see docs/simulator.md).
--   local sim = require "support.sim"
--   local s = sim.shared()          -- one simulator per busted run; call s:reset() in before_each
--   local s = sim.start{ speed = 0, seed = 1 }   -- a private one; s:stop() when done
-- Control calls go over plain LuaSocket with Connection: close, so they never count as API
-- connections in the simulator's accounting.
local socket = require "socket"
local cjson = require("cjson").new()

local M = {}

local Sim = {}
Sim.__index = Sim

local REGISTRY_KEY = "deepresearch.spec.support.sim.shared"

local function repo_root()
  local src = debug.getinfo(1, "S").source:sub(2)
  local root = src:match("^(.*)/spec/support/sim%.lua$")
  if root then return root end
  if src == "spec/support/sim.lua" then return "." end
  return "."
end

local function own_pid()
  local f = io.open("/proc/self/stat", "r")
  if not f then return nil end
  local pid = f:read("*n")
  f:close()
  return pid
end

--- This process's pid (for --watch-pid style watchers).
M.own_pid = own_pid

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

--- Spawns `lua5.4 sim/server.lua --port 0 ...` and waits for its "listening" line.
-- opts: speed (default 0), seed (default 1), host, lua (default "lua5.4"), quiet (default true).
function M.start(opts)
  opts = opts or {}
  local root = repo_root()
  local args = {
    opts.lua or
    "lua5.4", shell_quote(root .. "/sim/server.lua"), "--port", tostring(opts.port or 0),
    "--speed", tostring(opts.speed or 0), "--seed", tostring(opts.seed or 1) }
  if opts.quiet ~= false then args[#args + 1] = "--quiet" end
  local pid = own_pid()
  if pid then args[#args + 1] = "--watch-pid " .. pid end
  -- `echo $$; exec ...`: the shell prints its pid, then becomes the simulator (same pid).
  -- The simulator is not under test: keep a sanitizer runtime preloaded into the spec
  -- runner (make test-asan) out of it.
  local pipe = assert(io.popen("echo $$; exec env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS " ..
    table.concat(args, " "), "r"))
  local child = tonumber(pipe:read("*l"))
  local line = pipe:read("*l")
  local host, port = (line or ""):match("^listening (%S+) (%d+)$")
  if not port then
    pipe:close()
    error("simulator did not start (got " .. tostring(line) .. ")", 2)
  end
  local s = setmetatable({ pid = child, pipe = pipe, host = host, port = tonumber(port),
    url = "http://" .. host .. ":" .. port }, Sim)
  return s
end

--- One HTTP request on a fresh connection. Returns { status, headers (lower-case names),
-- body, json } or nil, err. opts: headers = { name = value }, body = string | table.
function Sim:http(method, path, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = cjson.encode(body) end
  local c = socket.tcp()
  c:settimeout(opts.timeout or 30)
  local ok, err = c:connect(self.host, self.port)
  if not ok then c:close(); return nil, "connect: " .. tostring(err) end
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: " .. self.host .. ":" .. self.port,
    "Connection: close" }
  local has_type = false
  for k, v in pairs(opts.headers or {}) do
    lines[#lines + 1] = k .. ": " .. v
    if k:lower() == "content-type" then has_type = true end
  end
  if body then
    if not has_type then lines[#lines + 1] = "Content-Type: application/json" end
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""))
  local raw, rerr, partial = c:receive("*a")
  c:close()
  raw = raw or partial
  if not raw or raw == "" then return nil, "no response: " .. tostring(rerr) end
  local head, rest = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return nil, "malformed response" end
  local status = tonumber(head:match("^HTTP/1%.%d (%d+)"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
    k = k:lower()
    headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
  end
  local res = { status = status, headers = headers, body = rest }
  local okj, decoded = pcall(cjson.decode, rest)
  if okj then res.json = decoded end
  return res
end

local function control(self, method, path, body)
  local res, err = self:http(method, path, { body = body })
  if not res then error("simulator control " .. method .. " " .. path .. ": " .. err, 3) end
  if res.status ~= 200 then
    error(
      "simulator control " .. method .. " " .. path .. " -> " .. res.status .. " " .. res.body, 3)
  end
  return res.json
end

function Sim:reset(opts)
  return control(self, "POST", "/_sim/reset", opts or {})
end

function Sim:advance(seconds) return control(self, "POST", "/_sim/clock", { advance = seconds }) end
function Sim:set_time(t) return control(self, "POST", "/_sim/clock", { set = t }) end
function Sim:set_speed(x) return control(self, "POST", "/_sim/clock", { speed = x }) end
function Sim:clock() return control(self, "GET", "/_sim/clock") end
function Sim:now() return self:clock().now end
function Sim:config(cfg) return control(self, "POST", "/_sim/config", cfg) end
function Sim:fault(f) return control(self, "POST", "/_sim/faults", f).id end
function Sim:faults() return control(self, "GET", "/_sim/faults") end
function Sim:clear_faults() return control(self, "DELETE", "/_sim/faults") end
function Sim:state() return control(self, "GET", "/_sim/state") end
function Sim:requests() return control(self, "GET", "/_sim/requests") end
function Sim:clear_requests() return control(self, "DELETE", "/_sim/requests") end
function Sim:token(spec) return control(self, "POST", "/_sim/tokens", spec) end
function Sim:connections() return self:state().connections end

--- A named counter from GET /_sim/state (0 when never bumped).
function Sim:counter(name) return self:state().counters[name] or 0 end

--- Extruct Deep Research tasks (full objects, creation order).
function Sim:tasks() return self:state().extruct.tasks end

--- Requests in the log matching method and a Lua pattern on the path (both optional).
function Sim:requests_to(method, pattern)
  local out = {}
  for _, r in ipairs(self:requests()) do
    if (not method or r.method == method) and (not pattern or r.path:find(pattern)) then
      out[#out + 1] = r
    end
  end
  return out
end

--- Kills the simulator by pid (SIGTERM, then SIGKILL) and reaps it. Idempotent.
function Sim:stop()
  if not self.pid then return end
  local pid = self.pid
  self.pid = nil
  -- Our own child: until reaped by pipe:close() it lingers as a zombie ("Z"), never reused.
  local function running()
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if not f then return false end
    local state = (f:read("*a") or ""):match("^%d+ %b() (%a)")
    f:close()
    return state ~= nil and state ~= "Z"
  end
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + 3
  while running() and socket.gettime() < deadline do socket.sleep(0.02) end
  if running() then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  if self.pipe then self.pipe:close(); self.pipe = nil end
end

--- The simulator shared by every spec of this busted run: started on first use, stopped at exit.
-- Kept in the Lua registry because busted reloads spec modules (package.loaded) for each file.
function M.shared(opts)
  local reg = debug.getregistry()
  local entry = reg[REGISTRY_KEY]
  if entry and entry.sim.pid then return entry.sim end
  local s = M.start(opts)
  -- A table's __gc never runs on Lua 5.1/LuaJIT: there, a newproxy userdata carries it.
  local newproxy = rawget(_G, "newproxy")
  local sentinel = newproxy and newproxy(true) or {}
  local mt = newproxy and getmetatable(sentinel) or {}
  mt.__gc = function() s:stop() end
  if not newproxy then setmetatable(sentinel, mt) end
  reg[REGISTRY_KEY] = { sim = s, sentinel = sentinel }
  -- Lua 5.1/LuaJIT's os.exit runs no finalizers, and closing the simulator's pipe at
  -- process exit would wait for it forever: stop it before exiting.
  local real_exit = os.exit
  os.exit = function(...) -- luacheck: ignore
    s:stop()
    return real_exit(...)
  end
  return s
end

return M

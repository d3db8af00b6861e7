-- luacheck: std lua54
-- Entry point: lua5.4 sim/server.lua [--host 127.0.0.1] [--port 0] [--speed S] [--seed N] [--quiet]
--                                   [--watch-pid PID]
-- Prints "listening <host> <port>" as its first stdout line, then serves until SIGTERM/SIGINT,
-- POST /_sim/shutdown, or (with --watch-pid) the watched process going away.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
-- Only the simulator's own tree: it is an independent reading of the contract and shares no code
-- with the client it tests (../lua/ is never on its path).
package.path = here .. "/?.lua;" .. here .. "/?/init.lua;" .. package.path

local simulator = require "simulator"
local http = require "simulator.http"

local USAGE = [[
usage: lua5.4 sim/server.lua [--host 127.0.0.1] [--port 0] [--speed S] [--seed N] [--quiet]
                             [--watch-pid PID]

The bundled simulator of every provider's API, on the loopback only. Prints
"listening HOST PORT" as its first line, then serves until SIGTERM/SIGINT,
POST /_sim/shutdown, or the watched process going away.

  --host H         127.0.0.1 (default), localhost or ::1
  --port N         the port to listen on (0, the default: any free port)
  --speed S        simulated seconds per real second (default 1; 60: a task in seconds)
  --seed N         the random seed of the simulated reports (default 1)
  --quiet          no request log on stderr
  --watch-pid PID  stop when process PID ends
  -h, --help       this text
]]

local function usage(msg)
  io.stderr:write("server.lua: ", msg, "\n", USAGE)
  os.exit(2)
end

local opts = { host = "127.0.0.1", port = 0, speed = 1, seed = 1 }
local i = 1
while i <= #arg do
  local a = arg[i]
  local key = a:match("^%-%-([%w%-]+)$")
  if a == "-h" or key == "help" then
    io.stdout:write(USAGE)
    os.exit(0)
  elseif key == "quiet" then
    opts.quiet = true
  elseif key == "host" or key == "port" or key == "speed" or key == "seed"
    or key == "watch-pid" then
    local v = arg[i + 1]
    if not v then usage("missing value for " .. a) end
    if key ~= "host" and not tonumber(v) then usage("not a number: " .. a .. " " .. v) end
    opts[key] = key == "host" and v or tonumber(v)
    i = i + 1
  else
    usage("unknown argument " .. a)
  end
  i = i + 1
end
if opts.host ~= "127.0.0.1" and opts.host ~= "localhost" and opts.host ~= "::1" then
  usage("the simulator listens on the loopback only")
end

local app = simulator.new({ seed = math.tointeger(opts.seed) or 1, speed = opts.speed,
  quiet = opts.quiet })
app:use("simulator.extruct")
app:use("simulator.discovery")
app:use("simulator.valyu", true)
app:use("simulator.gemini")
app:use("simulator.openai")
app:use("simulator.perplexity")
app:use("simulator.pages")
app:start()

local watch = opts["watch-pid"]
  and string.format("/proc/%d/stat", math.tointeger(opts["watch-pid"]))
local last_check = 0
local server, err
server, err = http.new({
  host = opts.host, port = math.tointeger(opts.port),
  handler = function(req, conn) return app:handle(req, conn) end,
  on_tick = watch and function()
    local t = os.time()
    if t == last_check then return end
    last_check = t
    local f = io.open(watch, "r")
    if f then f:close() else server:stop() end
  end,
})
if not server then
  io.stderr:write("server.lua: cannot listen: ", tostring(err), "\n")
  os.exit(1)
end
app.server = server

io.stdout:write(string.format("listening %s %d\n", server.host, server.port))
io.stdout:flush()
server:run()

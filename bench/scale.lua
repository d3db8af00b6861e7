-- The scale benchmark (make bench-scale): N = 100, 1,000 and 10,000 tasks through create_all and
-- wait_all, through one poller driven by a luv loop, and N pending waits for live memory,
-- against nginx answering from bodies precomputed in its config (bench/scale_nginx.conf.in).
-- Each run is a fresh process (bench/scale_client.lua); figures are medians over runs.
-- Writes the "Scale" section of bench/RESULTS.md between its markers. See bench/README.md.
--   lua5.4 bench/scale.lua [--quick] [--runs R] [--no-write] [--unpinned] [--n 100,1000]
--                          [--modes all,luv,pending]
package.path = "bench/?.lua;" .. package.path
local report = require "report"
local fileio = require "fileio"
local socket = require "socket"

local env = os.getenv
local opts = { runs = tonumber(env("BENCH_RUNS") or "") or 3, write = env("BENCH_WRITE") ~= "0",
  pin = env("BENCH_PIN") ~= "0", ns = { 100, 1000, 10000 } }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--quick" then opts.runs, opts.write, opts.ns = 1, false, { 100, 1000 }
  elseif a == "--no-write" then opts.write = false
  elseif a == "--unpinned" then opts.pin = false
  elseif a == "--runs" then opts.runs = assert(tonumber(arg[i + 1]), "--runs N"); i = i + 1
  elseif a == "--modes" then
    opts.modes = {}
    for x in tostring(arg[i + 1]):gmatch("%a+") do opts.modes[#opts.modes + 1] = x end
    i = i + 1
  elseif a == "--n" then
    opts.ns = {}
    for x in tostring(arg[i + 1]):gmatch("%d+") do opts.ns[#opts.ns + 1] = tonumber(x) end
    i = i + 1
  else
    io.stderr:write("bench/scale.lua: unknown argument ", a, "\n")
    os.exit(2)
  end
  i = i + 1
end

local function log(fmt, ...) io.stderr:write(string.format(fmt, ...), "\n") end
local q, read_file, write_file = fileio.q, fileio.read_file, fileio.write_file
local function capture(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("*a")
  p:close()
  return s
end
local function first_line(cmd) return (capture(cmd .. " 2>&1"):match("[^\n]*")) end

local NPROC = tonumber(capture("nproc")) or 1
local CPU = tonumber(env("BENCH_CPU") or "") or (NPROC - 1)
local PIN = opts.pin and NPROC > 1 and ("taskset -c " .. CPU .. " ") or ""
local TMP = capture("mktemp -d /tmp/deepresearch-scale.XXXXXX"):gsub("%s+$", "")
local LOAD_START = first_line("cut -d' ' -f1 /proc/loadavg")

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

local nginx_pid
local function stop_nginx()
  if nginx_pid and alive(nginx_pid) then
    os.execute("kill " .. nginx_pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not alive(nginx_pid) then break end
      socket.sleep(0.05)
    end
  end
  os.execute("rm -rf " .. q(TMP))
end

local function start_nginx()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  local conf = read_file("bench/scale_nginx.conf.in")
    :gsub("@PREFIX@", TMP):gsub("@PORT@", tostring(port))
  write_file(TMP .. "/nginx.conf", conf)
  os.execute(string.format("%snginx -p %s -c %s -e %s </dev/null >%s 2>&1 & echo $! >%s", PIN,
    q(TMP .. "/"), q(TMP .. "/nginx.conf"), q(TMP .. "/error.log"), q(TMP .. "/nginx.out"),
    q(TMP .. "/nginx.pid.launch")))
  nginx_pid = tonumber(read_file(TMP .. "/nginx.pid.launch"))
  for _ = 1, 100 do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then
      -- The one worker (worker_processes 1): its CPU is the server's.
      local kids = read_file("/proc/" .. nginx_pid .. "/task/" .. nginx_pid .. "/children") or ""
      return "http://127.0.0.1:" .. port, assert(tonumber(kids:match("%d+")), "nginx worker")
    end
    socket.sleep(0.05)
  end
  error("nginx did not start: " .. (read_file(TMP .. "/error.log") or ""))
end

local MODES = opts.modes or { "all", "luv", "pending" }

local function run_client(mode, n, base, worker)
  local cmd = string.format("%slua5.4 bench/scale_client.lua %s %d %s %d", PIN, mode, n, base,
    worker)
  local out = capture(cmd .. " 2>" .. q(TMP .. "/client.err"))
  local r = {}
  for k, v in out:gmatch("(%S+)=(%S+)") do r[k] = tonumber(v) or v end
  if not r.peak_rss_kb then
    error(string.format("%s failed:\n%s%s", cmd, out, read_file(TMP .. "/client.err") or ""))
  end
  return r
end

local results = {} -- [mode][n] = { key = { run values } }
local function collect(base, worker)
  for run = 1, opts.runs do
    for _, n in ipairs(opts.ns) do
      for _, mode in ipairs(MODES) do
        local t0 = socket.gettime()
        local r = run_client(mode, n, base, worker)
        log("scale: run %d/%d %-7s N=%-5d %.1f s", run, opts.runs, mode, n, socket.gettime() - t0)
        results[mode] = results[mode] or {}
        local slot = results[mode][n] or {}
        results[mode][n] = slot
        for k, v in pairs(r) do
          if type(v) == "number" then
            slot[k] = slot[k] or {}
            table.insert(slot[k], v)
          end
        end
      end
    end
  end
end

local function med(mode, n, key)
  local slot = results[mode] and results[mode][n]
  return slot and slot[key] and report.median(slot[key])
end
-- A per-item figure: the median over runs of value/count within each run.
local function per(mode, n, key, count_key, scale)
  local slot = results[mode] and results[mode][n]
  if not slot or not slot[key] then return nil end
  local xs = {}
  for j, v in ipairs(slot[key]) do
    local c = type(count_key) == "number" and count_key or slot[count_key][j]
    xs[j] = c > 0 and v / c * (scale or 1) or 0
  end
  return report.median(xs)
end

local function f0(x) return x and string.format("%.0f", x) or "–" end
local function f1(x) return x and string.format("%.1f", x) or "–" end
local function mb(kb) return kb and string.format("%.1f", kb / 1024) or "–" end

local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local mem = (read_file("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)")
  return {
    { "CPUs (nproc)", tostring(NPROC) },
    { "CPU model", cpuinfo:match("model name%s*:%s*([^\n]+)") or "?" },
    { "memory", mem and string.format("%.1f GiB", tonumber(mem) / 1048576) or "?" },
    { "kernel", first_line("uname -sr") },
    { "OS", "Debian " .. first_line("cat /etc/debian_version") },
    { "load average (1 min) at start / end", LOAD_START .. " / " ..
      first_line("cut -d' ' -f1 /proc/loadavg") },
    { "pinning", PIN ~= "" and ("client and server on CPU " .. CPU .. " (taskset)") or "none" },
    { "Lua", first_line("lua5.4 -v") },
    { "libcurl", first_line([[lua5.4 -e "package.cpath='build/5.4/?.so;'..package.cpath
      print(require('deepresearch.core').curl_version)"]]) },
    { "luv", first_line([[lua5.4 -e "print(require('luv').version_string())"]]) },
    { "nginx", first_line("nginx -v") },
    { "runs", tostring(opts.runs) .. " per N and mode (medians)" },
  }
end

local function render()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w(string.format("Generated by `make bench-scale` (bench/scale.lua) on %s. Medians of %d runs.",
    os.date("!%Y-%m-%d %H:%M UTC"), opts.runs))
  w("")
  w("### Machine")
  w("")
  w("| what | value |")
  w("| --- | --- |")
  for _, row in ipairs(machine()) do w("| " .. row[1] .. " | " .. row[2] .. " |") end
  w("")
  w("### Creates and waits (client CPU per operation; server: one nginx worker)")
  w("")
  w("`all`: `create_all` then `wait_all` (blocking helpers); `luv`: one `client:poller()` per " ..
    "phase driven by a luv loop. Waits poll every 0.05 s growing ×1.5 up to 0.2 s; the server " ..
    "answers done with probability 1/8 per poll (about 8 polls a task).")
  w("")
  w("| N | path | µs CPU / create | sockets (module / server) | server µs / create | " ..
    "µs CPU / poll | polls | sockets (module / server) | server µs / poll | peak RSS MB |")
  w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for _, n in ipairs(opts.ns) do
    for _, mode in ipairs({ "all", "luv" }) do
      if results[mode] and results[mode][n] then
        w(string.format("| %d | %s | %s | %s / %s | %s | %s | %s | %s / %s | %s | %s |", n, mode,
          f0(per(mode, n, "create_cpu", n, 1e6)), f0(med(mode, n, "create_connects")),
          f0(med(mode, n, "create_accepts")), f0(per(mode, n, "create_server_cpu", n, 1e6)),
          f0(per(mode, n, "wait_cpu", "wait_requests", 1e6)), f0(med(mode, n, "wait_requests")),
          f0(med(mode, n, "wait_connects")), f0(med(mode, n, "wait_accepts")),
          f0(per(mode, n, "wait_server_cpu", "wait_requests", 1e6)),
          mb(med(mode, n, "peak_rss_kb"))))
      end
    end
  end
  w("")
  w("### N pending waits (one poller, luv): live memory and CPU per poll")
  w("")
  w("Every wait has polled once (its last task and progress key held) and sleeps; then two " ..
    "more rounds at one poll per wait per second. Live memory: Lua heap after a full " ..
    "collection plus the C core's own allocations (`core.stats().bytes`), less the same before " ..
    "the waits, per wait.")
  w("")
  w("| N | live B / wait (Lua + C) | Lua B | C B | RSS growth B / wait | µs CPU / poll | " ..
    "sockets (module / server) | server µs / poll | most waits touched in a step | " ..
    "peak RSS MB |")
  w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for _, n in ipairs(opts.ns) do
    if results.pending and results.pending[n] then
      local touched = med("pending", n, "touched_max")
      w(string.format("| %d | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |", n,
        f0(med("pending", n, "live_b")), f0(med("pending", n, "live_lua_b")),
        f1(med("pending", n, "live_c_b")), f0(med("pending", n, "rss_per_task_b")),
        f0(per("pending", n, "steady_cpu", "steady_requests", 1e6)),
        f0(med("pending", n, "first_connects") + med("pending", n, "steady_connects")),
        f0(med("pending", n, "first_accepts") + med("pending", n, "steady_accepts")),
        f0(per("pending", n, "steady_server_cpu", "steady_requests", 1e6)),
        touched and touched >= 0 and f0(touched) or "–", mb(med("pending", n, "peak_rss_kb"))))
    end
  end
  local top = opts.ns[#opts.ns]
  if top >= 10000 and #MODES == 3 then
    local live = med("pending", top, "live_b")
    local create = per("all", top, "create_cpu", top, 1e6)
    local poll = math.max(per("all", top, "wait_cpu", "wait_requests", 1e6) or 0,
      per("pending", top, "steady_cpu", "steady_requests", 1e6) or 0)
    w("")
    w(string.format("### Targets at N = %d", top))
    w("")
    w("| target | measured | met |")
    w("| --- | ---: | --- |")
    local function t(name, v, lim, unit)
      w(string.format("| %s | %s %s | %s |", name, f0(v), unit, v and v <= lim and "yes" or "no"))
    end
    t("live memory ≤ 4 KB per pending wait", live, 4096, "B")
    t("client CPU ≤ 150 µs per create (create_all)", create, 150, "µs")
    t("client CPU ≤ 0.25 ms per poll (worst of wait_all, pending)", poll, 250, "µs")
  end
  return table.concat(out, "\n") .. "\n"
end

local BEGIN = "<!-- bench/scale.lua: generated from here -->"
local END = "<!-- bench/scale.lua: generated up to here -->"

local ok, err = pcall(function()
  local base, worker = start_nginx()
  log("scale: nginx on %s (worker %d), %d run(s), N = %s", base, worker, opts.runs,
    table.concat(opts.ns, ", "))
  collect(base, worker)
end)
stop_nginx()
if not ok then error(err, 0) end
local text = render()
print(text)
if opts.write then
  local path = "bench/RESULTS.md"
  local doc = read_file(path)
  local a, b = doc:find(BEGIN, 1, true)
  local c = doc:find(END, 1, true)
  assert(a and c, "bench/RESULTS.md has no Scale markers")
  write_file(path, doc:sub(1, b) .. "\n" .. text .. doc:sub(c))
  log("scale: wrote %s", path)
end

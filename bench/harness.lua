-- The benchmark run behind bench/run: starts nginx on canned responses, runs every contender
-- in turn (interleaved, RUNS times), then decode-only, peak memory and wait_all against the
-- simulator, and writes the tables into bench/RESULTS.md. Run from the repository root.
package.path = "bench/?.lua;" .. package.path
local report = require "report"
local fileio = require "fileio"
local socket = require "socket"

local env = os.getenv
local opts = {
  pin = env("BENCH_PIN") ~= "0",
  runs = tonumber(env("BENCH_RUNS") or "") or 11,
  write = env("BENCH_WRITE") ~= "0",
  quick = false,
  only = nil,
  sim_speed = tonumber(env("BENCH_SIM_SPEED") or "") or 30,
  tasks = tonumber(env("BENCH_TASKS") or "") or 200,
  -- Lua seeds its string hashes (5.4 from the clock, LuaJIT from getrandom), so table layouts,
  -- and with them a process's instructions per GET, vary by up to 1 % from seed to seed: a
  -- median over seeds (3 in a full run, 1 for --profile alone unless told).
  profile_runs = tonumber(env("BENCH_PROFILE_RUNS") or ""),
}
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--unpinned" then opts.pin = false
  elseif a == "--pinned" then opts.pin = true
  elseif a == "--quick" then opts.quick = true
  elseif a == "--no-write" then opts.write = false
  elseif a == "--runs" then opts.runs = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--only" then opts.only = arg[i + 1]; i = i + 1
  elseif a == "--profile" then opts.only = "profile"
  elseif a == "--help" or a == "-h" then
    print("usage: bench/run [--unpinned] [--quick] [--runs N] [--no-write] [--only " ..
    "http|decode|rss|wait]\n" ..
      "       bench/run --profile   (callgrind: instructions per request, module against the " ..
      "floor)\n  BENCH_PIN=0 (same as --unpinned), BENCH_CPU=N (the CPU to pin to; default the " ..
      "last),\n  BENCH_RUNS=N, BENCH_WRITE=0, BENCH_SIM_SPEED=S, BENCH_TASKS=N, " ..
      "BENCH_PROFILE_RUNS=N")
    os.exit(0)
  else
    io.stderr:write("bench/run: unknown argument ", a, " (try --help)\n")
    os.exit(2)
  end
  i = i + 1
end
if opts.quick then
  opts.runs = math.min(opts.runs, 3)
  opts.tasks = math.min(opts.tasks, 50)
  opts.write = false
end
local function want(part)
  -- A full run profiles too (instructions are the one figure the machine's load cannot move).
  if part == "profile" then
    return opts.only == "profile" or (opts.only == nil and not opts.quick)
  end
  return opts.only == nil or opts.only == part
end

local TMP = assert(env("BENCH_TMP"), "run bench/run, which sets BENCH_TMP")
local DOCROOT = TMP .. "/www"
local SMALL_ID = "7b0e4c6a-2f4d-4a63-9d1e-5c8b2a9f3e10"
local BIG_ID = "c91f2d3b-8a47-4e1f-b2d6-0f5e7a3c9b24"
local PY = "/usr/bin/python3"

local function log(fmt, ...) io.stderr:write(string.format(fmt, ...), "\n") end

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok == true or ok == 0, code
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local q, read_file, write_file = fileio.q, fileio.read_file, fileio.write_file

local NPROC = tonumber((capture("nproc"))) or 1
local CPU = tonumber(env("BENCH_CPU") or "") or (NPROC - 1)
local PIN = opts.pin and NPROC > 1 and ("taskset -c " .. CPU .. " ") or ""

-- Servers ---------------------------------------------------------------------------------

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

local function stop(pid, name)
  if not pid or not alive(pid) then return end
  sh("kill " .. pid .. " 2>/dev/null")
  for _ = 1, 100 do
    if not alive(pid) then return end
    socket.sleep(0.05)
  end
  log("bench: %s (pid %d) did not stop on TERM; killing it", name, pid)
  sh("kill -9 " .. pid .. " 2>/dev/null")
end

local function wait_port(port, pid, what)
  for _ = 1, 100 do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", port) then
      c:close()
      return true
    end
    c:close()
    if pid and not alive(pid) then break end
    socket.sleep(0.05)
  end
  error(what .. " did not start listening on port " .. port)
end

-- Starts Debian's nginx on the canned responses; returns base URL and PID.
local function start_nginx()
  local port = free_port()
  local conf = read_file("bench/nginx.conf.in")
  local subst = { PREFIX = TMP, DOCROOT = DOCROOT, PORT = tostring(port), SMALL_ID = SMALL_ID,
    BIG_ID = BIG_ID }
  conf = conf:gsub("@(%u+[_%u]*)@", function(k) return assert(subst[k], k) end)
  write_file(TMP .. "/nginx.conf", conf)
  sh(string.format("%snginx -p %s -c %s -e %s </dev/null >%s 2>&1 & echo $! >%s", PIN,
    q(TMP .. "/"), q(TMP .. "/nginx.conf"), q(TMP .. "/error.log"), q(TMP .. "/nginx.out"),
    q(TMP .. "/nginx.launch.pid")))
  local pid = tonumber(read_file(TMP .. "/nginx.launch.pid"))
  local ok, err = pcall(wait_port, port, pid, "nginx")
  if not ok then
    stop(pid, "nginx")
    error(err ..
      "\n" .. (read_file(TMP .. "/error.log") or "") .. (read_file(TMP .. "/nginx.out") or ""))
  end
  return "http://127.0.0.1:" .. port, pid
end

local function start_sim(speed)
  local self_pid = read_file("/proc/self/stat"):match("^(%d+)")
  sh(string.format("%slua5.4 sim/server.lua --port 0 --speed %s --seed 1 --quiet --watch-pid %s " ..
    "</dev/null >%s 2>%s & echo $! >%s", PIN, speed, self_pid, q(TMP .. "/sim.out"),
    q(TMP .. "/sim.err"), q(TMP .. "/sim.pid")))
  local pid = tonumber(read_file(TMP .. "/sim.pid"))
  for _ = 1, 100 do
    local port = (read_file(TMP .. "/sim.out") or ""):match("^listening %S+ (%d+)")
    if port then return "http://127.0.0.1:" .. port, pid end
    if not alive(pid) then break end
    socket.sleep(0.05)
  end
  stop(pid, "simulator")
  return nil, (read_file(TMP .. "/sim.err") or "no output")
end

-- Payloads --------------------------------------------------------------------------------

local payloads = {} -- name -> { bytes, check }
do
  sh("mkdir -p " .. q(DOCROOT))
  local out, ok = capture("lua5.4 bench/gen.lua " .. q(DOCROOT))
  assert(ok, "bench/gen.lua failed")
  for name, bytes, check in out:gmatch("(%w+) (%d+) (%d+)") do
    payloads[name] = { bytes = tonumber(bytes), check = tonumber(check) }
  end
  sh("chmod -R a+rX " .. q(TMP))
end

-- Contenders ------------------------------------------------------------------------------

-- GETs per run; small and big are timed in `batches` batches, the list one GET per batch.
local COUNTS = { small = 2000, big = 300, list = 15, warm = 20, batches = 10 }
-- the curl-per-request contender
local FEW = { small = 60, big = 30, list = 5, warm = 3, batches = 3 }
if opts.quick then
  COUNTS = { small = 500, big = 80, list = 5, warm = 10, batches = 5 }
  FEW = { small = 20, big = 10, list = 3, warm = 2, batches = 2 }
end

-- The User-Agent line the module sends, for the floors that send the module's headers.
local MODULE_UA = (capture("lua5.4 -e " ..
  q("package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path " ..
  "package.cpath = 'build/5.4/?.so;' .. package.cpath local c = " ..
  "require('deepresearch').client({ token = 't' }) " ..
  "io.write(require('deepresearch.runtime.http').state(c).user_agent)")))
assert(MODULE_UA:find("^deepresearch%-lua/"), "cannot read the module's User-Agent: " .. MODULE_UA)
local FLOOR_HEADERS = " --module-headers " .. q(MODULE_UA)
local FLOOR_OPTIONS = " --module-options " .. q(MODULE_UA)
local FLOOR_CONVERSION = " --module-conversion " .. q(MODULE_UA)

-- vm says which floor a row is compared with: the one whose cjson runs on the same VM.
local CONTENDERS = {
  { key = "floor54", vm = "5.4", name = "floor: C, one libcurl easy handle, cjson via the C API",
    runtime = "Lua 5.4", cmd = "build/bench/floor-5.4" },
  { key = "floorh54", vm = "5.4", name = "floor + the module's request headers",
    runtime = "Lua 5.4", cmd = "build/bench/floor-5.4" .. FLOOR_HEADERS },
  { key = "mod54", vm = "5.4", name = "**deepresearch** `client:get` / `client:list`",
    runtime = "Lua 5.4", cmd = "lua5.4 bench/with_module.lua" },
  { key = "sock54", vm = "5.4", name = "LuaSocket `socket.http` + cjson", runtime = "Lua 5.4",
    cmd = "lua5.4 bench/with_luasocket.lua" },
  { key = "curl51", vm = "5.4", name = "luacurl 0.3 (`lua-curl`) + cjson", runtime = "Lua 5.1",
    cmd = "lua5.1 bench/with_luacurl.lua" },
  { key = "curlcmd", vm = "5.4", name = "`curl` spawned per request (io.popen) + cjson",
    runtime = "Lua 5.4", cmd = "lua5.4 bench/with_curl_cmd.lua", counts = FEW },
  { key = "python", vm = "5.4", name = "Python `requests.Session` + `json`", runtime = "CPython 3",
    cmd = PY .. " bench/with_requests.py" },
  { key = "floorjit", vm = "luajit",
    name = "floor: C, one libcurl easy handle, cjson via the C API",
    runtime = "LuaJIT", cmd = "build/bench/floor-luajit" },
  { key = "floorhjit", vm = "luajit", name = "floor + the module's request headers",
    runtime = "LuaJIT", cmd = "build/bench/floor-luajit" .. FLOOR_HEADERS },
  { key = "modjit", vm = "luajit", name = "**deepresearch** `client:get` / `client:list`",
    runtime = "LuaJIT", cmd = "luajit bench/with_module.lua" },
  { key = "curljit", vm = "luajit", name = "luacurl 0.3 (`lua-curl`) + cjson", runtime = "LuaJIT",
    cmd = "luajit bench/with_luacurl.lua" },
  { key = "sockjit", vm = "luajit", name = "LuaSocket `socket.http` + cjson", runtime = "LuaJIT",
    cmd = "luajit bench/with_luasocket.lua" },
}
local FLOOR = { ["5.4"] = "floor54", luajit = "floorjit" }
local FLOOR_H = { ["5.4"] = "floorh54", luajit = "floorhjit" }
local PAYLOADS = { "small", "big", "list" }

local results = {} -- key -> payload -> { wall = {...}, cpu = {...} }
-- payload -> contender key -> instructions per GET (callgrind); see bench_profile
local profile = {}
local conversion_ins = {} -- VM -> payload -> dr.core.decode / cjson.decode in instructions
local profile_text

-- One process of a contender; each payload's figure for this run is the median of its batches.
local function run_contender(c, base)
  local n = c.counts or COUNTS
  local cmd = string.format("%s%s %s %s %s %d %d %d %d %d 2>%s", PIN, c.cmd, base, SMALL_ID, BIG_ID,
    n.small, n.big, n.list, n.warm, n.batches, q(TMP .. "/contender.err"))
  local out, ok = capture(cmd)
  local batches = {}
  for name, count, wall, cpu, check in out:gmatch("(%a+) (%d+) (%S+) (%S+) (%-?%d+)") do
    count, check = tonumber(count), tonumber(check)
    if not payloads[name] or check ~= payloads[name].check then
      error(string.format("%s decoded %s wrong: check %s, expected %s", c.key, name, check,
        payloads[name] and payloads[name].check))
    end
    local b = batches[name] or { wall = {}, cpu = {} }
    batches[name] = b
    b.wall[#b.wall + 1] = tonumber(wall) / count
    b.cpu[#b.cpu + 1] = tonumber(cpu) / count
  end
  for _, p in ipairs(PAYLOADS) do
    if not ok or not batches[p] then
      error(string.format("contender %s failed:\n%s\n%s", c.key, out,
        read_file(TMP .. "/contender.err") or ""))
    end
    local r = results[c.key][p]
    r.wall[#r.wall + 1] = report.median(batches[p].wall)
    r.cpu[#r.cpu + 1] = report.median(batches[p].cpu)
  end
end

local function bench_http(base)
  local available = {}
  for _, c in ipairs(CONTENDERS) do
    local exe = c.cmd:match("^(%S+)")
    if exe:find("/") and not exe:find("^/") then exe = "./" .. exe end
    if sh("command -v " .. exe .. " >/dev/null 2>&1") then
      available[#available + 1] = c
      results[c.key] = {}
      for _, p in ipairs(PAYLOADS) do results[c.key][p] = { wall = {}, cpu = {} } end
    else
      log("bench: %s not found, skipping %s", exe, c.key)
    end
  end
  for run = 1, opts.runs do
    -- Interleaved, and each run starts at a different contender, so drift hits all alike.
    local t0 = socket.gettime()
    for k = 0, #available - 1 do
      local c = available[(run - 1 + k) % #available + 1]
      run_contender(c, base)
    end
    log("bench: http run %d/%d done (%.1f s)", run, opts.runs, socket.gettime() - t0)
  end
end

-- Decode alone ----------------------------------------------------------------------------

local decode = {} -- vm -> decoder -> payload -> { cpu per call }
local function bench_decode()
  local n = opts.quick and { 300, 40, 4 } or { 3000, 300, 12 }
  for _, vm in ipairs({ "5.4", "luajit" }) do
    decode[vm] = { cjson = {}, dr = {} }
    for _, d in pairs(decode[vm]) do
      for _, p in ipairs(PAYLOADS) do d[p] = {} end
    end
  end
  for run = 1, opts.runs do
    for _, vm in ipairs({ "5.4", "luajit" }) do
      local lua = vm == "5.4" and "lua5.4" or "luajit"
      local out, ok = capture(string.format("%s%s bench/decode.lua %s %d %d %d %s", PIN, lua,
        q(DOCROOT), n[1], n[2], n[3], run % 2 == 0 and "dr-first" or ""))
      assert(ok, "bench/decode.lua failed under " .. lua .. ":\n" .. out)
      for who, p, count, cpu in out:gmatch("(%a+) (%a+) (%d+) (%S+)") do
        local t = decode[vm][who][p]
        t[#t + 1] = tonumber(cpu) / tonumber(count)
      end
    end
  end
end

-- Peak memory -----------------------------------------------------------------------------

local rss = {} -- rows
local function bench_rss(base)
  local runs = {
    { "floor (C + cjson), Lua 5.4", "build/bench/floor-5.4 --rss" },
    { "floor (C + cjson), LuaJIT", "build/bench/floor-luajit --rss" },
    { "floor freeing its buffer before decoding (the least possible), Lua 5.4",
      "build/bench/floor-5.4 --rss-lean" },
    { "floor freeing its buffer before decoding (the least possible), LuaJIT",
      "build/bench/floor-luajit --rss-lean" },
    { "deepresearch `client:list{limit=75}`, Lua 5.4", "lua5.4 bench/rss.lua" },
    { "deepresearch `client:list{limit=75}`, LuaJIT", "luajit bench/rss.lua" },
  }
  for _, r in ipairs(runs) do
    local hwm, before = {}, {}
    for _ = 1, 3 do
      local out, ok = capture(PIN .. r[2] .. " " .. base)
      local b, h, check = out:match("rss %d+ (%d+) (%d+) %d+ (%d+)")
      assert(ok and b and tonumber(check) == payloads.list75.check, "peak-memory run failed: " ..
        r[2] .. "\n" .. out)
      hwm[#hwm + 1], before[#before + 1] = tonumber(h) * 1024, tonumber(b) * 1024
    end
    rss[#rss + 1] = { name = r[1], hwm = report.median(hwm), before = report.median(before) }
  end
end

-- wait_all against the simulator ------------------------------------------------------------

local waits = {}
local wait_note
local function bench_wait()
  local url, pid = start_sim(opts.sim_speed)
  if not url then
    wait_note = "the simulator did not start: " .. tostring(pid)
    log("bench: %s", wait_note)
    return
  end
  local ok, err = pcall(function()
    for _, vm in ipairs({ "5.4", "luajit" }) do
      local lua = vm == "5.4" and "lua5.4" or "luajit"
      local out, good = capture(string.format("%s%s bench/wait_all.lua %s %s %d 600 2>%s", PIN, lua,
        url, opts.sim_speed, opts.tasks, q(TMP .. "/wait.err")))
      local n, done, gets, expected, conns, cpu, wall =
        out:match("wait_all (%d+) (%d+) (%d+) (%d+) (%d+) (%S+) (%S+)")
      if not (good and n) then
        error("wait_all failed under " .. lua .. ":\n" ..
          out .. (read_file(TMP .. "/wait.err") or ""))
      end
      waits[#waits + 1] = { vm = vm, n = tonumber(n), done = tonumber(done), gets = tonumber(gets),
        expected = tonumber(expected), conns = tonumber(conns), cpu = tonumber(cpu),
        wall = tonumber(wall) }
      log("bench: wait_all under %s: %s GETs, %.2f s CPU", lua, gets, tonumber(cpu))
    end
  end)
  stop(pid, "simulator")
  os.remove(TMP .. "/sim.pid")
  if not ok then
    wait_note = tostring(err)
    log("bench: %s", wait_note)
  end
end

-- The wait schedule on a simulated clock ------------------------------------------------------

local function schedule_rows()
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
  package.cpath = "build/5.4/?.so;" .. package.cpath
  local ok, wait = pcall(require, "deepresearch.runtime.wait")
  if not ok then return nil, tostring(wait) end
  local rows = {}
  for _, d in ipairs({ 60, 600, 1800, 5400 }) do
    local polls, late = report.schedule_worst(wait.schedule, d - 30, d, 0.25)
    rows[#rows + 1] = { d = d, polls = polls, late = late }
  end
  return rows
end

-- Machine ---------------------------------------------------------------------------------

local function first_line(cmd)
  local out = capture(cmd .. " 2>&1")
  return ((out:match("[^\n]*") or ""):gsub("%s+$", ""))
end

local LOAD_START = "?"

-- The machine's CPU time from /proc/stat: all of it, and the part the hypervisor gave to other
-- guests (steal), which slows every contender unevenly on a shared host.
local function cpu_times()
  local f = {}
  for x in ((read_file("/proc/stat") or ""):match("^cpu%s+([^\n]+)") or ""):gmatch("%d+") do
    f[#f + 1] = tonumber(x)
  end
  local total = 0
  for _, x in ipairs(f) do total = total + x end
  return { total = total, steal = f[8] or 0 }
end
local CPU_START = cpu_times()
local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local model = cpuinfo:match("model name%s*:%s*([^\n]+)") or "?"
  local mem = (read_file("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)")
  local lua_v = [[lua5.4 -e "package.cpath='build/5.4/?.so;'..package.cpath
    local c=require'cjson' local s=require'socket' local ok,d=pcall(require,'deepresearch.core')
    print(_VERSION, 'cjson '..tostring(c._VERSION), tostring(s._VERSION), ]] ..
    [[ok and ('libcurl '..d.curl_version) or '')"]]
  return {
    { "CPUs (nproc)", tostring(NPROC) },
    { "CPU model", model },
    { "memory", mem and string.format("%.1f GiB", tonumber(mem) / 1048576) or "?" },
    { "kernel", first_line("uname -sr") },
    { "OS", "Debian " .. first_line("cat /etc/debian_version") },
    { "load average (1 min) at start / end", LOAD_START .. " / " ..
      first_line("cut -d' ' -f1 /proc/loadavg") ..
      " (other work on the machine inflates wall times first)" },
    { "CPU stolen by other guests during the run", (function()
      local now = cpu_times()
      local total = now.total - CPU_START.total
      return total > 0 and string.format("%.1f %%", 100 * (now.steal - CPU_START.steal) / total)
        or "?"
    end)() },
    { "pinning", PIN ~= "" and ("client and server on CPU " .. CPU .. " (taskset)")
      or "none (--unpinned)" },
    { "module build", "`-O2 -g` (Makefile default CFLAGS), build/5.4 and build/luajit" },
    { "Lua", first_line(lua_v) },
    { "LuaJIT", first_line("luajit -v") },
    { "Lua 5.1", first_line("lua5.1 -v") },
    { "nginx", first_line("nginx -v") },
    { "Python", first_line(PY .. " -c \"import sys,requests;" ..
      "print(sys.version.split()[0],'requests',requests.__version__)\"") },
    { "curl", first_line("curl --version") },
    { "cc", first_line("cc --version") },
  }
end

-- Report ----------------------------------------------------------------------------------

local function med(key, p, what)
  local r = results[key] and results[key][p]
  return r and report.median(r[what])
end

local PAYLOAD_TITLE = {
  small = "an in-progress task, %d B (GET /v1/deep_research_tasks/<id>)",
  big = "a finished task, %d B: ~50 KB markdown report, 100 sources",
  list = "a list page of 50 finished tasks, %d B (GET /v1/deep_research_tasks?limit=50)",
}

local function http_tables(out)
  for _, p in ipairs(PAYLOADS) do
    out[#out + 1] = "### " .. string.format(PAYLOAD_TITLE[p], payloads[p].bytes) .. "\n"
    local rows = {}
    for _, c in ipairs(CONTENDERS) do
      if results[c.key] then
        local floor, floor_h = FLOOR[c.vm], FLOOR_H[c.vm]
        local w, cpu = med(c.key, p, "wall"), med(c.key, p, "cpu")
        local n = (c.counts or COUNTS)[p]
        rows[#rows + 1] = { c.name, c.runtime, report.us(w), report.ratio(w, med(floor, p, "wall")),
          report.ratio(w, med(floor_h, p, "wall")), report.us(cpu),
          report.ratio(cpu, med(floor, p, "cpu")),
          report.ratio(cpu, med(floor_h, p, "cpu")),
          string.format("%d%%", math.floor(report.spread(results[c.key][p].wall) * 100 + 0.5)),
          tostring(n) }
      end
    end
    out[#out + 1] = report.table({ "contender", "runtime", "wall µs/req", "× floor",
      "× floor + headers",
      "client CPU µs/req", "× floor", "× floor + headers", "wall spread", "GETs/run" }, rows)
    out[#out + 1] = ""
  end
end

local targets = {}
-- ok: the timed verdict; steady: the verdict by instructions (or memory), which this machine's
-- load does not move: met, missed, or impossible when even the least possible floor misses.
local function target(name, ok, detail, steady)
  targets[#targets + 1] = { name, ok == nil and "n/a" or (ok and "met" or "**missed**"),
    steady or "–", detail }
end

-- A target counts as impossible when the least possible floor, doing only what the contract
-- requires, misses it or leaves less than 1 % for the module's own code: any module has some
-- (a call from Lua, a result to build), and 1 % is also what string-hash seeds move a count by.
local ROOM = 1.01

local function verdict(ok, least_ok)
  if ok then return "met" end
  return least_ok and "**missed**" or "impossible"
end

local function evaluate()
  local limit = { small = 1.15, big = 1.10, list = 1.10 }
  if next(results) then
    for _, p in ipairs(PAYLOADS) do
      for _, m in ipairs({ { "mod54", "floor54", "floorh54", "Lua 5.4", "module", "floor",
        "floor_s" }, { "modjit", "floorjit", "floorhjit", "LuaJIT", "module_jit", "floor_jit",
          "floor_s_jit" } }) do
        local w = med(m[1], p, "wall")
        local f = med(m[2], p, "wall")
        if w and f then
          local r = w / f
          local rc = med(m[1], p, "cpu") / med(m[2], p, "cpu")
          local detail = string.format("wall %.2f×, CPU %.2f×", r, rc)
          local fh = med(m[3], p, "wall")
          if fh then
            detail = detail ..
            string.format("; against the floor with the module's headers: wall %.2f×, CPU %.2f×",
              w / fh, med(m[1], p, "cpu") / med(m[3], p, "cpu"))
          end
          local ins, steady = profile[p], nil
          if ins and ins[m[5]] then
            local x, least = ins[m[5]] / ins[m[6]], ins[m[7]] / ins[m[6]]
            detail = detail ..
              string.format("; instructions %.2f× (the least possible, a floor doing all the " ..
              "contract requires, is itself %.2f×)", x, least)
            steady = verdict(x <= limit[p], least * ROOM <= limit[p])
          end
          target(string.format("%s GET ≤ %.2f× floor (%s)", p, limit[p], m[4]), r <= limit[p],
            detail, steady)
        end
      end
    end
    -- mod, other: contender keys; pk: their keys in the profile and the least possible floor's.
    local function faster(mod, other, label, pk, counted)
      local all, detail, ins, fewer, least_fewer = true, {}, {}, true, true
      for _, p in ipairs(PAYLOADS) do
        local a, b = med(mod, p, "wall"), med(other, p, "wall")
        if not (a and b) then return end
        detail[#detail + 1] = string.format("%s %.2f×", p, b / a)
        all = all and a < b
        local c = profile[p]
        if c and c[pk[1]] then
          ins[#ins + 1] = string.format("%s %.2f× (least possible %.2f×)", p, c[pk[2]] / c[pk[1]],
            c[pk[2]] / c[pk[3]])
          fewer, least_fewer = fewer and c[pk[1]] < c[pk[2]], least_fewer
            and c[pk[3]] * ROOM < c[pk[2]]
        end
      end
      local text = table.concat(detail, ", ") .. " (their wall time / ours)"
      if #ins > 0 then
        text = text .. "; instructions, theirs / ours: " .. table.concat(ins, ", ")
      end
      -- LuaSocket's cost is mostly kernel time (a connection per request): instructions do not
      -- judge it.
      target(label, all, text, counted and #ins > 0 and verdict(fewer, least_fewer) or nil)
    end
    faster("modjit", "curljit", "faster than luacurl + cjson, both LuaJIT, every row",
      { "module_jit", "curl_jit", "floor_s_jit" }, true)
    faster("mod54", "sock54", "faster than LuaSocket + cjson, Lua 5.4, every row",
      { "module", "sock", "floor_s" })
    faster("modjit", "sockjit", "faster than LuaSocket + cjson, LuaJIT, every row",
      { "module_jit", "sock_jit", "floor_s_jit" })
    local m, cc, py = med("mod54", "small", "wall"), med("curlcmd", "small", "wall"),
      med("python", "small", "wall")
    if m and cc then
      target("≥ 50× faster than curl per request (small)", cc / m >= 50,
        string.format("%.0f×", cc / m))
    end
    if m and py then
      target("≥ 5× faster than Python requests (small)", py / m >= 5,
        string.format("%.1f×", py / m))
    end
  end
  for _, vm in ipairs({ "5.4", "luajit" }) do
    local d = decode[vm]
    if d then
      local detail, ok, ins, ins_ok = {}, true, {}, true
      for _, p in ipairs(PAYLOADS) do
        local r = report.median(d.dr[p]) / report.median(d.cjson[p])
        ok = ok and r <= 1.10
        detail[#detail + 1] = string.format("%s %.2f×", p, r)
        local ci = conversion_ins[vm] and conversion_ins[vm][p]
        if ci then
          ins[#ins + 1] = string.format("%s %.2f×", p, ci)
          ins_ok = ins_ok and ci <= 1.10
        end
      end
      local text = table.concat(detail, ", ") .. " (CPU time)"
      if #ins > 0 then text = text .. "; instructions " .. table.concat(ins, ", ") end
      -- No floor can strip nulls for less than the module's walk does (RESULTS.md's notes say why):
      -- a miss in instructions stays a miss here.
      target("conversion ≤ 1.10× cjson.decode (" .. (vm == "5.4" and "Lua 5.4" or "LuaJIT") .. ")",
        ok, text, #ins > 0 and verdict(ins_ok, true) or nil)
    end
  end
  local least = {} -- VM -> the lean floor's row
  for _, r in ipairs(rss) do
    if r.name:find("least possible") then least[r.name:match(", (.*)$")] = r end
  end
  for _, r in ipairs(rss) do
    if r.name:find("deepresearch") then
      local vm, body = r.name:match(", (.*)$"), payloads.list75.bytes
      local x = r.hwm / body
      local detail =
        string.format("%.2f× (%s peak for a %s body; %.2f× above the %s the process held before " ..
        "the GET)", x, report.mb(r.hwm), report.mb(body), (r.hwm - r.before) / body,
        report.mb(r.before))
      if least[vm] then
        detail = detail ..
        string.format("; the least possible, a C floor freeing its buffer before decoding: %.2f×",
          least[vm].hwm / body)
      end
      target("peak RSS ≤ 4× body, " .. vm, x <= 4, detail,
        verdict(x <= 4, least[vm] == nil or least[vm].hwm * ROOM / body <= 4))
    end
  end
end

local function render(sched, sched_err)
  local out = {}
  out[#out + 1] =
    string.format("Generated by `bench/run` (%s) on %s. Medians of %d interleaved runs.",
    PIN ~= "" and "pinned" or "unpinned", os.date("!%Y-%m-%d %H:%M UTC"), opts.runs)
  out[#out + 1] = ""
  out[#out + 1] = "## Machine\n"
  out[#out + 1] = report.table({ "what", "value" }, machine())
  out[#out + 1] = ""
  if next(targets) then
    out[#out + 1] = "## Targets\n"
    out[#out + 1] =
      "Timed: by wall time in this run. Steady: by instructions per GET (callgrind) or by peak " ..
      "memory, which the machine's load does not move; impossible: even the least possible " ..
      "floor, doing only what the contract requires, misses, or leaves under 1 % for the " ..
      "module's own code.\n"
    out[#out + 1] = report.table({ "target", "timed", "steady", "measured" }, targets)
    out[#out + 1] = ""
  end
  if next(results) then
    out[#out + 1] = "## Per request, against the floor\n"
    out[#out + 1] =
      "Each contender GETs the same URLs and decodes every body fully into native values. Wall: " ..
      "client and server time per request; client CPU: the contender process's own CPU time " ..
      "(with its children for the spawned curl). × floor: against the C floor whose cjson runs " ..
      "on the same VM (Lua 5.4 floor for the PUC Lua, Lua 5.1 and Python rows; LuaJIT floor for " ..
      "the LuaJIT rows). × floor + headers: against that floor sending the module's request " ..
      "headers (Authorization, Accept, User-Agent, Accept-Encoding), which the plain floor does " ..
      "not send in full. Spread: (max − min) / median of the wall times across runs.\n"
    http_tables(out)
  end
  if profile_text then out[#out + 1] = profile_text end
  if next(decode) then
    out[#out + 1] = "## Conversion alone\n"
    out[#out + 1] =
      "`dr.core.decode` (cjson through the Lua API, then nulls stripped and, on 5.3+, integral " ..
      "floats made integers) against `cjson.decode` on the same bytes; CPU µs per call.\n"
    local rows = {}
    for _, vm in ipairs({ "5.4", "luajit" }) do
      for _, p in ipairs(PAYLOADS) do
        local cj, d = report.median(decode[vm].cjson[p]), report.median(decode[vm].dr[p])
        rows[#rows + 1] = { vm == "5.4" and "Lua 5.4" or "LuaJIT", p, tostring(payloads[p].bytes),
          report.us(cj), string.format("%.0f MB/s", payloads[p].bytes / cj / 1e6), report.us(d),
          report.ratio(d, cj) }
      end
    end
    out[#out + 1] = report.table({ "VM", "payload", "bytes", "cjson.decode µs", "cjson rate",
      "dr.core.decode µs", "× cjson" }, rows)
    out[#out + 1] = ""
  end
  if #rss > 0 then
    out[#out + 1] = "## Peak memory holding a decoded list page\n"
    out[#out + 1] =
      string.format("A fresh process GETs the %s list page (75 tasks) and reads VmHWM from " ..
      "/proc/self/status while holding the decoded table. Median of 3.\n",
      report.mb(payloads.list75.bytes))
    local rows = {}
    for _, r in ipairs(rss) do
      rows[#rows + 1] = { r.name, report.mb(r.before), report.mb(r.hwm),
        string.format("%.2f×", r.hwm / payloads.list75.bytes),
        string.format("%.2f×", (r.hwm - r.before) / payloads.list75.bytes) }
    end
    out[#out + 1] = report.table({ "process", "RSS before the GET", "peak RSS (VmHWM)",
      "peak / body", "(peak − before) / body" }, rows)
    out[#out + 1] = ""
  end
  if sched or sched_err then
    out[#out + 1] = "## The wait schedule on a simulated clock\n"
    if sched then
      out[#out + 1] = "`deepresearch.runtime.wait`'s default schedule (2 s, ×1.5, capped at 30 " ..
      "s), worst case over " ..
        "finish times in the last 30 s before the given duration.\n"
      local rows = {}
      for _, r in ipairs(sched) do
        rows[#rows + 1] = { string.format("%d min", r.d / 60), tostring(r.polls),
          string.format("%.1f s", r.late) }
      end
      out[#out + 1] = report.table({ "task runs", "polls (worst)", "noticed after (worst)" }, rows)
    else
      out[#out + 1] = "not computed: " .. sched_err
    end
    out[#out + 1] = ""
  end
  if #waits > 0 or wait_note then
    out[#out + 1] = string.format("## wait_all on %d tasks against the simulator\n", opts.tasks)
    if #waits > 0 then
      out[#out + 1] = string.format(
        "The simulator runs %g× real time with tasks of ~10 minutes (600 s ± 15%%); " ..
        "`wait_all(ids, {max_connections = 8, interval = 2/%g, max_interval = 30/%g})` is the " ..
        "default schedule in its virtual time. Expected GETs: what that schedule alone needs, " ..
        "given when each task finished. CPU: the client process's own.\n",
        opts.sim_speed, opts.sim_speed, opts.sim_speed)
      local rows = {}
      for _, w in ipairs(waits) do
        rows[#rows + 1] = { w.vm == "5.4" and "Lua 5.4" or "LuaJIT",
          string.format("%d/%d", w.done, w.n),
          tostring(w.gets), tostring(w.expected), string.format("%.1f", w.gets / w.n),
          tostring(w.conns),
          string.format("%.2f s", w.cpu), string.format("%.0f µs", w.cpu / w.gets * 1e6),
          string.format("%.1f s", w.wall) }
      end
      out[#out + 1] = report.table({ "VM", "done", "task GETs", "expected GETs", "GETs per task",
        "TCP connections", "client CPU", "CPU per GET", "wall" }, rows)
    end
    if wait_note then out[#out + 1] = "\nnot measured: " .. wait_note end
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

-- Profile: user-space instructions per request under callgrind ----------------------------
-- Two runs of each process differing only in the number of GETs; the difference divided by
-- the extra GETs is the cost of one GET, free of start-up and of the machine's load.

local function callgrind(cmd, out_file, prefix)
  local out =
    capture(string.format("%svalgrind --tool=callgrind --callgrind-out-file=%s %s 2>&1 >/dev/null",
    prefix or "", q(out_file), cmd))
  return tonumber((out:match("I%s+refs:%s+([%d,]+)") or ""):gsub(",", "") or nil)
end

-- Per-function counts: inclusive (the largest over recursion levels), or exclusive summed
-- over them.
local function annotate(file, inclusive)
  local out =
    capture(string.format("callgrind_annotate --inclusive=%s --threshold=100 %s 2>/dev/null",
    inclusive and "yes" or "no", q(file)))
  local t = {}
  for count, name in out:gmatch("\n%s*([%d,]+) %([^)]*%)%s+([^\n]+)") do
    if not name:find("^%?%?%?") or name:find("%?%?%?:[%a_]") then
      name = name:gsub("'%d+", ""):gsub("%s*%[.*$", ""):gsub("^.*:", "")
        :gsub("%.constprop%.%d+", "")
      local v = tonumber((count:gsub(",", "")))
      if inclusive then
        if not t[name] or v > t[name] then t[name] = v end
      else
        t[name] = (t[name] or 0) + v
      end
    end
  end
  return t
end

-- GETs in the two runs
local PROFILE_PLAN = { small = { 100, 600 }, big = { 10, 60 }, list = { 1, 4 } }

-- Instructions per GET of cmd on payload p (the median over BENCH_PROFILE_RUNS pairs of runs),
-- and for the module (c_core) the same for its C entry point, with the last pair's files.
-- Both runs of a pair get the same string-hash seed (bench/fixtime.c: Lua 5.4's time(),
-- LuaJIT's getrandom); pair r another.
local function seeded(r, prefix)
  return string.format("LD_PRELOAD=build/bench/fixtime.so BENCH_SEED_TIME=%d %s", 1700000000 + r,
    prefix or "")
end

local function profile_one(base, who, cmd, prefix, p, c_core)
  local plan, per, core_per, files = PROFILE_PLAN[p], {}, {}, {}
  local extra = plan[2] - plan[1]
  for r = 1, opts.profile_runs do
    local ir = {}
    for k, n in ipairs(plan) do
      local args = { small = 0, big = 0, list = 0 }
      args[p] = n
      files[k] = string.format("%s/cg.%s.%s.%d", TMP, who, p, k)
      ir[k] = callgrind(string.format("%s %s %s %s %d %d %d 0 1", cmd, base, SMALL_ID, BIG_ID,
        args.small, args.big, args.list), files[k], seeded(r, prefix))
      assert(ir[k], "callgrind failed for " .. who)
    end
    per[#per + 1] = (ir[2] - ir[1]) / extra
    if c_core then
      core_per[#core_per + 1] = ((annotate(files[2], true)[c_core] or 0)
        - (annotate(files[1], true)[c_core] or 0))
        / extra
    end
  end
  return report.median(per), report.median(core_per), files, extra
end

-- Instructions per decode of payload p by decoder who ("cjson" or "dr") on vm, from
-- bench/decode.lua (each timed loop follows max(3, n / 10) untimed decodes: both count).
local function profile_decode(vm, who, p)
  local plan, per = PROFILE_PLAN[p], {}
  local lua = vm == "5.4" and "lua5.4" or "luajit"
  for r = 1, opts.profile_runs do
    local ir, calls = {}, {}
    for k, n in ipairs(plan) do
      local args = { small = 0, big = 0, list = 0 }
      args[p] = n
      calls[k] = n + math.max(3, math.floor(n / 10))
      ir[k] = callgrind(string.format("%s bench/decode.lua %s %d %d %d %s", lua, q(DOCROOT),
        args.small, args.big,
        args.list, who), string.format("%s/cg.decode.%s.%s.%s.%d", TMP, vm, who, p, k), seeded(r))
      assert(ir[k], "callgrind failed for decode.lua " .. who)
    end
    per[#per + 1] = (ir[2] - ir[1]) / (calls[2] - calls[1])
  end
  return report.median(per)
end

-- "name count, ..." for the module's C functions and the libcurl calls under them, per GET.
local function c_functions(files, extra)
  local a, b = annotate(files[1], true), annotate(files[2], true)
  local sa, sb = annotate(files[1], false), annotate(files[2], false)
  local function per(name, inc)
    return (((inc and b or sb)[name] or 0) - ((inc and a or sa)[name] or 0)) / extra
  end
  local fn = {}
  for name in pairs(b) do
    if (name:match("^dr_") or name:match("^curl_")) and name ~= "dr_strip" then
      fn[#fn + 1] = { name, per(name, true) }
    end
  end
  fn[#fn + 1] = { "dr_strip (self)", per("dr_strip", false) }
  table.sort(fn, function(x, y) return x[2] > y[2] end)
  local list = {}
  for k = 1, math.min(12, #fn) do
    if fn[k][2] >= 500 then list[#list + 1] = string.format("%s %.0f", fn[k][1], fn[k][2]) end
  end
  return table.concat(list, ", ")
end

local function bench_profile(base)
  if not sh("command -v valgrind >/dev/null 2>&1") then
    log("bench: --profile needs valgrind")
    return
  end
  -- The module's Lua state, loaded into the floor's: a client that has made one GET.
  local prelude = "FLOOR_PRELUDE=" ..
    q(string.format("package.path = 'bench/?.lua;' .. package.path " ..
    "require('common').use_checkout() DR_KEEP = require('deepresearch').client { base_url = %q, " ..
    "token = 't' } assert(DR_KEEP:get(%q))", base, SMALL_ID)) .. " "
  local F54, FJIT = "build/bench/floor-5.4", "build/bench/floor-luajit"
  local who = { -- key, command, environment
    { "floor", F54 }, { "floor_h", F54 .. FLOOR_HEADERS }, { "floor_o", F54 .. FLOOR_OPTIONS },
    { "floor_c", F54 .. FLOOR_CONVERSION }, { "floor_s", F54 .. FLOOR_CONVERSION, prelude },
    { "module", "lua5.4 bench/with_module.lua" }, { "sock", "lua5.4 bench/with_luasocket.lua" },
    { "floor_jit", FJIT }, { "floor_s_jit", FJIT .. FLOOR_CONVERSION, prelude },
    { "module_jit", "luajit bench/with_module.lua" },
    { "curl_jit", "luajit bench/with_luacurl.lua" },
    { "sock_jit", "luajit bench/with_luasocket.lua" },
  }
  local rows, others, detail = {}, {}, {}
  local function n(v) return string.format("%.0f", v) end
  local function x(a, b) return string.format("%.2f×", a / b) end
  for _, p in ipairs(PAYLOADS) do
    local k = {}
    profile[p] = k
    for _, w in ipairs(who) do
      local is_module = w[1] == "module"
      local v, core, files, extra = profile_one(base, w[1], w[2], w[3], p,
        is_module and "dr_client_request")
      k[w[1]] = v
      if is_module then
        k.c = core
        detail[#detail + 1] = string.format("- %s: %s", p, c_functions(files, extra))
      end
    end
    rows[#rows + 1] = { p, n(k.floor), n(k.floor_h), n(k.floor_o), n(k.floor_c), n(k.floor_s),
      x(k.floor_s, k.floor),
      n(k.module), x(k.module, k.floor), x(k.module, k.floor_h), x(k.module, k.floor_s), n(k.c),
      n(k.module - k.c) }
    others[#others + 1] = { p, "Lua 5.4", n(k.floor), n(k.floor_s), n(k.module), "–", n(k.sock),
      x(k.module, k.floor_s), "–", x(k.sock, k.module) }
    others[#others + 1] = { p, "LuaJIT", n(k.floor_jit), n(k.floor_s_jit), n(k.module_jit),
      n(k.curl_jit), n(k.sock_jit), x(k.module_jit, k.floor_s_jit), x(k.curl_jit, k.module_jit),
      x(k.sock_jit, k.module_jit) }
  end
  local conv_rows = {}
  for _, vm in ipairs({ "5.4", "luajit" }) do
    conversion_ins[vm] = {}
    for _, p in ipairs(PAYLOADS) do
      local c, d = profile_decode(vm, "cjson", p), profile_decode(vm, "dr", p)
      conversion_ins[vm][p] = d / c
      conv_rows[#conv_rows + 1] = { vm == "5.4" and "Lua 5.4" or "LuaJIT", p, n(c), n(d), x(d, c) }
    end
  end
  local lines = { "## Instructions per GET (callgrind)\n",
    "User-space instructions per GET (kernel and server excluded), from two runs that differ " ..
    "only in the number of GETs and share the VM's string-hash seed (median of " ..
    opts.profile_runs .. " such pairs, each with its own seed, BENCH_PROFILE_RUNS). " ..
    "Floors on Lua 5.4, each adding to the one before: plain; with the module's request " ..
    "headers; with every other option the module sets on its handles (header capture, timeouts, " ..
    "stall check); decoding through the module's conversion (src/json.c: nulls out, integers " ..
    "in); and holding the module's loaded Lua state (a client after one GET), which Lua's " ..
    "collector marks on every cycle. The last floor does all that the contract requires with " ..
    "none of the module's own code: its ratio to the plain floor is the least any module on " ..
    "these libraries can reach.\n",
    report.table({ "payload", "floor", "+ headers", "+ options", "+ conversion", "+ Lua state",
      "least possible × floor", "deepresearch", "× floor", "× floor + headers", "× least possible",
      "of which C core (request)", "of which Lua front" }, rows),
    "\nThe other Lua contenders in the same measure (their instructions / ours: below 1 is " ..
    "cheaper than the module). They skip what the contract requires of the module (luacurl and " ..
    "LuaSocket send two header lines, keep JSON nulls, leave floats, and luacurl cannot read " ..
    "the HTTP status); LuaSocket's new connection per request is mostly kernel time, which this " ..
    "does not count.\n",
    report.table({ "payload", "VM", "floor", "least possible", "deepresearch", "luacurl + cjson",
      "LuaSocket + cjson", "deepresearch × least possible", "luacurl / deepresearch",
      "LuaSocket / deepresearch" }, others),
    "\nThe conversion alone, instructions per decode of the same bytes (`bench/decode.lua` " ..
    "under callgrind, seeded the same way):\n",
    report.table({ "VM", "payload", "cjson.decode", "dr.core.decode", "× cjson" }, conv_rows),
    "\nInstructions per GET in the module's C functions (Lua 5.4), each with what it calls " ..
    "(inclusive):\n" }
  for _, d in ipairs(detail) do lines[#lines + 1] = d end
  profile_text = table.concat(lines, "\n") .. "\n"
  log("bench: profile done")
end

-- Run -------------------------------------------------------------------------------------

opts.profile_runs = opts.profile_runs or (opts.only == nil and 3 or 1)
local t_start = socket.gettime()
LOAD_START = ((read_file("/proc/loadavg") or "?"):match("^(%S+)"))
log("bench: %s, %d runs, temp dir %s", PIN ~= "" and ("pinned to CPU " .. CPU) or "unpinned",
  opts.runs, TMP)
if want("http") or want("rss") or want("profile") then
  local base, pid = start_nginx()
  local ok, err = pcall(function()
    for name, p in pairs({ small = "/v1/deep_research_tasks/" .. SMALL_ID,
      big = "/v1/deep_research_tasks/" .. BIG_ID,
      list = "/v1/deep_research_tasks?limit=50", list75 = "/v1/deep_research_tasks?limit=75" }) do
      local got = capture("curl -s -o /dev/null -w '%{http_code} %{size_download}' " ..
        q(base .. p))
      assert(got == "200 " .. payloads[name].bytes, "nginx serves " .. p .. " wrong: " .. got)
    end
    if want("http") then bench_http(base) end
    if want("rss") then bench_rss(base) end
    if want("profile") then bench_profile(base) end
  end)
  stop(pid, "nginx")
  os.remove(TMP .. "/nginx.launch.pid")
  if not ok then error(err, 0) end
end
if want("decode") then bench_decode() end
local sched, sched_err
if want("wait") then
  sched, sched_err = schedule_rows()
  bench_wait()
end
if opts.only == "profile" then
  print(profile_text or "")
  log("bench: finished in %.0f s", socket.gettime() - t_start)
  os.exit(0)
end
evaluate()
local text = render(sched, sched_err)
print(text)
if opts.write and opts.only == nil then
  local path = "bench/RESULTS.md"
  write_file(path, report.splice(read_file(path), text))
  log("bench: wrote %s", path)
end
log("bench: finished in %.0f s", socket.gettime() - t_start)

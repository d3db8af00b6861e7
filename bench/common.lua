-- What every Lua contender shares: clocks, the argument list, and the timed loop.
-- A contender is
-- `lua bench/<name>.lua BASE_URL SMALL_ID BIG_ID N_SMALL N_BIG N_LIST WARMUP BATCHES`
-- and prints "<payload> <n> <wall s> <cpu s> <check>" per batch, like bench/floor.c: small and
-- big in BATCHES batches, the list page one GET per batch.
local M = {}

local ffi_ok, ffi = pcall(require, "ffi")
if ffi_ok then
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk, bench_timespec *ts);
  ]]
  local ts = ffi.new("bench_timespec")
  local function get(clk)
    ffi.C.clock_gettime(clk, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
  M.wall = function() return get(1) end -- CLOCK_MONOTONIC
  M.cpu = function() return get(2) end  -- CLOCK_PROCESS_CPUTIME_ID
else
  -- gettimeofday (µs) and clock(), which glibc reads from CLOCK_PROCESS_CPUTIME_ID.
  M.wall = require("socket.core").gettime
  M.cpu = os.clock
end

--- CPU seconds of the children this process has waited for (the curl contender's).
function M.children_cpu()
  local f = io.open("/proc/self/stat", "r")
  if not f then return 0 end
  local s = f:read("*a")
  f:close()
  local fields = {}
  for x in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  -- Fields 16 and 17 (cutime, cstime) counted from the state, field 3; USER_HZ is 100 on Linux.
  return (tonumber(fields[14]) + tonumber(fields[15])) / 100
end

function M.args()
  local a = arg
  if #a ~= 8 then
    io.stderr:write("usage: BASE_URL SMALL_ID BIG_ID N_SMALL N_BIG N_LIST WARMUP BATCHES\n")
    os.exit(2)
  end
  return {
    base = a[1], small_id = a[2], big_id = a[3],
    n = { small = tonumber(a[4]), big = tonumber(a[5]), list = tonumber(a[6]) },
    warm = tonumber(a[7]),
    batches = math.max(1, tonumber(a[8])),
  }
end

function M.urls(o)
  return {
    small = o.base .. "/v1/deep_research_tasks/" .. o.small_id,
    big = o.base .. "/v1/deep_research_tasks/" .. o.big_id,
    list = o.base .. "/v1/deep_research_tasks?limit=50",
  }
end

-- The value each contender reports to show it decoded the body.
local CHECK = {
  small = function(t) return t.agents end,
  big = function(t) return #t.report.sources end,
  list = function(t) return #t end,
}

--- Times fetch[payload]() for small, big and list, in batches; cpu_extra adds children's CPU.
function M.run(o, fetch, cpu_extra)
  cpu_extra = cpu_extra or function() return 0 end
  for _, name in ipairs({ "small", "big", "list" }) do
    local f, check = fetch[name], CHECK[name]
    local warm = name == "list" and math.min(o.warm, 3) or o.warm
    for _ = 1, warm do check(f()) end
    local n = o.n[name]
    local batches = name == "list" and math.max(n, 1) or o.batches
    for k = 0, batches - 1 do
      local todo, sum = math.floor(n / batches) + (k < n % batches and 1 or 0), 0
      local w0, c0 = M.wall(), M.cpu() + cpu_extra()
      for _ = 1, todo do sum = sum + check(f()) end
      local w1, c1 = M.wall(), M.cpu() + cpu_extra()
      io.write(string.format("%s %d %.9f %.9f %d\n", name, todo, w1 - w0, c1 - c0,
        todo > 0 and math.floor(sum / todo) or 0))
    end
    io.stdout:flush()
  end
end

--- VmRSS/VmHWM lines of /proc/self/status, in kB.
function M.status_kb(field)
  local f = io.open("/proc/self/status", "r")
  if not f then return -1 end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) or -1
end

--- Puts this checkout's module first on the paths, for the interpreter running us.
-- BENCH_BUILD_ROOT=dir takes dir/<version>/deepresearch/core.so instead (a patched build),
-- BENCH_LUA_ROOT=dir the Lua front from dir/deepresearch/*.lua.
function M.use_checkout()
  local ver = rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+")
  local root = os.getenv("BENCH_BUILD_ROOT") or "build"
  local lua = os.getenv("BENCH_LUA_ROOT") or "lua"
  package.path = lua .. "/?.lua;" .. lua .. "/?/init.lua;" .. package.path
  package.cpath = root .. "/" .. ver .. "/?.so;" .. package.cpath
end

return M

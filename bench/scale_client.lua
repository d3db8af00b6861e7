-- One measured run of the scale benchmark, in a process of its own (peak RSS is per process).
-- usage: lua5.4 bench/scale_client.lua MODE N BASE_URL NGINX_WORKER_PID
--   all      create_all of N tasks, then wait_all on them (the blocking helpers)
--   luv      the same N creates and waits through one poller driven by a luv loop
--   pending  N waits through one poller (luv) on tasks that never finish: live memory per
--            pending wait once every wait has polled, then CPU per poll while all N stay pending
-- Prints one line of key=value pairs. Counts come from both sides: sockets opened from the
-- module (core.stats().connects, CURLINFO_NUM_CONNECTS summed) and from nginx (stub_status
-- accepts), requests from nginx, the server's CPU from /proc/<worker>/stat.
package.path = "bench/?.lua;" .. package.path
local common = require "common"
common.use_checkout()
local dr = require "deepresearch"
local core = require "deepresearch.core"
local http = require "socket.http"

local mode, n, base, worker = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4])
assert(mode and n and base and worker, "usage: scale_client.lua all|luv|pending N BASE_URL PID")

-- The wait's schedule in these runs: short, so that a run at N = 10,000 takes seconds; the
-- loop is then bound by request throughput with every wait pending at once (the worst case
-- for any per-step cost that grows with N).
local WAIT = { interval = 0.05, growth = 1.5, max_interval = 0.2 }

local status_gets = 0 -- /_status GETs so far: taken out of the request counts
local function server()
  status_gets = status_gets + 1
  local body = assert(http.request(base .. "/_status"))
  local accepts, _, requests = body:match("\n%s*(%d+)%s+(%d+)%s+(%d+)")
  local f = assert(io.open("/proc/" .. worker .. "/stat"))
  local stat = f:read("*a")
  f:close()
  local fields = {}
  for x in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  return { accepts = tonumber(accepts), requests = tonumber(requests) - 1, -- this GET
    cpu = (tonumber(fields[12]) + tonumber(fields[13])) / 100 } -- utime + stime, USER_HZ 100
end

local function live()
  collectgarbage()
  collectgarbage()
  local s = core.stats()
  return { lua = collectgarbage("count") * 1024, c = s.bytes, connects = s.connects,
    rss = common.status_kb("VmRSS") }
end

-- Measures fn: client CPU, server CPU, requests and accepts on the server, connects here.
local function phase(fn)
  local s0, m0, c0 = server(), core.stats().connects, common.cpu()
  local g0 = status_gets
  local extra = fn()
  local c1, m1, s1 = common.cpu(), core.stats().connects, server()
  -- Less the status GETs (s0's and those in between) and their connections.
  return { cpu = c1 - c0, connects = m1 - m0,
    accepts = s1.accepts - s0.accepts - (status_gets - g0),
    requests = s1.requests - s0.requests - (status_gets - g0),
    server_cpu = s1.cpu - s0.cpu, extra = extra }
end

-- The documented luv driver (docs/event-loops.md): poll handles on fds(), a timer on
-- next_timeout, the handles rebuilt after every step; here each socket is watched for what
-- libcurl waits for on it (fds()'s second table), so a connect in progress wakes the loop
-- when it completes rather than at the timer's 50 ms cap.
local uv
local function drive(p, until_fn)
  uv = uv or require "luv"
  local polls, timer = {}, uv.new_timer()
  local tick
  local function rearm()
    for fd, h in pairs(polls) do
      h:close()
      polls[fd] = nil
    end
    if p:pending() == 0 or (until_fn and until_fn()) then
      timer:close()
      return
    end
    local list, what = p:fds()
    for _, fd in ipairs(list) do
      local h = uv.new_poll(fd)
      h:start(what[fd] or "r", tick)
      polls[fd] = h
    end
    timer:start(math.min(p:next_timeout() or 50, 50), 0, tick)
  end
  tick = function()
    timer:stop()
    local ok, err = pcall(p.step, p, 0)
    if not ok then io.stderr:write("scale: ", tostring(err), "\n") end
    rearm()
  end
  tick()
  uv.run()
end

local function briefs()
  local list = {}
  for i = 1, n do
    list[i] = string.format("Research logistics company %d (company-%d.example): tooling, " ..
      "leadership changes and public statements in the last 12 months.", i, i)
  end
  return list
end

local out = { "mode=" .. mode, "n=" .. n }
local function put(k, v)
  out[#out + 1] = k .. "=" .. (type(v) == "number" and v % 1 ~= 0 and string.format("%.6g", v)
    or tostring(v))
end
local function put_phase(prefix, r)
  put(prefix .. "_cpu", r.cpu)
  put(prefix .. "_connects", r.connects)
  put(prefix .. "_accepts", r.accepts)
  put(prefix .. "_requests", r.requests)
  put(prefix .. "_server_cpu", r.server_cpu)
end

local c = dr.client { base_url = base, token = "bench-token" }
-- The caller's ids exist before the waits (as the list handed to wait_all does): live memory
-- counts what the module holds for each wait, not the caller's strings.
local pending_ids = {}
if mode == "pending" then
  for i = 1, n do pending_ids[i] = "pending-" .. i end
end
local base_mem = live()
put("rss0_kb", base_mem.rss)

if mode == "all" or mode == "luv" then
  local list, ids = briefs(), {}
  local created = phase(function()
    if mode == "all" then
      local tasks, errs = c:create_all(list)
      local _, e = next(errs)
      if e then error("create_all failed: " .. tostring(e)) end
      for i, t in ipairs(tasks) do ids[i] = t.id end
    else
      local p = c:poller()
      for i, b in ipairs(list) do
        p:create({ brief = b }, function(t, err)
          assert(t, err and tostring(err))
          ids[i] = t.id
        end)
      end
      drive(p)
      p:close()
    end
  end)
  assert(#ids == n, "created " .. #ids .. " of " .. n)
  put_phase("create", created)
  list = nil -- luacheck: ignore
  local ndone = 0
  local waited = phase(function()
    if mode == "all" then
      local done, errs = c:wait_all(ids, WAIT)
      local _, e = next(errs)
      if e then error("wait_all failed: " .. tostring(e)) end
      for _ in pairs(done) do ndone = ndone + 1 end
    else
      local p = c:poller()
      for _, id in ipairs(ids) do
        p:wait(id, WAIT, function(t, err)
          assert(t, err and tostring(err))
          ndone = ndone + 1
        end)
      end
      drive(p)
      p:close()
    end
  end)
  assert(ndone == n, "waited " .. ndone .. " of " .. n)
  put_phase("wait", waited)
elseif mode == "pending" then
  local p = c:poller()
  local seen, polls = 0, 0
  local opts = { interval = 1, max_interval = 1, timeout = 3600,
    on_progress = function() seen = seen + 1 end }
  local function cb() end
  local first = phase(function()
    for i = 1, n do p:wait(pending_ids[i], opts, cb) end
    drive(p, function() return seen >= n end)
  end)
  put_phase("first", first)
  -- Every wait has polled once and sleeps: what each one holds now.
  local m = live()
  put("live_lua_b", (m.lua - base_mem.lua) / n)
  put("live_c_b", (m.c - base_mem.c) / n)
  put("live_b", (m.lua + m.c - base_mem.lua - base_mem.c) / n)
  put("rss_per_task_b", (m.rss - base_mem.rss) * 1024 / n)
  put("pending", p:pending())
  -- Steady state: every wait stays pending and polls once a second; two more rounds.
  local steady = phase(function()
    local s0 = server().requests
    drive(p, function()
      polls = polls + 1
      if polls % 64 ~= 0 then return false end
      return server().requests - s0 >= 2 * n
    end)
  end)
  put_phase("steady", steady)
  if p.stats then put("touched_max", p:stats().touched_max or -1) end
  p:close()
end

put("peak_rss_kb", common.status_kb("VmHWM"))
c:close()
io.write(table.concat(out, " "), "\n")

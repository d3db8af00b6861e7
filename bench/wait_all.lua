-- wait_all on many tasks against the simulator: requests sent and the client's CPU time.
-- usage: lua bench/wait_all.lua SIM_URL SPEED N_TASKS DURATION
-- The simulator runs SPEED virtual seconds per real second; the wait's schedule (2 s growing
-- x1.5 up to 30 s) is scaled by 1/SPEED so it is the default schedule in virtual time.
-- Prints "wait_all <tasks> <done> <task GETs> <expected GETs> <connections> <cpu s> <wall s>".
package.path = "bench/?.lua;" .. package.path
local common = require "common"
common.use_checkout()
local dr = require "deepresearch"
local wait = require "deepresearch.runtime.wait"
local dates = require "deepresearch.base.dates"
local report = require "report"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local url, speed, n, duration = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
assert(url and speed and n and duration, "usage: wait_all.lua SIM_URL SPEED N_TASKS DURATION")
local EPOCH = 1767225600 -- the simulator's epoch, 2026-01-01T00:00:00Z

local function control(method, path, body)
  local out = {}
  local ok, code = http.request {
    url = url .. path, method = method, sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-type"] = "application/json", ["content-length"] = #body } or nil,
  }
  assert(ok and code == 200, "simulator control " .. method .. " " .. path .. ": " ..
    tostring(code))
  return cjson.decode(table.concat(out))
end

control("POST", "/_sim/reset", "{}")
control("POST", "/_sim/config", cjson.encode { extruct = { duration = { medium = duration } } })

local c = dr.client { base_url = url, token = "test-token" }
local briefs = {}
for i = 1, n do
  briefs[i] =
    string.format("Research logistics company %d (company-%d.example): tooling, leadership " ..
    "changes and public statements in the last 12 months.", i, i)
end
local tasks, errs = c:create_all(briefs, { depth = "medium" })
local _, first_err = next(errs)
if first_err then error("create_all failed: " .. tostring(first_err)) end
local ids = {}
for i, t in ipairs(tasks) do ids[i] = t.id end

control("DELETE", "/_sim/requests")
local t_start = control("GET", "/_sim/clock").now
local w0, c0 = common.wall(), common.cpu()
local done, failed = c:wait_all(ids,
  { max_connections = 8, interval = 2 / speed, max_interval = 30 / speed })
local w1, c1 = common.wall(), common.cpu()

local gets, conns = 0, {}
for _, r in ipairs(control("GET", "/_sim/requests")) do
  if r.method == "GET" and r.route:find("^/v1/deep_research_tasks/") then gets = gets + 1 end
  conns[r.conn] = true
end
local nconn = 0
for _ in pairs(conns) do nconn = nconn + 1 end

-- What the default schedule alone asks for, given when each task really finished.
local expected, ndone = 0, 0
for _, t in pairs(done) do
  ndone = ndone + 1
  local finished = dates.parse_iso(t.updated_at) - EPOCH
  expected = expected + report.polls_for(wait.schedule(), finished - t_start)
end
for id, e in pairs(failed) do io.stderr:write("wait_all: ", id, ": ", tostring(e), "\n") end
io.write(string.format("wait_all %d %d %d %d %d %.6f %.6f\n", n, ndone, gets, expected, nconn,
  c1 - c0, w1 - w0))
c:close()

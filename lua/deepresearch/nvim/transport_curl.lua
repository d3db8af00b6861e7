-- The curl transport: a stand-in for the C module deepresearch.core, for a Neovim without a
-- compiler. It answers the same calls the Lua library makes on the core (new_client and its
-- request/finish/abandon, new_poller and its add/step/cancel, now, sleep, decode, set_decoder),
-- with each request run as one `curl` process through vim.loop.spawn (transport_spawn.lua) and
-- its answer turned into the same result table the core builds (src/result.c): status, head,
-- body or raw + decode_error, or error/message/sent/curl_code with the core's error codes. So
-- the runtime above it (http.lua's retries and error model, the poller, the descriptors) is the
-- one code path for both transports. transport_select.lua decides which one loads.
-- What the core has and this has not: connection reuse (a process and a TCP/TLS handshake per
-- request), send_by (a create with a deadline is held back unsent, as a core built against a
-- libcurl without CURLOPT_PREREQFUNCTION does), fds() to watch, and the webhook HMAC helpers.
-- luacheck: globals vim
local uv = vim.loop
local json = require "deepresearch.nvim.transport_json"
local run = require "deepresearch.nvim.transport_spawn"

local M = {
  transport = "curl",
  null = require("deepresearch.base.json").null,
  has_send_by = false,
  decode = json.decode,
  set_decoder = json.set_decoder,
  set_array_metatable = json.set_array_metatable,
}

-- The library's version, from the header the C build would use (one place for the number).
local function read_version()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local root = src:match("^(.*)/lua/deepresearch/nvim/[^/]*$") or "."
  local f = io.open(root .. "/include/deepresearch.h", "r")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  return text:match('#define DEEPRESEARCH_VERSION "([^"]+)"') or "unknown"
end
M.version = read_version()

--- The curl program's version ("7.88.1"), or nil and why (asked once, when this loads).
function M.probe()
  local ok, out = pcall(vim.fn.system, { run.program, "--version" })
  if not ok or vim.v.shell_error ~= 0 then
    return nil, "cannot run " .. run.program .. (ok and "" or (": " .. tostring(out)))
  end
  return out:match("^curl (%S+)") or "unknown"
end
-- Not asked at load (a blocking run of curl): the user agent names the transport instead;
-- :checkhealth asks (probe) and shows the version.
M.curl_version = "curl-cli"

function M.now() return uv.hrtime() / 1e9 end

--- A real sleep, as the core's: the blocking client's retry waits (the poller never sleeps).
function M.sleep(s)
  if type(s) ~= "number" then error("bad argument #1 to 'sleep' (number expected)", 2) end
  if s > 0 then uv.sleep(math.floor(math.min(s, 1e6) * 1000)) end
  return true
end

function M.trap_interrupt() return false end
function M.interrupted() return false end

local function no_hmac()
  error("deepresearch: webhook signatures need the C module (build deepresearch.core: " ..
    "make LUA_VERSION=luajit); the curl transport has no HMAC", 2)
end
M.hmac_sha256, M.equal_constant_time = no_hmac, no_hmac

-- The core's limits and their defaults (src/spec.c dr_limits_read); the front checked them.
local function limits_of(opts)
  local function num(k, d) return type(opts[k]) == "number" and opts[k] or d end
  return {
    connect_timeout = num("connect_timeout", 5), timeout = num("timeout", 60),
    low_speed_limit = num("low_speed_limit", 1), low_speed_time = num("low_speed_time", 30),
    max_response_size = num("max_response_size", 64 * 1024 * 1024),
    max_connections = num("max_connections", 8),
    ca_file = opts.ca_file, proxy = opts.proxy,
  }
end

-- A header line or URL must not smuggle a second line or hide a NUL (src/spec.c dr_header_ok).
local function line_ok(s) return type(s) == "string" and not s:find("[%z\1-\8\10-\31\127]") end

local next_id = 0

local function new_engine(limits)
  return { limits = limits, xfers = {}, done = {}, n = 0, closed = false, data = {} }
end

local function settle(e, x)
  if e.xfers[x.id] == x then e.done[#e.done + 1] = x end
end

-- sync: run it to its end now (a blocking request where the editor's loop cannot run).
local function add(e, spec, sync)
  if type(spec) ~= "table" then error("bad argument #2 to 'add' (table expected)", 3) end
  if not line_ok(spec.url) then error("request needs a url without control characters", 3) end
  for _, h in ipairs(spec.headers or {}) do
    if not line_ok(h) then error("request header lines must not contain control characters", 3) end
  end
  if spec.body ~= nil and type(spec.body) ~= "string" then
    error("request field 'body' must be a string", 3)
  end
  local t = spec.timeout
  if t ~= nil and (type(t) ~= "number" or t ~= t or t < 0) then
    error("request field 'timeout' must be a non-negative number", 3)
  end
  next_id = next_id + 1
  local x = { id = next_id, spec = spec, limits = e.limits }
  e.xfers[x.id], e.n = x, e.n + 1
  if spec.send_by ~= nil then
    x.unsent, x.finished = "not sent: send_by cannot be enforced by the curl transport " ..
      "(build deepresearch.core)", true
    settle(e, x)
  elseif spec.decode ~= false and not json.has_decoder() then
    x.unsent, x.unsent_code, x.finished =
      "not sent: no JSON decoder to read its answer (install lua-cjson)", "invalid_response", true
    settle(e, x)
  elseif sync then
    run.run_sync(x)
    settle(e, x)
  else
    run.start(x, function(done) settle(e, done) end)
  end
  return x.id
end

local function cancel(e, id)
  local x = e.xfers[id]
  if not x then return false end
  e.xfers[id], e.n = nil, e.n - 1
  run.kill(x, "cancelled")
  return true
end

local build = require("deepresearch.nvim.transport_result").build

-- Takes x out of e and returns its result table.
local function take(e, x)
  e.xfers[x.id], e.n = nil, e.n - 1
  for i = #e.done, 1, -1 do
    if e.done[i] == x then table.remove(e.done, i) end
  end
  return build(x)
end

-- Runs Neovim's event loop until cond() or ms pass (the processes' callbacks need the loop).
-- In a fast context the loop cannot be run from here: the answer is whatever came already.
local function block_until(cond, ms)
  if cond() or ms <= 0 or vim.in_fast_event() then return end
  local deadline = M.now() + ms / 1000
  repeat
    local left = math.min(1000, (deadline - M.now()) * 1000)
    if left <= 0 then return end
    local _, why = vim.wait(math.max(1, math.floor(left)), cond, 5)
    if why == -2 then error("interrupted!", 0) end
  until cond()
end

-- Waits up to ms for transfer id: its result (stored as rec.result), nil while it runs, false
-- when there is no such transfer.
local function wait(e, id, ms, rec)
  local x = e.xfers[id]
  if not x then return false end
  block_until(function() return x.finished or e.xfers[id] ~= x end, ms)
  if e.xfers[id] ~= x then return false end
  if not x.finished then return nil end
  local res = take(e, x)
  if rec then rec.result = res end
  return res
end

local function checked(h, what)
  if type(h) ~= "table" or not h.e then
    error("bad argument #1 (" .. what .. " expected)", 3)
  end
  if h.e.closed then error("attempt to use a closed " .. what, 3) end
  return h.e
end

local function close(h)
  local e = h.e
  if e.closed then return end
  for id in pairs(e.xfers) do cancel(e, id) end
  e.done, e.closed = {}, true
end

local function common()
  return {
    close = close,
    closed = function(h) return h.e.closed end,
    data = function(h) return h.e.data end,
  }
end

local client_methods = common()

--- client:request(spec [, ms [, rec]]), as the core's (src/client.c).
function client_methods.request(h, spec, ms, rec)
  local e = checked(h, "deepresearch.client")
  for id in pairs(e.xfers) do cancel(e, id) end -- one request at a time: leftovers go
  -- In a libuv callback the loop cannot run for the helper's answer: curl in the foreground.
  local id = add(e, spec, vim.in_fast_event())
  if rec then rec.id = id end
  local res = wait(e, id, (ms == nil or ms < 0) and math.huge or ms, rec)
  if res then return res end
  if res == false then error("request vanished (client closed during the call?)", 2) end
  return nil, id
end

function client_methods.finish(h, id, ms, rec)
  local e = checked(h, "deepresearch.client")
  if type(ms) ~= "number" or ms < 0 then
    error("bad argument #3 to 'finish' (must not be negative)", 2)
  end
  return wait(e, id, ms, rec)
end

function client_methods.abandon(h, id) return cancel(checked(h, "deepresearch.client"), id) end

local poller_methods = common()

function poller_methods.add(p, spec) return add(checked(p, "deepresearch.poller"), spec) end

--- step(ms [, out]): the results of the transfers that ended, appended to out.
function poller_methods.step(p, ms, out)
  local e = checked(p, "deepresearch.poller")
  ms = ms or 0
  if type(ms) ~= "number" or ms < 0 then
    error("bad argument #2 to 'step' (must not be negative)", 2)
  end
  out = out or {}
  if e.n > 0 then block_until(function() return e.done[1] ~= nil end, math.min(ms, 100)) end
  local n = #out
  while e.done[1] do
    n = n + 1
    out[n] = take(e, e.done[1])
  end
  return out
end

function poller_methods.next_timeout(p)
  return checked(p, "deepresearch.poller").n > 0 and 20 or nil
end
function poller_methods.fds() return {}, {} end -- processes, not sockets: nothing to watch
function poller_methods.pending(p) return checked(p, "deepresearch.poller").n end
function poller_methods.cancel(p, id) return cancel(checked(p, "deepresearch.poller"), id) end

local function tostring_of(h)
  return h.e.what .. " (curl transport)" .. (h.e.closed and " (closed)" or "")
end
M.client_metatable = { __index = client_methods, __name = "deepresearch.client",
  __tostring = tostring_of }
M.poller_metatable = { __index = poller_methods, __name = "deepresearch.poller",
  __tostring = tostring_of }
M.client_methods, M.poller_methods = client_methods, poller_methods

function M.new_client(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'new_client' (table expected)", 2) end
  local e = new_engine(limits_of(opts))
  e.what = "deepresearch.client"
  return setmetatable({ e = e }, M.client_metatable)
end

function M.new_poller(client, max)
  local from = checked(client, "deepresearch.client")
  max = max or from.limits.max_connections
  if type(max) ~= "number" or max < 1 or max > 1024 or max % 1 ~= 0 then
    error("bad argument #2 to 'new_poller' (max_connections must be an integer from 1 to 1024)", 2)
  end
  local e = new_engine(from.limits)
  e.what = "deepresearch.poller"
  return setmetatable({ e = e, max = max }, M.poller_metatable)
end

return M

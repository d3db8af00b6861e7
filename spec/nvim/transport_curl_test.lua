-- The curl transport (issue 17 item 9): requests run as `curl` processes through vim.loop.spawn
-- behind the core's interface. A small HTTP server inside this Neovim (the curl processes are
-- outside it, so its loop serves them while a request waits) gives hostile answers: a huge
-- body, a slow body, a hung server, HTML, headers without end, redirects, error statuses.
-- Transport-level checks run in both passes; the library-level ones (errors through http.lua's
-- model) need the library loaded on curl, which the second pass (DEEPRESEARCH_NVIM_TRANSPORT=
-- curl) does. A fresh Neovim with no build at all shows the default (auto) falling back.
-- luacheck: globals vim
local uv = vim.loop
local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

local SECRET = "sk-curl-transport-SECRET-0123456789"

local function respond(c, status, headers, body)
  local lines = { "HTTP/1.1 " .. status }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  lines[#lines + 1] = "Connection: close"
  c:write(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or ""), function() c:close() end)
end

local JSON = { "Content-Type: application/json" }
local ROUTES = {
  json = function(c)
    respond(c, "200 OK", JSON, '{"a":null,"b":[],"c":{},"d":[1,null],"e":{"f":null,"g":2}}')
  end,
  echo = function(c, req) respond(c, "200 OK", JSON, vim.json.encode(req)) end,
  html = function(c)
    respond(c, "502 Bad Gateway", { "Content-Type: text/html" },
      "<html><head><title>Bad gateway</title></head><body>oops</body></html>")
  end,
  text = function(c) respond(c, "200 OK", { "Content-Type: text/plain" }, "not json at all") end,
  huge = function(c) -- no Content-Length: only counting the bytes can stop it
    c:write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
    local chunk = string.rep('"xxxxxxxx",', 1000)
    local function more(n)
      if n == 0 or c:is_closing() then return end
      c:write(chunk, function(err) if not err then more(n - 1) end end)
    end
    more(100) -- ~1 MB
  end,
  huge_cl = function(c)
    c:write("HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n[")
  end,
  slow = function(c) -- a byte every 300 ms, for ever
    c:write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
    local t = uv.new_timer()
    t:start(0, 300, function()
      if c:is_closing() then t:stop() t:close() return end
      c:write(" ", function(err) if err then t:stop() t:close() end end)
    end)
  end,
  hang = function() end,
  headers = function(c) -- header lines without end
    local lines = { "HTTP/1.1 200 OK" }
    for i = 1, 400 do lines[#lines + 1] = "X-Pad-" .. i .. ": " .. string.rep("p", 1000) end
    c:write(table.concat(lines, "\r\n") .. "\r\n\r\n{}", function() c:close() end)
  end,
  redirect = function(c)
    respond(c, "302 Found", { "Location: http://127.0.0.1:9/elsewhere" }, "")
  end,
  ["status-401"] = function(c) respond(c, "401 Unauthorized", JSON, '{"detail":"bad key"}') end,
  ["status-429"] = function(c)
    respond(c, "429 Too Many Requests", { "Content-Type: application/json", "Retry-After: 7" },
      '{"detail":"slow down"}')
  end,
  ["status-500"] = function(c)
    respond(c, "500 Internal Server Error", JSON, '{"detail":"boom"}')
  end,
}

-- Starts the server; returns its base URL and the requests it saw.
local function serve()
  local seen = {}
  local server = uv.new_tcp()
  server:bind("127.0.0.1", 0)
  server:listen(64, function()
    local c = uv.new_tcp()
    server:accept(c)
    local buf = ""
    c:read_start(function(_, data)
      if not data then
        if not c:is_closing() then c:close() end
        return
      end
      buf = buf .. data
      local e = buf:find("\r\n\r\n", 1, true)
      if not e then return end
      local len = tonumber(buf:match("\n[Cc]ontent%-[Ll]ength:%s*(%d+)")) or 0
      if #buf < e + 3 + len then return end
      c:read_stop()
      local method, path = buf:match("^(%u+) (%S+)")
      local req = { method = method, path = path, head = buf:sub(1, e), body = buf:sub(e + 4) }
      seen[#seen + 1] = req
      local route = ROUTES[path:match("([^/?]+)$") or ""] or ROUTES.json
      route(c, req)
    end)
  end)
  return "http://127.0.0.1:" .. server:getsockname().port, seen, server
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Records each process the transport starts: its argv, and its own /proc/<pid>/cmdline read
-- while it runs.
local function spy_spawn(run)
  local calls = {}
  run.on_spawn = function(x)
    calls[#calls + 1] = { args = x.argv, pid = x.pid,
      cmdline = read_file("/proc/" .. x.pid .. "/cmdline") }
  end
  return calls, function() run.on_spawn = nil end
end

local function transport_checks(t, base, seen)
  local curl = require "deepresearch.nvim.transport_curl"
  local run = require "deepresearch.nvim.transport_spawn"
  local json = require "deepresearch.nvim.transport_json"
  if not json.has_decoder() then curl.set_decoder(vim.json.decode, vim.NIL) end
  curl.set_array_metatable(require("deepresearch.base.json").array_mt)
  local h = curl.new_client{ timeout = 2, max_response_size = 100000 }
  local function get(path, extra)
    local spec = { method = "GET", url = base .. path,
      headers = { "Authorization: Bearer " .. SECRET, "Accept: application/json" } }
    for k, v in pairs(extra or {}) do spec[k] = v end
    return h:request(spec)
  end

  -- The key on stdin: argv is the same three words, and so is the process's own cmdline.
  -- (The server never answers /hang: the process is alive when its cmdline is read.)
  local calls, restore = spy_spawn(run)
  get("/v1/hang", { timeout = 1 })
  restore()
  local call = calls[1] or {}
  t.ok(#calls == 1 and call.args == "-q --config -",
    "curl transport: argv holds neither the key nor the URL: " .. tostring(call.args),
    vim.inspect(calls))
  t.ok(call.cmdline ~= nil and call.cmdline ~= "" and not has(call.cmdline, SECRET),
    "curl transport: /proc/<pid>/cmdline of the running curl has no key",
    vim.inspect(call.cmdline))
  local res = get("/v1/echo", { method = "POST", body = '{"brief":"b \\" \\\\ \\n"}' })
  local echoed = res and res.body or {}
  t.ok(echoed.method == "POST" and has(echoed.head, "Authorization: Bearer " .. SECRET) and
    echoed.body == '{"brief":"b \\" \\\\ \\n"}' and has(echoed.head, "Expect:") == false,
    "curl transport: the key, the method and the body (quotes, backslashes) reach the server",
    vim.inspect(res))

  res = get("/v1/json")
  local b = res and res.body or {}
  t.ok(res and res.status == 200 and b.a == nil and b.e and b.e.f == nil and b.e.g == 2 and
    getmetatable(b.b) == require("deepresearch.base.json").array_mt and b.d[1] == 1,
    "curl transport: JSON nulls are absent keys (no vim.NIL), [] is marked an array",
    vim.inspect(res))
  local amt = require("deepresearch.base.json").array_mt
  local v = curl.decode([=[{"s":"a \" [] b","t":[],"u":[1,[ ]],"v":"\\","w":[],"x":{},"n":null}]=])
  t.ok(type(v) == "table" and v.s == 'a " [] b' and getmetatable(v.t) == amt and
    getmetatable(v.u[2]) == amt and v.v == "\\" and getmetatable(v.w) == amt and
    getmetatable(v.x) ~= amt and v.n == nil and v.u[1] == 1,
    "curl transport: [] outside strings (after escaped quotes and backslashes) is an array, " ..
      "[] inside a string is text, {} stays an object, null fields go", vim.inspect(v))
  res = get("/v1/text")
  t.ok(res and res.status == 200 and res.raw == "not json at all" and res.decode_error ~= nil,
    "curl transport: a 200 that is not JSON comes back raw with decode_error", vim.inspect(res))
  res = get("/v1/huge")
  t.ok(res and res.error == "invalid_response" and has(res.message, "max_response_size"),
    "curl transport: a body past max_response_size without Content-Length is cut off",
    vim.inspect(res))
  res = get("/v1/huge_cl")
  t.ok(res and res.error == "invalid_response" and has(res.message, "max_response_size"),
    "curl transport: a Content-Length past max_response_size is refused", vim.inspect(res))
  res = get("/v1/headers")
  t.ok(res and res.error == "invalid_response" and has(res.message, "headers") and
    has(res.message, "arge"),
    "curl transport: a header block past 256 KiB is refused", vim.inspect(res))
  local n = #seen
  res = get("/v1/slow", { timeout = 1 })
  t.ok(res and res.error == "timeout" and res.sent == true and #seen == n + 1,
    "curl transport: a slow body ends in timeout, sent, once", vim.inspect(res))
  res = get("/v1/hang", { timeout = 1 })
  t.ok(res and res.error == "timeout" and res.sent == true,
    "curl transport: a server that never answers ends in timeout", vim.inspect(res))
  res = get("/v1/redirect")
  t.ok(res and res.status == 302 and #seen == n + 3,
    "curl transport: a redirect is answered, not followed", vim.inspect(res))
  local r = curl.new_client{ timeout = 2 }:request{ url = "http://127.0.0.1:9/x", headers = {} }
  t.ok(r.error == "network" and r.sent == false and has(r.message, "onnect"),
    "curl transport: a refused connection is a network error, not sent", vim.inspect(r))

  -- The poller's side: many at once, results handed over by step, a cancel kills its process.
  local p = curl.new_poller(h, 4)
  for _ = 1, 6 do p:add{ url = base .. "/v1/json", headers = {} } end
  local hang = p:add{ url = base .. "/v1/hang", headers = {}, timeout = 30 }
  local got = {}
  vim.wait(10000, function()
    for _, x in ipairs(p:step(0)) do got[#got + 1] = x end
    return #got >= 6
  end, 10)
  t.ok(#got == 6 and p:pending() == 1 and p:cancel(hang) and p:pending() == 0,
    "curl transport: the poller hands over each result once; cancel ends a transfer",
    vim.inspect({ got = #got, pending = p:pending() }))
  local sent_by = p:add{ url = base .. "/v1/json", headers = {}, send_by = curl.now() + 60 }
  local held = p:step(0)[1] or {}
  t.ok(held.id == sent_by and held.error and held.not_sent == true,
    "curl transport: a request with send_by is held back unsent (curl cannot enforce it)",
    vim.inspect(held))
end

-- Through the library (http.lua's error model, the descriptors' error readers): curl pass only.
local function library_checks(t, base)
  local lib = require("deepresearch.nvim").library()
  if not (lib and lib.core.transport == "curl") then
    for _, name in ipairs({ "unauthorized", "rate_limited", "server_error", "HTML",
      "redirect", "too large", "timeout" }) do
      t.skip("curl transport, through the library: " .. name,
        "this pass runs the library on the C core (the curl pass runs these)")
    end
    return
  end
  local c = lib.client{ base_url = base, token = SECRET, max_retries = 0, timeout = 1,
    max_response_size = 100000 }
  local function err_of(id)
    local task, err = c:get(id)
    return task == nil and err or {}
  end
  local e = err_of("status-401")
  t.ok(e.code == "unauthorized" and e.status == 401, "curl transport, through the library: " ..
    "a 401 is unauthorized", tostring(e))
  e = err_of("status-429")
  t.ok(e.code == "rate_limited" and e.retry_after == "7",
    "curl transport, through the library: a 429 is rate_limited with its Retry-After",
    tostring(e))
  e = err_of("status-500")
  t.ok(e.code == "server_error" and e.status == 500,
    "curl transport, through the library: a 500 is server_error", tostring(e))
  e = err_of("html")
  t.ok(e.code == "invalid_response" and has(e.message, "Bad gateway"),
    "curl transport, through the library: an HTML page is invalid_response naming it",
    tostring(e))
  e = err_of("redirect")
  t.ok(e.code == "invalid_response" and has(e.message, "redirect"),
    "curl transport, through the library: a redirect is not followed", tostring(e))
  e = err_of("huge")
  t.ok(e.code == "invalid_response" and has(e.message, "max_response_size"),
    "curl transport, through the library: too large a body is invalid_response", tostring(e))
  e = err_of("slow")
  t.ok(e.code == "timeout", "curl transport, through the library: a slow body is a timeout",
    tostring(e))
  c:close()
end

-- A fresh Neovim on a copy of the plugin with no build at all, transport left to auto.
local function no_build(root, url, extra)
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  vim.fn.system({ "cp", "-r", root .. "/lua", root .. "/plugin", root .. "/include", dir })
  local out = dir .. "/out.json"
  local cmd = { "env", "-u", "EXTRUCT_API_TOKEN", "-u", "DEEPRESEARCH_NVIM_TRANSPORT", "-u",
    "DR_NESTED_TRANSPORT", "-u", "DR_NO_CJSON", "DR_OUT=" .. out, "DR_SIM_URL=" .. url }
  for _, a in ipairs(extra) do cmd[#cmd + 1] = a end
  for _, a in ipairs({ "timeout", "60", "nvim", "--headless", "-u", "NONE", "-i", "NONE",
    "--cmd", "set rtp^=" .. dir, "-c", "luafile " .. root .. "/spec/nvim/nested.lua" }) do
    cmd[#cmd + 1] = a
  end
  vim.fn.system(cmd)
  local text = read_file(out)
  return text and vim.json.decode(text) or { error = "the nested Neovim wrote nothing" }
end

return function(t, env)
  local base, seen, server = serve()
  local ok, err = pcall(transport_checks, t, base, seen)
  if not ok then t.ok(false, "curl transport checks ran to the end", err) end
  ok, err = pcall(library_checks, t, base)
  if not ok then t.ok(false, "curl transport library checks ran to the end", err) end
  server:close()
  if not env.url then return end

  -- A blocking request inside a libuv callback (a driver stepped in a timer's callback, where
  -- the loop cannot run for the helper's answer): curl runs in the foreground and answers.
  local curl = require "deepresearch.nvim.transport_curl"
  local fast, timer = nil, uv.new_timer()
  timer:start(0, 0, function()
    local ok2, res = pcall(function()
      return curl.new_client{ timeout = 5 }:request{ url = env.url .. "/v1/user",
        headers = { "Authorization: Bearer test-token", "Accept: application/json" } }
    end)
    fast = { ok = ok2, res = res, fast = vim.in_fast_event() }
    timer:close()
  end)
  vim.wait(20000, function() return fast ~= nil end, 10)
  fast = fast or {}
  t.ok(fast.ok and fast.fast and type(fast.res) == "table" and fast.res.status == 200 and
    type(fast.res.body) == "table" and fast.res.body.email == "alice@acme.test",
    "curl transport: a blocking request in a libuv callback runs curl in the foreground",
    vim.inspect(fast))

  for _, case in ipairs({ { label = "with lua-cjson", extra = {} },
    { label = "with vim.json (no lua-cjson)", extra = { "DR_NO_CJSON=1" } } }) do
    local res = no_build(env.root, env.url, case.extra)
    local health = table.concat(res.health or {}, "\n")
    t.ok(res.transport == "curl" and res.user == "alice@acme.test" and
      res.task_status == "created" and res.nulls_absent == true,
      "no build, " .. case.label .. ": the default transport falls back to curl, talks to the " ..
        "API, and JSON nulls are absent keys (no vim.NIL)", res.error or vim.inspect(res))
    t.ok(has(health, "OK: transport: curl") and has(health, "deepresearch.core is not built") and
      has(health, "many tasks over few connections") and not has(health, "ERROR: deepresearch"),
      "no build, " .. case.label .. ": :checkhealth names the curl transport and what " ..
        "building the core adds", res.error or health)
  end
end

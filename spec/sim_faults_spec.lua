-- The simulator's HTTP engine (keep-alive, 100-continue, connection accounting, request log)
-- and its fault switches (CONTRACT G4).
local sim = require "support.sim"
local socket = require "socket"
local cjson = require("cjson").new()

local s

local function connect()
  local c = assert(socket.tcp())
  c:settimeout(5)
  assert(c:connect(s.host, s.port))
  return c
end

local function send(c, method, path, body, extra)
  local lines = {
    method .. " " .. path .. " HTTP/1.1", "Host: sim", "Authorization: Bearer test-token" }
  for _, h in ipairs(extra or {}) do lines[#lines + 1] = h end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
end

-- Reads one response; a cut-off body comes back with err set.
local function receive(c)
  local line, err = c:receive("*l")
  if not line then return { err = err } end
  local r = { status = tonumber(line:match("^HTTP/1%.1 (%d+)")), headers = {}, list = {} }
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    r.list[#r.list + 1] = { k:lower(), v }
    r.headers[k:lower()] = v
  end
  local len = tonumber(r.headers["content-length"])
  if len and len > 0 then
    local body, berr, partial = c:receive(len)
    r.body, r.err = body or partial, berr
  else
    r.body = ""
  end
  return r
end

local function request(method, path, body, extra)
  local c = connect()
  send(c, method, path, body and (type(body) == "table" and cjson.encode(body) or body), extra)
  local r = receive(c)
  c:close()
  return r
end

local function create_body() return cjson.encode({ brief = "Research Acme Corp\nin depth" }) end

-- Waits (bounded) for a condition on the simulator's state: the server sees a client's close
-- on its next loop turn, not at once.
local function eventually(pred)
  local deadline = socket.gettime() + 5
  repeat
    local st = s:state()
    if pred(st) then return st end
    socket.sleep(0.005)
  until socket.gettime() > deadline
  error("condition not reached")
end

-- Clients of earlier specs may still hold a keep-alive connection (LuaJIT collects them
-- late): count from what is open now.
local function baseline()
  collectgarbage()
  collectgarbage()
  s:clear_requests()
  return s:state().connections.open
end

describe("simulator: HTTP engine", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("tags every reply with X-Request-Id and logs it", function()
    local r = request("GET", "/v1/user?x=1")
    assert.equals("req_1", r.headers["x-request-id"])
    local log = s:requests()
    assert.equals(1, #log)
    local e = log[1]
    assert.same({ 1, "req_1", "GET", "/v1/user?x=1", 200, #r.body },
      { e.i, e.id, e.method, e.path, e.status, e.bytes })
    assert.equals("number", type(e.conn))
    assert.equals(0, e.t)
    s:clear_requests()
    assert.equals(0, #s:requests())
  end)

  it("serves several requests on one keep-alive connection, counted as one accepted", function()
    local base = baseline()
    local c = connect()
    send(c, "GET", "/v1/user")
    assert.equals(200, receive(c).status)
    send(c, "GET", "/v1/deep_research_tasks")
    local r = receive(c)
    assert.equals(200, r.status)
    assert.equals("[]", r.body)
    c:close()
    local st = eventually(function(x) return x.connections.open == base end)
    assert.equals(1, st.connections.accepted)
    assert.equals(st.requests[1].conn, st.requests[2].conn)
  end)

  it("closes after a reply when the client sends Connection: close", function()
    local c = connect()
    send(c, "GET", "/v1/user", nil, { "Connection: close" })
    local r = receive(c)
    assert.equals("close", r.headers.connection)
    local _, err = c:receive(1)
    assert.equals("closed", err)
    c:close()
  end)

  it("answers Expect: 100-continue before the body arrives", function()
    local c = connect()
    local body = create_body()
    send(
      c, "POST", "/v1/deep_research_tasks", nil,
      { "Expect: 100-continue", "Content-Length: " .. #body })
    assert.equals("HTTP/1.1 100 Continue", c:receive("*l"))
    assert.equals("", c:receive("*l"))
    c:send(body)
    assert.equals(200, receive(c).status)
    c:close()
  end)

  it("accounts for connections open at once and resets the maximum", function()
    local base = baseline()
    local conns = {}
    for i = 1, 5 do
      conns[i] = connect()
      send(conns[i], "GET", "/v1/user")
    end
    for i = 1, 5 do assert.equals(200, receive(conns[i]).status) end
    local st = s:state()
    assert.equals(base + 5, st.connections.open)
    assert.equals(base + 5, st.connections.max_open)
    for i = 1, 5 do conns[i]:close() end
    eventually(function(x) return x.connections.open == base end)
    s:clear_requests()
    local window = s:state().connections
    assert.same({ base, 0 }, { window.max_open, window.accepted })
  end)

  it("stops on POST /_sim/shutdown", function()
    local own = sim.start({ seed = 3 })
    assert.equals(200, own:http("POST", "/_sim/shutdown").status)
    assert.is_nil(own.pipe:read("*l")) -- stdout closes when the process exits
    own.pid = nil
    own.pipe:close()
    assert.is_nil(own:http("GET", "/v1/healthcheck"))
  end)

  it("handles 200 concurrent connections", function()
    local base = baseline()
    local conns = {}
    for i = 1, 200 do
      conns[i] = connect()
      send(conns[i], "GET", "/v1/deep_research_tasks")
    end
    for i = 1, 200 do assert.equals(200, receive(conns[i]).status) end
    assert.equals(base + 200, s:state().connections.max_open)
    for i = 1, 200 do conns[i]:close() end
  end)
end)

describe("simulator: faults", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("forces a status with Retry-After and a JSON detail", function()
    s:fault({ path = "/v1/user", status = 429, retry_after = "3" })
    local r = request("GET", "/v1/user")
    assert.equals(429, r.status)
    assert.equals("3", r.headers["retry-after"])
    assert.equals("string", type(cjson.decode(r.body).detail))
    assert.equals(200, request("GET", "/v1/user").status)
  end)

  it("honours skip, count, method and prefix, and reports firings", function()
    s:fault({ path = "/v1/user", skip = 1, count = 2, status = 500 })
    local seen = {}
    for i = 1, 4 do seen[i] = request("GET", "/v1/user").status end
    assert.same({ 200, 500, 500, 200 }, seen)
    local f = s:faults()[1]
    assert.same({ 4, 2 }, { f.seen, f.fired })
    s:clear_faults()
    s:fault({
      method = "POST", path = "/v1/deep_research_tasks", prefix = true, count = -1, status = 502 })
    assert.equals(200, request("GET", "/v1/deep_research_tasks").status)
    for _ = 1, 3 do
      assert.equals(502, request("POST", "/v1/deep_research_tasks", create_body()).status)
    end
    assert.equals(0, #s:tasks())
  end)

  it("runs the real handler first with after=true (the task IS created)", function()
    s:fault({ method = "POST", path = "/v1/deep_research_tasks", status = 503, after = true })
    assert.equals(503, request("POST", "/v1/deep_research_tasks", create_body()).status)
    assert.equals(1, #s:tasks())
    assert.equals(1, s:counter("extruct.tasks_created"))
  end)

  it("delays one reply without blocking other connections", function()
    s:fault({ method = "POST", path = "/v1/deep_research_tasks", delay_ms = 300, after = true })
    local t0 = socket.gettime()
    local slow = connect()
    send(slow, "POST", "/v1/deep_research_tasks", create_body())
    assert.equals(200, request("GET", "/v1/user").status)
    assert.equals(1, #s:tasks()) -- created at once, reply held
    assert.is_true(socket.gettime() - t0 < 0.25)
    assert.equals(200, receive(slow).status)
    assert.is_true(socket.gettime() - t0 >= 0.3)
    slow:close()
  end)

  it("runs the handler after the delay without after=true", function()
    s:fault({ method = "POST", path = "/v1/deep_research_tasks", delay_ms = 200 })
    local slow = connect()
    send(slow, "POST", "/v1/deep_research_tasks", create_body())
    assert.equals(0, #s:tasks())
    assert.equals(200, receive(slow).status)
    assert.equals(1, #s:tasks())
    slow:close()
  end)

  it("drops the connection without a reply", function()
    s:fault({ path = "/v1/user", kind = "drop" })
    local r = request("GET", "/v1/user")
    assert.is_nil(r.status)
    assert.equals("closed", r.err)
  end)

  it("cuts bodies short: truncate, reset, no_body", function()
    for _, kind in ipairs({ "truncate", "reset", "no_body" }) do
      s:fault({ path = "/v1/user", kind = kind, after = true })
      local r = request("GET", "/v1/user")
      assert.equals(200, r.status)
      assert.is_true(#r.body < tonumber(r.headers["content-length"]), kind)
      assert.is_not_nil(r.err, kind)
    end
  end)

  it("serves broken or odd bodies: html502, empty, invalid_json, invalid_utf8, " ..
    "wrong_shape", function()
    s:fault({ path = "/v1/user", kind = "html502" })
    local r = request("GET", "/v1/user")
    assert.equals(502, r.status)
    assert.matches("^text/html", r.headers["content-type"])
    s:fault({ path = "/v1/user", kind = "empty" })
    r = request("GET", "/v1/user")
    assert.same({ 200, "0", "" }, { r.status, r.headers["content-length"], r.body })
    s:fault({ path = "/v1/user", kind = "invalid_json" })
    assert.equals('{"id": "abc", ', request("GET", "/v1/user").body)
    s:fault({ method = "POST", kind = "invalid_utf8", after = true })
    r = request("POST", "/v1/deep_research_tasks", create_body())
    assert.matches("\255\254", r.body, 1, true)
    assert.is_table(cjson.decode(r.body))
    s:fault({ path = "/v1/user", kind = "wrong_shape" })
    assert.equals('"just a string"', request("GET", "/v1/user").body)
  end)

  it("sends raw control characters inside the echoed brief (control_chars)", function()
    s:fault({ method = "POST", kind = "control_chars" })
    local r = request("POST", "/v1/deep_research_tasks", create_body())
    assert.equals(200, r.status)
    assert.matches('"brief":"Research Acme Corp\nin depth', r.body, 1, true)
  end)

  it("drips a reply byte by byte", function()
    s:fault({ path = "/v1/user", kind = "drip", interval_ms = 1 })
    local r = request("GET", "/v1/user")
    assert.equals(200, r.status)
    assert.equals("u1", cjson.decode(r.body).user_id)
  end)

  it("gzips a reply only for clients that accept gzip", function()
    s:fault({ path = "/v1/user", kind = "gzip", count = 2 })
    local r = request("GET", "/v1/user", nil, { "Accept-Encoding: gzip, deflate" })
    assert.equals("gzip", r.headers["content-encoding"])
    assert.equals("\31\139", r.body:sub(1, 2))
    local name = os.tmpname()
    local f = assert(io.open(name, "wb"))
    f:write(r.body)
    f:close()
    local p = assert(io.popen("gzip -dc < " .. name))
    local plain = p:read("*a")
    p:close()
    os.remove(name)
    assert.equals("u1", cjson.decode(plain).user_id)
    r = request("GET", "/v1/user")
    assert.is_nil(r.headers["content-encoding"])
    assert.equals("u1", cjson.decode(r.body).user_id)
  end)

  it("duplicates Content-Type and X-Request-Id (dup_headers)", function()
    s:fault({ path = "/v1/user", kind = "dup_headers" })
    local r = request("GET", "/v1/user")
    local n = { ["content-type"] = 0, ["x-request-id"] = 0 }
    for _, h in ipairs(r.list) do if n[h[1]] then n[h[1]] = n[h[1]] + 1 end end
    assert.same({ ["content-type"] = 2, ["x-request-id"] = 2 }, n)
  end)

  it("serves a big task body of the requested size", function()
    s:fault({ path = "/v1/user", kind = "big", size = 200000 })
    local r = request("GET", "/v1/user")
    assert.equals(200000, #r.body)
    local t = cjson.decode(r.body)
    assert.equals("done", t.status)
    assert.is_true(#t.report.markdown > 190000)
  end)

  it("rejects malformed fault specs", function()
    assert.equals(400, s:http("POST", "/_sim/faults", { body = { kind = "nope" } }).status)
    assert.equals(400, s:http("POST", "/_sim/faults", { body = { path = "/x" } }).status)
  end)
end)

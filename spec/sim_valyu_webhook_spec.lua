-- Simulated Valyu webhooks (contract B.11, C.4 V14; issue 15 item 9, sim half): the simulator's
-- own HMAC-SHA256 against openssl, and signed deliveries to a loopback listener in this process
-- when a task or a batch ends, checked with the openssl command line (not with the simulator's
-- code, nor the client's).
local socket = require("socket")
local support = require("support.sim")
local sha256 = require("simulator.sha256")

local EPOCH = 1767225600

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function openssl_hmac(key, data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  local p = assert(io.popen("openssl dgst -sha256 -hmac " .. shell_quote(key) .. " -r " ..
    shell_quote(path) .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  return out:match("^(%x+)")
end

local has_openssl = openssl_hmac("k", "d") ~= nil

describe("the simulator's HMAC-SHA256", function()
  it("matches RFC 4231 and FIPS 180 vectors", function()
    assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      sha256.hex(sha256.digest("abc")))
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      sha256.hex(sha256.digest("")))
    assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      sha256.hmac_hex("Jefe", "what do ya want for nothing?"))
    -- a key longer than the block is hashed first (RFC 4231 case 6)
    assert.are.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      sha256.hmac_hex(string.rep("\170", 131),
        "Test Using Larger Than Block-Size Key - Hash Key First"))
  end)

  it("agrees with openssl dgst -hmac on messages across block boundaries", function()
    if not has_openssl then return pending("no openssl command") end
    local key = string.rep("0123456789abcdef", 4)
    for _, n in ipairs({ 0, 1, 55, 56, 63, 64, 65, 119, 120, 1000 }) do
      local data = ("1767225620." .. string.rep("{\"a\":\"\0\255\"}", 200)):sub(1, n)
      assert.are.equal(openssl_hmac(key, data), sha256.hmac_hex(key, data), n)
    end
  end)
end)

describe("simulated Valyu webhook deliveries", function()
  local s, server, port

  setup(function()
    s = support.shared()
    server = assert(socket.bind("127.0.0.1", 0))
    port = select(2, server:getsockname())
  end)

  teardown(function()
    if server then server:close() end
  end)

  before_each(function() s:reset() end)

  local function req(method, path, body, key)
    return assert(s:http(method, path, { body = body,
      headers = { ["X-API-Key"] = key or "valyu-key" } }))
  end

  local function hook_url(path)
    return "http://127.0.0.1:" .. port .. (path or "/hook")
  end

  -- Accepts one delivery and answers it with `code`; nil when none comes within `wait` seconds.
  local function receive(code, wait)
    server:settimeout(wait or 5)
    local c = server:accept()
    if not c then return nil end
    c:settimeout(5)
    local line = c:receive("*l")
    local headers = {}
    while true do
      local h = c:receive("*l")
      if not h or h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.*)$")
      headers[k:lower()] = v
    end
    local body = c:receive(tonumber(headers["content-length"]))
    c:send(string.format("HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      code or 200))
    c:close()
    return { line = line, headers = headers, body = body }
  end

  local function create(body)
    local r = req("POST", "/v1/deepresearch/tasks", body)
    assert.are.equal(200, r.status, r.body)
    return r.json.deepresearch_id, r.json.webhook_secret
  end

  it("POSTs the signed status body to a loopback webhook_url when a task completes", function()
    local id, secret = create({ query = "q", mode = "instant", webhook_url = hook_url() })
    s:advance(19)
    assert.are.equal(0, #s:state().valyu.webhooks)
    s:advance(1)
    local status = req("GET", "/v1/deepresearch/tasks/" .. id .. "/status").json
    local got = assert(receive(200))
    assert.are.equal("POST /hook HTTP/1.1", got.line)
    assert.are.equal("application/json", got.headers["content-type"])
    local ts = got.headers["x-webhook-timestamp"]
    assert.are.equal(tostring(EPOCH + 20), ts)        -- the virtual clock's Unix seconds
    local sig = got.headers["x-webhook-signature"]
    assert.matches("^sha256=%x+$", sig)
    if has_openssl then
      assert.are.equal("sha256=" .. openssl_hmac(secret, ts .. "." .. got.body), sig)
      assert.are_not.equal(sig, "sha256=" .. openssl_hmac(secret, ts .. "." .. got.body .. " "))
    end
    local cjson = require("cjson")
    local body = cjson.decode(got.body)
    assert.are.equal(id, body.deepresearch_id)
    assert.are.equal("completed", body.status)
    assert.are.same(status.output, body.output)
    local w = s:state().valyu.webhooks
    assert.are.equal(1, #w)
    assert.are.same({ "task.completed", id, "delivered", 1, 200, ts, sig },
      { w[1].event, w[1].id, w[1].state, w[1].attempts, w[1].status, w[1].timestamp,
        w[1].signature })
    assert.are.equal(got.body, w[1].body)
    assert.are.equal(1, s:counter("valyu.webhooks_delivered"))
  end)

  it("sends task.failed for a failed task and nothing for a cancelled one", function()
    create({ query = "[fail] q", mode = "instant", webhook_url = hook_url("/f") })
    local c = create({ query = "c", mode = "instant", webhook_url = hook_url("/c") })
    assert.are.equal(200, req("POST", "/v1/deepresearch/tasks/" .. c .. "/cancel").status)
    s:advance(20)
    s:state()
    local got = assert(receive(200))
    assert.are.equal("POST /f HTTP/1.1", got.line)
    assert.are.equal("failed", require("cjson").decode(got.body).status)
    assert.is_nil(receive(200, 0.2))
    assert.are.equal(1, #s:state().valyu.webhooks)
  end)

  it("signs a batch's webhook with the batch's own secret when the batch ends", function()
    local b = req("POST", "/v1/deepresearch/batches", { mode = "instant",
      webhook_url = hook_url("/batch") }).json
    local r = req("POST", "/v1/deepresearch/batches/" .. b.batch_id .. "/tasks",
      { tasks = { { query = "a" }, { query = "b [fail]" } } })
    assert.are.equal(200, r.status)
    s:advance(20)
    req("GET", "/v1/deepresearch/batches/" .. b.batch_id)
    local got = assert(receive(200))
    assert.are.equal("POST /batch HTTP/1.1", got.line)
    local body = require("cjson").decode(got.body)
    assert.are.equal(b.batch_id, body.batch_id)
    assert.are.equal("completed_with_errors", body.status)
    if has_openssl then
      assert.are.equal("sha256=" .. openssl_hmac(b.webhook_secret,
        got.headers["x-webhook-timestamp"] .. "." .. got.body), got.headers["x-webhook-signature"])
    end
    assert.are.equal("batch.completed_with_errors", s:state().valyu.webhooks[1].event)
  end)

  it("records a refused delivery, and webhook_fail makes every delivery fail", function()
    create({ query = "q", mode = "instant", webhook_url = hook_url() })
    s:advance(20)
    s:state()
    assert.is_table(receive(500))
    local w = s:state().valyu.webhooks[1]
    assert.are.equal("failed", w.state)
    assert.are.equal(500, w.status)
    s:config({ valyu = { webhook_fail = true } })
    create({ query = "q2", mode = "instant", webhook_url = hook_url() })
    s:advance(20)
    s:state()
    assert.is_nil(receive(200, 0.2))
    w = s:state().valyu.webhooks[2]
    assert.are.equal("failed", w.state)
    assert.are.equal(1, w.attempts)
    assert.is_string(w.error)
  end)

  it("uses real Unix time with webhook_clock = \"real\"", function()
    s:config({ valyu = { webhook_clock = "real" } })
    create({ query = "q", mode = "instant", webhook_url = hook_url() })
    s:advance(20)
    s:state()
    local got = assert(receive(200))
    assert.is_true(math.abs(tonumber(got.headers["x-webhook-timestamp"]) - os.time()) < 60)
  end)

  it("accepts http webhook_urls only on loopback hosts", function()
    for _, url in ipairs({ "http://localhost:1/x", "http://[::1]:1/x", "http://127.0.0.1/x",
      "https://hooks.example.com/x" }) do
      assert.are.equal(200, req("POST", "/v1/deepresearch/tasks",
        { query = "q", webhook_url = url }).status, url)
    end
    for _, url in ipairs({ "http://hooks.example.com/x", "http://10.0.0.1/x", "ftp://x/y",
      "http://127.0.0.1.evil.com/x" }) do
      assert.are.equal(400, req("POST", "/v1/deepresearch/tasks",
        { query = "q", webhook_url = url }).status, url)
    end
  end)
end)

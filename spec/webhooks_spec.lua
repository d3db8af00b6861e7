-- dr.webhooks: HMAC-SHA256 from libcrypto (core.hmac_sha256, core.equal_constant_time) and
-- the provider's signature recipe. Vectors from RFC 4231 and `openssl dgst -sha256 -hmac`.
local dr = require "deepresearch"
local core = require "deepresearch.core"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- 64 hex characters, like a Valyu webhook_secret; used as the key as it is (its ASCII bytes).
local SECRET = string.rep("ab", 32)
local TS = "1700000000"
local BODY = '{"deepresearch_id":"abc","status":"completed"}'
-- printf '%s' "$TS.$BODY" | openssl dgst -sha256 -hmac "$SECRET"
local SIG = "sha256=865b80c5cde34fbeed275c5d3107897a7feebcfe19c6e28b2d825786c984759f"

local function verify(over)
  local o = { provider = "valyu", secret = SECRET, body = BODY, signature = SIG, timestamp = TS,
    now = tonumber(TS) + 10 }
  for k, v in pairs(over or {}) do o[k] = v end
  if over and over.signature == false then o.signature = nil end
  if over and over.timestamp == false then o.timestamp = nil end
  return dr.webhooks.verify(o)
end

describe("core.hmac_sha256", function()
  it("matches RFC 4231 test cases 1, 2 and 6 (a key longer than the block)", function()
    assert.equals("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      hex(core.hmac_sha256(string.rep("\11", 20), "Hi There")))
    assert.equals("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      hex(core.hmac_sha256("Jefe", "what do ya want for nothing?")))
    assert.equals("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      hex(core.hmac_sha256(string.rep("\170", 131),
        "Test Using Larger Than Block-Size Key - Hash Key First")))
  end)

  it("takes binary keys and data (NUL bytes), and an empty key", function()
    local a = core.hmac_sha256("k\0ey", "da\0ta")
    assert.equals(32, #a)
    assert.are_not.equal(a, core.hmac_sha256("k", "da\0ta"))
    -- printf '' | openssl dgst -sha256 -hmac ''
    assert.equals("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
      hex(core.hmac_sha256("", "")))
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() core.hmac_sha256(nil, "x") end)
    assert.has_error(function() core.hmac_sha256("k", {}) end)
  end)
end)

describe("core.equal_constant_time", function()
  it("compares whole strings, lengths included", function()
    assert.is_true(core.equal_constant_time("sha256=ab", "sha256=ab"))
    assert.is_false(core.equal_constant_time("sha256=ab", "sha256=ac"))
    assert.is_false(core.equal_constant_time("sha256=ab", "sha256=a"))
    assert.is_true(core.equal_constant_time("", ""))
    assert.is_false(core.equal_constant_time("a\0b", "a\0c"))
  end)
end)

describe("dr.webhooks", function()
  it("signs with the provider's recipe: sha256= hex HMAC of timestamp.body", function()
    assert.equals(SIG, dr.webhooks.sign{ provider = "valyu", secret = SECRET, body = BODY,
      timestamp = TS })
    assert.equals(SIG, dr.webhooks.sign{ provider = "valyu", secret = SECRET, body = BODY,
      timestamp = tonumber(TS) })
  end)

  it("accepts a genuine signature within the tolerance", function()
    assert.is_true(verify())
    assert.is_true(verify{ now = tonumber(TS) - 300 })
    assert.is_true(verify{ timestamp = tonumber(TS) })
  end)

  it("reads the signature and timestamp from a header table, any case of names", function()
    assert.is_true(verify{ signature = false, timestamp = false,
      headers = { ["x-webhook-signature"] = SIG, ["X-WEBHOOK-TIMESTAMP"] = TS } })
  end)

  it("refuses a tampered body, a wrong secret, a changed timestamp or signature", function()
    for _, over in ipairs({ { body = BODY:gsub("completed", "failed") },
      { secret = string.rep("ba", 32) }, { timestamp = "1700000001" },
      { signature = SIG:upper() }, { signature = SIG:sub(8) }, { signature = SIG .. "0" } }) do
      local ok, err = verify(over)
      assert.is_nil(ok)
      assert.equals("invalid_signature", err.code)
      assert.is_false(err.retryable)
      assert.matches("does not match", err.message)
      assert.not_matches(SECRET, tostring(err), 1, true)
    end
  end)

  it("refuses a missing or malformed signature or timestamp as invalid_signature", function()
    local _, err = verify{ signature = false }
    assert.equals("invalid_signature", err.code)
    assert.matches("X%-Webhook%-Signature", err.message)
    _, err = verify{ timestamp = false }
    assert.equals("invalid_signature", err.code)
    assert.matches("X%-Webhook%-Timestamp", err.message)
    _, err = verify{ timestamp = "17e8" }
    assert.equals("invalid_signature", err.code)
  end)

  it("a repeated header (a list): any matching signature verifies; timestamps must agree",
    function()
      local other = SIG:gsub("%x$", function(c) return c == "0" and "1" or "0" end)
      assert.is_true(verify{ signature = { other, SIG } })
      assert.is_true(verify{ signature = false, timestamp = false, headers = {
        ["X-Webhook-Signature"] = { SIG, other }, ["x-webhook-timestamp"] = { TS, TS } } })
      local _, err = verify{ signature = { other, other } }
      assert.equals("invalid_signature", err.code)
      assert.matches("does not match", err.message)
      _, err = verify{ signature = {} }
      assert.equals("invalid_signature", err.code)
      _, err = verify{ signature = { 5, false } } -- entries that are not strings: none left
      assert.equals("invalid_signature", err.code)
      _, err = verify{ timestamp = { TS, "1700000001" } }
      assert.equals("invalid_signature", err.code)
      assert.matches("different values", err.message)
      _, err = verify{ signature = false, timestamp = false, headers = {
        ["X-Webhook-Signature"] = 12, ["X-Webhook-Timestamp"] = TS } }
      assert.equals("invalid_signature", err.code)
    end)

  it("refuses a stale or future timestamp with stale_webhook", function()
    local _, err = verify{ now = tonumber(TS) + 301 }
    assert.equals("stale_webhook", err.code)
    assert.matches("301 s ago", err.message)
    _, err = verify{ now = tonumber(TS) - 400 }
    assert.equals("stale_webhook", err.code)
    assert.matches("in the future", err.message)
    assert.is_true(verify{ now = tonumber(TS) + 3600, tolerance = 3600 })
  end)

  it("checks the signature before the age: a forged old webhook is invalid", function()
    local _, err = verify{ now = tonumber(TS) + 9999, body = "{}" }
    assert.equals("invalid_signature", err.code)
  end)

  it("raises on caller mistakes: unknown options, missing secret/body, bad providers", function()
    assert.has_error(function() verify{ secert = SECRET } end,
      "bad option 'secert' to 'verify' (did you mean 'secret'?)")
    assert.has_error(function() verify{ secret = 5 } end)
    assert.has_error(function()
      dr.webhooks.verify{ provider = "valyu", body = BODY, signature = SIG, timestamp = TS }
    end, "bad option 'secret' to 'verify' (string expected, got no value)")
    assert.has_error(function() verify{ provider = "nope" } end,
      "bad option 'provider' to 'verify' (unknown provider \"nope\")")
    assert.has_error(function() verify{ provider = "extruct" } end,
      "bad option 'provider' to 'verify' (extruct sends no signed webhooks)")
    assert.has_error(function() verify{ tolerance = -1 } end)
    assert.has_error(function() dr.webhooks.verify() end)
  end)
end)

-- The simulator delivers a signed webhook to a loopback server this spec runs (LuaSocket).
describe("dr.webhooks with the simulator's deliveries", function()
  local env = require "support.env"
  local socket = require "socket"
  local s, client, server, port

  setup(function()
    s = env.sim()
    server = assert(socket.bind("127.0.0.1", 0))
    port = select(2, server:getsockname())
  end)
  teardown(function() server:close() end)
  before_each(function()
    s:reset()
    s:config{ valyu = { webhook_clock = "real" } }
    client = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false })
  end)
  after_each(function() client:close() end)

  -- Accepts one delivery and answers 200: its raw body and its headers.
  local function receive()
    server:settimeout(5)
    local c = assert(server:accept())
    c:settimeout(5)
    local headers, n = {}, 0
    local line = assert(c:receive("*l"))
    assert.matches("^POST /hook HTTP/1%.1", line)
    while true do
      line = assert(c:receive("*l"))
      if line == "" then break end
      local k, v = line:match("^([^:]+):%s*(.*)$")
      headers[k] = v
      if k:lower() == "content-length" then n = tonumber(v) end
    end
    local body = n > 0 and assert(c:receive(n)) or ""
    c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c:close()
    return body, headers
  end

  it("receives a completed task's webhook on loopback and verifies it", function()
    local t = dr.assert(client:create{
      query = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023",
      mode = "fast", webhook_url = "http://127.0.0.1:" .. port .. "/hook" })
    local secret = t.webhook_secret
    assert.matches("^" .. string.rep("%x", 64) .. "$", secret)
    dr.assert(client:wait(t.deepresearch_id))
    local body, headers = receive()
    local task = dr.json.decode(body)
    assert.equals(t.deepresearch_id, task.deepresearch_id)
    assert.equals("completed", task.status)
    assert.is_true(dr.webhooks.verify{ provider = "valyu", secret = secret, body = body,
      headers = headers })
    -- a tampered body, another task's secret, a replay past the tolerance
    local _, err = dr.webhooks.verify{ provider = "valyu", secret = secret,
      body = body:gsub("completed", "failed"), headers = headers }
    assert.equals("invalid_signature", err.code)
    _, err = dr.webhooks.verify{ provider = "valyu", secret = string.rep("0", 64), body = body,
      headers = headers }
    assert.equals("invalid_signature", err.code)
    _, err = dr.webhooks.verify{ provider = "valyu", secret = secret, body = body,
      headers = headers, now = os.time() + 301 }
    assert.equals("stale_webhook", err.code)
    local seen = s:state().valyu.webhooks
    assert.equals(1, #seen)
    assert.equals("delivered", seen[1].state)
  end)
end)

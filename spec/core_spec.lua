-- deepresearch.core on its own: the C transport, JSON conversion and handle life cycle.
local core = require "deepresearch.core"
local env = require "support.env"

describe("deepresearch.core", function()
  local s
  setup(function() s = env.sim() end)
  before_each(function() s:reset() end)

  it("reports its version and libcurl's", function()
    assert.matches("^%d+%.%d+%.%d+$", core.version)
    assert.matches("^%d+%.%d+", core.curl_version)
  end)

  it("decodes JSON: nulls in objects become absent keys, integral numbers integers", function()
    local v = core.decode('{"a":null,"b":25,"c":1.5,"d":[1,2],"e":{"f":null,"g":"x"},"h":[]}')
    assert.is_nil(v.a)
    assert.equals(25, v.b)
    local math_type = rawget(math, "type")
    if math_type then assert.equals("integer", math_type(v.b)) end
    assert.equals(1.5, v.c)
    assert.same({ 1, 2 }, v.d)
    assert.same({ g = "x" }, v.e)
    assert.same({}, v.h)
  end)

  it("makes integers only of numbers a double holds exactly, in objects and arrays", function()
    local math_type = rawget(math, "type")
    local v = core.decode(
      '{"a":[-7,9007199254740991,9007199254740992,-9007199254740992,1e300,2.5],' ..
      '"b":-9007199254740991,"c":1e2,"d":-0.5}')
    assert.equals(-7, v.a[1])
    assert.equals(9007199254740991, v.a[2])
    assert.equals(2 ^ 53, v.a[3])
    assert.equals(1e300, v.a[5])
    assert.equals(2.5, v.a[6])
    assert.equals(100, v.c)
    assert.equals(-0.5, v.d)
    if math_type then
      assert.same({ "integer", "integer", "float", "float", "float", "float" },
        { math_type(v.a[1]), math_type(v.a[2]), math_type(v.a[3]), math_type(v.a[4]),
        math_type(v.a[5]),
          math_type(v.a[6]) })
      assert.equals("integer", math_type(v.b))
      assert.equals(-9007199254740991, v.b)
      assert.equals("integer", math_type(v.c))
      assert.equals("float", math_type(v.d))
    end
  end)

  it("keeps raw control characters inside strings (the API echoes briefs that way)", function()
    local v = core.decode('{"brief":"line one\nline two\ttab"}')
    assert.equals("line one\nline two\ttab", v.brief)
  end)

  -- lua.c turns Ctrl-C into a hook that raises "interrupted!" at the next call; when that
  -- call is the decoder's, the interrupt must reach the caller, not become "invalid JSON".
  if not rawget(_G, "jit") then
    it("lets an error raised inside the decoder (an interrupt) through", function()
      local decode = core.decode
      debug.sethook(function()
        -- level 2 is the function being called, level 3 its caller: the decoder, from core.decode
        local caller = debug.getinfo(3, "f")
        if caller and caller.func == decode then
          debug.sethook()
          error("interrupted!")
        end
      end, "c")
      local ok, err = pcall(decode, '{"a": 1}')
      debug.sethook()
      assert.is_false(ok)
      assert.matches("interrupted!", err)
      assert.same({ a = 1 }, core.decode('{"a": 1}'))
    end)
  end

  it("returns nil and a message for invalid JSON", function()
    local v, err = core.decode('{"a": ')
    assert.is_nil(v)
    assert.is_string(err)
  end)

  it("performs a request and returns status, the raw header block and the decoded body", function()
    local c = core.new_client{ timeout = 5 }
    local r = c:request{ method = "GET", url = s.url .. "/v1/user",
      headers = { "Authorization: Bearer test-token" } }
    assert.equals(200, r.status)
    assert.matches("^HTTP/1%.1 200", r.head)
    local h = require("deepresearch.runtime.http").headers(r)
    assert.equals("application/json", h["content-type"]:match("^[^;]+"))
    assert.matches("^req_", h["x-request-id"])
    assert.is_string(r.body.user_id)
    c:close()
  end)

  it("reports a connection that never happened as not sent", function()
    local c = core.new_client{ timeout = 5, connect_timeout = 2 }
    local r = c:request{ method = "GET", url = "http://127.0.0.1:1/" }
    assert.equals("network", r.error)
    assert.is_false(r.sent)
    c:close()
  end)

  it("refuses header lines with CR or LF", function()
    local c = core.new_client{}
    assert.has_error(function()
      c:request{ method = "GET", url = s.url .. "/v1/user", headers = { "X-A: b\r\nX-Evil: 1" } }
    end)
    c:close()
  end)

  -- Found by the request fuzzer (fuzz/corpus/request/regress-nul-in-header): C cut the line at
  -- the NUL, so a check on the C string missed the CR/LF after it.
  it("refuses header lines and URLs that hide a NUL", function()
    local c = core.new_client{}
    assert.has_error(function()
      c:request{ method = "GET", url = s.url .. "/v1/user", headers = { "X-A: b\0\nX-Evil: 1" } }
    end)
    assert.has_error(function() c:request{ method = "GET", url = s.url .. "/v1/user\0/x" } end)
    c:close()
  end)

  it("caps the response size and frees what it read", function()
    s:fault{ path = "/v1/user", kind = "big", size = 200000 }
    local c = core.new_client{ max_response_size = 50000 }
    local r = c:request{ method = "GET", url = s.url .. "/v1/user",
      headers = { "Authorization: Bearer test-token" } }
    assert.equals("invalid_response", r.error)
    assert.matches("max_response_size", r.message)
    c:close()
  end)

  it("close is idempotent, and a closed handle raises a clear error", function()
    local c = core.new_client{}
    c:close()
    c:close()
    assert.is_true(c:closed())
    assert.has_error(
      function() c:request{ url = s.url } end, "attempt to use a closed deepresearch.client")
  end)

  it("rejects wrong argument types by raising", function()
    assert.has_error(function() core.new_client("x") end)
    assert.has_error(function() core.new_client{ timeout = "soon" } end)
    local c = core.new_client{}
    assert.has_error(function() c:request("GET") end)
    assert.has_error(function() c:request{ method = "GET" } end)
    c:close()
  end)

  it("reuses one connection across requests (keep-alive)", function()
    local c = core.new_client{}
    s:clear_requests()
    local before = s:state().connections.accepted
    for _ = 1, 5 do
      local r = c:request{ method = "GET", url = s.url .. "/v1/user",
        headers = { "Authorization: Bearer test-token" } }
      assert.equals(200, r.status)
    end
    assert.equals(before + 1, s:state().connections.accepted)
    c:close()
  end)

  if _VERSION == "Lua 5.4" then
    it("closes through a to-be-closed variable", function()
      local chunk = assert(load([[
        local core = ...
        local keep
        do
          local c <close> = core.new_client{}
          keep = c
        end
        return keep:closed()
      ]]))
      assert.is_true(chunk(core))
    end)
  end
end)

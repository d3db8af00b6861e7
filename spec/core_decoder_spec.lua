-- Issue 14 item 5 (C side): the core decodes with the decoder and null the Lua side hands it
-- (core.set_decoder), and loads none of its own: under Neovim without lua-cjson, vim.json and
-- its vim.NIL, whose nulls must leave objects exactly as cjson's do.
local core = require "deepresearch.core"
local env = require "support.env"
local json = require "deepresearch.base.json"
local cjson = require "cjson"

-- A full userdata with a metatable, as vim.NIL is (a file handle: every Lua has one).
local function userdata_null()
  local nul = assert(io.tmpfile())
  assert.equals("userdata", type(nul))
  return nul
end

-- vim.json's way: cjson's parse, its null replaced by a userdata of the decoder's own.
local function vim_like_decoder(nul)
  local function swap(v)
    if v == cjson.null then return nul end
    if type(v) == "table" then
      for k, x in pairs(v) do v[k] = swap(x) end
    end
    return v
  end
  return function(text) return swap(cjson.decode(text)) end
end

describe("item 5: the core's decoder comes from Lua", function()
  local s, saved_decode, saved_null
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    saved_decode, saved_null = core.set_decoder(nil)
    core.set_decoder(saved_decode, saved_null)
  end)
  after_each(function() core.set_decoder(saved_decode, saved_null) end)

  it("item 5: decodes with the function it was given and strips the null it was given", function()
    local texts = {}
    local fake_null = setmetatable({}, { __name = "fake null" })
    core.set_decoder(function(text)
      texts[#texts + 1] = text
      return { a = fake_null, b = 25, c = { d = fake_null, e = "x" }, list = { 1, fake_null } }
    end, fake_null)
    local v = core.decode("not JSON at all")
    assert.same({ "not JSON at all" }, texts)
    assert.is_nil(rawget(v, "a"))
    assert.is_nil(rawget(v.c, "d"))
    assert.equals("x", v.c.e)
    assert.equals(25, v.b)
    local math_type = rawget(math, "type") -- 5.3+
    if math_type then assert.equals("integer", math_type(v.b)) end
    -- Arrays keep their nulls (positions matter), as with cjson's null.
    assert.equals(fake_null, v.list[2])
  end)

  it("item 5: a vim.NIL-like userdata null leaves objects, decoded or in a response", function()
    local nul = userdata_null()
    core.set_decoder(vim_like_decoder(nul), nul)
    local v = core.decode('{"a":null,"b":{"c":null,"d":[null,2]},"e":[],"f":{}}')
    assert.is_nil(rawget(v, "a"))
    assert.is_nil(rawget(v.b, "c"))
    assert.equals(nul, v.b.d[1])
    assert.is_true(json.is_array_marked(v.e))
    assert.is_nil(getmetatable(v.f))
    -- Cjson's null is an ordinary value to this decoder's walk: nothing of it is assumed.
    core.set_decoder(function() return { a = cjson.null } end, nul)
    assert.equals(cjson.null, core.decode("{}").a)

    core.set_decoder(vim_like_decoder(nul), nul)
    local body = '{"user_id":"u1","email":null,"org":{"id":null}}'
    s:fault{ path = "/v1/user", status = 200, body = body }
    local c = core.new_client{ timeout = 5 }
    local r = c:request{ method = "GET", url = s.url .. "/v1/user",
      headers = { "Authorization: Bearer test-token" } }
    c:close()
    nul:close()
    assert.equals(200, r.status)
    assert.same({ user_id = "u1", org = {} }, r.body)
  end)

  it("item 5: without a decoder, core.decode says so and a request is never sent", function()
    core.set_decoder(nil)
    local v, err = core.decode('{"a":1}')
    assert.is_nil(v)
    assert.matches("no JSON decoder", err)
    assert.matches("lua%-cjson", err)
    s:clear_requests()
    local c = core.new_client{ timeout = 5 }
    local r = c:request{ method = "POST", url = s.url .. "/v1/deep_research_tasks",
      body = '{"query":"x"}',
      headers = { "Authorization: Bearer test-token", "Content-Type: application/json" } }
    c:close()
    assert.equals("invalid_response", r.error)
    assert.matches("not sent: no JSON decoder", r.message)
    assert.is_false(r.sent)
    assert.is_true(r.not_sent)
    assert.equals(0, #s:requests())
    assert.equals(0, s:counter("extruct.tasks_created"))
  end)

  it("item 5: a request that decodes nothing still goes without a decoder", function()
    core.set_decoder(nil)
    s:clear_requests()
    local c = core.new_client{ timeout = 5 }
    local r = c:request{ method = "GET", url = s.url .. "/v1/user", decode = false,
      headers = { "Authorization: Bearer test-token" } }
    c:close()
    assert.equals(200, r.status)
    assert.matches('"user_id"', r.raw)
    assert.equals(1, #s:requests())
  end)

  it("item 5: set_decoder returns the pair it replaces and refuses a non-function", function()
    local function fake() return {} end
    local marker = {}
    local prev, prev_null = core.set_decoder(fake, marker)
    assert.equals(saved_decode, prev)
    assert.equals(saved_null, prev_null)
    local got, got_null = core.set_decoder(prev, prev_null)
    assert.equals(fake, got)
    assert.equals(marker, got_null)
    assert.has_error(function() core.set_decoder(42) end)
    assert.has_error(function() core.set_decoder("cjson") end)
  end)

  it("item 5: the decoder's verdict is a decode error; an interrupt inside it is raised", function()
    core.set_decoder(function() error("fake: bad text", 0) end)
    local v, err = core.decode("[1")
    assert.is_nil(v)
    assert.equals("fake: bad text", err)
    core.set_decoder(function() error({ "not a string" }) end)
    v, err = core.decode("[1")
    assert.is_nil(v)
    assert.equals("invalid JSON", err)
    core.set_decoder(function() error("interrupted!", 0) end)
    local ok, raised = pcall(core.decode, "[1")
    assert.is_false(ok)
    assert.equals("interrupted!", raised)
  end)

  it("item 5: the front hands the core a private cjson that refuses NaN and Infinity", function()
    -- saved_decode is what deepresearch's init.lua set (support.env loads it).
    assert.is_function(saved_decode)
    assert.are_not.equal(cjson.decode, saved_decode)
    assert.equals(cjson.null, saved_null)
    local v, err = core.decode('{"a":NaN}')
    assert.is_nil(v)
    assert.is_string(err)
    assert.is_nil(core.decode('{"a":null}').a)
  end)
end)

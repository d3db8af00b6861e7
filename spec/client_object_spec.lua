-- Issue 14 part 4: the public client is a Lua object that keeps its secrets. Its C handle,
-- token and policy live in a private table (runtime/http.lua's states, reached here only
-- through that internal module), never on anything reachable from the client itself.
local dr = require "deepresearch"
local env = require "support.env"

local TOKEN = "sk-secret-token-value-14"
local PASSWORD = "hunter2-base-url-password"

-- Every string reachable from v through pairs, keys and the metatables it exposes
-- (getmetatable: what a user can reach, so a protected one stops the walk).
local function strings_reachable(v)
  local found, seen = {}, {}
  local function walk(x)
    if type(x) == "string" then
      found[#found + 1] = x
      return
    end
    if type(x) ~= "table" or seen[x] then return end
    seen[x] = true
    for k, val in pairs(x) do
      walk(k)
      walk(val)
    end
    walk(getmetatable(x))
  end
  walk(v)
  return found
end

local function holds(strings, secret)
  for _, str in ipairs(strings) do
    if str:find(secret, 1, true) then return true end
  end
  return false
end

describe("issue 14 part 4: the client is a Lua object", function()
  local s
  setup(function() s = env.sim() end)
  before_each(function() s:reset() end)

  for _, provider in ipairs({ "extruct", "valyu" }) do
    it("part 4 (" .. provider .. "): a deep walk of the client finds no token, also after requests",
      function()
      local c = dr.client{ provider = provider, base_url = s.url, token = TOKEN }
      -- The walk's own check: it does find a secret where one is reachable.
      assert.is_true(holds(strings_reachable({ { k = TOKEN } }), TOKEN))
      assert.is_false(holds(strings_reachable(c), TOKEN))
      c:get("00000000-0000-0000-0000-000000000000") -- a request fills the private caches
      assert.is_false(holds(strings_reachable(c), TOKEN))
      assert.is_nil(next(c), "the client table itself holds nothing")
      local p = c:poller() -- a poller holds its client, never the client's private state
      assert.is_false(holds(strings_reachable(p), TOKEN))
      p:close()
      c:close()
    end)
  end

  it("part 4: data, request, finish and abandon are not on the client's surface", function()
    local c = env.client(s)
    for _, name in ipairs({ "data", "request", "finish", "abandon", "token", "handle" }) do
      assert.is_nil(c[name], name)
    end
    assert.is_function(c.get)
    assert.is_function(c.close)
    assert.is_function(c.closed)
    c:close()
  end)

  it("part 4: getmetatable(client) is protected", function()
    local c = env.client(s)
    assert.equals("deepresearch.client", getmetatable(c))
    assert.has_error(function() setmetatable(c, {}) end)
    assert.equals("table", type(c))
    c:close()
  end)

  it("part 4: tostring(client) shows the provider, never the token nor base_url's password",
    function()
    local url = s.url:gsub("^http://", "http://user:" .. PASSWORD .. "@")
    local c = dr.client{ base_url = url, token = TOKEN }
    local text = tostring(c)
    assert.matches("^deepresearch%.client %(extruct, ", text)
    assert.is_nil(text:find(TOKEN, 1, true))
    assert.is_nil(text:find(PASSWORD, 1, true))
    c:close()
    assert.matches("%(closed%)$", tostring(c))
  end)

  it("part 4: an error from a request never shows the token", function()
    local c = dr.client{ base_url = "http://127.0.0.1:1", token = TOKEN, max_retries = 0,
      connect_timeout = 1 }
    local task, err = c:get("00000000-0000-0000-0000-000000000000")
    assert.is_nil(task)
    assert.is_nil(tostring(err):find(TOKEN, 1, true))
    assert.is_false(holds(strings_reachable(err), TOKEN))
    c:close()
  end)

  it("part 4: a closed client's methods raise; close is idempotent; closed() says so", function()
    local c = env.client(s)
    assert.is_false(c:closed())
    c:close()
    c:close()
    assert.is_true(c:closed())
    assert.has_error(function() c:get("00000000-0000-0000-0000-000000000000") end,
      "attempt to use a closed deepresearch.client")
    assert.has_error(function() c:create{ brief = "Find the company's founders." } end,
      "attempt to use a closed deepresearch.client")
    assert.has_error(function() c:list() end, "attempt to use a closed deepresearch.client")
    assert.has_error(function() c:poller() end)
  end)

  it("part 4: methods called on something that is not a client raise", function()
    local c = env.client(s)
    assert.has_error(function() c.get({}, "x") end)
    assert.has_error(function() c.close({}) end)
    c:close()
  end)

  it("part 4: a dropped client (and its poller) is collected: the private table holds no client",
    function()
    local witness = setmetatable({}, { __mode = "k" })
    local c = dr.client{ base_url = s.url, token = TOKEN }
    local p = c:poller() -- p.client: a cycle through the private table's value
    witness[c], witness[p] = true, true
    c, p = nil, nil -- luacheck: ignore 311 (dropping the only references)
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(witness))
  end)

  it("part 4: the private state is reachable through the internal module only (spec accessor)",
    function()
    local http = require "deepresearch.runtime.http"
    local c = dr.client{ base_url = s.url, token = TOKEN }
    assert.equals(TOKEN, http.state(c).token)
    assert.is_false(holds(strings_reachable(dr), TOKEN), "nothing on the module either")
    c:close()
  end)
end)

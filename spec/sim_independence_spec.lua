-- Issue 14, item 7: the simulator is an independent reading of the contract. Nothing under sim/
-- requires deepresearch.*, and it runs in a Lua process that cannot reach the client's tree.
local support = require "support.sim"

local function repo_root()
  local src = debug.getinfo(1, "S").source:sub(2)
  return src:match("^(.*)/spec/sim_independence_spec%.lua$") or "."
end

local ROOT = repo_root()

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- Every regular file under sim/, sorted (find, not a Lua directory library: none is required).
local function sim_files()
  local pipe = assert(io.popen("find " .. support.shell_quote(ROOT .. "/sim") .. " -type f | sort"))
  local files = {}
  for line in pipe:lines() do files[#files + 1] = line end
  pipe:close()
  return files
end

-- The module names a text requires, with their lines: require "x", require("x"), require 'x',
-- require [[x]] and pcall(require, "x").
local REQUIRE_PATTERNS = {
  "require%s*%(?%s*([\"'])(.-)%1",
  "require%s*%(?%s*%[(=*)%[(.-)%]%1%]",
  "pcall%s*%(%s*require%s*,%s*([\"'])(.-)%1",
}

local function required_names(text)
  local found, n = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    for _, pattern in ipairs(REQUIRE_PATTERNS) do
      for _, name in line:gmatch(pattern) do found[#found + 1] = { name = name, line = n } end
    end
  end
  return found
end

-- Run first by the simulator's Lua process (lua5.4 -e GUARD sim/server.lua ...): any require of
-- deepresearch.*, or any require while the client's tree is on package.path, raises.
local GUARD = [[
table.insert(package.searchers, 1, function(name)
  if name:match("^deepresearch") then error("the simulator required " .. name, 0) end
  for _, probe in ipairs({ "deepresearch", "deepresearch.base.json", "deepresearch.base.json" }) do
    local file = package.searchpath(probe, package.path)
    if file then error("the client's tree is on the simulator's package.path: " .. file, 0) end
  end
  return nil
end)
]]
local GUARDED_LUA = "env -u LUA_PATH -u LUA_PATH_5_4 -u LUA_INIT -u LUA_INIT_5_4 lua5.4 -e "
  .. support.shell_quote(GUARD)

describe("item 7: the simulator is independent of the client", function()
  it("item 7: the require scanner sees every form of require", function()
    local sample = table.concat({
      'local a = require "deepresearch.one"',
      'local b = require("deepresearch.two")',
      "local c = require 'deepresearch.three'",
      "local d = require [[deepresearch.four]]",
      'local ok, e = pcall(require, "deepresearch.five")',
      'local f = require "simulator.clock"',
    }, "\n")
    local names = {}
    for _, r in ipairs(required_names(sample)) do names[r.name] = r.line end
    assert.same({
      ["deepresearch.one"] = 1, ["deepresearch.two"] = 2, ["deepresearch.three"] = 3,
      ["deepresearch.four"] = 4, ["deepresearch.five"] = 5, ["simulator.clock"] = 6,
    }, names)
  end)

  it("item 7: no file under sim/ requires deepresearch.*", function()
    local files, seen, bad = sim_files(), 0, {}
    assert.is_true(#files > 0)
    for _, path in ipairs(files) do
      for _, r in ipairs(required_names(read(path))) do
        seen = seen + 1
        if r.name:match("^deepresearch") then
          bad[#bad + 1] = path .. ":" .. r.line .. ": " .. r.name
        end
      end
    end
    assert.is_true(seen > 0, "the scan found no require at all under " .. ROOT .. "/sim")
    assert.same({}, bad)
  end)

  it("item 7: sim/server.lua does not put the client's lua/ tree on its path", function()
    local text = read(ROOT .. "/sim/server.lua")
    assert.is_nil(text:match("package%.path%s*=[^\n]*%.%./lua"))
  end)

  it("item 7: the guard refuses a process that can reach the client's tree", function()
    local script = support.shell_quote('package.path = "' .. ROOT .. '/lua/?.lua;" .. package.path '
      .. 'require "simulator_probe"')
    local pipe = assert(io.popen(GUARDED_LUA .. " -e " .. script .. " 2>&1"))
    local out = pipe:read("*a")
    pipe:close()
    assert.is_truthy(out:find("the client's tree is on the simulator's package.path", 1, true), out)
  end)

  it("item 7: a Valyu create and status round trip works without the client's tree", function()
    local s = support.start({ lua = GUARDED_LUA, speed = 0, seed = 7 })
    finally(function() s:stop() end)
    local headers = { ["X-API-Key"] = "valyu-key" }
    local r = assert(s:http("POST", "/v1/deepresearch/tasks",
      { body = { query = "independent simulator", mode = "fast" }, headers = headers }))
    assert.are.equal(200, r.status)
    local id = r.json.deepresearch_id
    assert.are.equal("string", type(id))
    assert.are.equal(1, s:counter("valyu.tasks_created"))

    local path = "/v1/deepresearch/tasks/" .. id .. "/status"
    r = assert(s:http("GET", path, { headers = headers }))
    assert.are.equal(200, r.status)
    assert.are.equal("running", r.json.status)
    assert.are.equal(1, r.json.progress.current_step)

    s:advance(180)
    r = assert(s:http("GET", path, { headers = headers }))
    assert.are.equal(200, r.status)
    assert.are.equal("completed", r.json.status)
    assert.is_truthy(r.body:find('"images":[]', 1, true))
    assert.are.equal(1, #s:requests_to("POST", "^/v1/deepresearch/tasks$"))
  end)
end)

describe("item 7: the Valyu simulator's own JSON encoder", function()
  local json = require "simulator.valyu_json"

  it("item 7: sorts keys and keeps marked empty arrays as []", function()
    assert.are.equal('{"a":[],"b":{},"c":null,"d":[1,2.5,"x"]}',
      json.encode({ d = { 1, 2.5, "x" }, c = json.null, b = {}, a = json.array() }))
  end)

  it("item 7: writes [] for an echoed empty array that cjson decoded as {}", function()
    local decoded = require("cjson").decode(
      '{"included_domains":[],"excluded_domains":[],"schema":{"required":[],"properties":{}}}')
    assert.are.equal('{"excluded_domains":[],"included_domains":[],'
      .. '"schema":{"properties":{},"required":[]}}', json.encode(decoded))
  end)
end)

-- Issue 14 part 5: one copy of each rule. The retry policy (transient codes, what a create may
-- resend, the backoff formula) lives in base/policy.lua; one JSON decode-and-normalise path and one
-- encoder in base/json.lua; the providers' text limits in providers/limits.lua.
local json = require "deepresearch.base.json"
local policy = require "deepresearch.base.policy"
local limits = require "deepresearch.providers.limits"
local waitloop = require "deepresearch.runtime.wait"

local math_type = math.type -- luacheck: ignore (5.3+; nil before)

-- Every Lua file of the library and the commands, as { path = text }.
local function sources()
  local out = {}
  local p = assert(io.popen("find lua bin -type f \\( -name '*.lua' -o -path 'bin/*' \\) | sort"))
  for path in p:lines() do
    local f = assert(io.open(path, "rb"))
    out[path] = f:read("*a")
    f:close()
  end
  p:close()
  return out
end

-- Files (other than `except`) whose text matches any of the patterns, as "path: line".
local function grep(patterns, except)
  local hits = {}
  for path, text in pairs(sources()) do
    if not except[path] then
      local n = 0
      for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        for _, pat in ipairs(patterns) do
          if line:find(pat) then hits[#hits + 1] = path .. ":" .. n .. ": " .. line break end
        end
      end
    end
  end
  table.sort(hits)
  return hits
end

local function keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("item 5: one policy module", function()
  it("item 5: a wait polls again after failures of the server or the path to it, not after a " ..
    "refusal", function()
    assert.are.same({
      "invalid_response", "network", "rate_limited", "server_error", "timeout", "unavailable" },
      keys(policy.POLL_TRANSIENT))
  end)

  it("item 5: the worker starts a failed wait again also after a refused credential (the task " ..
    "is paid for)", function()
    for code in pairs(policy.POLL_TRANSIENT) do assert.is_true(policy.WAIT_AGAIN[code]) end
    assert.is_true(policy.WAIT_AGAIN.unauthorized)
    assert.is_true(policy.WAIT_AGAIN.forbidden)
    assert.is_nil(policy.WAIT_AGAIN.not_found)
    assert.is_nil(policy.WAIT_AGAIN.invalid_request)
  end)

  it("item 5: a create is resent only after an answer proving nothing was made", function()
    for _, code in ipairs({ "invalid_request", "unauthorized", "rate_limited", "unavailable",
      "insufficient_credits" }) do
      assert.is_true(policy.CREATE_NOTHING_MADE[code], code)
    end
    -- a 5xx that is not the API's, a lost or unreadable answer may have made a task
    for _, code in ipairs({ "server_error", "network", "timeout", "invalid_response" }) do
      assert.is_nil(policy.CREATE_NOTHING_MADE[code], code)
    end
    -- of the resendable codes, those that prove nothing were made are all "nothing made"
    -- (network, timeout and cancelled count only for a request that never left)
    for code in pairs(policy.CREATE_RESEND) do
      assert.is_true(policy.CREATE_NOTHING_MADE[code] or code == "network" or code == "timeout" or
        code == "cancelled", code)
    end
    assert.is_nil(policy.CREATE_RESEND.invalid_request)
    assert.is_nil(policy.CREATE_RESEND.insufficient_credits)
  end)

  it("item 5: the wait state machine reads the policy's poll set", function()
    local function outcome(code)
      local w = waitloop.waiter({ clock = { now = function() return 1000 end },
        verdict = function() return nil end }, { progress = {}, states = {}, label = "task" }, "t1",
        { not_found_grace = 0 })
      return (w:observe(nil, { code = code, message = code }))
    end
    for code in pairs(policy.POLL_TRANSIENT) do assert.are.equal("sleep", outcome(code), code) end
    assert.are.equal("error", outcome("unauthorized"))
    assert.are.equal("error", outcome("not_found"))
  end)

  it("item 5: the worker's create rule is the policy's", function()
    local ok, flow = pcall(require, "deepresearch.worker.flow")
    if not ok then return pending("the worker needs lua-redis: " .. tostring(flow)) end
    assert.is_true(flow.maybe_created({ code = "server_error" }))
    assert.is_false(flow.maybe_created({ code = "rate_limited" }))
    assert.is_false(flow.maybe_created({ code = "network", sent = false }))
    assert.is_true(flow.maybe_created({ code = "network" }))
  end)

  it("item 5: one backoff formula, parametrised by first delay and cap", function()
    local top, bottom = function() return 1 end, function() return 0 end
    -- the worker's job steps: 0.5 s doubling up to 30 s
    assert.are.equal(0.5, policy.backoff(1, { base_delay = 0.5, max_delay = 30 }, top))
    assert.are.equal(4, policy.backoff(4, { base_delay = 0.5, max_delay = 30 }, top))
    assert.are.equal(30, policy.backoff(1000, { base_delay = 0.5, max_delay = 30 }, top))
    -- Redis reconnects: 0.1 s doubling up to max_backoff; jitter keeps 3/4 at least
    assert.is_true(
      math.abs(0.075 - policy.backoff(1, { base_delay = 0.1, max_delay = 2 }, bottom)) < 1e-12)
    assert.are.equal(2, policy.backoff(60, { base_delay = 0.1, max_delay = 2 }, top))
    -- the client's defaults
    assert.are.equal(policy.defaults.base_delay, policy.backoff(1, nil, top))
  end)

  it("item 5: no other module writes a transient set or a backoff formula", function()
    local mine = { ["lua/deepresearch/base/policy.lua"] = true,
      -- the error codes' default `retryable` flag, not a retry decision
      ["lua/deepresearch/base/errors.lua"] = true }
    assert.are.same({}, grep({ "0%.75 %+ 0%.25", "rate_limited = true", "server_error = true",
      "[%d.]+ %* 2 %^" }, mine))
  end)
end)

describe("item 5: one JSON decode-and-normalise path", function()
  local TASK = '{"id":"t1","status":"completed","found":[],"meta":{},"error":null,"score":25.0,' ..
    '"items":[{"a":null,"b":[],"c":{}},null,3],"report":{"fields":{},"markdown":"x"}}'
  local WANT = '{"found":[],"id":"t1","items":[{"b":[],"c":{}},null,3],"meta":{},' ..
    '"report":{"fields":{},"markdown":"x"},"score":25,"status":"completed"}'

  it("item 5: objects lose null keys, arrays stay arrays (empty ones marked), 25.0 is an " ..
    "integer", function()
    local task = assert(json.decode(TASK))
    assert.is_nil(task.error)
    assert.is_true(json.is_array_marked(task.found))
    assert.is_false(json.is_array_marked(task.meta))
    assert.are.equal(3, #task.items)
    assert.are.equal(json.null, task.items[2])
    assert.is_nil(task.items[1].a)
    assert.are.equal(25, task.score)
    if math_type then assert.are.equal("integer", math_type(task.score)) end
  end)

  it("item 5: a decoded task encodes back as it came, [] and {} included", function()
    assert.are.equal(WANT, json.encode(assert(json.decode(TASK))))
  end)

  it("item 5: the worker reads and writes job text through it (no cjson of its own)", function()
    local ok, job = pcall(require, "deepresearch.worker.job")
    if not ok then return pending("the worker's modules: " .. tostring(job)) end
    assert.are.equal(WANT, job.encode_task(assert(job.decode(TASK))))
    assert.are.equal(WANT, job.encode(assert(job.decode(TASK))))
    local v = assert(job.decode('{"id":"j1","brief":"b","depth":null,"n":2.0}'))
    assert.is_nil(v.depth)
    if math_type then assert.are.equal("integer", math_type(v.n)) end
    assert.is_nil(job.decode("{oops"))
  end)

  it("item 5: a job that is [] or null is not an object", function()
    local ok, job = pcall(require, "deepresearch.worker.job")
    if not ok then return pending("the worker's modules: " .. tostring(job)) end
    for _, text in ipairs({ "[]", "null", "[1]", "7" }) do
      local j, err = job.parse(text, "extruct")
      assert.is_nil(j)
      assert.are.equal("invalid_request", err.code)
      assert.matches("JSON object", err.message)
    end
  end)

  it("item 5: another decoder's result (lua-cjson, vim.json's vim.NIL) takes the same " ..
    "shape", function()
    local ok, cjson = pcall(require, "cjson")
    if ok then
      local v = json.normalise(
        cjson.new().decode('{"a":[1,null],"b":null,"c":25.0,"d":{"e":null}}'), cjson.null)
      assert.are.equal('{"a":[1,null],"c":25,"d":{}}', json.encode(v))
      if math_type then assert.are.equal("integer", math_type(v.c)) end
    end
    local NIL = setmetatable({}, { __name = "vim.NIL" }) -- what vim.json.decode gives for null
    local marked = json.array()
    local v = json.normalise({ a = NIL, b = { 1, NIL }, c = marked, d = 4.0 }, NIL)
    assert.is_nil(v.a)
    assert.are.equal(json.null, v.b[2])
    assert.is_true(json.is_array_marked(v.c))
    assert.are.equal('{"b":[1,null],"c":[],"d":4}', json.encode(v))
  end)

  it("item 5: malformed text is an error message, never a raise", function()
    for _, text in ipairs({
      "", "[1,]", '{"a":1', "01", "1.", "-", "nul", '"\\x"', "[1] 2", '"a\nb"',
      '"\\ud800"', string.rep("[", 300) }) do
      local v, err = json.decode(text)
      assert.is_nil(v, text)
      assert.is_string(err)
    end
    assert.are.equal("x\195\169\240\159\152\128", json.decode('"x\\u00e9\\ud83d\\ude00"'))
  end)

  it("item 5: report.load reads a task file through it, without lua-cjson", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(TASK)
    f:close()
    local saved_loaded, saved_preload = package.loaded.cjson, package.preload.cjson
    package.loaded.cjson = nil
    package.preload.cjson = function() error("lua-cjson hidden by the spec", 0) end
    local report = require "deepresearch.report"
    local ok, task, err = pcall(report.load, path)
    package.loaded.cjson, package.preload.cjson = saved_loaded, saved_preload
    os.remove(path)
    assert.is_true(ok, tostring(task))
    assert.is_table(task, tostring(err and err.message))
    assert.are.equal(WANT, json.encode(task))
  end)

  it("item 5: the CLI's --json printer and the encoder share one list of array-valued " ..
    "keys", function()
    assert.are.same({}, grep({ "degradation_reasons = true", "exclude_domains = true" },
      { ["lua/deepresearch/base/json.lua"] = true }))
    assert.is_true(json.ARRAY_KEYS.sources and json.ARRAY_KEYS.exclude_task_ids and true)
  end)
end)

describe("item 5: one place for limits", function()
  -- The provider modules (owned by the provider-framework change) still hold their own
  -- constants; each must read providers/limits.lua. Until then they are listed here and
  -- checked to agree, so a change in one place shows.
  local NOT_YET = {}
  local LITERALS = { "%f[%d]20000%f[%D]", "%f[%d]25000%f[%D]", "%f[%d]15000%f[%D]",
    "%f[%d]20 000%f[%D]", "%f[%d]25 000%f[%D]" }

  it("item 5: the brief and query length literals appear only in providers/limits.lua", function()
    local except = { ["lua/deepresearch/providers/limits.lua"] = true }
    for path in pairs(NOT_YET) do except[path] = true end
    assert.are.same({}, grep(LITERALS, except))
  end)

  it("item 5: the provider modules read the one table", function()
    local left = {}
    for _, hit in ipairs(grep(LITERALS, { ["lua/deepresearch/providers/limits.lua"] = true })) do
      local path = hit:match("^([^:]+)")
      if NOT_YET[path] then left[#left + 1] = hit end
    end
    assert.are.same({}, left)
  end)

  it("item 5: the table, its readers and the provider constants agree", function()
    assert.are.equal(limits.extruct.brief, require("deepresearch.brief").MAX_LENGTH)
    assert.are.equal(limits.brief(), limits.brief("extruct"))
    assert.are.equal(limits.brief("valyu"), limits.valyu.brief)
    assert.are.equal(limits.brief(), limits.brief("no-such-provider"))
    local ok, task = pcall(require, "deepresearch.cli.task")
    if ok then
      assert.are.equal(limits.extruct.brief, task.extruct.max_brief)
      assert.are.equal(limits.valyu.brief, task.valyu.max_brief)
    end
    local has_core, extruct = pcall(require, "deepresearch.providers.extruct")
    if has_core then
      local valyu = require "deepresearch.providers.valyu"
      assert.are.equal(limits.extruct.brief, extruct.MAX_BRIEF)
      assert.are.equal(limits.valyu.brief, valyu.MAX_QUERY)
      assert.are.equal(limits.valyu.strategy_and_format, valyu.MAX_STRATEGY_AND_FORMAT)
      local too_long = string.rep("a", limits.discovery.brief + 1)
      local body, err = require(
        "deepresearch.providers.discovery").create_body({ query = too_long })
      assert.is_nil(body)
      assert.are.equal("invalid_request", err.code)
      assert.is_truthy(require("deepresearch.providers.discovery").create_body(
        { query = string.rep("a", limits.discovery.brief) }))
    end
  end)
end)

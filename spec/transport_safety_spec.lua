-- Issue 13, the transport's part: numeric options that C must never cast blindly (item 12),
-- bodies and headers that are not the API's (15), header smuggling (16), a password in the
-- base URL (17), a request's send_by deadline, and empty JSON arrays that stay arrays (18).
-- Several specs drive the C core directly (core.new_client, request specs), bypassing the
-- Lua front: this file runs under make test-valgrind and make test-asan (UBSan) too.
local dr = require "deepresearch"
local json = require "deepresearch.base.json"
local env = require "support.env"
local sim = require "support.sim"
local socket = require "socket"

local core = dr.core
local request = core.client_methods.request

-- A tiny hostile HTTP server, in its own process (the client under test blocks). The path's
-- first segment picks the answer; GET /_count/<mode> says how many requests a mode got.
local HOSTILE = [==[
local socket = require "socket"
local watch = tonumber(arg[1])
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0.5)
local _, port = srv:getsockname()
io.stdout:write("listening 127.0.0.1 ", port, "\n")
io.stdout:flush()
local held, counts = {}, {}
local TASK = '{"id":"t1","status":"running","brief":"b","created_at":"2025-01-01T00:00:00Z"}'
local function reply(c, head, body)
  c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body .. "\r\n")
  for _, h in ipairs(head) do
    if not c:send(h) then return end -- the client hung up: expected for oversized headers
  end
  c:send("\r\n" .. body)
end
while true do
  local c = srv:accept()
  if c then
    c:settimeout(5)
    local path = (c:receive("*l") or ""):match("^%u+ (%S+)") or "/"
    repeat local h = c:receive("*l") until not h or h == ""
    local mode = path:match("^/([%w_]+)") or ""
    counts[mode] = (counts[mode] or 0) + 1
    if mode == "_count" then
      reply(c, {}, tostring(counts[path:match("^/_count/([%w_]+)")] or 0))
    elseif mode == "many_headers" then -- 100k small headers, 1.5 MB in all
      local head = {}
      for i = 1, 100000 do head[i] = string.format("X-Filler-%d: v\r\n", i) end
      reply(c, { table.concat(head) }, TASK)
    elseif mode == "one_header" then -- one 10 MB header line
      reply(c, { "X-Big: " .. string.rep("a", 10 * 1024 * 1024) .. "\r\n" }, TASK)
    elseif mode == "hang" then -- reads the request, never answers
      held[#held + 1] = c
      c = nil
    else
      reply(c, {}, TASK)
    end
    if c then c:close() end
  elseif watch then
    local f = io.open("/proc/" .. watch .. "/stat")
    if not f then os.exit(0) end
    f:close()
  end
end
]==]

local function start_hostile()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(HOSTILE)
  f:close()
  local pipe = assert(
    io.popen("echo $$; exec env -u LD_PRELOAD -u ASAN_OPTIONS -u LSAN_OPTIONS lua5.4 " ..
    sim.shell_quote(script) .. " " .. tostring(sim.own_pid() or ""), "r"))
  local pid = tonumber(pipe:read("*l"))
  local port = tonumber(((pipe:read("*l") or ""):match("^listening %S+ (%d+)$")))
  os.remove(script) -- lua5.4 has read it by now
  assert(port, "the hostile server did not start")
  local h = { pid = pid, port = port, url = "http://127.0.0.1:" .. port }
  function h.count(mode)
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(10)
    c:send("GET /_count/" .. mode .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local raw = c:receive("*a")
    c:close()
    return tonumber(raw:match("\r\n\r\n(%d+)$"))
  end
  function h.stop()
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    pipe:close()
  end
  return h
end

local AUTH = { "Authorization: Bearer test-token", "Accept: application/json" }

describe("issue 13 transport safety", function()
  local s, hostile
  setup(function()
    s = env.sim()
    hostile = start_hostile()
  end)
  teardown(function() hostile.stop() end)
  before_each(function() s:reset() end)

  describe("item 12: huge or tiny numeric options", function()
    local bad = {
      { "timeout", math.huge, "inf" }, { "timeout", 0 / 0, "nan" }, { "timeout", 0.0004, "0.0004" },
      { "timeout", 0, "0" }, { "connect_timeout", math.huge, "inf" },
      { "max_connections", 1e19, "1e+19" },
      { "max_connections", 0, "0" }, { "max_connections", 2.5, "2.5" },
      { "max_response_size", 2 ^ 64, "1.844" },
      { "low_speed_limit", 1e30, "1e+30" }, { "low_speed_time", math.huge, "inf" },
      { "max_retries", 101, "101" },
      { "max_retry_after", -math.huge, "-inf" }, { "max_delay", 0 / 0, "nan" },
    }
    for _, case in ipairs(bad) do
      it(string.format("item 12: dr.client refuses %s = %s, naming the " ..
        "option", case[1], case[3]), function()
        local ok, msg = pcall(dr.client, { base_url = s.url, token = "t", [case[1]] = case[2] })
        assert.is_false(ok)
        assert.matches("bad option '" .. case[1] .. "' to 'client' %(", msg)
        assert.matches("got " .. case[3]:gsub("[%.%+%-]", "%%%0"), msg)
      end)
    end

    it("item 12: the message gives the range", function()
      local _, msg = pcall(dr.client, { base_url = s.url, token = "t", timeout = math.huge })
      assert.matches(
        "bad option 'timeout' to 'client' (number in 0.001..86400 expected, got inf)", msg, 1, true)
    end)

    it("item 12: values at the edges of the ranges are accepted", function()
      local c = dr.client{
        base_url = s.url, token = "test-token", timeout = 0.001, connect_timeout = 86400,
        max_connections = 1024, max_response_size = 2 ^ 32, low_speed_limit = 0,
        low_speed_time = 86400 }
      assert.is_false(c:closed())
      c:close()
    end)

    it("item 12: the C core clamps huge limits given directly, and requests still work", function()
      local c = core.new_client{
        timeout = math.huge, connect_timeout = 1e300, low_speed_limit = 1e30,
        low_speed_time = math.huge, max_response_size = 2 ^ 64, max_connections = 1e19 }
      local res = request(
        c, { url = s.url .. "/v1/deep_research_tasks", headers = AUTH, timeout = math.huge })
      assert.equals(200, res.status)
      assert.is_table(res.body)
      res = request(
        c, { url = s.url .. "/v1/deep_research_tasks", headers = AUTH, timeout = 1e300 })
      assert.equals(200, res.status)
      c:close()
      assert.equals(2, #s:requests_to("GET", "^/v1/deep_research_tasks"))
    end)

    it("item 12: the C core raises, naming the field, on NaN and negative numbers", function()
      for _, k in ipairs({
        "timeout", "connect_timeout", "max_response_size", "max_connections", "low_speed_time" }) do
        for _, v in ipairs({ 0 / 0, -1, -math.huge }) do
          local ok, msg = pcall(core.new_client, { [k] = v })
          assert.is_false(ok)
          assert.matches("option '" .. k .. "' must be a non%-negative number", msg)
        end
      end
      local c = core.new_client{}
      local ok, msg = pcall(
        request, c, { url = s.url .. "/v1/deep_research_tasks", timeout = 0 / 0 })
      assert.is_false(ok)
      assert.matches("request field 'timeout' must be a non%-negative number", msg)
      c:close()
      assert.equals(0, #s:requests())
    end)

    -- Were the timeout 0, which libcurl reads as none, the stall check (1 byte/s for 2 s)
    -- would end the transfer instead, as "Operation too slow".
    it("item 12: a sub-millisecond timeout is 1 ms in C, never 'no timeout'", function()
      local c = core.new_client{ timeout = 0.0004, low_speed_limit = 1, low_speed_time = 2 }
      local res = request(c, { url = hostile.url .. "/hang/a" })
      assert.equals("timeout", res.error)
      assert.not_matches("too slow", res.message)
      res = request(c, { url = hostile.url .. "/hang/b", timeout = 0.0002 })
      assert.equals("timeout", res.error)
      assert.not_matches("too slow", res.message)
      c:close()
    end)

    it("item 12: core.sleep never casts NaN or inf", function()
      assert.is_true(core.sleep(0 / 0))
      assert.is_true(core.sleep(-math.huge))
    end)
  end)

  describe("item 15: bodies and headers that are not the API's", function()
    for _, number in ipairs({ "NaN", "Infinity", "-Infinity", "0x10" }) do
      it("item 15: a body holding " .. number .. " is invalid_response, not retried", function()
        local c = env.client(s, { max_retries = 2 })
        local task = dr.assert(c:create{ brief = env.BRIEF })
        s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", status = 200, count = -1,
          body = '{"id":"' .. task.id .. '","status":"running","brief":"b","progress":' .. number ..
          '}' }
        s:clear_requests()
        local t, err = c:get(task.id)
        assert.is_nil(t)
        assert.equals("invalid_response", err.code)
        assert.is_false(err.retryable)
        assert.equals(1, #s:requests_to("GET", "^/v1/deep_research_tasks/"))
        c:close()
      end)
    end

    it("item 15: 100k response headers are invalid_response, not network, and not " ..
      "retried", function()
      local c = dr.client{ base_url = hostile.url .. "/many_headers", token = "t", max_retries = 2 }
      local t, err = c:get("t1")
      c:close()
      assert.is_nil(t)
      assert.equals("invalid_response", err.code)
      assert.is_false(err.retryable)
      assert.matches("headers larger than", err.message)
      assert.equals(1, hostile.count("many_headers"))
    end)

    it("item 15: one 10 MB header line is invalid_response, not network, and not " ..
      "retried", function()
      local c = dr.client{ base_url = hostile.url .. "/one_header", token = "t", max_retries = 2 }
      local t, err = c:get("t1")
      c:close()
      assert.is_nil(t)
      assert.equals("invalid_response", err.code)
      assert.is_false(err.retryable)
      assert.matches("header line larger than", err.message)
      assert.equals(1, hostile.count("one_header"))
    end)

    it("item 15: the same through the C core directly", function()
      local c = core.new_client{}
      for _, mode in ipairs({ "many_headers", "one_header" }) do
        local res = request(c, { url = hostile.url .. "/" .. mode .. "/direct" })
        assert.equals("invalid_response", res.error)
        assert.is_nil(res.status)
      end
      local res = request(c, { url = hostile.url .. "/ok" }) -- the pooled handle works again
      assert.equals(200, res.status)
      assert.equals("t1", res.body.id)
      c:close()
    end)
  end)

  describe("item 16: control characters in user_agent", function()
    for _, ua in ipairs({ "x\r\nX-Evil: 1", "x\nX-Evil: 1", "x\0y", "x\ty" }) do
      it(string.format("item 16: dr.client refuses user_agent %q", ua), function()
        local ok, msg = pcall(dr.client, { base_url = s.url, token = "t", user_agent = ua })
        assert.is_false(ok)
        assert.matches("bad option 'user_agent' to 'client'", msg)
        assert.equals(0, #s:requests())
      end)
    end

    it("item 16: the C core refuses it too (libcurl would send it as it is)", function()
      for _, k in ipairs({ "user_agent", "proxy", "ca_file" }) do
        local ok, msg = pcall(core.new_client, { [k] = "a\r\nX-Evil: 1" })
        assert.is_false(ok)
        assert.matches("option '" .. k .. "' must not contain control characters", msg)
      end
    end)

    it("item 16: an ordinary user_agent still goes out", function()
      local c = env.client(s, { user_agent = "my-app/1.0" })
      assert.truthy(c:list{})
      c:close()
      local r = s:requests_to("GET", "^/v1/deep_research_tasks")[1]
      local ua = r.headers and (r.headers["user-agent"] or r.headers["User-Agent"])
      assert.matches("^my%-app/1%.0 deepresearch%-lua/", ua)
    end)
  end)

  describe("item 17: a password in base_url", function()
    local function secret_url(port) return "http://user:secret@127.0.0.1:" .. port end

    it("item 17: tostring(client) shows user:***@", function()
      local c = dr.client{ base_url = secret_url(s.port), token = "test-token" }
      assert.not_matches("secret", tostring(c))
      assert.matches("user:%*%*%*@127%.0%.0%.1", tostring(c))
      c:close()
    end)

    it("item 17: error messages never show it", function()
      local ok, msg = pcall(dr.client, { base_url = "ftp://user:secret@example.com" })
      assert.is_false(ok)
      assert.not_matches("secret", msg)
      assert.matches("user:%*%*%*@", msg)
      local c = dr.client{ base_url = secret_url(s.port), token = "test-token", max_retries = 0 }
      local _, err = c:get("nope")
      assert.equals("not_found", err.code)
      assert.not_matches("secret", tostring(err))
      c:close()
      c = dr.client{ base_url = secret_url(1), token = "t", max_retries = 0 }
      _, err = c:list{}
      assert.equals("network", err.code)
      assert.not_matches("secret", tostring(err))
      c:close()
    end)

    local function run_debug(script_body, env_vars)
      local script = os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write('package.path = "lua/?.lua;lua/?/init.lua;" .. package.path\n' ..
        'package.cpath = "build/5.4/?.so;" .. package.cpath\n' ..
        'local dr = require "deepresearch"\n' .. script_body)
      f:close()
      local p = io.popen("env -u LD_PRELOAD -u http_proxy -u all_proxy -u ALL_PROXY -u no_proxy " ..
        "-u NO_PROXY DEEPRESEARCH_DEBUG=1 " .. (env_vars or "") .. " lua5.4 " .. script .. " 2>&1")
      local out = p:read("*a")
      p:close()
      os.remove(script)
      return out
    end

    it("item 17: the DEEPRESEARCH_DEBUG log shows user:***@", function()
      local out = run_debug(string.format([[
        local c = dr.client{ base_url = %q, token = "test-token", max_retries = 0 }
        c:list{}
        c:get("nope")
      ]], secret_url(s.port)))
      assert.matches("GET http://user:%*%*%*@127%.0%.0%.1:%d+/v1/deep_research_tasks", out)
      assert.not_matches("secret", out)
      assert.not_matches("in clear", out) -- no proxy: no warning
    end)

    it("item 17: through a proxy over http://, debug mode warns once per process", function()
      local out = run_debug(string.format([[
        local a = dr.client{ base_url = "http://user:secret@api.example.invalid",
          token = "test-token", proxy = %q, max_retries = 0 }
        a:list{}
        local b = dr.client{ base_url = "http://api.example.invalid", token = "test-token",
          proxy = %q }
        b:list{}
      ]], s.url, s.url))
      local _, n = out:gsub("travels to the proxy in clear", "")
      assert.equals(1, n)
      assert.not_matches("secret", out)
      local env_out = run_debug(string.format([[
        dr.client{ base_url = %q, token = "t" }
      ]], secret_url(s.port)), "http_proxy=http://proxyuser:proxypass@127.0.0.1:1")
      assert.matches("in clear", env_out)
      assert.not_matches("proxypass", env_out)
      local tls_out = run_debug(
        [[dr.client{ base_url = "https://api.example.invalid", token = "t" }]],
        "http_proxy=http://127.0.0.1:1 https_proxy=http://127.0.0.1:1")
      assert.not_matches("in clear", tls_out)
    end)
  end)

  describe("send_by: a request that cannot leave in time never leaves", function()
    local function create_spec(send_by)
      return {
        method = "POST", url = s.url .. "/v1/deep_research_tasks", fresh = true, send_by = send_by,
        body = json.encode({ brief = env.BRIEF }),
        headers = { AUTH[1], AUTH[2], "Content-Type: application/json" } }
    end
    local function created() return s:counter("extruct.tasks_created") end

    it("send_by: a create whose send_by has passed reaches no server, and says so", function()
      assert.is_true(core.has_send_by)
      local c = core.new_client{}
      local res = request(c, create_spec(core.now() - 1))
      assert.equals("network", res.error)
      assert.is_false(res.sent)
      assert.is_true(res.not_sent)
      assert.matches("send_by deadline passed", res.message)
      assert.equals(0, created())
      assert.equals(0, #s:requests_to("POST", "^/v1/deep_research_tasks"))
      c:close()
    end)

    it("send_by: pooled handles take each request's own deadline", function()
      local c = core.new_client{}
      assert.is_true(request(c, create_spec(core.now() - 1)).not_sent)
      assert.equals(200, request(c, create_spec(nil)).status) -- same pooled handle, no deadline
      assert.equals(200, request(c, create_spec(core.now() + 3600)).status)
      assert.is_true(request(c, create_spec(-math.huge)).not_sent)
      assert.equals(200, request(c, create_spec(math.huge)).status)
      assert.equals(3, created())
      assert.equals(3, #s:requests_to("POST", "^/v1/deep_research_tasks"))
      local ok, msg = pcall(request, c, create_spec(0 / 0))
      assert.is_false(ok)
      assert.matches("send_by", msg)
      c:close()
    end)

    it("send_by: on a reused connection too, and through a poller", function()
      local c = core.new_client{}
      assert.equals(
        200, request(c, { url = s.url .. "/v1/deep_research_tasks", headers = AUTH }).status)
      local spec = create_spec(core.now() - 1)
      spec.fresh = false -- would reuse the open connection
      assert.is_true(request(c, spec).not_sent)
      c:close()
      local h = dr.client{ base_url = s.url, token = "test-token" }
      -- The client's C handle is private (issue 14 part 4): the internal module's accessor.
      local p = core.new_poller(require("deepresearch.runtime.http").state(h).handle, 2)
      p:add(create_spec(core.now() - 1))
      local results = {}
      while #results == 0 do
        for _, r in ipairs(p:step(50)) do results[#results + 1] = r end
      end
      assert.is_true(results[1].not_sent)
      p:close()
      h:close()
      assert.equals(0, created())
    end)
  end)

  describe("item 18 (library half): empty JSON arrays stay arrays", function()
    it("item 18: json.encode(client:get(id)) writes [] back for [] and {} for {}", function()
      local c = env.client(s)
      local task = dr.assert(c:create{ brief = env.BRIEF })
      s:fault{ method = "GET", path = "/v1/deep_research_tasks/.+", status = 200,
        body = '{"id":"' .. task.id .. '","status":"running","brief":"b","degradation_reasons": ' ..
          '[],"meta":{},"note":"a [] b [ ] \\"[]\\"","nested":[[],[ \n ],[1,[]],{"x":[]}]}' }
      local t = dr.assert(c:get(task.id))
      c:close()
      assert.is_true(json.is_array_marked(t.degradation_reasons))
      assert.is_nil(getmetatable(t.meta))
      local text = json.encode(t)
      assert.matches('"degradation_reasons":[]', text, 1, true)
      assert.matches('"meta":{}', text, 1, true)
      assert.matches('"note":"a [] b [ ] \\"[]\\""', text, 1, true)
      assert.matches('"nested":[[],[],[1,[]],{"x":[]}]', text, 1, true)
    end)

    it("item 18: core.decode marks a top-level [] and leaves everything else alone", function()
      assert.is_true(json.is_array_marked(core.decode("[ ]")))
      assert.is_nil(getmetatable(core.decode("{}")))
      assert.same({ "[]" }, core.decode('["[]"]'))
      -- empty objects beside empty arrays: the text is rewritten with a marker; a body that
      -- spells that marker itself keeps it (its empty arrays are then left plain)
      local mixed = core.decode('{"a":[],"o":{},"n":[{},[]]}')
      assert.is_true(json.is_array_marked(mixed.a))
      assert.is_true(json.is_array_marked(mixed.n[2]))
      assert.is_nil(getmetatable(mixed.o))
      assert.is_nil(getmetatable(mixed.n[1]))
      for _, text in ipairs({ '{"a":[],"b":["\\u0000deepresearch:[]"]}',
        '{"a":[],"o":{},"b":["\\u0000deepresearch:[]"]}' }) do
        local forged = core.decode(text)
        assert.same({ "\0deepresearch:[]" }, forged.b)
        assert.same({}, forged.a)
      end
      -- decode errors still point into the text as sent
      local v, msg = core.decode('{"a":[], "b":}')
      assert.is_nil(v)
      assert.matches("character 14", msg)
    end)
  end)
end)

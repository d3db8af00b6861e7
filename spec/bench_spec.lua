-- The benchmark harness's own pieces: its arithmetic, the canned responses it serves, the floor
-- that sends the module's request headers, and the wait schedule's poll count on a simulated clock
-- (what bench/RESULTS.md reports).
package.path = "bench/?.lua;" .. package.path
local report = require "report"
local wait = require "deepresearch.runtime.wait"
local cjson = require "cjson"

describe("bench", function()
  describe("report", function()
    it("takes medians of odd and even counts without reordering its input", function()
      local xs = { 5, 1, 3 }
      assert.equals(3, report.median(xs))
      assert.same({ 5, 1, 3 }, xs)
      assert.equals(2.5, report.median({ 4, 1, 2, 3 }))
      assert.is_nil(report.median({}))
    end)

    it("measures the spread of runs against their median", function()
      assert.equals(0, report.spread({ 2, 2, 2 }))
      assert.equals(0.5, report.spread({ 1.5, 2, 2.5 }))
    end)

    it("formats ratios and microseconds", function()
      assert.equals("1.15×", report.ratio(1.15, 1))
      assert.equals("150×", report.ratio(150, 1))
      assert.equals("–", report.ratio(1, nil))
      assert.equals("85.0", report.us(85e-6))
      assert.equals("1234", report.us(1234e-6))
    end)

    it("renders a markdown table with right-aligned figures", function()
      assert.equals(
        "| a | b |\n| --- | ---: |\n| x | 1 |", report.table({ "a", "b" }, { { "x", "1" } }))
    end)

    it("replaces only the generated part of the results file", function()
      local first = report.splice(nil, "table one")
      assert.truthy(first:find("table one", 1, true))
      local edited = first .. "\n## Analysis\nkept by hand\n"
      local second = report.splice(edited, "table two")
      assert.falsy(second:find("table one", 1, true))
      assert.truthy(second:find("table two", 1, true))
      assert.truthy(second:find("kept by hand", 1, true))
    end)
  end)

  describe("canned responses", function()
    local dir, sizes
    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      local p = assert(io.popen("lua5.4 bench/gen.lua " .. dir))
      sizes = {}
      for name, bytes, check in p:read("*a"):gmatch("(%w+) (%d+) (%d+)") do
        sizes[name] = { bytes = tonumber(bytes), check = tonumber(check) }
      end
      p:close()
    end)
    teardown(function() os.execute("rm -rf " .. dir) end)

    local function load(name)
      local f = assert(io.open(dir .. "/" .. name .. ".json", "rb"))
      local s = f:read("*a")
      f:close()
      assert.equals(sizes[name].bytes, #s)
      return cjson.decode(s)
    end

    it("has an in-progress task of about 300 B, with the nulls the API sends", function()
      assert.truthy(sizes.small.bytes >= 250 and sizes.small.bytes <= 500)
      local t = load("small")
      assert.equals("in_progress", t.status)
      assert.equals(cjson.null, t.report)
      assert.equals(sizes.small.check, t.agents)
    end)

    it("has a finished task with a ~50 KB report and 100 sources", function()
      local t = load("big")
      assert.equals("done", t.status)
      assert.truthy(#t.report.markdown >= 45000 and #t.report.markdown <= 60000)
      assert.equals(100, #t.report.sources)
      assert.equals(sizes.big.check, #t.report.sources)
    end)

    it("has list pages of 50 tasks (a few MB) and 75 tasks (~5 MB)", function()
      assert.truthy(sizes.list.bytes >= 2.5e6 and sizes.list.bytes <= 4.5e6)
      assert.truthy(sizes.list75.bytes >= 4.5e6 and sizes.list75.bytes <= 5.5e6)
      assert.equals(50, #load("list"))
      assert.equals(75, #load("list75"))
    end)

    it("is the same bytes on every run", function()
      local p = assert(io.popen("lua5.4 bench/gen.lua " .. dir))
      local again = p:read("*a")
      p:close()
      assert.truthy(again:find("list " .. sizes.list.bytes, 1, true))
    end)
  end)

  describe("the floors", function()
    local socket = require "socket"
    local bin = os.tmpname()

    setup(function() -- the floor, with the module's conversion linked in
      local cc = "cc -std=c99 -O1 -I/usr/include/lua5.4 $(pkg-config --cflags libcurl) -o " ..
        bin ..
        " bench/floor.c src/json.c -llua5.4 $(pkg-config --libs libcurl) -lm"
      local built = os.execute(cc) -- true on Lua 5.2+, 0 on 5.1/LuaJIT
      assert(built == true or built == 0, "cannot build bench/floor.c: " .. cc)
    end)
    teardown(function() os.remove(bin) end)

    -- The header lines of the one request cmd (run in the background, given the URL) sends.
    local function request_headers(server, cmd)
      local _, port = server:getsockname()
      os.execute(string.format(cmd, "http://127.0.0.1:" .. port) .. " >/dev/null 2>&1 &")
      local c = assert(server:accept())
      c:settimeout(10)
      local lines = {}
      while true do
        local line = assert(c:receive("*l"))
        if line == "" then break end
        if not line:find("^GET ") then lines[#lines + 1] = line end
      end
      c:send("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
      c:close()
      table.sort(lines)
      return lines
    end

    it("sends the same header lines as the module", function()
      local ua = "deepresearch-lua/" .. require("deepresearch.core").version .. " libcurl/" ..
        require("deepresearch.core").curl_version
      local server = assert(socket.bind("127.0.0.1", 0))
      server:settimeout(10)
      local module = request_headers(server, "lua5.4 -e \"" ..
        "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path " ..
        "package.cpath = 'build/5.4/?.so;' .. package.cpath " ..
        "require('deepresearch').client({ base_url = '%s', token = 't', max_retries = 0 " ..
        "}):get('x')\"")
      local floor = request_headers(
        server, bin .. " --module-headers '" .. ua .. "' %s x y 1 0 0 0 1")
      -- The floors that add the module's options and its conversion send the same lines.
      local options = request_headers(
        server, bin .. " --module-options '" .. ua .. "' %s x y 1 0 0 0 1")
      local conversion = request_headers(
        server, bin .. " --module-conversion '" .. ua .. "' %s x y 1 0 0 0 1")
      server:close()
      assert.same(module, floor)
      assert.same(module, options)
      assert.same(module, conversion)
      local names = {}
      for _, l in ipairs(floor) do names[#names + 1] = l:match("^[^:]+") end
      -- sorted lines
      assert.same({ "Accept-Encoding", "Accept", "Authorization", "Host", "User-Agent" }, names)
    end)

    -- Runs `bin args` (%s: the URL) with environment prefix env, answers its one request with
    -- body, and returns the request's path, the floor's output and its exit status.
    local function serve_once(args, body, env)
      local server = assert(socket.bind("127.0.0.1", 0))
      server:settimeout(10)
      local _, port = server:getsockname()
      local out = os.tmpname()
      os.execute(string.format("(%s%s %s >%s 2>&1; echo \"exit=$?\" >>%s) &", env or "", bin,
        string.format(args, "http://127.0.0.1:" .. port), out, out))
      local c = assert(server:accept())
      c:settimeout(10)
      local path = assert(c:receive("*l")):match("^GET (%S+)")
      repeat local line = assert(c:receive("*l")) until line == ""
      c:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #body ..
        "\r\nConnection: close\r\n\r\n" .. body)
      c:close()
      server:close()
      local text, status = "", nil
      for _ = 1, 200 do -- the floor exits as soon as it has decoded the body
        local f = io.open(out, "r")
        text = f and f:read("*a") or ""
        if f then f:close() end
        status = text:match("exit=(%d+)")
        if status then break end
        socket.sleep(0.05)
      end
      os.remove(out)
      return path, text, tonumber(status)
    end

    it("GET the 75-task page and hold it, with or without freeing the body buffer first", function()
      local body = '[{"id":"a","n":1},{"id":"b","n":null},{"id":"c"}]'
      for _, mode in ipairs({ "--rss", "--rss-lean" }) do
        local path, out, status = serve_once(mode .. " %s", body)
        assert.equals(0, status, out)
        assert.equals("/v1/deep_research_tasks?limit=75", path)
        local bytes, before, hwm, after, check = out:match("rss (%d+) (%d+) (%d+) (%d+) (%d+)\n")
        assert.equals(#body, tonumber(bytes), mode .. ": " .. out)
        assert.equals(3, tonumber(check))
        assert.truthy(tonumber(hwm) >= tonumber(before) and tonumber(after) > 0)
      end
    end)

    it("decodes through the module's conversion, and stops on a body that is not JSON", function()
      local args = "--module-conversion ua %s x y 1 0 0 0 1"
      -- src/json.c decodes with a private cjson.new() instance: the prelude marks its decodes.
      local mark = "FLOOR_PRELUDE='local c = require \"cjson\" local new = c.new c.new = " ..
        "function() local i = new() local d = i.decode i.decode = function(s) " ..
        "io.stderr:write(\"via-new \") return d(s) end return i end' "
      local body = '{"id":"x","agents":25,"report":null,"owner":{"a":null}}'
      local path, out, status = serve_once(args, body, mark)
      assert.equals(0, status, out)
      assert.equals("/v1/deep_research_tasks/x", path)
      assert.matches("via%-new small 1 %S+ %S+ 25\n", out)
      local _, plain = serve_once("--module-options ua %s x y 1 0 0 0 1", body, mark)
      assert.matches("^small 1 %S+ %S+ 25\n", plain) -- plain cjson.decode: no mark
      path, out, status = serve_once(args, "<html>busy</html>")
      assert.equals("/v1/deep_research_tasks/x", path)
      assert.equals(1, status)
      assert.matches("floor: decode:", out)
    end)
  end)

  describe("the default wait schedule on a simulated clock", function()
    it("polls a 10-minute task at most 40 times and notices its end within 30 s", function()
      local polls, late = report.schedule_worst(wait.schedule, 570, 600, 0.25)
      assert.truthy(polls <= 40, "polls: " .. polls)
      assert.truthy(late <= 30, "noticed after " .. late .. " s")
    end)

    it("counts the first poll and every poll after a sleep", function()
      local delays = { 2, 3, 4.5 }
      local i = 0
      local polls, late = report.polls_for(function()
        i = i + 1
        return delays[i]
      end, 8)
      assert.equals(4, polls) -- at 0, 2, 5 and 9.5 s
      assert.equals(1.5, late)
    end)
  end)
end)

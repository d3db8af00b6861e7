-- README and docs/ as a first-time user reads them (issue 18 item 6): nothing points outside
-- the repository, the quick start is two commands, the briefs tour runs with the file it
-- names, the simulator section names every provider's key, and the Redis walk-through starts
-- a Redis that it also shows how to stop.
local host = require "support.host"
local env = require "support.env"
local readme_run = require "support.readme_run"
local providers = require "deepresearch.providers"

local function read(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  return text
end

local sh = host.sh

local function doc_files()
  local files = { "README.md" }
  local p = io.popen("ls docs/*.md")
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

-- The text of README section `title` (a "## " heading), up to the next "## " heading.
local function section(title)
  local text = read("README.md")
  local from = assert(text:find("\n## " .. title .. "\n", 1, true), "README has ## " .. title)
  local to = text:find("\n## ", from + 1, true) or #text
  return text:sub(from, to)
end

local function block(text, lang)
  return assert(text:match("```" .. lang .. "\n(.-)\n```"), "a ```" .. lang .. " block")
end

-- The simulator's own default key per provider (sim/simulator/<name>.lua).
local SIM_KEYS = { extruct = "test-token", valyu = "valyu-key", openai = "openai-key",
  perplexity = "pplx-key", gemini = "gemini-key" }

describe("docs", function()
  it("point nowhere outside the repository: no ../shared, no absolute /work/ path", function()
    for _, path in ipairs(doc_files()) do
      local n = 0
      for line in (read(path) .. "\n"):gmatch("([^\n]*)\n") do
        n = n + 1
        assert.falsy(line:find("../shared", 1, true), path .. ":" .. n .. ": " .. line)
        assert.falsy(line:find("shared/api/", 1, true), path .. ":" .. n .. ": " .. line)
        assert.falsy(line:find("/work/", 1, true), path .. ":" .. n .. ": " .. line)
      end
    end
  end)

  it("summarise the providers' APIs in docs/contracts.md, which the docs point to", function()
    local contracts = read("docs/contracts.md")
    for _, name in ipairs(providers.names()) do
      local d = providers.get(name)
      assert.truthy(contracts:find(d.token_env, 1, true), d.token_env .. " in docs/contracts.md")
    end
    for _, path in ipairs({ "docs/providers.md", "docs/reliability.md", "docs/simulator.md",
      "docs/simulator_valyu.md" }) do
      assert.truthy(read(path):find("docs/contracts.md", 1, true), path)
    end
  end)
end)

describe("README", function()
  it("quick start is exactly two commands: make demo, make test", function()
    local commands = {}
    for line in (block(section("Quick start"), "sh") .. "\n"):gmatch("([^\n]*)\n") do
      local cmd = line:gsub("%s*#.*$", "")
      if cmd:find("%S") then commands[#commands + 1] = cmd end
    end
    assert.same({ "make demo", "make test" }, commands)
  end)

  it("says how long make test takes", function()
    assert.matches("`make test`%s+takes about %d+ minutes", section("Quick start"))
  end)

  it("the simulator section names every provider's key, base URL and key variable", function()
    local text = section("The simulator")
    for _, name in ipairs(providers.names()) do
      local d = providers.get(name)
      local key = assert(SIM_KEYS[name], "a simulator key for " .. name .. " in this spec")
      assert.truthy(text:find("`" .. key .. "`", 1, true), key)
      assert.truthy(text:find(d.token_env, 1, true), d.token_env)
      assert.truthy(text:find(d.base_env, 1, true), d.base_env)
    end
  end)

  describe("the briefs tour", function()
    local code = block(section("A tour"):match("\n### Briefs, schemas, reports\n(.*)$"), "lua")

    it("loads a brief template that ships with the repository, through dr.assert", function()
      local path = assert(code:match('dr%.assert%(dr%.brief%.load%("([^"]+)"%)%)'),
        "the tour checks brief.load's nil, err with dr.assert")
      assert.truthy(io.open(path, "r"), path .. " exists")
    end)

    it("runs as it stands against the simulator", function()
      local s = env.sim()
      s:reset()
      local printed = readme_run(code, s, "test-token", "=README briefs")
      -- The template rendered cleanly (no lint finding is printed), then the report.
      local joined = table.concat(printed, "\n")
      assert.falsy(joined:find("{{", 1, true), joined:sub(1, 400))
      assert.truthy(joined:lower():find("flexport", 1, true), joined:sub(1, 400))
    end)
  end)

  describe("the Redis walk-through", function()
    local lines = {}
    for line in (block(section("A research queue beside Redis"), "sh") .. "\n"):gmatch("([^\n]*)\n")
    do
      lines[#lines + 1] = line
    end
    local function find(pattern)
      for _, l in ipairs(lines) do if l:find(pattern) then return l end end
    end

    it("starts Redis on a spare port with a pid file, and shows how to stop it", function()
      local start = assert(find("^redis%-server "), "a redis-server line")
      assert.falsy(start:find("6379", 1, true), "not the system Redis's port: " .. start)
      assert.truthy(start:find("--pidfile", 1, true), start)
      assert.truthy(find("shutdown") or find("^kill "), "a line that stops it")
    end)

    it("those lines start and stop a Redis", function()
      if not sh("command -v redis-server >/dev/null") then
        error("redis-server is not installed (Debian package redis-server)")
      end
      local start = find("^redis%-server ")
      local stop = (find("shutdown") or ""):gsub("%s*#.*$", "")
      local port = assert(start:match("%-%-port (%d+)"))
      local pidfile = assert(start:match("%-%-pidfile (%S+)"))
      -- A free port and a private pid file, so that this run never meets another Redis.
      local p = io.popen("mktemp -d")
      local dir = p:read("*l")
      p:close()
      local srv = assert(require("socket").bind("127.0.0.1", 0))
      local free = select(2, srv:getsockname())
      srv:close()
      local function local_(cmd)
        return (cmd:gsub("%f[%d]" .. port .. "%f[%D]", tostring(free))
          :gsub(pidfile:gsub("%p", "%%%0"), dir .. "/redis.pid"))
      end
      local ok, out = sh("cd " .. dir .. " && " .. local_(start))
      assert.is_true(ok, out)
      local pid
      for _ = 1, 100 do -- --daemonize returns before the pid file is written
        local f = io.open(dir .. "/redis.pid", "r")
        pid = f and f:read("*n")
        if f then f:close() end
        if pid then break end
        sh("sleep 0.05")
      end
      assert.truthy(pid, "redis-server wrote its pid file")
      ok, out = sh(local_(stop))
      assert.is_true(ok, out)
      local gone = false
      for _ = 1, 100 do
        if not sh("kill -0 " .. pid) then gone = true break end
        sh("sleep 0.05")
      end
      if not gone then sh("kill " .. pid) end
      sh("rm -rf " .. dir)
      assert.is_true(gone, "the walk-through's stop line stopped Redis")
    end)
  end)
end)

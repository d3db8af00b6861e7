-- make install, make env, the rockspec and the make targets around them (issue 18 items 1-5):
-- installs go into temporary prefixes and the installed commands run from another directory,
-- with no LUA_PATH or LUA_CPATH in their environment.
local host = require "support.host"
local sh = host.sh
local tmpdir = host.tmpdir

local function lua_files()
  local p = io.popen("cd lua && find deepresearch -name '*.lua' | sort")
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

local function first_line(path)
  local f = assert(io.open(path, "r"))
  local line = f:read("*l")
  f:close()
  return line
end

-- No module path from the environment: the command must find its own.
local CLEAN = "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_1 -u LUA_PATH_5_2 -u LUA_PATH_5_3 " ..
  "-u LUA_PATH_5_4 -u LUA_CPATH_5_2 -u LUA_CPATH_5_3 -u LUA_CPATH_5_4 "

local function run_from_root(cmd)
  return sh("cd / && " .. CLEAN .. cmd)
end

-- Marks an installed Lua module so that loading it from that copy shows on stderr.
local function mark(file, text)
  assert(sh(string.format("sed -i '1i io.stderr:write(%q)' %s", text .. "\\n", file)))
end

local function installed(interp)
  return sh("command -v " .. interp .. " >/dev/null")
end

describe("make install", function()
  it("PREFIX=dir: the installed commands find their own modules from any directory", function()
    local dir = tmpdir()
    local ok, out = sh("make -s install PREFIX=" .. dir)
    assert.is_true(ok, out)
    assert.is_true(sh("test -f " .. dir .. "/lib/lua/5.4/deepresearch/core.so"))
    for _, f in ipairs(lua_files()) do
      assert.is_true(sh("test -f " .. dir .. "/share/lua/5.4/" .. f), f)
    end
    -- The prefix is on no default path, so make install says what to add, for this prefix.
    assert.truthy(out:find("export LUA_PATH='" .. dir .. "/share/lua/5.4/?.lua;" .. dir ..
      "/share/lua/5.4/?/init.lua;;'", 1, true), out)
    assert.truthy(out:find("export LUA_CPATH='" .. dir .. "/lib/lua/5.4/?.so;;'", 1, true), out)

    mark(dir .. "/share/lua/5.4/deepresearch/cli/init.lua", "cli from the prefix")
    mark(dir .. "/share/lua/5.4/deepresearch/worker/cli.lua", "worker from the prefix")
    local got
    ok, got = run_from_root(dir .. "/bin/deepresearch --version")
    assert.is_true(ok, got)
    assert.matches("cli from the prefix", got)
    assert.matches("deepresearch %d+%.%d+%.%d+ %(Lua 5%.4", got)
    ok, got = run_from_root(dir .. "/bin/deepresearch-worker --help")
    assert.is_true(ok, got)
    assert.matches("worker from the prefix", got)
    assert.matches("usage: deepresearch%-worker", got)

    -- The C module comes from the prefix too: a broken one there is the one reported.
    assert(sh("echo broken > " .. dir .. "/lib/lua/5.4/deepresearch/core.so"))
    got = select(2, run_from_root(dir .. "/bin/deepresearch --version"))
    assert.truthy(got:find(dir .. "/bin/../lib/lua/5.4/deepresearch/core.so", 1, true), got)
    sh("rm -rf " .. dir)
  end)

  it("a symlink to an installed command finds the modules of the link's target", function()
    local dir, links = tmpdir(), tmpdir()
    assert(sh("make -s install PREFIX=" .. dir))
    assert(sh("ln -s " .. dir .. "/bin/deepresearch " .. links .. "/dr"))
    local ok, got = run_from_root(links .. "/dr --version")
    assert.is_true(ok, got)
    assert.matches("deepresearch %d+%.%d+%.%d+", got)
    sh("rm -rf " .. dir .. " " .. links)
  end)

  it("DESTDIR stages the tree without its path leaking into any installed file", function()
    local stage = tmpdir()
    local ok, out = sh("make -s install DESTDIR=" .. stage .. " PREFIX=/opt/dr")
    assert.is_true(ok, out)
    local root = stage .. "/opt/dr"
    assert.is_true(sh("test -x " .. root .. "/bin/deepresearch"))
    local found = select(2, sh("grep -rl '" .. stage .. "' " .. stage .. " || true"))
    assert.equals("", found)
    -- The hint names the prefix the files will live in, not the staging root.
    assert.truthy(out:find("export LUA_CPATH='/opt/dr/lib/lua/5.4/?.so;;'", 1, true), out)
    assert.falsy(out:find(stage, 1, true), out)
    -- Moved into place (here: run where staged), the commands work as they are.
    local got
    ok, got = run_from_root(root .. "/bin/deepresearch --version")
    assert.is_true(ok, got)
    ok, got = run_from_root(root .. "/bin/deepresearch-worker --help")
    assert.is_true(ok, got)
    sh("rm -rf " .. stage)
  end)

  -- 5.4 is the case above; LuaJIT and 5.1 are the ones whose ABI directory differs from the
  -- interpreter's name (5.2 and 5.3 go as 5.4 does, and each build here costs seconds).
  it("LUA_VERSION picks the commands' interpreter: luajit, lua5.1", function()
    local cases = {
      { v = "luajit", interp = "luajit", abi = "5.1", worker = true },
      { v = "5.1", interp = "lua5.1", abi = "5.1" }, -- the worker needs 5.2+ or LuaJIT
    }
    local ran = 0
    for _, c in ipairs(cases) do
      local headers = c.v == "luajit" and "/usr/include/luajit-2.1" or "/usr/include/lua" .. c.v
      if installed(c.interp) and sh("test -d " .. headers) then
        ran = ran + 1
        local dir = tmpdir()
        local ok, out = sh("make -s install LUA_VERSION=" .. c.v .. " PREFIX=" .. dir)
        assert.is_true(ok, out)
        for _, b in ipairs({ "deepresearch", "deepresearch-worker" }) do
          assert.equals("#!/usr/bin/env " .. c.interp, first_line(dir .. "/bin/" .. b))
        end
        assert.is_true(sh("test -f " .. dir .. "/lib/lua/" .. c.abi .. "/deepresearch/core.so"))
        local got
        ok, got = run_from_root(dir .. "/bin/deepresearch --version")
        assert.is_true(ok, got)
        assert.matches("%(Lua " .. c.abi:gsub("%.", "%%.") .. ",", got)
        if c.worker then
          ok, got = run_from_root(dir .. "/bin/deepresearch-worker --help")
          assert.is_true(ok, got)
        end
        sh("rm -rf " .. dir)
      end
    end
    assert.is_true(ran > 0, "no other Lua installed (Debian packages luajit, lua5.1)")
  end)

  it("says nothing more when the prefix is already on the interpreter's default paths", function()
    local ok, out = sh("scripts/lua-env hint lua5.4 /usr/local/share/lua/5.4 " ..
      "/usr/local/lib/lua/5.4")
    assert.is_true(ok, out)
    assert.equals("", out)
  end)
end)

describe("make env", function()
  for _, v in ipairs({ "5.4", "luajit" }) do
    it("prints the export lines for this tree on " .. v .. ", usable from any directory", function()
      local interp = v == "luajit" and "luajit" or "lua" .. v
      if not installed(interp) then pending(interp .. " is not installed") return end
      local ok, out = sh("make -s env LUA_VERSION=" .. v .. " 2>/dev/null")
      assert.is_true(ok, out)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equals(2, #lines, out)
      assert.matches("^export LUA_PATH='/.-/lua/%?%.lua;/.-/lua/%?/init%.lua;;'$", lines[1])
      assert.matches("^export LUA_CPATH='/.-/build/" .. v:gsub("%.", "%%.") .. "/%?%.so;;'$",
        lines[2])
      assert(sh("make -s LUA_VERSION=" .. v .. " all"))
      local got
      ok, got = sh("eval \"$(make -s env LUA_VERSION=" .. v .. ")\" && cd / && " .. interp ..
        " -e 'local dr = require(\"deepresearch\"); print(dr.version)'")
      assert.is_true(ok, got)
      assert.matches("^%d+%.%d+%.%d+", got)
    end)
  end
end)

describe("make lint", function()
  it("installs what it misses first (scripts/deps lint), as test and demo do", function()
    local ok, out = sh("make -n lint")
    assert.is_true(ok, out)
    local deps = out:find("scripts/deps lint", 1, true)
    assert.truthy(deps, out)
    assert.truthy(deps < assert(out:find("luacheck", 1, true)), out)
  end)
end)

describe("make test's progress", function()
  local dir, results
  before_each(function()
    dir, results = tmpdir(), tmpdir()
    local function write(name, text)
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
    end
    write("a_spec.lua", 'describe("a", function() it("one", function() end) ' ..
      'it("two", function() end) end)\n')
    write("b_spec.lua", 'describe("b", function() it("ok", function() end) ' ..
      'it("bad", function() error("no") end) end)\n')
    write("c_spec.lua", 'os.exit(3)\n') -- a file whose run dies counts as a failure
  end)
  after_each(function() sh("rm -rf " .. dir .. " " .. results) end)

  local function run_specs(env)
    -- The outer run may itself be quiet (CI's other-Lua passes set DR_QUIET): start from neither.
    return sh("env -u DR_QUIET " .. env .. " DR_RESULTS=" .. results ..
      " scripts/run-specs lua5.4 build/5.4 lbl " .. dir)
  end

  it("prints one line per spec file as it finishes, then the run's line", function()
    local ok, out = run_specs("")
    assert.is_true(ok, out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    local quoted = dir:gsub("%p", "%%%0")
    assert.matches("^  " .. quoted .. "/a_spec%.lua: 2 passed, 0 failed, %d+%.%d s$", lines[1])
    assert.matches("/b_spec%.lua: 1 passed, 1 failed, %d+%.%d s$", lines[2])
    assert.matches("/c_spec%.lua: 0 passed, 1 failed, %d+%.%d s$", lines[3])
    assert.equals("lbl: 3 passed, 2 failed", lines[4])
    local _, tap = sh("cat " .. results .. "/lbl.tap")
    local _, oks = tap:gsub("\nok ", "")
    local _, not_oks = tap:gsub("\nnot ok ", "")
    assert.equals(3, oks + (tap:find("^ok ") and 1 or 0))
    assert.equals(2, not_oks + (tap:find("^not ok ") and 1 or 0))
  end)

  it("DR_QUIET runs print only the run's line, with the same counts", function()
    local ok, out = run_specs("DR_QUIET=1")
    assert.is_true(ok, out)
    assert.equals("lbl: 3 passed, 1 failed\n", out) -- one busted run: c_spec ends it early
  end)

  it("the summary adds the total time before its last line, N passed, N failed", function()
    run_specs("DR_QUIET=1")
    assert(sh("echo $(( $(date +%s) - 75 )) > " .. results .. "/started"))
    local ok, out = sh("scripts/summary " .. results .. " " .. results .. "/started")
    assert.is_false(ok)
    assert.matches("^total time: 1m 1[5-9]s\n%d+ passed, %d+ failed\n$", out)
    local started = select(2, sh("make -n test"))
    assert.truthy(started:find("date +%s >build/results/started", 1, true), started)
    assert.truthy(started:find("scripts/summary build/results build/results/started", 1, true),
      started)
  end)
end)

describe("luarocks make", function()
  it("builds offline, out of tree: the checkout stays clean, every module is installed", function()
    if not sh("command -v luarocks >/dev/null") then
      error("luarocks is not installed (Debian package luarocks)")
    end
    local tree, src = tmpdir(), tmpdir()
    -- A clean copy of this working tree (its files as git knows them, or, outside a git
    -- checkout, all but build/), made its own git checkout.
    if sh("git rev-parse --is-inside-work-tree >/dev/null") then
      assert.is_true(sh("git ls-files -z --cached --others --exclude-standard | " ..
        "xargs -0 -I{} sh -c 'test -e \"{}\" && cp --parents \"{}\" " .. src .. "'"))
    else
      assert.is_true(sh("tar --exclude=./build --exclude=node_modules -cf - . | tar -C " .. src ..
        " -xf -"))
    end
    assert(sh("cd " .. src .. " && git init -q && git add -A && " ..
      "git -c user.name=spec -c user.email=spec@localhost commit -qm copy"))
    local ok, out = sh("cd " .. src .. " && luarocks --lua-version=5.4 --tree=" .. tree ..
      " make rockspec/deepresearch-scm-1.rockspec")
    assert.is_true(ok, out)
    local _, status = sh("cd " .. src .. " && git status --porcelain")
    assert.equals("", status)
    for _, f in ipairs(lua_files()) do
      assert.is_true(sh("test -f " .. tree .. "/share/lua/5.4/" .. f), f .. " not installed")
    end
    local got
    ok, got = sh(
      string.format("cd / && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' " ..
      "LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'print(require\"deepresearch\".version)'", tree,
      tree, tree))
    assert.is_true(ok, got)
    assert.matches("^%d+%.%d+%.%d+", got)
    ok, got = run_from_root(tree .. "/bin/deepresearch --version")
    assert.is_true(ok, got)
    sh("rm -rf " .. tree .. " " .. src)
  end)
end)

-- make install and the rockspec: the standard layout, usable from another directory.
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("exit=(%d+)%s*$") == "0", out
end

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end

local function lua_files()
  local p = io.popen("cd lua && find deepresearch -name '*.lua' | sort")
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  return files
end

describe("install", function()
  it("make install PREFIX=dir uses lib/lua/<abi>, share/lua/<abi> and bin", function()
    local dir = tmpdir()
    local ok, out = sh("make -s install PREFIX=" .. dir)
    assert.is_true(ok, out)
    assert.is_true(sh("test -f " .. dir .. "/lib/lua/5.4/deepresearch/core.so"))
    for _, f in ipairs(lua_files()) do
      assert.is_true(sh("test -f " .. dir .. "/share/lua/5.4/" .. f), f)
    end
    assert.is_true(sh("test -x " .. dir .. "/bin/deepresearch"))
    local env = string.format(
      "cd / && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' " ..
      "LUA_CPATH='%s/lib/lua/5.4/?.so;;' ", dir, dir, dir)
    local got
    ok, got = sh(env .. "lua5.4 -e 'print(require\"deepresearch\".version)'")
    assert.is_true(ok, got)
    assert.matches("^%d+%.%d+%.%d+", got)
    ok, got = sh(env .. dir .. "/bin/deepresearch --version")
    assert.is_true(ok, got)
    sh("rm -rf " .. dir)
  end)

  it("the rockspec lists every Lua module and every source file", function()
    local f = assert(io.open("rockspec/deepresearch-scm-1.rockspec"))
    local text = f:read("*a")
    f:close()
    for _, path in ipairs(lua_files()) do
      assert.truthy(
        text:find('"lua/' .. path .. '"', 1, true), path .. " missing from the rockspec")
    end
    local p = io.popen("ls src/*.c")
    for c in p:lines() do
      assert.truthy(text:find('"' .. c .. '"', 1, true), c .. " missing from the rockspec")
    end
    p:close()
  end)

  it("luarocks make builds and installs offline", function()
    if not sh("command -v luarocks >/dev/null") then
      error("luarocks is not installed (Debian package luarocks)")
    end
    local tree, src = tmpdir(), tmpdir()
    assert.is_true(sh("git ls-files -z | xargs -0 -I{} cp --parents {} " .. src))
    local ok, out = sh("cd " .. src .. " && luarocks --lua-version=5.4 --tree=" .. tree ..
      " make rockspec/deepresearch-scm-1.rockspec")
    assert.is_true(ok, out)
    local got
    ok, got = sh(
      string.format("cd / && LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' " ..
      "LUA_CPATH='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'print(require\"deepresearch\".version)'", tree,
      tree, tree))
    assert.is_true(ok, got)
    assert.matches("^%d+%.%d+%.%d+", got)
    sh("rm -rf " .. tree .. " " .. src)
  end)
end)

-- Allocation failure at every point of a script that drives the C core: a Lua
-- error each time, never a crash, and (under valgrind) nothing leaked.
local env = require "support.env"

-- os.execute returns true on 5.2+, 0 on 5.1/LuaJIT
local function run(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function have(cmd) return run("command -v " .. cmd .. " >/dev/null 2>&1") end

describe("allocation failures", function()
  it("end in a clean error at every allocation, leaking nothing", function()
    assert.is_true(have("cc"), "a C compiler is needed for this spec")
    local s = env.sim()
    s:reset()
    local bin = "build/alloc_fail"
    local cmd = table.concat({ "cc -std=c99 -O1 -g -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc",
      "-I/usr/include/lua5.4 $(pkg-config --cflags libcurl) -o", bin, "spec/c/alloc_fail.c src/*.c",
      "-llua5.4 $(pkg-config --libs libcurl libcrypto) -lm" }, " ")
    assert.is_true(run(cmd), "build failed: " .. cmd)
    local runner = have("valgrind") and
      "valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite " ..
      "--suppressions=scripts/valgrind.supp " or ""
    local p = io.popen(runner .. bin .. " " .. s.url .. " 2>&1; echo \"exit=$?\"")
    local out = p:read("*a")
    p:close()
    assert.matches("exit=0", out)
    assert.matches("alloc_fail: %d+ allocations, %d+ runs failed cleanly", out)
    local total, failed = out:match("(%d+) allocations, (%d+) runs")
    assert.truthy(tonumber(failed) > 0 and tonumber(total) > 100, out)
  end)
end)

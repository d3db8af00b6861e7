-- Loading: the plugin file, and what a user sees when the C module is missing or built for
-- another Lua — under this Neovim, under a fresh Neovim (checkhealth) and under plain LuaJIT.
-- luacheck: globals vim
local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

-- require("deepresearch") with package.cpath replaced, restoring every loaded module after.
local function require_with_cpath(cpath)
  local saved_cpath, saved = package.cpath, {}
  for _, name in ipairs({ "deepresearch", "deepresearch.core" }) do
    saved[name] = package.loaded[name]
    package.loaded[name] = nil
  end
  package.cpath = cpath
  local ok, msg = pcall(require, "deepresearch")
  package.cpath = saved_cpath
  for name, v in pairs(saved) do package.loaded[name] = v end
  return ok, tostring(msg)
end

local function read_all(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- A copy of the plugin (lua/ and plugin/) in a fresh directory, optionally with a core.so.
local function plugin_copy(root, so)
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  vim.fn.system({ "cp", "-r", root .. "/lua", root .. "/plugin", dir })
  if so then
    vim.fn.mkdir(dir .. "/build/luajit/deepresearch", "p")
    vim.fn.system({ "cp", so, dir .. "/build/luajit/deepresearch/core.so" })
  end
  return dir
end

-- Starts a second Neovim on a plugin copy, without a token in its environment.
-- extra: more NAME=value environment entries for it.
local function nested(root, dir, extra)
  local out = dir .. "/out.json"
  local cmd = {
    "env", "-u", "EXTRUCT_API_TOKEN", "-u", "DR_SIM_URL", "-u", "DR_NO_CJSON", "-u",
    "DEEPRESEARCH_NVIM_TRANSPORT", "DR_OUT=" .. out,
  }
  for _, e in ipairs(extra or {}) do cmd[#cmd + 1] = e end
  for _, a in ipairs({ "timeout", "60", "nvim", "--headless", "-u", "NONE", "-i", "NONE",
    "--cmd", "set rtp^=" .. dir, "-c", "luafile " .. root .. "/spec/nvim/nested.lua" }) do
    cmd[#cmd + 1] = a
  end
  vim.fn.system(cmd)
  local text = read_all(out)
  if not text then return { error = "the nested Neovim wrote nothing" } end
  return vim.json.decode(text)
end

local function joined(lines) return table.concat(lines or {}, "\n") end

-- The error notifications' text when there are two and they are the same, else what differs.
local function error_note(res)
  local msgs = {}
  for _, n in ipairs(res.notes or {}) do
    if n.level == vim.log.levels.ERROR then msgs[#msgs + 1] = n.msg end
  end
  if #msgs == 2 and msgs[1] == msgs[2] then return msgs[1] end
  return "expected the same error twice, got: " .. table.concat(msgs, " | ")
end

return function(t, env)
  local root = env.root

  vim.cmd("runtime plugin/deepresearch.lua")
  t.is(vim.fn.exists(":DeepResearch"), 2, "plugin/deepresearch.lua defines :DeepResearch")
  t.is(vim.fn.exists(":DeepResearchWait"), 2, "plugin/deepresearch.lua defines :DeepResearchWait")
  t.is(vim.fn.exists(":DeepResearchList"), 2, "plugin/deepresearch.lua defines :DeepResearchList")
  t.is(vim.fn.exists(":DeepResearchRespond"), 2,
    "plugin/deepresearch.lua defines :DeepResearchRespond")
  t.ok(has(package.cpath, root .. "/build/luajit/?.so"),
    "the plugin puts <root>/build/luajit/?.so on package.cpath", package.cpath)
  t.ok(pcall(require, "deepresearch"), "the luajit build loads in Neovim")

  -- Missing, in this Neovim: one message naming the ABI and the command that builds it.
  local ok, msg = require_with_cpath("/nonexistent/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so")
  t.ok(not ok and has(msg, "luajit (Lua 5.1 ABI)") and has(msg, "make LUA_VERSION=luajit"),
    "in Neovim, a missing module fails naming the Lua ABI and `make LUA_VERSION=luajit`", msg)

  -- Under plain LuaJIT too.
  local code = "package.path = '" .. root .. "/lua/?.lua;" .. root ..
    "/lua/?/init.lua;' .. package.path " ..
    "package.cpath = arg[1] " ..
    "local ok, e = pcall(require, 'deepresearch') io.write(ok and 'LOADED' or tostring(e))"
  msg = vim.fn.system({ "luajit", "-e", code, "/nonexistent/?.so" })
  t.ok(has(msg, "luajit (Lua 5.1 ABI)") and has(msg, "make LUA_VERSION=luajit"),
    "under luajit, a missing module fails naming the Lua ABI and the build command", msg)

  if env.abi54 and vim.loop.fs_stat(env.abi54) then
    local dir54 = env.abi54:match("^(.*)/deepresearch/core%.so$")
    ok, msg = require_with_cpath(dir54 .. "/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so")
    t.ok(not ok and has(msg, "luajit (Lua 5.1 ABI)") and has(msg, "make LUA_VERSION=luajit")
      and has(msg, "undefined symbol"),
      "in Neovim, a module built for Lua 5.4 fails naming the ABI it needs " ..
        "and the build command", msg)
    msg = vim.fn.system({ "luajit", "-e", code, dir54 .. "/?.so" })
    t.ok(has(msg, "luajit (Lua 5.1 ABI)") and has(msg, "make LUA_VERSION=luajit"),
      "under luajit, a module built for Lua 5.4 fails naming the ABI and the build command", msg)

    -- transport = "core": what the C module's own failure looks like (auto falls back to curl).
    local res = nested(root, plugin_copy(root, env.abi54), { "DR_NESTED_TRANSPORT=core" })
    local health = joined(res.health)
    t.ok(has(health, "ERROR: deepresearch.core is built for another Lua ABI") and
      has(health, "make LUA_VERSION=luajit"),
      ":checkhealth names a module built for another Lua ABI", res.error or health)
    local note = error_note(res)
    t.ok(has(note, "luajit (Lua 5.1 ABI)") and has(note, "make LUA_VERSION=luajit"),
      ":DeepResearch with a wrong-ABI module notifies the ABI and the build command, each time",
      res.error or note)
  else
    t.skip("a module built for Lua 5.4 fails under Neovim with a clear message", "no Lua 5.4 build")
    t.skip("a module built for Lua 5.4 fails under luajit with a clear message", "no Lua 5.4 build")
    t.skip(":checkhealth names a module built for another Lua ABI", "no Lua 5.4 build")
    t.skip(":DeepResearch with a wrong-ABI module notifies the ABI", "no Lua 5.4 build")
  end

  -- Built, but no lua-cjson on the C path: the core decodes with vim.json.
  if env.url then
    local res = nested(root, plugin_copy(root, root .. "/build/luajit/deepresearch/core.so"),
      { "DR_NO_CJSON=1", "DR_SIM_URL=" .. env.url })
    t.ok(res.cjson == false and res.user == "alice@acme.test" and res.task_status == "created",
      "without lua-cjson the module falls back to vim.json and talks to the API",
      res.error or vim.inspect(res))
    t.ok(res.nulls_absent == true,
      "issue 14 item 5: with vim.json, JSON nulls are absent keys, not vim.NIL",
      res.error or vim.inspect(res))
    t.ok(has(joined(res.health), "OK: lua-cjson not found for LuaJIT; using vim.json instead"),
      ":checkhealth reports the vim.json fallback", joined(res.health))
  end

  -- What checkhealth says for each way loading can fail.
  local health = require "deepresearch.health"
  local title = health.diagnose(
    "error loading module 'deepresearch.core' from file 'x/core.so':\n" ..
    "\tlibcurl.so.4: cannot open shared object file: No such file or directory", root)
  t.ok(has(title, "libcurl is missing"), ":checkhealth names a missing libcurl", title)
  title = health.diagnose("error loading module 'deepresearch.core' from file 'x/core.so':\n" ..
    "\tx/core.so: undefined symbol: lua_getiuservalue", root)
  t.ok(has(title, "another Lua ABI"),
    ":checkhealth names an undefined lua_* symbol as the wrong ABI", title)
  title = health.diagnose("deepresearch.core needs lua-cjson (module 'cjson')", root)
  t.ok(has(title, "lua-cjson is missing"), ":checkhealth names a missing lua-cjson", title)

  -- Not built at all, in a fresh Neovim, transport = "core": checkhealth and :DeepResearch say
  -- what to run. (With the default transport, auto, curl stands in: transport_curl_test.lua.)
  local res = nested(root, plugin_copy(root, nil), { "DR_NESTED_TRANSPORT=core" })
  local report = joined(res.health)
  t.ok(has(report, "ERROR: deepresearch.core is not built")
    and has(report, "make LUA_VERSION=luajit"),
    ":checkhealth names a module that is not built and the command that builds it",
    res.error or report)
  t.ok(has(report, "no API token") and has(report, "EXTRUCT_API_TOKEN"),
    ":checkhealth names a missing token", res.error or report)
  local note = error_note(res)
  t.ok(has(note, "luajit (Lua 5.1 ABI)") and has(note, "make LUA_VERSION=luajit"),
    ":DeepResearch without the module notifies the ABI and the build command, " ..
      "each time (never raises)",
    res.error or note)
end

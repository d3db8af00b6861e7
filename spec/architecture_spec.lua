-- Issue 14 part 9: the architecture's rules, read off the source. Every `require` is read by
-- folder (the literal module names, also inside functions and pcall), and each rule is checked
-- on the whole graph, so a lazy require cannot hide a dependency.
local M = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function lines(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- Comments out (a require named in a comment is no dependency); strings stay.
local function code_of(text)
  text = text:gsub("%-%-%[(=*)%[.-%]%1%]", "")
  return (text:gsub("%-%-[^\n]*", ""))
end

--- The module names a Lua source requires: require "x", require("x"), require 'x',
-- pcall(require, "x").
function M.requires(text)
  local found, seen = {}, {}
  local code = code_of(text)
  local patterns = { "require%s*%(?%s*[\"']([%w%._]+)[\"']",
    "pcall%(%s*require%s*,%s*[\"']([%w%._]+)[\"']" }
  for _, pattern in ipairs(patterns) do
    for name in code:gmatch(pattern) do
      if not seen[name] then
        seen[name] = true
        found[#found + 1] = name
      end
    end
  end
  return found
end

-- lua/deepresearch/a/b.lua -> deepresearch.a.b; .../init.lua -> its folder's name.
local function module_of(path)
  local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  return name
end

local function library()
  local mods = {}
  for _, path in ipairs(lines("find lua/deepresearch -name '*.lua' | sort")) do
    mods[module_of(path)] = { path = path, text = read(path) }
  end
  for _, m in pairs(mods) do m.requires = M.requires(m.text) end
  return mods
end

-- Every module reachable from name through requires (itself included).
local function reach(mods, name)
  local seen, stack = { [name] = true }, { name }
  while #stack > 0 do
    local m = mods[table.remove(stack)]
    for _, dep in ipairs(m and m.requires or {}) do
      if not seen[dep] then
        seen[dep] = true
        stack[#stack + 1] = dep
      end
    end
  end
  return seen
end

local function in_part(name, part)
  return name == part or name:sub(1, #part + 1) == part .. "."
end

-- "module -> dependency" for each module chosen by `from` whose dependencies (deps_of) include
-- one that `forbidden` names, sorted.
local function edges(mods, from, deps_of, forbidden)
  local bad = {}
  for name in pairs(mods) do
    if from(name) then
      for _, dep in ipairs(deps_of(name)) do
        if forbidden(dep) then bad[#bad + 1] = name .. " -> " .. dep end
      end
    end
  end
  table.sort(bad)
  return bad
end

describe("architecture (issue 14 part 9)", function()
  local mods
  setup(function() mods = library() end)

  it("item 9: reads requires in every form, and not in comments", function()
    local text = "local a = require 'x.a'\nlocal b = require(\"x.b\")\nlocal c = require " ..
      "\"x.c\"\n" ..
      "local ok, d = pcall(require, \"x.d\")\n-- require 'x.comment'\n--[[ require 'x.block' ]]"
    assert.same({ "x.a", "x.b", "x.c", "x.d" }, M.requires(text))
    assert.is_table(mods["deepresearch.base.errors"])
    assert.is_table(mods["deepresearch"])
    assert.is_true(#mods["deepresearch"].requires > 3)
  end)

  it("item 9: base/, brief, schema/ and report/ never reach the core or runtime/", function()
    local bad = edges(mods, function(name)
      return in_part(name, "deepresearch.base") or name == "deepresearch.brief" or
        in_part(name, "deepresearch.schema") or in_part(name, "deepresearch.report")
    end, function(name)
      local list = {}
      for dep in pairs(reach(mods, name)) do list[#list + 1] = dep end
      return list
    end, function(dep)
      return dep == "deepresearch.core" or in_part(dep, "deepresearch.runtime") or
        dep == "deepresearch"
    end)
    assert.same({}, bad)
  end)

  it("item 9: nothing under sim/ requires deepresearch.*", function()
    local bad = {}
    for _, path in ipairs(lines("find sim -name '*.lua' | sort")) do
      for _, dep in ipairs(M.requires(read(path))) do
        if in_part(dep, "deepresearch") then bad[#bad + 1] = path .. " -> " .. dep end
      end
    end
    assert.same({}, bad)
  end)

  it("item 9: src/ and include/ never mention vim", function()
    local hits = lines("grep -rniw 'vim' src include || true")
    assert.same({}, hits)
  end)

  it("item 9: only nvim/ uses vim (the health shim only hands over)", function()
    local bad = {}
    for name, m in pairs(mods) do
      if not in_part(name, "deepresearch.nvim") and code_of(m.text):find("%f[%w_]vim[%.%[]") then
        bad[#bad + 1] = m.path
      end
    end
    table.sort(bad)
    assert.same({}, bad)
  end)

  it("item 9: the command and the worker reach providers only through the front and the " ..
    "registry", function()
    local bad = edges(mods, function(name)
      return in_part(name, "deepresearch.cli") or in_part(name, "deepresearch.worker")
    end, function(name) return mods[name].requires end, function(dep)
      return in_part(dep, "deepresearch.providers") and dep ~= "deepresearch.providers"
    end)
    assert.same({}, bad)
  end)

  it("item 9: no module outside providers/ names a provider", function()
    local names = {}
    for _, line in ipairs(lines("ls lua/deepresearch/providers")) do
      local n = line:match("^(%w+)%.lua$")
      if n and n ~= "init" and n ~= "limits" and n ~= "toolkit" then names[#names + 1] = n end
    end
    assert.is_true(#names >= 2)
    local bad = {}
    for name, m in pairs(mods) do
      if not in_part(name, "deepresearch.providers") then
        local code = code_of(m.text)
        for _, p in ipairs(names) do
          -- A provider's name as a whole string literal, or in a comparison.
          if code:find("[\"']" .. p .. "[\"']") then bad[#bad + 1] = m.path .. ": " .. p end
        end
      end
    end
    table.sort(bad)
    assert.same({}, bad)
  end)

  -- Issue 14 (rest): the editor reads create parameters, flags, ids and columns off the
  -- descriptors, so no provider's field name appears in nvim/'s code. Words every provider's
  -- create takes are no one's own; `brief` is the project's word for a task's text (dr.brief)
  -- and `input` is vim.ui.input; `output_schema` is also the project's word for a schema
  -- (worker jobs, dr.brief.lint), and research's older name for its schema option.
  it("issue 14: nothing under nvim/ names a provider's fields (depth, mode, query ...)",
    function()
    local providers = require "deepresearch.providers"
    local words, count, n = {}, {}, 0
    for _, name in ipairs(providers.names()) do
      local d = providers.get(name)
      n = n + 1
      local own = {}
      for k in pairs(d.cli.flags) do own[k] = true end
      for _, kind in pairs(d.kinds) do
        if kind.id_field ~= "id" then own[kind.id_field] = true end
      end
      local ok, mod = pcall(require, d.module)
      local create = ok and mod.accepts and mod.accepts.create
      for k in pairs(create and create.fields or {}) do own[k] = true end
      for k in pairs(own) do
        words[k], count[k] = true, (count[k] or 0) + 1
      end
    end
    for k in pairs(words) do
      if count[k] == n or k == "brief" or k == "input" or k == "output_schema" then
        words[k] = nil
      end
    end
    assert.is_true(words.depth and words.mode and words.query and words.deepresearch_id)
    -- As a field (task.depth), a table key ({ depth = ...}) or a string ("depth"); module
    -- names (deepresearch.nvim.x) and calls (vim.fn.mode()) are no fields.
    local function names_field(code, w)
      return code:find("[%w_%]%)]%." .. w .. "[^%w_(]") or code:find("[{,]%s*" .. w .. "%s*=")
        or code:find("[\"']" .. w .. "[\"']")
    end
    local bad = {}
    for name, m in pairs(mods) do
      if in_part(name, "deepresearch.nvim") then
        local code = code_of(m.text):gsub("[\"']deepresearch[%w%._]*[\"']", "\"\"")
        for w in pairs(words) do
          if names_field(code, w) then bad[#bad + 1] = m.path .. ": " .. w end
        end
      end
    end
    table.sort(bad)
    assert.same({}, bad)
  end)
end)

-- The journal (lua/deepresearch/journal.lua) and its C writer core.append_line: records merged
-- per create, a torn last line skipped, private file and directories, no token, no full brief.
local host = require "support.host"
local journal = require "deepresearch.journal"
local core = require "deepresearch.core"
local json = require "deepresearch.base.json"

local tmpdir = host.tmpdir
local mode_of = host.mode_of
local slurp = host.read

local function lines(path)
  local out = {}
  for l in (slurp(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- Runs a Lua chunk in a fresh lua5.4 with env words in front; returns its stdout.
local function lua_with(env, chunk, cpath)
  local p = io.popen("env -u DEEPRESEARCH_JOURNAL " .. env ..
    " LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='" .. (cpath or "build/5.4/?.so") ..
    "' lua5.4 -e '" .. chunk:gsub("'", "'\\''") .. "' 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

describe("core.append_line", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("appends whole lines to a new 0600 file", function()
    local path = dir .. "/j.jsonl"
    assert.is_true(core.append_line(path, '{"a":1}'))
    assert.is_true(core.append_line(path, '{"b":2}'))
    assert.are.equal('{"a":1}\n{"b":2}\n', slurp(path))
    assert.are.equal("600", mode_of(path))
  end)

  it("returns nil, message when the file cannot be opened", function()
    local ok, msg = core.append_line(dir .. "/no/such/dir/j.jsonl", "x")
    assert.is_nil(ok)
    assert.matches("cannot open .*no/such/dir/j.jsonl: ", msg)
  end)

  it("refuses a line holding a newline (it would be two records)", function()
    assert.has_error(function() core.append_line(dir .. "/j", "a\nb") end)
    assert.is_nil(slurp(dir .. "/j"))
  end)

  it("mkdir_private makes missing parents 0700", function()
    assert.is_true(core.mkdir_private(dir .. "/a/b/c"))
    assert.are.equal("700", mode_of(dir .. "/a"))
    assert.are.equal("700", mode_of(dir .. "/a/b/c"))
    assert.is_true(core.mkdir_private(dir .. "/a/b/c")) -- already there
    local f = io.open(dir .. "/file", "w")
    f:close()
    local ok, msg = core.mkdir_private(dir .. "/file/sub")
    assert.is_nil(ok)
    assert.matches("cannot create directory", msg)
  end)
end)

describe("journal", function()
  local dir, path
  before_each(function()
    dir = tmpdir()
    path = dir .. "/state/deepresearch/journal.jsonl"
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("is dr.journal", function()
    assert.are.equal(journal, require("deepresearch").journal)
  end)

  it("writes before the create and again with the id; entries merge them", function()
    local j = assert(journal.open{ path = path })
    assert.are.equal(path, j.path)
    local ref = j:begin{ provider = "extruct", source = "cli",
      brief = "Research Acme Corp.\nIts market, its rivals." }
    assert.are.equal(1, #lines(path)) -- before any create is sent
    local e = j:entries()
    assert.are.equal(1, #e)
    assert.are.equal("unknown", e[1].state) -- no answer yet
    assert.are.equal("deepresearch list --provider extruct", e[1].find)
    j:created(ref, { id = "3f9a1c2e-0000-4000-8000-000000000001", status = "pending" })
    j:update(ref, { state = "done", cost = { usd = 1.25 }, report_path = "/tmp/r.md" })
    assert.are.equal(3, #lines(path))
    e = j:entries()
    assert.are.equal(1, #e)
    local r = e[1]
    assert.are.equal("3f9a1c2e-0000-4000-8000-000000000001", r.id)
    assert.are.equal("extruct", r.provider)
    assert.are.equal("Research Acme Corp. Its market, its rivals.", r.brief_head)
    assert.are.equal("done", r.state)
    assert.are.equal(1.25, r.cost.usd)
    assert.are.equal("/tmp/r.md", r.report_path)
    assert.are.equal("cli", r.source)
    assert.is_number(r.created_at)
    assert.is_number(r.updated_at)
    assert.is_nil(r.find)
    assert.is_nil(r.brief)
  end)

  it("records the state of the created task and updates by id", function()
    local j = assert(journal.open{ path = path })
    local ref = j:begin{ provider = "valyu", brief = "b", source = "nvim" }
    j:created(ref, { deepresearch_id = "dr_abcdef123", status = "running" })
    assert.are.equal("running", j:entries()[1].state)
    assert.are.equal("dr_abcdef123", j:entries()[1].id)
    j:update("dr_abcdef123", { state = "failed", error = { code = "task_failed" }, seen = true })
    local r = j:entries()[1]
    assert.are.equal("failed", r.state)
    assert.are.equal("task_failed", r.error)
    assert.is_true(r.seen)
  end)

  it("creates its directories 0700 and its file 0600", function()
    local j = assert(journal.open{ path = path })
    j:begin{ provider = "extruct", brief = "x" }
    assert.are.equal("700", mode_of(dir .. "/state"))
    assert.are.equal("700", mode_of(dir .. "/state/deepresearch"))
    assert.are.equal("600", mode_of(path))
  end)

  it("keeps the first 80 characters of the brief on one line unless briefs = true", function()
    local brief = string.rep("word ", 40) .. "\nsecret plan"
    local j = assert(journal.open{ path = path })
    j:begin{ provider = "extruct", brief = brief }
    local text = slurp(path)
    assert.is_nil(text:find("secret plan", 1, true))
    local r = j:entries()[1]
    assert.are.equal(80, #r.brief_head)
    assert.is_nil(r.brief_head:find("\n"))
    local j2 = assert(journal.open{ path = path, briefs = true })
    j2:begin{ provider = "extruct", brief = brief }
    assert.are.equal(brief, j2:entries()[1].brief)
  end)

  it("skips a torn last line and any line that is not an event", function()
    local j = assert(journal.open{ path = path })
    local ref = j:begin{ provider = "extruct", brief = "one" }
    j:created(ref, "aaaaaa111111")
    local f = io.open(path, "ab")
    f:write("not json\n", '{"ref":"j1-2","ev":"update","state":"do') -- torn: no newline
    f:close()
    local e = j:entries()
    assert.are.equal(1, #e)
    assert.are.equal("aaaaaa111111", e[1].id)
    -- The next write ends the torn line first: its own line stays readable.
    j:update(ref, { state = "done" })
    assert.are.equal("done", j:entries()[1].state)
    assert.are.equal(1, #journal.open{ path = path }:entries{ provider = "extruct" })
  end)

  it("lists newest first, filtered by provider, state, since and source", function()
    local j = assert(journal.open{ path = path })
    local function add(provider, id, at, state, source)
      core.append_line(path, json.encode({ ref = "j" .. id, ev = "begin", provider = provider,
        brief_head = id, created_at = at, state = "creating", source = source, t = at }))
      core.append_line(path, json.encode({ ref = "j" .. id, ev = "created", id = id,
        state = state, t = at + 1 }))
    end
    add("extruct", "aaaaaa01", 100, "done", "cli")
    add("valyu", "bbbbbb02", 300, "running", "nvim")
    add("extruct", "cccccc03", 200, "failed", "fanout")
    local ids = {}
    for _, r in ipairs(j:entries()) do ids[#ids + 1] = r.id end
    assert.are.same({ "bbbbbb02", "cccccc03", "aaaaaa01" }, ids)
    assert.are.equal(2, #j:entries{ provider = "extruct" })
    assert.are.equal("cccccc03", j:entries{ state = "failed" }[1].id)
    assert.are.equal(2, #j:entries{ since = 200 })
    assert.are.equal("aaaaaa01", j:entries{ source = "cli" }[1].id)
    assert.has_error(function() j:entries{ colour = "red" } end)
  end)

  it("resolves exact ids and unique prefixes of 6+ characters", function()
    local j = assert(journal.open{ path = path })
    for _, id in ipairs({ "abcdef111", "abcdef222", "abc", "zzzzzz999" }) do
      local ref = j:begin{ provider = id == "zzzzzz999" and "valyu" or "extruct", brief = id }
      j:created(ref, id)
    end
    assert.are.equal("zzzzzz999", j:resolve("zzzzzz").id)
    assert.are.equal("abc", j:resolve("abc").id) -- exact, though short
    assert.are.equal("abcdef111", j:resolve("abcdef1").id)
    local r, err = j:resolve("abcdef")
    assert.is_nil(r)
    assert.are.equal("ambiguous_id", err.code)
    assert.matches("abcdef111", err.message)
    assert.matches("abcdef222", err.message)
    assert.are.equal(2, #err.candidates)
    local _
    _, err = j:resolve("abcd")
    assert.are.equal("invalid_request", err.code)
    r, err = j:resolve("qqqqqqq")
    assert.is_nil(r)
    assert.are.equal("not_found", err.code)
    assert.matches("qqqqqqq", err.message)
    r, err = j:resolve("zzzzzz", "extruct")
    assert.is_nil(r)
    assert.are.equal("not_found", err.code)
  end)

  it("resolves among one kind of task when asked", function()
    local j = assert(journal.open{ path = path })
    j:created(j:begin{ provider = "extruct", brief = "r" }, "kindpfx-research")
    j:created(j:begin{ provider = "extruct", brief = "d", kind = "discovery" }, "kindpfx-discovery")
    assert.are.equal("ambiguous_id", select(2, j:resolve("kindpfx")).code)
    assert.are.equal("kindpfx-research", j:resolve("kindpfx", nil, "research").id)
    assert.are.equal("kindpfx-discovery", j:resolve("kindpfx", "extruct", "discovery").id)
  end)

  it("lists at most 5 candidates for an ambiguous prefix", function()
    local j = assert(journal.open{ path = path })
    for i = 1, 7 do j:created(j:begin{ provider = "extruct", brief = "b" }, "samepfx" .. i) end
    local _, err = j:resolve("samepfx")
    assert.are.equal(5, #err.candidates)
    assert.matches("7 tasks", err.message)
  end)

  it("raises on unknown options and fields", function()
    assert.has_error(function() journal.open{ path = path, colour = 1 } end)
    local j = assert(journal.open{ path = path })
    assert.has_error(function() j:begin{ provider = "extruct", token = "x" } end)
    assert.has_error(function() j:update("x", { token = "x" }) end)
  end)

  it("is off with DEEPRESEARCH_JOURNAL=off: no writes, empty reads", function()
    local j = assert(journal.open{ path = "off" })
    assert.is_string(j:begin{ provider = "extruct", brief = "x" })
    assert.are.same({}, j:entries())
    local out = lua_with("DEEPRESEARCH_JOURNAL=off HOME=" .. dir,
      [[local j = require("deepresearch.journal").open()
        j:begin{ provider = "extruct", brief = "x" }
        io.write(j.path, " ", #j:entries())]])
    assert.are.equal("off 0", out)
    assert.is_nil(slurp(dir .. "/.local/state/deepresearch/journal.jsonl"))
  end)

  it("finds its path in DEEPRESEARCH_JOURNAL, XDG_STATE_HOME, then HOME", function()
    local chunk = [[io.write(require("deepresearch.journal").open().path)]]
    assert.are.equal(dir .. "/x.jsonl",
      lua_with("DEEPRESEARCH_JOURNAL=" .. dir .. "/x.jsonl", chunk))
    assert.are.equal(dir .. "/st/deepresearch/journal.jsonl",
      lua_with("XDG_STATE_HOME=" .. dir .. "/st HOME=/nonexistent", chunk))
    assert.are.equal(dir .. "/.local/state/deepresearch/journal.jsonl",
      lua_with("-u XDG_STATE_HOME HOME=" .. dir, chunk))
  end)

  it("never writes a provider's token, even pasted into a brief", function()
    local out = lua_with("EXTRUCT_API_TOKEN=tok-SECRET-123 DEEPRESEARCH_JOURNAL=" .. path,
      [[local j = require("deepresearch.journal").open{ briefs = true }
        j:begin{ provider = "extruct", brief = "use tok-SECRET-123 please" }
        io.write(j:entries()[1].brief_head)]])
    assert.are.equal("use *** please", out)
    assert.is_nil(slurp(path):find("SECRET", 1, true))
  end)

  it("works without the C core (plain append), file still 0600", function()
    local out = lua_with("DEEPRESEARCH_JOURNAL=" .. path,
      [[package.preload["deepresearch.core"] = function() error("no core") end
        local j = require("deepresearch.journal").open()
        local ref = j:begin{ provider = "extruct", brief = "no core" }
        j:created(ref, "nocore123456")
        local f = io.open(j.path, "ab"); f:write("{\"torn"); f:close()
        j:update("nocore123456", { state = "done" })
        assert(j:entries()[1].state == "done")
        io.write(j:resolve("nocore").id)]], "")
    assert.are.equal("nocore123456", out)
    assert.are.equal("600", mode_of(path))
    assert.are.equal("700", mode_of(dir .. "/state/deepresearch"))
  end)
end)

-- Issue 18 items 7, 9 and 11: bin/deepresearch as a first-time user meets it, run for real
-- against the simulator (spec/support/cli.lua); the terminal cases through tmux.
--   7: a 404 on an id this process did not create is final at the first poll; a timeout says
--      "did not finish" only for a task that was seen; "waiting for first answer…" at once.
--   9: a full bar at done; the clock shows the task's age; command lines name bin/deepresearch.
--  11: a create found again by listing says so; a second cancel exits 0; https:// on plain HTTP.
local sim = require "support.sim"
local support = require "support.cli"
local progress = require "deepresearch.cli.progress"
local cli_main = require "deepresearch.cli"

local BRIEF = support.brief("Flexport (flexport.com)")
local UNKNOWN = "00000000-0000-4000-8000-000000000000"
local TASK_GET = "/v1/deep_research_tasks/.+"
local FAST, concat, q = support.FAST, support.concat, support.q

local term = require "support.tmux"
local has_tmux = term.available

describe("deepresearch command (issue 18)", function()
  local s

  local function cli(argv, o) return support.run(s.url, argv, o) end
  local function gets() return #s:requests_to("GET", "^" .. TASK_GET .. "$") end
  local function created()
    local _, out = cli({ "create", BRIEF })
    return out:match("%S+")
  end

  setup(function() s = sim.shared() end)
  before_each(function() s:reset{ speed = 2000 } end)
  teardown(support.cleanup)

  describe("item 7: wait on an id", function()
    it("an unknown id ends at the first poll with exit 4, naming the id", function()
      s:clear_requests()
      local code, out, err = cli(concat({ "wait", UNKNOWN }, FAST))
      assert.equals(4, code, err)
      assert.equals("", out)
      assert.equals(1, gets())
      assert.truthy(err:find("no task " .. UNKNOWN, 1, true), err)
      assert.falsy(err:find("in a row", 1, true), err)
    end)

    it("a task this process created keeps the 404 grace (read-after-write)", function()
      s:fault{ method = "GET", path = TASK_GET, status = 404, count = 2,
        body = '{"detail":"Task not found"}' }
      local code, out, err = cli(concat({ "run", BRIEF }, FAST))
      assert.equals(0, code, err)
      assert.truthy(("\n" .. out):find("\n# "), "the report")
      assert.is_true(gets() >= 3)
    end)

    it("a timeout on a task never seen says so, with no resume hint", function()
      local id = created()
      s:fault{ method = "GET", path = TASK_GET, status = 503, count = -1 }
      local code, _, err = cli(concat({ "wait", id, "--timeout", "0.2" }, FAST))
      assert.equals(3, code, err)
      assert.truthy(err:find("was never seen within 0.2s", 1, true), err)
      assert.falsy(err:find("did not finish", 1, true), err)
      assert.falsy(err:find("keeps running", 1, true), err)
      assert.falsy(err:find("Resume with", 1, true), err)
    end)

    it("a timeout on a task that was seen says it did not finish and how to resume", function()
      s:reset{ speed = 1 }
      local id = created()
      local code, _, err = cli(concat({ "wait", id, "--timeout", "0.2" }, FAST))
      assert.equals(3, code, err)
      assert.truthy(err:find("did not finish within 0.2s", 1, true), err)
      assert.truthy(err:find("Resume with: bin/deepresearch wait " .. id, 1, true), err)
    end)

    it("a terminal shows 'waiting for first answer…' before the first answer", function()
      local id = created()
      s:fault{ method = "GET", path = TASK_GET, delay_ms = 300 }
      local code, _, err = cli(concat({ "wait", id }, FAST),
        { env = { DEEPRESEARCH_TTY = "1", LANG = "C.UTF-8" } })
      assert.equals(0, code, err)
      local first = err:match("\r\27%[K([^\r]*)")
      assert.truthy(first and first:find("waiting for first answer…  0:00", 1, true), err)
    end)
  end)

  describe("item 9: the progress line and the hints", function()
    it("the final line of a done task shows a full bar, whatever its counters say", function()
      local id = created()
      s:fault{ method = "GET", path = TASK_GET, status = 200, count = -1, body =
        '{"id":"' .. id .. '","status":"done","depth":"medium","agents":15,"iterations":3,' ..
        '"sources":9,"report":{"kind":"markdown","markdown":"# Flexport\\n\\nText.",' ..
        '"sources":[]}}' }
      local code, _, err = cli(concat({ "wait", id }, FAST), { env = { DEEPRESEARCH_TTY = "1" } })
      assert.equals(0, code, err)
      local last
      for seg in err:gmatch("\r\27%[K([^\r]*)") do last = seg end
      assert.matches("done%s+%d+:%d%d%s+iterations 3%s+agents 15/25", last)
      assert.truthy(last:find("[################]", 1, true), last)
    end)

    it("the unit: a done task's bar is full; a running one's follows its counters", function()
      local buf = {}
      local stream = { write = function(_, ...) for _, v in ipairs({ ... }) do
        buf[#buf + 1] = v end end, flush = function() end }
      local p = progress.new{ mode = "tty", stream = stream, now = function() return 0 end,
        describe = progress.extruct_research({ medium = 25 }) }
      p.fill, p.empty = "#", "." -- whatever the locale of the spec run
      p:update({ id = "t", status = "in_progress", agents = 15, depth = "medium" })
      assert.truthy(table.concat(buf):find("[##########......]", 1, true))
      buf = {}
      p:update({ id = "t", status = "done", agents = 15, depth = "medium" })
      assert.truthy(table.concat(buf):find("[################]", 1, true))
    end)

    it("the clock shows the task's age by the server's clock, not this wait's", function()
      s:reset{ speed = 0 }
      local id = created()
      s:advance(600)
      local code, _, err = cli(concat({ "wait", id }, FAST), { env = { DEEPRESEARCH_TTY = "1" } })
      assert.equals(0, code, err)
      local last
      for seg in err:gmatch("\r\27%[K([^\r]*)") do last = seg end
      assert.matches("done%s+10:0%d", last)
    end)

    it("the age: ISO or Unix created times against the server's now; none when false",
      function()
        assert.equals(90, progress.task_age({ created_at = "2026-01-01T00:00:00Z" }, nil,
          1767225690))
        assert.equals(30, progress.task_age({ created = "2026-01-01T00:00:00Z" }, nil,
          1767225630))
        assert.equals(5, progress.task_age({ created_at = 1767225600 }, nil, 1767225605))
        assert.equals(0, progress.task_age({ created_at = 1767225600 }, nil, 1767225000))
        assert.is_nil(progress.task_age({ created_at = 1767225600 }, false, 1767225605))
        assert.is_nil(progress.task_age({ created_at = "soon" }, nil, 1767225605))
      end)

    it("command lines name the command as invoked; bare when its directory is on PATH",
      function()
        assert.equals("bin/deepresearch", cli_main.program_name("bin/deepresearch", "/usr/bin"))
        assert.equals("deepresearch",
          cli_main.program_name("/opt/dr/bin/deepresearch", "/usr/bin:/opt/dr/bin/"))
        assert.equals("deepresearch", cli_main.program_name(nil, "/usr/bin"))
        assert.equals("'my dir/deepresearch'", cli_main.program_name("my dir/deepresearch", ""))
        s:reset{ speed = 1 }
        local id = created()
        local code, _, err = cli({ "report", id })
        assert.equals(1, code)
        assert.truthy(err:find("wait for it with: bin/deepresearch wait " .. id, 1, true), err)
      end)
  end)

  describe("item 11", function()
    it("a create whose answer was lost and found by listing says so; one task", function()
      s:fault{ method = "POST", path = "/v1/deep_research_tasks", kind = "drop", after = true }
      local code, out, err = cli({ "create", BRIEF })
      assert.equals(0, code, err)
      local tasks = s:tasks()
      assert.equals(1, #tasks)
      assert.equals(tasks[1].id, out:match("%S+"))
      assert.truthy(err:find("deepresearch: the create's answer was lost; found task " ..
        tasks[1].id .. " by listing", 1, true), err)
      assert.equals(1, #s:requests_to("POST", "^/v1/deep_research_tasks$"))
    end)

    it("a second cancel of a cancelled task exits 0 with 'already cancelled'", function()
      s:reset{ speed = 0 } -- it stays queued until cancelled
      local v = { "--provider", "valyu" }
      local _, out = cli(concat(v, { "create", "--mode", "fast", BRIEF }))
      local id = out:match("%S+")
      local code, out1, err1 = cli(concat(v, { "cancel", id }))
      assert.equals(0, code, err1)
      assert.truthy(out1:find(id, 1, true))
      local code2, out2, err2 = cli(concat(v, { "cancel", id }))
      assert.equals(0, code2, err2)
      assert.equals("already cancelled: " .. id .. "\n", out2)
    end)

    it("a second cancel of an unknown id still fails (exit 4)", function()
      local code = cli({ "--provider", "valyu", "cancel", UNKNOWN })
      assert.equals(4, code)
    end)

    it("https:// on a port that speaks plain HTTP says to try http://", function()
      local socket = require "socket"
      local server = assert(socket.bind("127.0.0.1", 0))
      server:settimeout(0.05)
      local _, port = server:getsockname()
      local errf, rcf = support.tmp(), support.tmp()
      os.remove(rcf)
      os.execute("(" .. support.env_prefix(s.url) .. " lua5.4 bin/deepresearch --base-url " ..
        "https://127.0.0.1:" .. port .. " list >/dev/null 2>" .. errf .. "; echo $? > " .. rcf ..
        ") </dev/null >/dev/null 2>&1 &")
      local deadline, served = os.time() + 60, 0
      while os.time() < deadline and not support.slurp(rcf):match("%d") do
        local c = server:accept()
        if c then
          -- A plain-HTTP server's answer to a TLS hello.
          c:settimeout(1)
          c:receive(5)
          c:send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
          c:close()
          served = served + 1
        end
      end
      server:close()
      assert.is_true(served >= 1)
      assert.equals("4", support.slurp(rcf):match("%d+"))
      local err = support.slurp(errf)
      assert.truthy(err:find("try http://127.0.0.1:" .. port .. " instead", 1, true), err)
    end)
  end)

  describe("on a terminal (tmux)", function()
    if not has_tmux then
      pending("tmux is not installed")
      return
    end
    local socket_name, session
    local cwd, wait_for = term.cwd, term.wait_for
    local function tmux(cmd) return term.run(socket_name, cmd) end

    before_each(function()
      socket_name, session = term.names("drcmd")
    end)
    after_each(function() tmux("kill-session -t " .. session) end)

    it("item 7: wait ID shows 'waiting for first answer…' at once, then the task", function()
      local id = created()
      s:fault{ method = "GET", path = TASK_GET, delay_ms = 1500 }
      local rc = support.tmp()
      os.remove(rc)
      local cmd = string.format("trap '' INT; cd %s && %s lua5.4 bin/deepresearch wait %s " ..
        "--interval 0.05 > /dev/null; echo $? > %s; sleep 60", q(cwd),
        support.env_prefix(s.url, { LANG = "C.UTF-8" }), id, rc)
      tmux(string.format("new-session -d -s %s -x 120 -y 30 %s", session, q(cmd)))
      local function screen() return tmux("capture-pane -p -t " .. session) end
      assert.truthy(wait_for(function()
        return screen():find("waiting for first answer…", 1, true) end, 10), screen())
      assert.truthy(wait_for(function() return support.slurp(rc):match("%d") end, 20))
      assert.equals("0", support.slurp(rc):match("%d+"))
      local text = screen()
      assert.falsy(text:find("waiting for first answer", 1, true), "replaced by the task")
      assert.truthy(text:find("done", 1, true), text)
      assert.truthy(text:find("[████████████████]", 1, true), text)
    end)
  end)
end)

-- bin/deepresearch on a real terminal (a tmux pane): the progress line is redrawn in place,
-- and Ctrl-C stops the wait with exit 130 and a resume hint while the task keeps running.
-- Pending when tmux is not installed.
local sim = require "support.sim"

local q = sim.shell_quote

local slurp = require("support.host").read

local function succeeded(r)
  return r == true or r == 0
end

local function sleep(sec)
  os.execute("sleep " .. sec)
end

local has_tmux = succeeded(os.execute("command -v tmux >/dev/null 2>&1"))

local BRIEF = "We sell freight-visibility software to mid-market logistics firms. Research " ..
  "Flexport (flexport.com): their current tooling, leadership changes and public statements in " ..
  "the last 12 months, so we can decide whether to pitch them this quarter."

describe("deepresearch on a terminal (tmux)", function()
  if not has_tmux then
    pending("tmux is not installed")
    return
  end

  local s, socket_name, session, files
  local cwd = (os.getenv("PWD") or "."):gsub("/+$", "")

  local function tmux(cmd)
    local p = assert(io.popen("tmux -L " .. socket_name .. " " .. cmd .. " 2>/dev/null"))
    local out = p:read("*a")
    p:close()
    return out
  end

  local function tmp(text)
    local path = os.tmpname()
    files[#files + 1] = path
    if text then
      local f = assert(io.open(path, "wb"))
      f:write(text)
      f:close()
    else
      os.remove(path)
    end
    return path
  end

  -- Starts `bin/deepresearch ARGS > out; echo $? > rc` in a fresh 120x30 pane.
  local function start(args)
    local out, rc = tmp(), tmp()
    -- The pane's shell ignores SIGINT so that it lives to record the exit code; lua5.4 installs
    -- its own SIGINT handler whatever it inherits.
    local cmd = string.format("trap '' INT; cd %s && env -u LD_PRELOAD -u COLUMNS -u " ..
      "DEEPRESEARCH_TTY LANG=C.UTF-8 EXTRUCT_BASE_URL=%s EXTRUCT_API_TOKEN=test-token lua5.4 " ..
      "bin/deepresearch %s > %s; echo $? > %s; sleep 120",
      q(cwd), s.url, args, out, rc)
    tmux(string.format("new-session -d -s %s -x 120 -y 30 %s", session, q(cmd)))
    return out, rc
  end

  local function screen()
    return tmux("capture-pane -p -t " .. session)
  end

  local function progress_lines(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
      if line:find("agents %d+/25") then out[#out + 1] = line end
    end
    return out
  end

  local function wait_for(pred, seconds)
    local deadline = os.time() + seconds
    while os.time() <= deadline do
      local v = pred()
      if v then return v end
      sleep(0.1)
    end
    return nil
  end

  setup(function()
    local rnd = tostring(os.time()) .. tostring(math.random(100000, 999999))
    socket_name = "drcli-spec-" .. rnd
    session = "drcli-" .. rnd
    files = {}
    s = sim.shared()
  end)

  after_each(function()
    tmux("kill-session -t " .. session)
  end)

  teardown(function()
    for _, p in ipairs(files or {}) do os.remove(p) end
  end)

  it("redraws one live progress line in place, then prints the report on stdout", function()
    s:reset{ speed = 60 } -- a medium task takes about 4 s
    local brief = tmp(BRIEF)
    local out, rc = start("run -f " .. brief .. " --interval 0.05 --max-interval 0.1")
    local seen, most = {}, 0
    local done = wait_for(function()
      local lines = progress_lines(screen())
      most = math.max(most, #lines)
      if lines[1] then seen[lines[1]:gsub("^%S+ ", ""):gsub("%d+:%d%d", "")] = true end
      return (slurp(rc) or ""):match("%d+") -- the file exists before echo writes the digits
    end, 30)
    assert.equals("0", (done or ""):match("%d+"))
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.is_true(n >= 3, "the line changed in place at least twice")
    assert.equals(1, most, "never more than one progress line on the screen")
    local final = screen()
    local lines = progress_lines(final)
    assert.equals(1, #lines)
    assert.matches("done%s+%d+:%d%d%s+iterations %d+%s+agents %d+/25%s+sources %d+", lines[1])
    assert.truthy(lines[1]:find("[█", 1, true), "a bar against the agent budget")
    assert.matches("created task %S+", final)
    assert.not_matches("# flexport", final)
    assert.truthy(("\n" .. slurp(out)):find("\n# "), "the report went to stdout")
  end)

  it("item 6: shows creating… while the create is in flight, then erases that line", function()
    s:reset{ speed = 1 }
    s:fault{ method = "POST", path = "/v1/deep_research_tasks", delay_ms = 1000 }
    start("run -f " .. tmp(BRIEF) .. " --interval 0.05")
    assert.truthy(
      wait_for(function() return screen():find("deepresearch: creating…", 1, true) end, 10),
      "creating… shown while the simulator holds the create")
    assert.same({}, progress_lines(screen()))
    assert.truthy(wait_for(function() return progress_lines(screen())[1] end, 10), "progress shown")
    local text = screen()
    assert.falsy(text:find("creating", 1, true), "the creating… line was erased")
    assert.matches("created task %S+", text)
  end)

  it("Ctrl-C stops waiting (exit 130), prints the resume hint; the task keeps running", function()
    s:reset{ speed = 1 }
    local brief = tmp(BRIEF)
    local out, rc = start("run -f " .. brief .. " --interval 0.05")
    assert.truthy(wait_for(function() return progress_lines(screen())[1] end, 10), "progress shown")
    tmux("send-keys -t " .. session .. " C-c")
    -- the shell creates the file before echo writes to it: wait for the digits
    local code = wait_for(function() return (slurp(rc) or ""):match("%d+") end, 10)
    assert.equals("130", (code or ""):match("%d+"))
    local tasks = s:tasks()
    assert.equals(1, #tasks)
    local id = tasks[1].id
    local text = screen()
    assert.matches("interrupted", text)
    assert.truthy(text:gsub("\n", ""):find("Resume with: bin/deepresearch wait " .. id, 1, true))
    assert.same({}, progress_lines(text))
    assert.equals("", slurp(out))
    -- the task was left running, and waiting again picks it up
    assert.is_true(tasks[1].status == "created" or tasks[1].status == "in_progress")
    s:set_speed(2000)
    local p = io.popen(string.format("env -u LD_PRELOAD EXTRUCT_BASE_URL=%s " ..
      "EXTRUCT_API_TOKEN=test-token lua5.4 bin/deepresearch wait %s --quiet --interval 0.05 " ..
      "2>/dev/null; echo \"__rc=$?\"", s.url, id))
    local report = p:read("*a")
    p:close()
    assert.matches("__rc=0", report)
    assert.equals("done", s:tasks()[1].status)
  end)
end)

-- The curl transport's helper: a second, headless Neovim that the editor starts once per session
-- (transport_spawn.lua) and that starts the curl processes for it. A fork copies the forking
-- process's page tables and holds its memory map meanwhile: from the editor (a big process,
-- often on a busy machine) each uv.spawn stalled its loop 10-100 ms, past the 50 ms the editor
-- may stall; from this small process the editor never forks. It reads request frames on fd 3
-- and answers on fd 4 (transport_frames.lua); for each request it runs `curl -q --config -`,
-- writes the config to curl's stdin, keeps at most max_out bytes of stdout (past them it kills
-- curl) and 64 KiB of stderr, and answers with the pid, then the exit and both outputs. EOF on
-- fd 3 (the editor closed it, or ended) ends it.
-- luacheck: globals vim
local uv = vim.loop
local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local frames = dofile(here .. "/transport_frames.lua")

local program = os.getenv("DEEPRESEARCH_CURL") or "curl"

-- Background work yields the CPU to the editor: on a busy machine this process and its curl
-- processes (they inherit the niceness), all awake while answers come in, took the editor's
-- time slices and stalled its loop past 50 ms. Nice 10: they still run whenever a CPU is free.
local NICE = 10
pcall(uv.os_setpriority, uv.os_getpid(), NICE)
local inp, out = uv.new_pipe(false), uv.new_pipe(false)
inp:open(3)
out:open(4)

local function send(s) out:write(s) end

local function shut(h)
  if h and not h:is_closing() then h:close() end
end

local procs = {} -- id -> process handle, while it runs

local function run(id, max_out, config)
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local o, e, olen, elen, killed = {}, {}, 0, 0, "-"
  local code, signal
  local left = 3 -- the exit and two drained pipes
  local proc, pid
  local function part()
    left = left - 1
    if left > 0 then return end
    shut(proc)
    procs[id] = nil
    local ob, eb = table.concat(o), table.concat(e)
    send(string.format("D %d %d %d %s %d %d\n", id, code or -1, signal or 0, killed, #ob,
      #ob + #eb) .. ob .. eb)
  end
  proc, pid = uv.spawn(program, { args = { "-q", "--config", "-" },
    stdio = { stdin, stdout, stderr } }, function(c, s)
    code, signal = c, s
    part()
  end)
  if not proc then
    for _, h in ipairs({ stdin, stdout, stderr }) do shut(h) end
    local msg = tostring(pid)
    send(string.format("E %d %d\n", id, #msg) .. msg)
    return
  end
  procs[id] = proc
  send(string.format("P %d %d 0\n", id, pid))
  stdout:read_start(function(_, data)
    if data then
      olen = olen + #data
      if olen > max_out then
        if killed == "-" then
          killed = "body"
          pcall(proc.kill, proc, "sigterm")
        end
      elseif killed == "-" then
        o[#o + 1] = data
      end
    else
      shut(stdout)
      part()
    end
  end)
  stderr:read_start(function(_, data)
    if data then
      elen = elen + #data
      if elen <= 65536 then e[#e + 1] = data end
    else
      shut(stderr)
      part()
    end
  end)
  stdin:write(config)
  stdin:shutdown(function() shut(stdin) end)
end

local feed = frames.reader(function(f, payload)
  if f[1] == "R" then run(tonumber(f[2]), tonumber(f[3]), payload) end
end)
inp:read_start(function(_, data)
  if data then return feed(data) end
  -- EOF: the editor closed the pipe, or ended. Stop what runs, and quit.
  for _, p in pairs(procs) do pcall(p.kill, p, "sigterm") end
  shut(inp)
  vim.schedule(function() vim.cmd("qall!") end)
end)

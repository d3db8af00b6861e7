-- One request as one `curl` process (the curl transport's transfer), started through
-- vim.loop.spawn by a helper process (transport_helper.lua: the editor itself never forks
-- per request).
-- Everything about the request goes to curl as a config file on its stdin (`curl -q --config -`):
-- the URL, the method, the header lines (the API key among them) and the body. argv is the same
-- three words for every request, so no key, URL or body shows in `ps` or /proc/<pid>/cmdline.
-- The limits are the core's: connect and total timeouts, the low-speed abort, at most
-- max_response_size bytes of body (counted here as they arrive: curl's own max-filesize knows
-- only a Content-Length), no redirects followed, http and https only, a fresh connection each
-- time (never a silent re-send). The response comes on stdout, header blocks first (`include`),
-- and curl's own error line and a --write-out trailer (status, bytes sent, header bytes, which
-- say where the body starts) on stderr. (Not dump-header to /dev/fd/3: libuv's stdio pipes are
-- socket pairs, which /dev/fd cannot open, and curl 7.88 crashes when it cannot.)
-- luacheck: globals vim
local uv = vim.loop
local M = {}

M.program = "curl"
M.ARGS = { "-q", "--config", "-" } -- -q first: no ~/.curlrc (it could turn on -L or -k)
M.EXIT_MARK = "@@deepresearch_exit" -- the foreground path's exit status line (run_sync)
M.HEAD_MAX = 256 * 1024             -- as the core's header buffer (src/easy.c DR_HEAD_MAX)
M.INLINE_BODY_MAX = 1024 * 1024     -- larger bodies go through a 0600 temp file
-- The write-out trailer's mark (no pattern magic characters: it is read with gmatch).
M.TRAILER = "@@deepresearch_write_out"

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\v"] = "\\v" }

-- A quoted value of curl's config syntax.
local function quote(s)
  return '"' .. tostring(s):gsub('[\\"\n\r\t\v]', ESCAPES) .. '"'
end
M.quote = quote

local function seconds(v) return string.format("%.3f", v) end

-- A 0600 file holding the body (os.tmpname: mkstemp's private file; callable where the
-- editor's functions are not, in a libuv callback).
local function body_file(body)
  local ok, path = pcall(os.tmpname)
  if not ok then return nil, path end
  local f, err = io.open(path, "wb")
  if not f then
    os.remove(path)
    return nil, err
  end
  local wok, werr = f:write(body)
  f:close()
  if not wok then
    os.remove(path)
    return nil, werr
  end
  return path
end

--- The config text for spec under limits; body_path when the body goes through a file.
function M.config(spec, limits, body_path)
  local lines = { "silent", "show-error", "url = " .. quote(spec.url),
    'proto = "=http,https"', 'proto-redir = "=http,https"', "include",
    "connect-timeout = " .. seconds(limits.connect_timeout),
    "max-time = " .. seconds(spec.timeout or limits.timeout),
    "speed-limit = " .. string.format("%d", limits.low_speed_limit),
    "speed-time = " .. string.format("%d", limits.low_speed_time),
    "max-filesize = " .. string.format("%d", limits.max_response_size),
    "write-out = " .. quote("%{stderr}\n" .. M.TRAILER ..
      " %{http_code} %{size_request} %{size_header}\n"),
  }
  local method = spec.method or "GET"
  if method ~= "GET" then lines[#lines + 1] = "request = " .. quote(method) end
  local own_encoding = false
  for _, h in ipairs(spec.headers or {}) do
    lines[#lines + 1] = "header = " .. quote(h)
    own_encoding = own_encoding or h:lower():find("^accept%-encoding:") ~= nil
  end
  if not own_encoding then lines[#lines + 1] = "compressed" end
  if spec.body ~= nil or method == "POST" then
    lines[#lines + 1] = 'header = "Expect:"'
    if body_path then
      lines[#lines + 1] = "data-binary = " .. quote("@" .. body_path)
    else
      lines[#lines + 1] = "data-raw = " .. quote(spec.body or "")
    end
  end
  if limits.ca_file then lines[#lines + 1] = "cacert = " .. quote(limits.ca_file) end
  if limits.proxy then lines[#lines + 1] = "proxy = " .. quote(limits.proxy) end
  return table.concat(lines, "\n") .. "\n"
end

local function close(h)
  if h and not h:is_closing() then h:close() end
end

--- Kills x's process (reason: "body", "timeout" or "cancelled"); its end still comes. Before
-- its pid is known, the kill waits for it.
function M.kill(x, reason)
  if x.finished or x.killed then return end
  x.killed = reason
  if x.pid then pcall(uv.kill, x.pid, "sigterm") end
end

local frames = require "deepresearch.nvim.transport_frames"
local HELPER = (debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or ".") ..
  "/transport_helper.lua"
-- This Neovim's own program (the helper is one more of it); read where the editor's API works.
local PROGPATH = (function()
  local ok, v = pcall(function() return vim.v.progpath end)
  return ok and v ~= "" and v or "nvim"
end)()

-- The session's helper process (transport_helper.lua): { proc, pid, to, xs = id -> x }.
local helper

--- Hook for specs: called (in a fast context) with x once its process runs (x.pid, x.argv).
M.on_spawn = nil

local function finish(x, on_done)
  if x.finished then return end
  x.finished = true
  if x.guard then
    x.guard:stop()
    close(x.guard)
  end
  if x.body_path then os.remove(x.body_path) end
  if helper then helper.xs[x.id] = nil end
  on_done(x)
end

-- A frame from the helper: a pid, a process's end, or a start that failed.
local function on_frame(h, f, payload)
  local x = h.xs[tonumber(f[2])]
  if not x then return end
  if f[1] == "P" then
    x.pid, x.argv = tonumber(f[3]), table.concat(M.ARGS, " ")
    if x.killed then pcall(uv.kill, x.pid, "sigterm") end -- cancelled before it ran
    if M.on_spawn then pcall(M.on_spawn, x) end
  elseif f[1] == "D" then
    local outlen = tonumber(f[6]) or #payload
    x.code, x.signal = tonumber(f[3]), tonumber(f[4])
    if f[5] ~= "-" then x.killed = x.killed or f[5] end
    -- Kept whole (stdout .. stderr): a big body is not copied again to split it.
    x.payload, x.outlen = payload, outlen
    finish(x, x.on_done)
  elseif f[1] == "E" then
    x.spawn_error = payload
    finish(x, x.on_done)
  end
end

-- The helper's end: whatever it was running may have been sent, and will not be answered.
local function helper_gone(h)
  if helper == h then helper = nil end
  close(h.to)
  for _, x in pairs(h.xs) do
    x.helper_gone = true
    finish(x, x.on_done)
  end
  h.xs = {}
end

local function start_helper()
  if helper then return helper end
  local h = { xs = {} }
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  h.to, h.from = uv.new_pipe(false), uv.new_pipe(false)
  local proc, pid = uv.spawn(PROGPATH, {
    args = { "--headless", "-u", "NONE", "-i", "NONE", "-n", "--cmd",
      "lua dofile(" .. string.format("%q", HELPER) .. ")" },
    stdio = { stdin, stdout, stderr, h.to, h.from },
  }, function()
    close(h.proc)
    helper_gone(h)
  end)
  close(stdin) -- nothing on its stdin: Neovim does not wait for text there
  if not proc then
    for _, p in ipairs({ stdout, stderr, h.to, h.from }) do close(p) end
    return nil, tostring(pid)
  end
  h.proc, h.pid = proc, pid
  for _, p in ipairs({ stdout, stderr }) do -- drained, unread: it prints nothing we need
    p:read_start(function(_, data) if not data then close(p) end end)
  end
  local feed = frames.reader(function(f, payload) on_frame(h, f, payload) end)
  h.from:read_start(function(_, data)
    if data then return feed(data) end
    close(h.from)
  end)
  helper = h
  return h
end

--- The helper's pid while it runs, else nil.
function M.helper_pid() return helper and helper.pid or nil end

--- Starts the helper now if it is not running (the transport's first request would).
function M.warm() return start_helper() end

--- Ends the helper (it kills the curl processes it runs and quits).
function M.stop()
  local h = helper
  if h then helper_gone(h) end
end

--- Starts x = { spec, limits } as a curl process; on_done(x) runs (in a fast context) once its
-- process has exited and its output is in (x.code, x.signal, x.killed, and x.payload, x.outlen:
-- stdout .. stderr), or at once when it cannot start.
function M.start(x, on_done)
  local spec, limits = x.spec, x.limits
  x.on_done = on_done
  local path
  if spec.body and (#spec.body > M.INLINE_BODY_MAX or spec.body:find("%z")) then
    local err
    path, err = body_file(spec.body)
    if not path then
      x.unsent = "not sent: cannot write the request body to a temp file: " .. tostring(err)
      return finish(x, on_done)
    end
    x.body_path = path
  end
  local h, err = start_helper()
  if not h then
    x.spawn_error = "cannot start the curl helper (" .. PROGPATH .. "): " .. tostring(err)
    return finish(x, on_done)
  end
  h.xs[x.id] = x
  local config = M.config(spec, limits, path)
  -- Header blocks and body together: each is held to its own limit once the split is known.
  h.to:write(string.format("R %d %d %d\n", x.id, limits.max_response_size + M.HEAD_MAX, #config)
    .. config)
  -- curl's own max-time ends the transfer; this only catches a curl that does not stop.
  x.guard = uv.new_timer()
  x.guard:start(math.floor(((spec.timeout or limits.timeout) + limits.connect_timeout + 5) *
    1000), 0, function() M.kill(x, "timeout") end)
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- Runs x to its end in the foreground, for a blocking request made where the editor's loop
-- cannot run (a libuv callback: the helper's answer could never arrive). curl runs through
-- io.popen with its config (the key among it) in a 0600 temp file: its command line names only
-- that file. As the core's blocking client, this waits; stdout is held to the same limit.
function M.run_sync(x)
  local spec, limits = x.spec, x.limits
  local path, err
  if spec.body and (#spec.body > M.INLINE_BODY_MAX or spec.body:find("%z")) then
    path, err = body_file(spec.body)
    if not path then
      x.unsent, x.finished = "not sent: cannot write the request body to a temp file: " ..
        tostring(err), true
      return
    end
  end
  local cfg, cerr = body_file(M.config(spec, limits, path))
  local ok_err, err_path = pcall(os.tmpname)
  if not cfg or not ok_err then
    if path then os.remove(path) end
    if cfg then os.remove(cfg) end
    x.unsent, x.finished = "not sent: cannot write curl's config to a temp file: " ..
      tostring(cerr or err_path), true
    return
  end
  local cmd = string.format("%s %s %s %s 2>%s; echo \"%s $?\" >>%s", shell_quote(M.program),
    M.ARGS[1], M.ARGS[2], shell_quote(cfg), shell_quote(err_path), M.EXIT_MARK,
    shell_quote(err_path))
  local out, n, max = {}, 0, limits.max_response_size + M.HEAD_MAX
  local f = io.popen(cmd, "r")
  while f do
    local chunk = f:read(65536)
    if not chunk then break end
    n = n + #chunk
    if n > max then
      x.killed = "body" -- closing the pipe ends curl (SIGPIPE)
      break
    end
    out[#out + 1] = chunk
  end
  if f then f:close() end
  local ef = io.open(err_path, "rb")
  local text = ef and ef:read("*a") or ""
  if ef then ef:close() end
  for _, p in ipairs({ cfg, err_path, path }) do os.remove(p) end
  local status = tonumber(text:match(M.EXIT_MARK .. " (%d+)")) or -1
  if status > 128 then x.code, x.signal = 0, status - 128 else x.code, x.signal = status, 0 end
  x.out, x.err, x.finished = out, { text }, true
end

return M

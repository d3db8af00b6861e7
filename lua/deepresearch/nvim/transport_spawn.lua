-- One request as one `curl` process run through vim.loop.spawn (the curl transport's transfer).
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
M.HEAD_MAX = 256 * 1024             -- as the core's header buffer (src/easy.c DR_HEAD_MAX)
M.INLINE_BODY_MAX = 1024 * 1024     -- larger bodies go through a 0600 temp file
-- The write-out trailer's mark (no pattern magic characters: it is read with gmatch).
M.TRAILER = "@@deepresearch_write_out"

--- uv.spawn, replaceable by specs that look at what the transport starts.
function M.spawn(path, opts, on_exit) return uv.spawn(path, opts, on_exit) end

local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\v"] = "\\v" }

-- A quoted value of curl's config syntax.
local function quote(s)
  return '"' .. tostring(s):gsub('[\\"\n\r\t\v]', ESCAPES) .. '"'
end
M.quote = quote

local function seconds(v) return string.format("%.3f", v) end

-- A 0600 file holding the body (created exclusively, so no one else's file is written).
local function body_file(body)
  local path = vim.fn.tempname() .. ".deepresearch-body"
  local fd, err = uv.fs_open(path, "wx", 384) -- 0600
  if not fd then return nil, err end
  local ok, werr = uv.fs_write(fd, body, 0)
  uv.fs_close(fd)
  if not ok then
    uv.fs_unlink(path)
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

--- Kills x's process (reason: "body", "head", "timeout" or "cancelled"); its end still comes.
function M.kill(x, reason)
  if x.finished or x.killed then return end
  x.killed = reason
  if x.proc and not x.proc:is_closing() then pcall(x.proc.kill, x.proc, "sigterm") end
end

-- Reads pipe into x[field] (a list of chunks), killing the process past max bytes.
local function reader(x, pipe, field, max, reason, part_done)
  x[field], x[field .. "_len"] = {}, 0
  pipe:read_start(function(err, data)
    if data then
      x[field .. "_len"] = x[field .. "_len"] + #data
      if max and x[field .. "_len"] > max then
        if reason then M.kill(x, reason) end
      elseif not x.killed then
        local t = x[field]
        t[#t + 1] = data
      end
    else
      if err then x.read_error = err end
      close(pipe)
      part_done()
    end
  end)
end

--- Starts x = { spec, limits } as a curl process; on_done(x) runs (in a fast context) once its
-- process has exited and its pipes are drained, or at once when it cannot start.
function M.start(x, on_done)
  local spec, limits = x.spec, x.limits
  local path
  if spec.body and (#spec.body > M.INLINE_BODY_MAX or spec.body:find("%z")) then
    local err
    path, err = body_file(spec.body)
    if not path then
      x.unsent = "not sent: cannot write the request body to a temp file: " .. tostring(err)
      x.finished = true
      return on_done(x)
    end
    x.body_path = path
  end
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local left = 3 -- the exit and two drained pipes
  local function part_done()
    left = left - 1
    if left > 0 then return end
    x.finished = true
    if x.guard then
      x.guard:stop()
      close(x.guard)
    end
    close(x.proc)
    if x.body_path then uv.fs_unlink(x.body_path) end
    on_done(x)
  end
  local proc, pid = M.spawn(M.program, { args = M.ARGS, stdio = { stdin, stdout, stderr } },
    function(code, signal)
      x.code, x.signal = code, signal
      part_done()
    end)
  if not proc then
    for _, p in ipairs({ stdin, stdout, stderr }) do close(p) end
    if x.body_path then uv.fs_unlink(x.body_path) end
    x.spawn_error = tostring(pid)
    x.finished = true
    return on_done(x)
  end
  x.proc, x.pid = proc, pid
  -- Header blocks and body together: each is held to its own limit once the split is known.
  reader(x, stdout, "out", limits.max_response_size + M.HEAD_MAX, "body", part_done)
  reader(x, stderr, "err", 64 * 1024, nil, part_done)
  stdin:write(M.config(spec, limits, path))
  stdin:shutdown(function() close(stdin) end)
  -- curl's own max-time ends the transfer; this only catches a curl that does not stop.
  x.guard = uv.new_timer()
  x.guard:start(math.floor(((spec.timeout or limits.timeout) + limits.connect_timeout + 5) * 1000),
    0, function() M.kill(x, "timeout") end)
end

return M

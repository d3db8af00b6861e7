-- The host things specs touch directly: a temporary directory, a file's bytes and mode, a
-- shell command's status and output. Shared by docs, install, journal, review19 and
-- report_html_browser specs, which each had their own copies.
local M = {}

--- A fresh directory from mktemp -d (the caller removes it).
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end

--- The bytes of path, or nil when it cannot be opened.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- path's permission bits as stat prints them ("600").
function M.mode_of(path)
  local p = io.popen("stat -c %a '" .. path .. "'")
  local m = p:read("*l")
  p:close()
  return m
end

--- Runs cmd in a shell: whether it exited 0, and its stdout and stderr together.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("exit=(%d+)%s*$") == "0", (out:gsub("exit=%d+%s*$", ""))
end

return M

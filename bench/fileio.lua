-- What the bench drivers (harness.lua, scale.lua) share for files and shell words.
local M = {}

--- s as one single-quoted shell word.
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The bytes of path, or nil when it cannot be opened.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes s to path (raises when it cannot).
function M.write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

return M

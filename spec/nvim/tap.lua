-- A tiny TAP writer for the headless Neovim tests: every line is flushed as it is written,
-- so a crash or a timeout still leaves the results so far.
-- luacheck: globals vim
local M = { n = 0, failed = 0 }

function M.open(path)
  M.file = assert(io.open(path, "w"))
end

local function line(s)
  M.file:write(s, "\n")
  M.file:flush()
end

local function diag(text)
  for l in tostring(text):gmatch("[^\n]+") do line("# " .. l) end
end

--- ok(cond, name [, diagnostic shown on failure])
function M.ok(cond, name, why)
  M.n = M.n + 1
  if cond then
    line(string.format("ok %d - %s", M.n, name))
  else
    M.failed = M.failed + 1
    line(string.format("not ok %d - %s", M.n, name))
    if why ~= nil then diag(why) end
  end
  return cond
end

function M.is(got, want, name)
  return M.ok(got == want, name,
    string.format("got %s, want %s", vim.inspect(got), vim.inspect(want)))
end

function M.skip(name, why)
  M.n = M.n + 1
  line(string.format("ok %d - %s # SKIP %s", M.n, name, why))
end

function M.note(text) diag(text) end

function M.finish()
  line("1.." .. M.n)
  M.file:close()
end

return M

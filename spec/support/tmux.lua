-- A real terminal for command specs: a tmux server on its own socket per test, so a spec's
-- panes never meet a user's sessions or another spec's. Shared by the specs that drive
-- bin/deepresearch through a pane (cli_command_spec, cli_help_spec).
local M = {}

local function succeeded(r) return r == true or r == 0 end

-- Specs go pending without tmux rather than fail.
M.available = succeeded(os.execute("command -v tmux >/dev/null 2>&1"))

-- The checkout the pane's shell cd's into (the pane starts in tmux's own directory).
M.cwd = (os.getenv("PWD") or "."):gsub("/+$", "")

--- A fresh socket name and session name for one test: "<prefix>-spec-N", "<prefix>-N".
function M.names(prefix)
  local rnd = tostring(os.time()) .. tostring(math.random(100000, 999999))
  return prefix .. "-spec-" .. rnd, prefix .. "-" .. rnd
end

--- `tmux -L socket_name cmd`, its output (stderr dropped: a session already gone is fine).
function M.run(socket_name, cmd)
  local p = assert(io.popen("tmux -L " .. socket_name .. " " .. cmd .. " 2>/dev/null"))
  local out = p:read("*a")
  p:close()
  return out
end

--- pred()'s first true value within `seconds` (a pane is another process: polled), or nil.
function M.wait_for(pred, seconds)
  local deadline = os.time() + seconds
  while os.time() <= deadline do
    local v = pred()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return nil
end

return M

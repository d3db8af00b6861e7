-- Help texts, built from the commands' own option lists so they cannot drift apart.
local M = {}

M.commands = {} -- filled by cli/init.lua

M.EXIT_CODES = [[
Exit codes:
  0    done (the task finished, or the command succeeded)
  1    the task failed or was cancelled (its failure reason is printed); `report` of an
       unfinished task; `cancel` of a task that had already ended; `brief lint` found
       errors (or warnings with --strict)
  2    usage error: bad option or argument, unreadable file, a brief with lint errors
  3    timeout: --timeout passed before the task finished (it keeps running; resume with
       `deepresearch wait ID`)
  4    API or network error (its one-line message; for HTTP 402 the credits needed and
       available), or no token in the environment
  5    the task needs your input (a checkpoint) and there is no terminal to ask on: the
       checkpoint and the `deepresearch respond` command to run are printed
  130  interrupted (Ctrl-C) while waiting: the task keeps running on the server; during a
       create: after up to 5 s for its answer, the task id, or the list command to check
  70   internal error (a bug; --verbose shows the traceback)]]

-- Per-command help ends with this one line instead of the global list.
M.POINTER = "Global options (--provider, --base-url, -q, -y, -v ...) and exit codes: " ..
  "deepresearch help options"

-- The help lines of a list of option specs (cli/args.lua shape), flags aligned.
local function option_lines(options)
  local lines = {}
  for _, o in ipairs(options) do
    local flag = (o.short and ("-" .. o.short .. ", ") or "") .. "--" ..
      o[1] .. (o.value and (" " .. o.value) or "")
    if #flag > 22 then
      lines[#lines + 1] = "  " .. flag
      lines[#lines + 1] = string.rep(" ", 26) .. (o.doc or "")
    else
      lines[#lines + 1] = string.format("  %-22s  %s", flag, o.doc or "")
    end
  end
  return lines
end

--- The global options (from cli/args.lua, so a flag added there shows here) and the
-- environment each registered provider reads.
function M.global_options()
  local providers = require "deepresearch.providers"
  local names = {}
  for _, n in ipairs(providers.names()) do
    names[#names + 1] = n .. (n == providers.DEFAULT and " (default)" or "")
  end
  local opts = {}
  for i, o in ipairs(require("deepresearch.cli.args").GLOBAL) do
    opts[i] = o
    if o[1] == "provider" then
      opts[i] = { o[1], value = o.value, doc = (o.doc or "") .. ": " .. table.concat(names, ", ") }
    end
  end
  local lines = { "Global options (anywhere on the line):" }
  for _, l in ipairs(option_lines(opts)) do lines[#lines + 1] = l end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Environment (the token is never a flag):"
  for _, n in ipairs(providers.names()) do
    local d = providers.get(n)
    lines[#lines + 1] = string.format("  %-20s %s token; %s: its base URL", d.token_env,
      d.cli and d.cli.name or n, d.base_env)
  end
  return table.concat(lines, "\n")
end

-- Commands in the order the overview lists them.
M.ORDER = {
  "run", "create", "get", "wait", "list", "report", "cancel", "respond", "download", "public",
  "brief render", "brief lint",
  "discover", "discover get", "discover wait", "discover results", "discover resume",
    "discover list",
  "batch create", "batch add", "batch get", "batch tasks", "batch cancel", "batch list",
    "batch wait",
}

function M.general()
  local lines = {
    "usage: deepresearch [global options] COMMAND [options]",
    "",
    "Run deep research tasks (" .. table.concat(require("deepresearch.providers").names(), ", ") ..
      ") from a",
    "terminal: write a brief, run it with live progress, get a cited report.",
    "",
    "Commands:",
  }
  for _, name in ipairs(M.ORDER) do
    local c = M.commands[name]
    if c then
      lines[#lines + 1] = string.format("  %-18s %s", name, c.summary)
    end
  end
  lines[#lines + 1] = string.format("  %-18s %s", "help COMMAND", "help for one command")
  lines[#lines + 1] = string.format("  %-18s %s", "help options", "the global options, the " ..
    "environment and the exit codes")
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.global_options()
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.EXIT_CODES
  lines[#lines + 1] = ""
  lines[#lines + 1] =
    "Start with: make demo   (a real task on the bundled simulator; no token, no network)"
  return table.concat(lines, "\n")
end

--- Help for one command (or the overview for nil; "options": the global options, environment
-- and exit codes); nil when there is no such command.
function M.text(name)
  if name == nil then return M.general() end
  if name == "options" then return M.global_options() .. "\n\n" .. M.EXIT_CODES end
  local c = M.commands[name]
  if not c then
    return M.group(name)
  end
  local lines = { "usage: deepresearch " .. c.usage, "", (c.summary:gsub("^%l", string.upper)) ..
    "." }
  if c.description then
    lines[#lines + 1] = ""
    lines[#lines + 1] = c.description
  end
  local opts = c.options or {}
  if #opts > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Options:"
    for _, l in ipairs(option_lines(opts)) do lines[#lines + 1] = l end
  end
  if c.examples then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Examples:"
    lines[#lines + 1] = c.examples
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.POINTER
  return table.concat(lines, "\n")
end

--- "; did you mean 'X'?" for a mistyped command (X the closest command name), or "".
function M.suggest(word)
  local names = { "help" }
  for name in pairs(M.commands) do names[#names + 1] = name end
  table.sort(names)
  return require("deepresearch.cli.args").did_you_mean(word, names)
end

--- The sub-commands of a group ("brief", "discover"), or nil.
function M.group(word)
  local subs = {}
  for _, name in ipairs(M.ORDER) do
    local c = M.commands[name]
    if c and name:match("^(%S+) ") == word then
      subs[#subs + 1] = string.format("  deepresearch %-34s %s",
        c.usage:match("^(%S+ %S+)") or name, c.summary)
    end
  end
  if #subs == 0 then return nil end
  return "usage:\n" .. table.concat(subs, "\n") .. "\n\nMore: deepresearch help " .. word ..
    " SUBCOMMAND"
end

return M


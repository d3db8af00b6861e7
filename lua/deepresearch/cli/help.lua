-- Help texts, built from the commands' own option lists so they cannot drift apart.
local M = {}

M.commands = {} -- filled by cli/init.lua

M.EXIT_CODES = [[
Exit codes:
  0    done (the task finished, or the command succeeded)
  1    the task failed or was cancelled (its failure reason is printed); `report` of an
       unfinished task; `brief lint` found errors (or warnings with --strict)
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

M.GLOBAL_OPTIONS = [[
Global options (anywhere on the line):
  --provider NAME   extruct (default) or valyu
  --base-url URL    API base URL (default: $EXTRUCT_BASE_URL / $VALYU_BASE_URL, else the
                    provider's public URL)
  -q, --quiet       no progress and no notes on stderr (errors are still printed)
  -y, --yes         at a checkpoint, accept what the task proposes without asking
  -v, --verbose     log every HTTP request on stderr (tokens redacted); tracebacks
  -h, --help        help for the command (also: deepresearch help COMMAND)
  --version         print the version

Environment:
  EXTRUCT_API_TOKEN  Extruct token (Deep Research, Deep Search); never a flag
  VALYU_API_KEY      Valyu API key (--provider valyu); never a flag
  EXTRUCT_BASE_URL, VALYU_BASE_URL   base URLs (the bundled simulator, a proxy)]]

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
    "Run deep research tasks (Extruct Deep Research and Deep Search, Valyu DeepResearch)",
    "from a terminal: write a brief, run it with live progress, get a cited report.",
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
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.GLOBAL_OPTIONS
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.EXIT_CODES
  lines[#lines + 1] = ""
  lines[#lines + 1] =
    "Start with: make demo   (a real task on the bundled simulator; no token, no network)"
  return table.concat(lines, "\n")
end

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

--- Help for one command (or the overview for nil); nil when there is no such command.
function M.text(name)
  if name == nil then return M.general() end
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
  lines[#lines + 1] = M.GLOBAL_OPTIONS
  lines[#lines + 1] = ""
  lines[#lines + 1] = M.EXIT_CODES
  return table.concat(lines, "\n")
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

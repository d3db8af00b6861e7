-- The user commands :DeepResearch, :DeepResearchWait, :DeepResearchList and
-- :DeepResearchRespond, and their arguments: leading provider=NAME and flag=value words (any
-- registered provider's flags), then the brief or the id.
local providers = require "deepresearch.providers"
local config = require "deepresearch.nvim.config"
local jobs = require "deepresearch.nvim.jobs"
local list = require "deepresearch.nvim.list"
local respond = require "deepresearch.nvim.respond"

local notify, levels = config.notify, config.levels
local M = {}

-- Leading provider=NAME and flag=value words (any registered provider's flags); the rest.
-- A flag given twice is a list of its values, as the command's repeatable flags are.
local function named_args(args)
  local named = {}
  while true do
    local k, v, rest = args:match("^%s*([%a_][%w_]*)=(%S+)%s*(.-)$")
    if not k or not (k == "provider" or config.flag_hint(k)) then break end
    local old = named[k]
    if old == nil or k == "provider" then
      named[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      named[k] = { old, v }
    end
    args = rest
  end
  return named, args
end

local function usage()
  local flags = {}
  for k in pairs(providers.get(config.provider()).cli.flags) do flags[#flags + 1] = "[" .. k ..
    "=VALUE]" end
  table.sort(flags)
  return "usage: :DeepResearch [provider=" .. table.concat(providers.names(), "|") .. "] " ..
    table.concat(flags, " ") .. (#flags > 0 and " " or "") .. "{brief}"
end

--- :[range]DeepResearch [provider=NAME] [flag=value ...] {brief}: a range adds the selected
-- lines to the brief; flags are the provider's (depth=high, mode=fast, ...).
function M.command_research(o)
  local named, args = named_args(o.args or "")
  local parts = {}
  if o.range and o.range > 0 then
    local lines = vim.api.nvim_buf_get_lines(0, o.line1 - 1, o.line2, false)
    parts[#parts + 1] = table.concat(lines, "\n")
  end
  if args:find("%S") then table.insert(parts, 1, args) end
  local brief = table.concat(parts, "\n\n")
  if not brief:find("%S") then return notify(usage(), levels.ERROR) end
  return jobs.research(brief, named)
end

local function command_with_id(fn, what)
  return function(o)
    local named, args = named_args(o.args or "")
    local id = args:match("^%s*(%S+)")
    if not id and what then return notify("usage: " .. what, levels.ERROR) end
    return fn(id, { provider = named.provider })
  end
end

--- Creates the user commands (plugin/deepresearch.lua calls this).
function M.create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("DeepResearch", function(o) M.command_research(o) end,
    { nargs = "*", range = true, desc = "Start a deep research task; the report opens when done" })
  cmd("DeepResearchWait",
    command_with_id(jobs.wait, ":DeepResearchWait [provider=NAME] {id}"),
    { nargs = "+", desc = "Wait on a deep research task by id and open its report" })
  cmd("DeepResearchList", function(o)
    local named = named_args(o.args or "")
    list.list({ provider = named.provider })
  end, { nargs = "*", desc = "List recent deep research tasks" })
  cmd("DeepResearchRespond", command_with_id(respond.respond),
    { nargs = "*", desc = "Answer a deep research task waiting for your input" })
end

return M

-- The user commands and their arguments: leading provider=NAME and flag=value words (any
-- registered provider's flags), then the brief or the id. Every id argument takes a unique
-- prefix of 6+ characters of a known id and completes them (-complete=customlist).
local providers = require "deepresearch.providers"
local config = require "deepresearch.nvim.config"
local history = require "deepresearch.nvim.history"
local jobs = require "deepresearch.nvim.jobs"
local list = require "deepresearch.nvim.list"
local open = require "deepresearch.nvim.open"
local picker = require "deepresearch.nvim.picker"
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

-- fn(id_or_nil, opts, rest): the first word after the named ones is the id.
local function command_with_id(fn, what)
  return function(o)
    local named, args = named_args(o.args or "")
    local id, rest = args:match("^%s*(%S+)%s*(.-)%s*$")
    if not id and what then return notify("usage: " .. what, levels.ERROR) end
    return fn(id, { provider = named.provider }, rest ~= "" and rest or nil)
  end
end

-- Ids for the argument being typed (provider=NAME and flags complete as words too).
local function complete_ids(lead)
  if lead:match("^provider=") then
    local out = {}
    for _, n in ipairs(providers.names()) do
      if ("provider=" .. n):sub(1, #lead) == lead then out[#out + 1] = "provider=" .. n end
    end
    return out
  end
  return history.complete(lead)
end

--- Creates the user commands (plugin/deepresearch.lua calls this).
function M.create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("DeepResearch", function(o) M.command_research(o) end,
    { nargs = "*", range = true, desc = "Start a deep research task (announced when done)" })
  cmd("DeepResearchWait",
    command_with_id(function(id, opts) jobs.wait(id, opts) end,
      ":DeepResearchWait [provider=NAME] {id}"),
    { nargs = "+", complete = complete_ids, desc = "Wait on a deep research task by id" })
  cmd("DeepResearchOpen", command_with_id(function(id, opts) open.open(id, opts) end),
    { nargs = "*", complete = complete_ids, desc = "Open a finished deep research report" })
  cmd("DeepResearchExport", command_with_id(function(id, opts, path)
    open.export(id, path, opts)
  end), { nargs = "*", complete = function(lead, line)
    local words = select(2, line:gsub("%S+", "")) - (lead == "" and 0 or 1)
    if words >= 2 then return vim.fn.getcompletion(lead, "file") end
    return complete_ids(lead)
  end, desc = "Write a report as markdown (and HTML)" })
  cmd("DeepResearchList", function(o)
    local named = named_args(o.args or "")
    if o.bang then return list.list({ provider = named.provider }) end
    picker.list({ provider = named.provider })
  end, { nargs = "*", bang = true,
    desc = "Pick a task from the journal (!: the provider's own list, in a buffer)" })
  cmd("DeepResearchRespond", command_with_id(function(id, opts)
    if id then
      local full, err = history.resolve(id, opts.provider)
      if not full then return notify(err, levels.ERROR) end
      id = full
    end
    respond.respond(id, opts)
  end), { nargs = "*", complete = complete_ids,
    desc = "Answer a deep research task waiting for your input" })
end

return M

-- A task's report in the editor: rendered in setup's citation style, in its buffer (the
-- buffers themselves are nvim/buffer.lua's), shown where asked.
local buffer = require "deepresearch.nvim.buffer"
local config = require "deepresearch.nvim.config"
local descriptors = require "deepresearch.nvim.descriptors"

local M = {}

--- The report of a done task as markdown text, citations resolved.
function M.render(task, provider)
  return buffer.render(task, config.values.style,
    descriptors.id_of(provider or descriptors.owner(task), task))
end

--- Fills (or refreshes) the report buffer of task and shows it where says ("tab", "split",
-- "vsplit", "float"; nil: shown nowhere yet; "notify": a tab). Returns the buffer.
-- provider: whose task it is (the task's owner when not given); brief: for the buffer's name.
function M.open_report(task, provider, where, brief)
  local name = provider or descriptors.owner(task)
  local id = descriptors.id_of(name, task)
  return buffer.open(task, where, id, { provider = name,
    short = require("deepresearch.nvim.history").short(id), brief = brief,
    style = config.values.style })
end

--- The report buffer of a task id, if one is open (or hidden).
function M.buffer_of(id)
  return buffer.find(id)
end

return M

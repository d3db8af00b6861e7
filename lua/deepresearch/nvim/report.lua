-- A task's report in the editor: rendered in setup's citation style, opened where setup says
-- (the buffers themselves are nvim/buffer.lua's).
local buffer = require "deepresearch.nvim.buffer"
local config = require "deepresearch.nvim.config"
local descriptors = require "deepresearch.nvim.descriptors"

local M = {}

--- The report of a done task as markdown text, citations resolved.
function M.render(task, provider)
  return buffer.render(task, config.values.style,
    descriptors.id_of(provider or descriptors.owner(task), task))
end

--- Opens (or refreshes) the buffer deepresearch://<id> holding the rendered report.
-- provider: whose task it is (the default one when not given).
function M.open_report(task, provider)
  local name = provider or descriptors.owner(task)
  return buffer.open(task, config.values.open, config.values.style,
    descriptors.id_of(name, task))
end

return M

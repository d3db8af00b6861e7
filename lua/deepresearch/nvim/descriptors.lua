-- What the editor reads off a provider's descriptor (docs/providers.md): a task's id and the
-- provider it belongs to, its progress line and counters, and the command's list columns
-- (cli/task.lua's adapter). Nothing under nvim/ names a provider or its fields.
local providers = require "deepresearch.providers"
local config = require "deepresearch.nvim.config"

local M = {}

-- The command's view of each provider (cli/task.lua's adapter): describe, list rows, id.
local adapters = setmetatable({}, { __mode = "k" })
function M.adapter(name)
  local d = providers.get(name)
  adapters[d] = adapters[d] or require("deepresearch.cli.task").adapter(d)
  return adapters[d]
end

function M.id_of(name, task)
  return task[providers.get(name).kinds.research.id_field]
end

-- { agents, sources, ... }: the counters the worker publishes, read the same way here.
function M.counters(name, task)
  return providers.get(name).worker.progress(task)
end

-- The provider whose task this is: the first whose id field it carries (dr.state's rule).
function M.owner(task)
  for _, n in ipairs(providers.names()) do
    if task[providers.get(n).kinds.research.id_field] ~= nil then return n end
  end
  return config.provider()
end

-- "in_progress, iterations 3, agents 5/25, sources 12": the command's progress fields.
function M.describe(name, task)
  local ok, info = pcall(M.adapter(name).describe, task)
  if not ok or type(info) ~= "table" then return tostring(task.status) end
  local parts = { tostring(info.state or task.status) }
  for _, p in ipairs(info.parts or {}) do parts[#parts + 1] = tostring(p) end
  return table.concat(parts, ", ")
end

return M

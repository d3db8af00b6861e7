-- The command's view of a provider's research tasks, built from its descriptor (descriptor.cli):
-- how to create one, its id, the progress fields, the `get` summary, the `list` table, the report.
-- Nothing here names a provider: a registered descriptor is all a new one needs.
local output = require "deepresearch.cli.output"
local progress = require "deepresearch.cli.progress"
local providers = require "deepresearch.providers"

local M = {}

local function when(iso)
  if type(iso) ~= "string" then return nil end
  local d, t = iso:match("^(%d%d%d%d%-%d%d%-%d%d)[T ](%d%d:%d%d)")
  return d and (d .. " " .. t) or iso
end
M.when = when

--- The report of a finished task as text, in one of report.render's styles.
local function render(task, style)
  local ok, report = pcall(require, "deepresearch.report")
  if not ok then return nil, "cannot load deepresearch.report: " .. tostring(report) end
  local text, err = report.render(task, { style = style or "footnotes" })
  if not text then return nil, err end
  return text
end

-- The formatters a descriptor's summary and columns use.
local FORMAT = {
  when = when,
  shown = progress.shown,
  lines_of = output.lines_of,
  words = function(s) return output.first_words(s, 8, 48) end,
}
M.FORMAT = FORMAT

-- The descriptor's describer: a function, a cli/progress.lua describer's name, or none (the
-- generic one, from the kind's progress fields).
local function describer(d)
  local how = d.cli.describe
  if type(how) == "function" then return how end
  if how == nil or how == "generic" then return progress.generic(d.kinds.research) end
  local fn = progress[how]
  if d.cli.describe_budgets then fn = fn(d.cost.budgets) end
  return fn
end

--- The adapter for a descriptor: id, describe, failure, create, summary, list, list_headers,
-- list_row, render, name, max_brief, label.
function M.adapter(d)
  local c, kind = d.cli, d.kinds.research
  local ad = { name = d.name, max_brief = d.limits.brief, label = kind.label, descriptor = d }
  function ad.id(task) return task[kind.id_field] end
  -- The failure as text: a string or number as sent, an object as compact JSON, nothing for
  -- null or another type (server data never prints as "table: 0x...").
  function ad.failure(task)
    local v = task[kind.failure_field]
    if type(v) == "string" or type(v) == "number" then return v end
    if type(v) == "table" and not require("deepresearch.base.json").is_null(v) then
      local ok, s = pcall(require("deepresearch.base.json").encode, v)
      return ok and s or nil
    end
    return nil
  end
  local describe
  function ad.describe(task)
    describe = describe or describer(d)
    return describe(task)
  end
  function ad.create(client, text, opts, schema) return c.create(client, text, opts, schema) end
  function ad.summary(task) return c.summary(task, FORMAT) end
  function ad.list(client, opts) return c.list(client, opts) end
  ad.list_headers = {}
  local cols = c.columns or {} -- none for a provider that cannot list (has_list = false)
  for i, col in ipairs(cols) do ad.list_headers[i] = col[1] end
  function ad.list_row(task)
    local row = {}
    for i, col in ipairs(cols) do
      local v = progress.value_at(task, col[2])
      if col[3] then v = FORMAT[col[3]](v) end
      row[i] = v
    end
    return row
  end
  function ad.render(task, style) return render(task, style) end
  return ad
end

--- The adapter for a provider name (nil for a name nobody registered). Built on every call, so
-- a descriptor registered later (or replaced) is read as it is now.
function M.for_provider(name)
  local d = providers.get(name)
  return d and d.cli and M.adapter(d) or nil
end

-- adapters.extruct, adapters.valyu, ...: the adapter of a registered provider.
return setmetatable(M, { __index = function(_, name) return M.for_provider(name) end })

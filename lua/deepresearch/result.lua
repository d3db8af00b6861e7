-- dr.result(task [, provider]): one view of a finished task, whichever provider ran it.
-- Returns { provider, id, status, state, text, fields, sources = { { n, url, title } ... },
-- cost = { usd, credits, estimated, as_of, model }, failure = { code, message }, degraded,
-- notes, marks }; text carries [n] markers that number sources (report/read.lua inserts them
-- where the API gave character or byte ranges, or renumbers its own markers).
-- Whose task it is: the provider name when given, else the first descriptor whose D.detect(task)
-- says yes; the descriptor's report, cost and prices fields say how to read it. A table no
-- descriptor claims is read by its shape alone (no cost then).
local providers = require "deepresearch.providers"
local read = require "deepresearch.report.read"
local errors = require "deepresearch.base.errors"
local argcheck = require("deepresearch.base.validate").type

local M = { read = read.read }

--- The descriptor of the provider whose task this looks like, or nil (the registry's own
-- detection; a detect that raises on odd server data is a no).
M.detect = providers.detect

local function result(task, provider)
  argcheck("result", 1, task, "table")
  argcheck("result", 2, provider, "string", true)
  if read.is_result(task) then return task end
  local d
  if provider ~= nil then
    d = providers.get(provider)
    if not d then
      error(string.format("bad argument #2 to 'result' (unknown provider %q)", provider), 2)
    end
  else
    d = M.detect(task)
  end
  if not d and not read.guess(task) then
    local id = task.id
    return nil, errors.new("no_report", "cannot tell which provider's task this is" ..
      (type(id) == "string" and " (" .. id .. ")" or "") .. "; pass the provider's name",
      { task_id = type(id) == "string" and id or nil })
  end
  return read.read(task, d)
end

return setmetatable(M, {
  __call = function(_, task, provider) return result(task, provider) end,
})

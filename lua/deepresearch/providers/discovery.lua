-- Extruct Deep Search (discovery tasks): find many companies matching criteria.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local extruct = require "deepresearch.providers.extruct"
local options = require "deepresearch.base.options"

local data = http.state
local call = extruct.call
local M = { ops = {} }
local ops = M.ops

-- extruct_db: Extruct's own company database (the vendor's API skill lists it beside the
-- reference's three; audit M8).
M.DATA_SOURCES = { "web_search", "extruct_db", "linkedin", "maps" }
M.MAX_RESULTS = 250
M.MAX_EXCLUDE_TASKS = 100

-- What each public method accepts (base/options.lua); `table` is passed through as given.
M.accepts = {
  discovery_create = { opts = 1, required = true, fields = { query = "string",
    desired_num_results = "number", criteria = "table", data_sources = "table",
    exclude_domains = "table", exclude_task_ids = "table", auto_data_sources = "boolean",
    table = "any" }, needs = { "query" } },
  discovery_get = { id = true },
  discovery_list = { opts = 1, fields = extruct.PAGE },
  discovery_results = { id = true, opts = 2, fields = extruct.PAGE },
  discovery_pages = { id = true, opts = 2, fields = extruct.PAGE },
  discovery_each = { id = true, opts = 2, fields = extruct.PAGE },
  discovery_resume = { id = true, opts = 2, fields = { desired_new_results = "number" } },
  discovery_wait = { id = true, opts = 2, fields = options.extend(extruct.WAIT,
    { until_exhausted = "boolean", return_on_exhausted = "boolean" }) },
}

local function kind_of(self) return data(self).provider.kinds.discovery end

local function check_criteria(criteria)
  local seen = {}
  for i, c in ipairs(criteria) do
    if type(c) ~= "table" then
      return nil,
        errors.invalid(string.format("criteria[%d] must be a table {key, name, criterion}", i))
    end
    for _, f in ipairs({ "key", "name", "criterion" }) do
      if type(c[f]) ~= "string" or c[f]:find("^%s*$") then
        return nil, errors.invalid(string.format("criteria[%d].%s must be a non-empty string", i,
          f),
          { field = "criteria" })
      end
    end
    if not c.key:match("^%a[%w_]*$") then
      return nil,
        errors.invalid(string.format("criteria[%d].key %q must start with a letter and " ..
        "hold only letters, digits and _", i, c.key), { field = "criteria" })
    end
    if seen[c.key] then
      return nil, errors.invalid(string.format("criteria keys must be unique: %q repeats", c.key),
        { field = "criteria" })
    end
    seen[c.key] = true
  end
  return true
end

local function check_string_list(name, list, max)
  for i, v in ipairs(list) do
    if type(v) ~= "string" or v == "" then
      return nil, errors.invalid(string.format("%s[%d] must be a non-empty string", name, i),
        { field = name })
    end
  end
  if max and #list > max then
    return nil, errors.invalid(string.format("%s holds %d entries; at most %d", name, #list, max),
      { field = name })
  end
  return true
end

--- Validates discovery_create parameters; returns the JSON body or nil, err.
function M.create_body(p)
  validate.type("discovery_create", 1, p, "table")
  validate.type("discovery_create", 1, p.query, "string")
  local ok, err = validate.text("query", p.query,
    require("deepresearch.providers.limits").discovery.brief)
  if not ok then return nil, err end
  local n = p.desired_num_results
  if n ~= nil then
    validate.type("discovery_create", 1, n, "number")
    if n % 1 ~= 0 or n < 1 or n > M.MAX_RESULTS then
      return nil, errors.invalid("desired_num_results must be an integer in 1..250, got " ..
        tostring(n),
        { field = "desired_num_results" })
    end
  end
  for _, f in ipairs({ "criteria", "data_sources", "exclude_domains", "exclude_task_ids" }) do
    validate.type("discovery_create", 1, p[f], "table", true)
  end
  validate.type("discovery_create", 1, p.auto_data_sources, "boolean", true)
  if p.criteria then
    ok, err = check_criteria(p.criteria)
    if not ok then return nil, err end
  end
  for _, src in ipairs(p.data_sources or {}) do
    ok, err = validate.enum("data_sources", src, M.DATA_SOURCES)
    if not ok then return nil, err end
  end
  ok, err = check_string_list("exclude_domains", p.exclude_domains or {})
  if ok then
    ok, err = check_string_list("exclude_task_ids", p.exclude_task_ids or {}, M.MAX_EXCLUDE_TASKS)
  end
  if not ok then return nil, err end
  return json.encode({
    query = p.query, desired_num_results = n, criteria = p.criteria,
    auto_data_sources = p.auto_data_sources,
    data_sources = p.data_sources, exclude_domains = p.exclude_domains,
    exclude_task_ids = p.exclude_task_ids,
    table = p.table,
  })
end

-- A create's answer names its task; a 2xx without an id is unreadable (and may have made one).
local function check_created(t)
  if type(t.id) ~= "string" or t.id == "" then return "a create answer without a task id" end
  return nil
end

function ops.discovery_create(runtime, self, params)
  local body, err = M.create_body(params)
  if not body then return nil, err end
  local task
  task, err = call(runtime, data(self), { method = "POST", path = kind_of(self).path, body = body,
    effect = "create", expect = "object", check = check_created })
  if task or not extruct.maybe_created(err) then return task, err end
  return nil, extruct.unresolved(err, "client:discovery_list{limit = 10}")
end

local function get_by_id(runtime, self, id, retries)
  return call(runtime, data(self), { method = "GET", path = kind_of(self).path .. "/" ..
    http.escape(id),
    effect = "read", expect = "object", max_retries = retries })
end

function ops.discovery_get(runtime, self, id)
  local err
  id, err = validate.id("discovery_get", id)
  if not id then return nil, err end
  return get_by_id(runtime, self, id)
end

function ops.discovery_list(runtime, self, opts)
  validate.type("discovery_list", 1, opts, "table", true)
  local ok, err = validate.page(opts)
  if not ok then return nil, err end
  opts = opts or {}
  return call(runtime, data(self), { method = "GET", path = kind_of(self).path,
    query = { offset = opts.offset, limit = opts.limit }, effect = "read", expect = "array" })
end

--- One page of results: the task object plus `results`, ordered by relevance.
function ops.discovery_results(runtime, self, id, opts)
  local err
  id, err = validate.id("discovery_results", id)
  if not id then return nil, err end
  validate.type("discovery_results", 2, opts, "table", true)
  local ok
  ok, err = validate.page(opts)
  if not ok then return nil, err end
  opts = opts or {}
  local page
  page, err = call(runtime, data(self), { method = "GET", path = kind_of(self).path .. "/" ..
    http.escape(id) ..
    "/results", query = { offset = opts.offset,
      limit = opts.limit }, effect = "read", expect = "object" })
  if page and type(page.results) ~= "table" then
    return nil, errors.new("invalid_response", "results page without a results array",
      { status = 200 })
  end
  return page, err
end

--- Asks a task for more results; 400 on an exhausted task is the error code `exhausted`.
function ops.discovery_resume(runtime, self, id, opts)
  local err
  id, err = validate.id("discovery_resume", id)
  if not id then return nil, err end
  validate.type("discovery_resume", 2, opts, "table", true)
  opts = opts or {}
  local n = opts.desired_new_results
  if n ~= nil then
    validate.type("discovery_resume", 2, n, "number")
    if n % 1 ~= 0 or n < 0 or n > M.MAX_RESULTS then
      return nil, errors.invalid("desired_new_results must be an integer in 0..250",
        { field = "desired_new_results" })
    end
  end
  return call(runtime, data(self), { method = "POST", path = kind_of(self).path .. "/" ..
    http.escape(id) .. "/resume",
    body = json.encode({
      desired_new_results = n }), effect = "mutate", expect = "object", on_400 = "exhausted" })
end

local function discovery_verdict(task, state, opts)
  if state == "done" then return "done" end
  if state == "running" and task.is_exhausted and (opts.until_exhausted
    or opts.return_on_exhausted) then
    return "done"
  end
  if state == "failed" then
    return errors.new("task_failed", "discovery task " .. tostring(task.id) .. " failed",
      { task = task, reason = task.failure_reason })
  end
  if state == nil then
    return errors.new("invalid_response", "discovery task has an unknown status: " ..
      tostring(task.status),
      { task = task })
  end
  return nil
end

--- Waits until done or failed (by default even when is_exhausted: the last candidates may
-- still be scoring); opts.until_exhausted returns as soon as is_exhausted is true.
function ops.discovery_wait(runtime, self, id_or_task, opts)
  local get = function(r, c, id) return get_by_id(r, c, id, 0) end
  return extruct.wait_on(runtime, self, kind_of(self), id_or_task, opts, get, discovery_verdict,
    "discovery_wait")
end

M.methods = extruct.blocking_methods(ops, M.accepts)

--- Iterates every result page (each the task plus its `results`); stops at a short page.
function M.methods.discovery_pages(self, id, opts)
  options.check_call("discovery_pages", M.accepts.discovery_pages, 2, id, opts)
  opts = opts or {}
  local limit, offset, done = opts.limit or 50, opts.offset or 0, false
  if limit < 1 then return extruct.failing_iterator(errors.invalid("limit must be at least 1")) end
  return function()
    if done then return nil end
    local page, err = self:discovery_results(id, { offset = offset, limit = limit })
    if not page then done = true return false, err end
    offset = offset + #page.results
    if #page.results < limit then done = true end
    if #page.results == 0 then return nil end
    return page
  end
end

--- Iterates every result row across pages.
function M.methods.discovery_each(self, id, opts)
  options.check_call("discovery_each", M.accepts.discovery_each, 2, id, opts)
  local pages = self:discovery_pages(id, opts)
  local page, i = nil, 0
  return function()
    while not page or i >= #page.results do
      local err
      page, err = pages()
      if not page then return page, err end
      i = 0
    end
    i = i + 1
    return page.results[i]
  end
end

--- A result's criterion grades: list of { key, name, grade (1-5), explanation, sources }.
function M.grades(result, criteria)
  local out, names = {}, {}
  for _, c in ipairs(criteria or {}) do names[c.key] = c.name end
  local keys = {}
  for k in pairs(result.scores or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local s = result.scores[k]
    out[#out + 1] = { key = k, name = names[k], grade = s.grade, explanation = s.explanation,
      sources = s.sources or {} }
  end
  return out
end

--- The documented high-fit rule: at least 75% of the criteria graded 4 or 5.
function M.high_fit(result, criteria)
  local keys = {}
  if criteria and #criteria > 0 then
    for _, c in ipairs(criteria) do keys[#keys + 1] = c.key end
  else
    for k in pairs(result.scores or {}) do keys[#keys + 1] = k end
  end
  if #keys == 0 then return false end
  local good = 0
  for _, k in ipairs(keys) do
    local s = (result.scores or {})[k]
    if s and type(s.grade) == "number" and s.grade >= 4 then good = good + 1 end
  end
  return good >= 0.75 * #keys
end

return M

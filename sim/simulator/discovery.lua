-- luacheck: std lua54
-- Extruct Deep Search (CONTRACT A.3, C.3 D1-D6): discovery tasks over a seeded, finite pool of
-- candidate companies. Each scheduled candidate has fixed times (discovered, enriched,
-- evaluated), so every counter is a pure function of virtual time: monotonic, and
-- num_results <= evaluated <= enriched <= discovered by construction.
local content = require "simulator.content"
local extruct = require "simulator.extruct"
local pages = require "simulator.pages"

local M = {}

local DEFAULTS = {
  pool = 60, start_delay = 5, interval = 2, enrich_lag = 10, eval_lag = 10, exhaust_lag = 30,
  resume_min = 5, pass_rate = 0.8, fit_rate = 0.5, results = "high_fit", list_scope = "org",
  fail_pattern = "%[fail%]", fail_after = 20, max_exclusions = 1000,
}
M.DEFAULTS = DEFAULTS

-- extruct_db: Extruct's company database, listed by the vendor's API skill beside the
-- reference's three.
local SOURCES = { web_search = true, extruct_db = true, linkedin = true, maps = true }
local SOURCES_MSG = "'web_search', 'extruct_db', 'linkedin' or 'maps'"

local app, st

-- Exclusions ----------------------------------------------------------------------------------

local SECOND_LEVEL = { co = true, com = true, org = true, net = true, ac = true, gov = true,
  edu = true }

--- "https://www.Acme.com/about" -> "acme.com" (registered domain; co.uk-style suffixes kept).
function M.normalise_domain(s)
  local host = s:lower():gsub("^%s+", ""):gsub("%s+$", ""):gsub("^%a[%w+.-]*://", "")
  host = host:match("^[^/?#]*"):gsub("^.*@", ""):gsub(":%d+$", ""):gsub("%.$", "")
  local labels = {}
  for label in host:gmatch("[^.]+") do labels[#labels + 1] = label end
  local n = #labels
  if n <= 2 then return table.concat(labels, ".") end
  local keep = (SECOND_LEVEL[labels[n - 1]] and #labels[n] == 2) and 3 or 2
  return table.concat(labels, ".", n - keep + 1, n)
end

-- Timeline ------------------------------------------------------------------------------------

-- Gives times to candidates from..last after `base`, and picks the stop index: the first
-- candidate at which the high-fit count reaches the desired number (else the whole pool).
local function schedule(task, base)
  local cfg = app.config.discovery
  local fits, stop = 0, #task.pool
  for j, c in ipairs(task.pool) do
    if c.pass and c.fit then fits = fits + 1 end
    if fits >= task.desired then stop = j; break end
  end
  for j = task.scheduled + 1, stop do
    local c = task.pool[j]
    c.t_disc = base + (j - task.scheduled) * cfg.interval
    c.t_enr = c.pass and c.t_disc + cfg.enrich_lag or math.huge
    c.t_eval = c.pass and c.t_enr + cfg.eval_lag or math.huge
  end
  if stop > task.scheduled then task.scheduled = stop end
  local last = task.pool[task.scheduled]
  if task.scheduled == #task.pool then
    local t_end = last and last.t_disc or base
    task.exhausted_at = t_end
    local finish = t_end + cfg.exhaust_lag
    for _, c in ipairs(task.pool) do
      if c.t_eval ~= math.huge and c.t_eval > finish then finish = c.t_eval end
    end
    task.done_at = finish
  else
    task.exhausted_at = nil
    task.done_at = last.t_eval
  end
  task.done_at = math.max(task.done_at, task.floor)
end

local function view(task, now)
  local t = task.failed_at and math.min(now, task.failed_at) or now
  local v = { discovered = 0, enriched = 0, evaluated = 0, results = 0, rows = {} }
  for j = 1, task.scheduled do
    local c = task.pool[j]
    if c.t_disc <= t then v.discovered = v.discovered + 1 end
    if c.t_enr <= t then v.enriched = v.enriched + 1 end
    if c.t_eval <= t then
      v.evaluated = v.evaluated + 1
      if c.fit then v.results = v.results + 1 end
      if c.fit or app.config.discovery.results == "evaluated" then v.rows[#v.rows + 1] = c end
    end
  end
  v.exhausted = task.exhausted_at ~= nil and task.exhausted_at <= t
  if task.failed_at and now >= task.failed_at then v.status = "failed"
  elseif now < task.start then v.status = "created"
  elseif now < task.done_at then v.status = "in_progress"
  else v.status = "done" end
  return v
end

function M.serialize(task, now, v)
  v = v or view(task, now)
  return {
    id = task.id, created_at = app:iso(task.created), status = v.status, query = task.query,
    desired_num_results = task.desired, is_exhausted = v.exhausted,
    num_results_discovered = v.discovered, num_results_enriched = v.enriched,
    num_results_evaluated = v.evaluated, num_results = v.results,
    table_id = task.table_id or app.null, auto_data_sources = task.auto,
    data_sources = task.data_sources and app.array(task.data_sources) or app.null,
    criteria = task.criteria, exclude_domains = app.array(task.exclude),
  }
end

local function row(task, c)
  local scores = {}
  for _, cr in ipairs(task.criteria) do
    local g = c.grades[cr.key]
    scores[cr.key] = { grade = g,
      sources = { pages.map("https://" .. c.company_website .. "/"), pages.map(c.evidence) },
      explanation = string.format("%s scores %d/5 on %s: %s", c.company_name, g, cr.name:lower(),
        g >= 4 and "strong public evidence." or "limited or contrary evidence.") }
  end
  return {
    id = c.id, task_id = task.id, company_name = c.company_name,
    company_description = c.company_description,
    company_website = c.company_website, relevance = c.relevance, created_at = app:iso(c.t_eval),
    company_profile_id = c.profile_id or app.null, source = c.source, scores = scores,
    founding_year = c.founding_year or app.null, employee_count = c.employee_count,
    hq_country = c.hq_country, hq_state_province = c.hq_state_province, hq_city = c.hq_city,
    company_full_description = c.company_full_description,
  }
end

local function build_pool(task, excluded)
  local cfg, r = app.config.discovery, content.rng(task.seed)
  local k, need = #task.criteria, math.ceil(0.75 * #task.criteria)
  local sources = task.data_sources and not task.auto and task.data_sources
    or { "web_search", "linkedin", "maps" }
  for n = 1, cfg.pool do
    local c = content.company(r, n, task.query)
    c.id, c.pass, c.fit = r:uuid(), r:random() < cfg.pass_rate, r:random() < cfg.fit_rate
    c.profile_id = r:random() < 0.9 and r:uuid() or nil
    c.founding_year = r:random() < 0.9 and c.founding_year or nil
    c.source = sources[r:random(#sources)]
    c.evidence = "https://news.example/" .. content.slug(c.company_name)
    -- Grades agree with the high-fit rule: at least 75% of criteria graded >= 4.
    local high = c.fit and r:random(need, k) or r:random(0, need - 1)
    c.grades, c.relevance = {}, 0
    for i, cr in ipairs(task.criteria) do
      local g = i <= high and r:random(4, 5) or r:random(1, 3)
      c.grades[cr.key] = g
      c.relevance = c.relevance + g
    end
    c.relevance = math.floor(c.relevance * 100 / (5 * k) - r:random(0, 4) + 0.5)
    if not excluded[c.company_website] then task.pool[#task.pool + 1] = c end
  end
end

-- Validation (D1) -------------------------------------------------------------------------------

local function int_field(value, loc, default, lo, hi, errors)
  local item = app.error_item
  if value == nil or value == app.null then return default end
  local v = type(value) == "number" and math.tointeger(value)
    or (type(value) == "string" and value:match("^%s*[+-]?%d+%s*$")
      and math.tointeger(tonumber(value)))
  if not v then
    errors[#errors + 1] = type(value) == "number"
      and item("int_from_float", loc,
        "Input should be a valid integer, got a number with a fractional part", value)
      or item(type(value) == "string" and "int_parsing" or "int_type", loc,
        "Input should be a valid integer", value)
  elseif v < lo then
    errors[#errors + 1] = item("greater_than_equal", loc,
      "Input should be greater than or equal to " .. lo, value,
      { ge = lo })
  elseif v > hi then
    errors[#errors + 1] = item("less_than_equal", loc,
      "Input should be less than or equal to " .. hi, value, { le = hi })
  end
  return v
end

local function list_of(value, loc, errors)
  if value == nil or value == app.null then return nil end
  if type(value) ~= "table" or (next(value) ~= nil and value[1] == nil) then
    errors[#errors + 1] = app.error_item("list_type", loc, "Input should be a valid list", value)
    return nil
  end
  return value
end

-- A required string field of `parent` (pydantic reports a missing field with the parent as input).
local function string_at(parent, key, loc, errors, min)
  local item, value = app.error_item, parent[key]
  if value == nil then
    errors[#errors + 1] = item("missing", loc, "Field required", parent)
  elseif type(value) ~= "string" then
    errors[#errors + 1] = item("string_type", loc, "Input should be a valid string", value)
  elseif min and #value:gsub("^%s+", ""):gsub("%s+$", "") < min then
    errors[#errors + 1] = item("string_too_short", loc, "String should have at least 1 character",
      value, { min_length = 1 })
  else
    return value
  end
end

local function create_body(req)
  local body, errors = app:json_body(req)
  if not body then return nil, errors end
  local item = app.error_item
  errors = {}
  local out = {}
  out.query = string_at(body, "query", { "body", "query" }, errors, 1)
  out.desired = int_field(body.desired_num_results, { "body", "desired_num_results" }, 100, 1, 250,
    errors)
  if body.table ~= nil and body.table ~= app.null then
    if type(body.table) ~= "table" then
      errors[#errors + 1] = item("dict_type", { "body", "table" },
        "Input should be a valid dictionary", body.table)
    else
      out.table_id = string_at(body.table, "id", { "body", "table", "id" }, errors)
    end
  end
  out.auto = body.auto_data_sources
  if out.auto == nil or out.auto == app.null then out.auto = true end
  if type(out.auto) ~= "boolean" then
    errors[#errors + 1] = item("bool_type", { "body", "auto_data_sources" },
      "Input should be a valid boolean", out.auto)
  end
  out.data_sources = list_of(body.data_sources, { "body", "data_sources" }, errors)
  for i, v in ipairs(out.data_sources or {}) do
    if not SOURCES[v] then
      errors[#errors + 1] = item("enum", { "body", "data_sources", i - 1 },
        "Input should be " .. SOURCES_MSG, v, { expected = SOURCES_MSG })
    end
  end
  local criteria = list_of(body.criteria, { "body", "criteria" }, errors)
  if criteria and criteria[1] then
    local seen = {}
    for i, c in ipairs(criteria) do
      local loc = { "body", "criteria", i - 1 }
      if type(c) ~= "table" then
        errors[#errors + 1] = item("dict_type", loc, "Input should be a valid dictionary", c)
      else
        for _, f in ipairs({ "key", "name", "criterion" }) do
          string_at(c, f, { "body", "criteria", i - 1, f }, errors, 1)
        end
        if seen[c.key] then
          local why = "criteria keys must be unique (duplicate key '" .. tostring(c.key) .. "')"
          errors[#errors + 1] = item("value_error", { "body", "criteria" }, "Value error, " .. why,
            criteria, { error = why })
        end
        seen[c.key] = true
      end
    end
    out.criteria = criteria
  end
  out.exclude_domains = list_of(body.exclude_domains, { "body", "exclude_domains" }, errors) or {}
  for i in ipairs(out.exclude_domains) do
    string_at(out.exclude_domains, i, { "body", "exclude_domains", i - 1 }, errors)
  end
  out.exclude_task_ids = list_of(body.exclude_task_ids, { "body", "exclude_task_ids" }, errors)
    or {}
  if #out.exclude_task_ids > 100 then
    errors[#errors + 1] = item("too_long", { "body", "exclude_task_ids" },
      "List should have at most 100 items after validation, not " .. #out.exclude_task_ids,
      out.exclude_task_ids,
      { field_type = "List", max_length = 100, actual_length = #out.exclude_task_ids })
  end
  if #errors > 0 then return nil, errors end
  return out
end

-- Handlers ------------------------------------------------------------------------------------

local function guarded(fn)
  return function(req)
    local user, status, body, headers = extruct.authenticate(req)
    if not user then return status, body, headers end
    return fn(req, user)
  end
end

local function find(req, user)
  local task = st.by_id[req.params.id]
  if not task or task.org_id ~= user.org_id then return nil end
  return task
end

local function create(req, user)
  local input, errors = create_body(req)
  if errors then return 422, { detail = errors } end
  if user.plan ~= "pro" then return 402, { detail = { error = "plan_required" } } end
  local cfg, now = app.config.discovery, req.now
  local task = { id = app:uuid(), seed = app:random(1, 2147483647), user = user,
    org_id = user.org_id,
    query = input.query, desired = input.desired, table_id = input.table_id, auto = input.auto,
    data_sources = input.data_sources, created = now, start = now + cfg.start_delay, floor = now,
    pool = {}, scheduled = 0 }
  task.criteria = input.criteria or content.criteria(content.rng(task.seed + 7), input.query)
  local excluded, list = {}, {}
  local function exclude(d)
    if d ~= "" and not excluded[d] and #list < cfg.max_exclusions then
      excluded[d] = true
      list[#list + 1] = d
    end
  end
  for _, d in ipairs(input.exclude_domains) do exclude(M.normalise_domain(d)) end
  for _, id in ipairs(input.exclude_task_ids) do
    local other = st.by_id[id]
    if other and other.org_id == user.org_id then
      local v = view(other, now)
      if v.status == "done" then for _, c in ipairs(v.rows) do exclude(c.company_website) end end
    end
  end
  table.sort(list)
  task.exclude = list
  build_pool(task, excluded)
  if cfg.fail_pattern and input.query:find(cfg.fail_pattern) then
    task.failed_at = task.start + cfg.fail_after
  end
  schedule(task, task.start)
  st.tasks[#st.tasks + 1] = task
  st.by_id[task.id] = task
  st.creates = st.creates + 1
  app:count("discovery.tasks_created")
  return 200, M.serialize(task, now)
end

local function get(req, user)
  local task = find(req, user)
  if not task then return 404, { detail = "Task not found" } end
  return 200, M.serialize(task, req.now)
end

local function paging(req)
  local offset, e1 = app:query_int(req, "offset", 0, 0)
  local limit, e2 = app:query_int(req, "limit", 50, 0)
  if e1 or e2 then return nil, { detail = { e1 or e2, e1 and e2 or nil } } end
  return offset, limit
end

local function by_relevance(a, b)
  if a.relevance ~= b.relevance then return a.relevance > b.relevance end
  return a.id < b.id
end

local function results(req, user)
  local task = find(req, user)
  if not task then return 404, { detail = "Task not found" } end
  local offset, limit = paging(req)
  if not offset then return 422, limit end
  local v = view(task, req.now)
  table.sort(v.rows, by_relevance)
  local body, rows = M.serialize(task, req.now, v), {}
  for i = offset + 1, math.min(#v.rows, offset + limit) do
    rows[#rows + 1] = row(task, v.rows[i])
  end
  body.results = app.array(rows)
  return 200, body
end

local function resume(req, user)
  local task = find(req, user)
  if not task then return 404, { detail = "Task not found" } end
  local body = {}
  if req.body ~= "" then
    local errors
    body, errors = app:json_body(req)
    if not body then return 422, { detail = errors } end
  end
  local errors = {}
  local n = int_field(body.desired_new_results, { "body", "desired_new_results" }, 25, 0, 250,
    errors)
  if #errors > 0 then return 422, { detail = errors } end
  if user.plan ~= "pro" then return 402, { detail = { error = "plan_required" } } end
  local now = req.now
  if view(task, now).exhausted then
    return 400,
      { detail = "Task is exhausted: no more candidates are available. Create a new task instead." }
  end
  task.desired = math.min(250, task.desired + n)
  task.failed_at = nil
  task.floor = now + app.config.discovery.resume_min
  local last = task.pool[task.scheduled]
  schedule(task, math.max(now, last and last.t_disc or task.start))
  return 200, M.serialize(task, now)
end

local function list(req, user)
  local offset, limit = paging(req)
  if not offset then return 422, limit end
  local org_scope, mine = app.config.discovery.list_scope == "org", {}
  for _, task in ipairs(st.tasks) do
    if task.user == user or (org_scope and task.org_id == user.org_id) then
      mine[#mine + 1] = task
    end
  end
  table.sort(mine, function(a, b)
    if a.created ~= b.created then return a.created > b.created end
    return a.id > b.id
  end)
  local out = {}
  for i = offset + 1, math.min(#mine, offset + limit) do
    out[#out + 1] = M.serialize(mine[i], req.now)
  end
  return 200, app.array(out)
end

function M.install(a)
  app = a
  app.config.discovery = {}
  for k, v in pairs(DEFAULTS) do app.config.discovery[k] = v end
  app:on_reset(function() st = { tasks = {}, by_id = {}, creates = 0 } end)
  app:route("POST", "/v1/discovery_tasks", guarded(create))
  app:route("GET", "/v1/discovery_tasks", guarded(list))
  app:route("GET", "/v1/discovery_tasks/:id", guarded(get))
  app:route("GET", "/v1/discovery_tasks/:id/results", guarded(results))
  app:route("POST", "/v1/discovery_tasks/:id/resume", guarded(resume))
  app:expose("discovery", function()
    local tasks, now = {}, app:now()
    for i, task in ipairs(st.tasks) do tasks[i] = M.serialize(task, now) end
    return { tasks = app.array(tasks), creates = st.creates }
  end)
end

return M

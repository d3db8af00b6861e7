-- luacheck: std lua54
-- Extruct (CONTRACT Part A.1/A.2, C.1, C.2): bearer tokens and users, GET /v1/user, and Deep
-- Research tasks. Lifecycles are events (start, each agent, done, reject, fail) kept in a heap
-- and settled lazily up to the virtual "now" on every request, in time order, so the credit
-- ledger is consistent across a user's concurrent tasks and everything is deterministic.
local content = require "simulator.content"
local heap = require "simulator.heap"

local M = {}

local DEFAULTS = {
  budgets = { medium = 25, high = 50, xhigh = 75 },
  duration = { medium = 240, high = 480, xhigh = 900 },
  duration_scale = 1, jitter = 0.15, start_delay = 5, reject_delay = 10,
  reject_pattern = "%[unusable%]", reject_heuristic = true, fail_pattern = "%[fail%]",
  full_budget_share = 0.3, sources_per_agent = 3, null_degradation = false, list_scope = "user",
  create_status = 200,
  orgs = { org_acme = "Acme", org_globex = "Globex", org_free = "Free Org", org_poor = "Poor Org" },
  tokens = {
    ["test-token"] = { user_id = "u1", email = "alice@acme.test", org_id = "org_acme", plan = "pro",
      credits = 10000 },
    ["teammate-token"] = { user_id = "u2", email = "bob@acme.test", org_id = "org_acme",
      plan = "pro", credits = 10000 },
    ["other-org-token"] = { user_id = "u3", email = "eve@globex.test", org_id = "org_globex",
      plan = "pro", credits = 10000 },
    ["free-token"] = { user_id = "u4", email = "fred@free.test", org_id = "org_free", plan = "free",
      credits = 10000 },
    ["poor-token"] = { user_id = "u5", email = "pat@poor.test", org_id = "org_poor", plan = "pro",
      credits = 30 },
  },
}
M.DEFAULTS = DEFAULTS

local st -- provider state, rebuilt on reset
local app

-- Users ---------------------------------------------------------------------------------------

local function ensure_user(spec)
  local id = spec.user_id or ("u_" .. content.slug(spec.email or "user"))
  local u = st.users[id]
  if not u then
    u = { id = id, balance = 0, charged = 0 }
    st.users[id] = u
    st.user_order[#st.user_order + 1] = id
  end
  if spec.email then u.email = spec.email end
  if spec.org_id then u.org_id = spec.org_id end
  if spec.plan then u.plan = spec.plan end
  if spec.credits then u.balance = math.tointeger(spec.credits) or math.floor(spec.credits) end
  if spec.payment_failed ~= nil then u.payment_failed = spec.payment_failed == true end
  u.email = u.email or (id .. "@example.test")
  u.org_id = u.org_id or ("org_" .. id)
  u.plan = u.plan or "pro"
  return u
end

local function lookup(token)
  local u = st.by_token[token]
  if u then return u end
  local spec = app.config.extruct.tokens[token]
  if type(spec) ~= "table" then return nil end
  u = ensure_user(spec)
  st.by_token[token] = u
  return u
end

--- Authenticates a request (E1). Returns the user, or nil, status, body, headers.
function M.authenticate(req)
  local h = req.headers.authorization
  if not h or h:match("^%s*$") then
    if app.config.auth_missing_status == 403 then
      return nil, 403, { detail = "Not authenticated" }
    end
    return nil, 401, { detail = "Not authenticated" }, { ["WWW-Authenticate"] = "Bearer" }
  end
  local token = h:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(%S+)%s*$")
  local user = token and lookup(token)
  if not user then
    return nil, 401, { detail = "Invalid authentication credentials" },
      { ["WWW-Authenticate"] = "Bearer" }
  end
  return user
end

local function org_name(org_id)
  return app.config.extruct.orgs[org_id] or org_id:gsub("^org_", ""):gsub("^%l", string.upper)
end

-- Lifecycle -----------------------------------------------------------------------------------

local function push(t, task)
  heap.push(st.heap, { t = t, seq = task.seq, task = task })
end

local function next_event(task)
  if task.status == "done" or task.status == "failed" then return nil end
  if task.status == "created" then return task.start end
  if task.reject then return math.max(task.reject_at, task.start) end
  if task.agents < task.final_agents then return task.times[task.agents + 1] end
  return task.finish
end

local function fail(task, t, reason)
  local u = task.user
  u.balance = u.balance + task.charged
  u.charged = u.charged - task.charged
  task.refunded = task.charged
  task.charged = 0
  task.status, task.failure_reason, task.updated = "failed", reason, t
end

local function insufficient(task)
  return string.format(
    "Insufficient credits: the credit balance reached 0 after %d agents, so the research "
    .. "could not continue. The %d credits charged were refunded. "
    .. "Add credits or retry at a lower depth.",
    task.agents, task.charged)
end

local function process(task, t)
  if task.status == "created" then
    task.status, task.updated = "in_progress", t
  elseif task.reject then
    fail(task, t, task.reject)
  elseif task.agents < task.final_agents then
    local u = task.user
    if task.fail_after and task.agents >= task.fail_after then
      return fail(task, t, "Internal error: the research pipeline failed after " .. task.agents
        .. " agents. All charged credits were refunded; please retry.")
    end
    if u.balance <= 0 then return fail(task, t, insufficient(task)) end
    u.balance, u.charged, task.charged = u.balance - 1, u.charged + 1, task.charged + 1
    task.agents = task.agents + 1
    task.sources = task.sources + task.yields[task.agents]
    task.iterations = (task.agents + 4) // 5
    task.updated = t
    if u.balance == 0 and task.agents < task.final_agents then fail(task, t, insufficient(task)) end
  else
    task.status, task.updated = "done", t
  end
end

--- Brings every task up to virtual time `now`, processing events in time order.
function M.settle(now)
  local events = st.heap
  while events[1] and events[1].t <= now do
    local ev = heap.pop(events)
    process(ev.task, ev.t)
    local t = next_event(ev.task)
    if t then push(t, ev.task) end
  end
end

local function plan(task, cfg)
  local r = content.rng(task.seed)
  local depth, budget = task.depth, task.budget
  local d = (cfg.duration[depth] or 240) * (cfg.duration_scale or 1)
    * (1 + (r:random() * 2 - 1) * cfg.jitter)
  task.start = task.created + cfg.start_delay
  task.finish = task.start + d
  local final = budget
  if r:random() >= cfg.full_budget_share then
    final = r:random(math.max(1, math.ceil(budget * 0.3)), budget)
  end
  task.final_agents = math.max(1, final)
  task.times, task.yields = {}, {}
  local spa = cfg.sources_per_agent
  for k = 1, task.final_agents do
    task.times[k] = task.start + d * (k - 0.5 + (r:random() - 0.5) * 0.8) / task.final_agents
    task.yields[k] = r:random(1, 2 * spa - 1)
  end
  task.reject = content.unusable(task.brief, cfg)
  task.reject_at = task.created + cfg.reject_delay
  if cfg.fail_pattern and task.brief:find(cfg.fail_pattern) then
    task.fail_after = (task.final_agents + 1) // 2
  end
end

-- Serialisation -------------------------------------------------------------------------------

local function report(task)
  local cache = task.report_cache
  if not cache then
    local r = content.rng(task.seed + 1)
    local target = content.target(task.brief) or "the research target"
    cache = { sources = content.sources(r, target, task.sources) }
    if task.schema then
      cache.fields = content.value(r, task.schema, target, nil,
        { null = app.null, array = app.array })
      cache.basis = {}
      for _, key in ipairs(content.sorted_keys(cache.fields)) do
        local a, b = r:random(task.sources), r:random(task.sources)
        cache.basis[key] = a == b and { a } or { math.min(a, b), math.max(a, b) }
      end
    else
      cache.markdown = content.markdown(r, target,
        task.sources, ({ medium = 4, high = 5, xhigh = 7 })[task.depth])
    end
    task.report_cache = cache
  end
  local reasons = {}
  if task.agents >= task.budget then
    reasons[1] = "The research stopped at the agent budget for this depth (" .. task.budget
      .. " agents); some angles may be covered less deeply."
  end
  local degradation = app.config.extruct.null_degradation and app.null or app.array(reasons)
  if task.schema then
    return { kind = "schema", fields = cache.fields, basis = cache.basis, sources = cache.sources,
      degradation_reasons = degradation }
  end
  return { kind = "markdown", markdown = cache.markdown, sources = cache.sources,
    degradation_reasons = degradation }
end

--- The DeepResearchTask object as served (A.2.4).
function M.serialize(task)
  return {
    id = task.id, created_at = app:iso(task.created), updated_at = app:iso(task.updated),
    status = task.status, brief = task.brief, depth = task.depth,
    iterations = task.iterations, agents = task.agents, sources = task.sources,
    owner = { id = task.user.id, email = task.user.email },
    output_schema = task.schema or app.null, failure_reason = task.failure_reason or app.null,
    report = task.status == "done" and report(task) or app.null,
  }
end

-- Validation (E2: 422 items as FastAPI/pydantic v2 would produce them) ---------------------------

local DEPTH_MSG = "Input should be 'medium', 'high' or 'xhigh'"

local function utf8_len(s)
  return utf8.len(s) or #s
end

local function create_body(req)
  local body, errors = app:json_body(req)
  if not body then return nil, errors end
  local item = app.error_item
  errors = {}
  local brief = body.brief
  if brief == nil then
    errors[#errors + 1] = item("missing", { "body", "brief" }, "Field required", body)
  elseif type(brief) ~= "string" then
    errors[#errors + 1] = item("string_type", { "body", "brief" }, "Input should be a valid string",
      brief)
  elseif brief == "" then
    errors[#errors + 1] = item("string_too_short", { "body", "brief" },
      "String should have at least 1 character",
      brief, { min_length = 1 })
  elseif utf8_len(brief) > 20000 then
    errors[#errors + 1] = item("string_too_long", { "body", "brief" },
      "String should have at most 20000 characters",
      brief, { max_length = 20000 })
  end
  local depth = body.depth
  if depth == nil or depth == app.null then
    depth = "medium"
  elseif not DEFAULTS.budgets[depth] then
    errors[#errors + 1] = item("enum", { "body", "depth" }, DEPTH_MSG, depth,
      { expected = "'medium', 'high' or 'xhigh'" })
  end
  local schema = body.output_schema
  if schema == app.null then
    schema = nil
  elseif schema ~= nil and type(schema) ~= "table" then
    errors[#errors + 1] = item("dict_type", { "body", "output_schema" },
      "Input should be a valid dictionary", schema)
  elseif schema ~= nil then
    local why = content.schema_problem(schema)
    if why then
      errors[#errors + 1] = item("value_error", { "body", "output_schema" }, "Value error, " .. why,
        schema, { error = why })
    end
  end
  if #errors > 0 then return nil, errors end
  return { brief = brief, depth = depth, output_schema = schema }
end

local function paging(req)
  local offset, e1 = app:query_int(req, "offset", 0, 0)
  local limit, e2 = app:query_int(req, "limit", 50, 0)
  if e1 or e2 then return nil, { e1 or e2, e1 and e2 or nil } end
  return { offset = offset, limit = limit }
end
M.paging = paging

-- Handlers ------------------------------------------------------------------------------------

local function guarded(fn)
  return function(req)
    local user, status, body, headers = M.authenticate(req)
    if not user then return status, body, headers end
    M.settle(req.now)
    return fn(req, user)
  end
end

local function create(req, user)
  local cfg = app.config.extruct
  local input, errors = create_body(req)
  if errors then return 422, { detail = errors } end
  if user.plan ~= "pro" then return 402, { detail = { error = "plan_required" } } end
  if user.payment_failed then return 402, { detail = { error = "payment_failed" } } end
  local budget = cfg.budgets[input.depth] or 25
  if user.balance < budget then
    return 402, { detail = { error = "insufficient_credits", required_credits = budget,
      available_credits = user.balance } }
  end
  st.seq = st.seq + 1
  local task = { id = app:uuid(), seed = app:random(1, 2147483647), seq = st.seq, user = user,
    org_id = user.org_id,
    brief = input.brief, depth = input.depth, schema = input.output_schema, budget = budget,
    created = req.now, updated = req.now, status = "created", iterations = 0, agents = 0,
    sources = 0, charged = 0 }
  plan(task, cfg)
  st.tasks[#st.tasks + 1] = task
  st.by_id[task.id] = task
  push(next_event(task), task)
  st.creates = st.creates + 1
  app:count("extruct.tasks_created")
  return cfg.create_status or 200, M.serialize(task)
end

local function get(req, user)
  local task = st.by_id[req.params.id]
  if not task then return 404, { detail = "Task not found" } end
  if task.org_id ~= user.org_id then
    return 403, { detail = "You do not have access to this task" }
  end
  return 200, M.serialize(task)
end

local function newest_first(a, b)
  if a.created ~= b.created then return a.created > b.created end
  return a.id > b.id
end

local function list(req, user)
  local page, errors = paging(req)
  if errors then return 422, { detail = errors } end
  local scope, mine = app.config.extruct.list_scope, {}
  for _, task in ipairs(st.tasks) do
    if task.user == user or (scope == "org" and task.org_id == user.org_id) then
      mine[#mine + 1] = task
    end
  end
  table.sort(mine, newest_first)
  local out = {}
  for i = page.offset + 1, math.min(#mine, page.offset + page.limit) do
    out[#out + 1] = M.serialize(mine[i])
  end
  return 200, app.array(out)
end

local function user_info(_, user)
  local org = user.org_id
  return 200, { user_id = user.id, email = user.email, available_credits = user.balance,
    organization_id = org, organization_name = org_name(org),
    organization_slug = content.slug(org_name(org)),
    organization_is_active = true }
end

local function billing(_, user)
  return 200,
    { subscription = { requires_subscription = user.plan ~= "pro", plan_tier = user.plan },
    user = { user_id = user.id, organization_id = user.org_id, organization_is_active = true } }
end

local function add_token(req)
  local b = type(req.json) == "table" and req.json or {}
  if type(b.token) ~= "string" or b.token == "" then
    return 400, { detail = "token (a string) is required" }
  end
  local existing = st.by_token[b.token]
  local spec = { user_id = b.user_id or (existing and existing.id)
    or ("u_" .. content.slug(b.token)),
    email = b.email, org_id = b.org_id, plan = b.plan, credits = b.credits,
    payment_failed = b.payment_failed }
  if type(spec.credits) ~= "number" and not st.users[spec.user_id] then spec.credits = 10000 end
  local u = ensure_user(spec)
  st.by_token[b.token] = u
  return 200,
    { user_id = u.id, email = u.email, org_id = u.org_id, plan = u.plan,
    available_credits = u.balance }
end

local function expose()
  M.settle(app:now())
  local tasks, users, billing_ = {}, {}, {}
  for i, task in ipairs(st.tasks) do
    tasks[i] = M.serialize(task)
    billing_[task.id] = { charged = task.charged, refunded = task.refunded or 0,
      user_id = task.user.id }
  end
  for _, id in ipairs(st.user_order) do
    local u = st.users[id]
    users[id] = { user_id = u.id, email = u.email, org_id = u.org_id, plan = u.plan,
      available_credits = u.balance, charged = u.charged }
  end
  return { tasks = app.array(tasks), users = users, billing = billing_, creates = st.creates }
end

function M.install(a)
  app = a
  app.config.extruct = {}
  for k, v in pairs(DEFAULTS) do app.config.extruct[k] = v end
  app:on_reset(function()
    st = { users = {}, user_order = {}, by_token = {}, tasks = {}, by_id = {}, heap = {}, seq = 0,
      creates = 0 }
    local tokens = {}
    for token in pairs(app.config.extruct.tokens) do tokens[#tokens + 1] = token end
    table.sort(tokens)
    for _, token in ipairs(tokens) do lookup(token) end
  end)
  app:route("POST", "/v1/deep_research_tasks", guarded(create))
  app:route("GET", "/v1/deep_research_tasks", guarded(list))
  app:route("GET", "/v1/deep_research_tasks/:id", guarded(get))
  app:route("GET", "/v1/user", guarded(user_info))
  app:route("GET", "/v1/billing", guarded(billing))
  app:route("GET", "/v1/healthcheck", function() return 200, { status = "ok" } end)
  app:route("POST", "/_sim/tokens", add_token)
  app:expose("extruct", expose)
end

return M

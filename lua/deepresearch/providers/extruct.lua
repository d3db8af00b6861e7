-- Extruct Deep Research: create, get, list, tasks, wait, run.
-- Each operation is written once against a runtime `rt` (send, sleep, now): the
-- blocking client passes its own, the poller one that yields to its event loop.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local dates = require "deepresearch.base.dates"
local waitloop = require "deepresearch.runtime.wait"
local options = require "deepresearch.base.options"

local states = http.states
local data = http.state
local M = { ops = {} }
local ops = M.ops

M.DEPTHS = { "medium", "high", "xhigh" }
M.BUDGETS = { medium = 25, high = 50, xhigh = 75 }
M.MAX_BRIEF = require("deepresearch.providers.limits").extruct.brief
M.RECONCILE_SKEW = 300 -- seconds of clock difference tolerated when matching a lost create

-- What each public method accepts (base/options.lua): anything else raises at the caller.
-- name -> type; WAIT and PAGE are shared with Deep Search (discovery.lua) and the poller.
local CREATE = { brief = "string", depth = "string", output_schema = "table" }
M.WAIT = { interval = "number", growth = "number", max_interval = "number", timeout = "number",
  max_failures = "number", not_found_grace = "number", on_progress = "function", task = "table" }
M.PAGE = { offset = "number", limit = "number" }
M.accepts = {
  create = { opts = 1, required = true, fields = CREATE, needs = { "brief" } },
  run = { opts = 1, required = true, fields = options.extend(CREATE, { on_progress = "function",
    timeout = "number", interval = "number", max_interval = "number" }), needs = { "brief" } },
  list = { opts = 1, fields = M.PAGE },
  tasks = { opts = 1, fields = M.PAGE },
  wait = { id = true, opts = 2, fields = M.WAIT },
}

local function kind_of(state) return state.provider.kinds.research end

-- http.request returns a third value (the raw result) callers do not need.
local function call(runtime, state, req)
  local body, err = http.request(runtime, state, req)
  return body, err
end
M.call = call

local function schema_table(s)
  if type(s) == "table" and type(s.to_table) == "function" then return s:to_table() end
  return s
end

--- Validates create parameters; returns the JSON body or nil, err. Raises on wrong types.
function M.create_body(params, fname)
  validate.type(fname, 1, params, "table")
  validate.type(fname, 1, params.brief, "string")
  local ok, err = validate.text("brief", params.brief, M.MAX_BRIEF)
  if not ok then return nil, err end
  if params.depth ~= nil then
    validate.type(fname, 1, params.depth, "string")
    ok, err = validate.enum("depth", params.depth, M.DEPTHS)
    if not ok then return nil, err end
  end
  local schema = schema_table(params.output_schema)
  if schema ~= nil then
    validate.type(fname, 1, schema, "table")
    ok, err = require("deepresearch.schema").check_output_schema(schema)
    if not ok then
      return nil, errors.invalid("output_schema: " .. tostring(err), { field = "output_schema" })
    end
  end
  local encoded, body = pcall(json.encode, { brief = params.brief, depth = params.depth,
    output_schema = schema })
  if not encoded then
    return nil, errors.invalid("cannot encode the request: " .. tostring(body))
  end
  return body
end

--- When a create began, on the server's clock: the list answer's Date header minus the
-- time that has passed here since, so a skewed local clock cannot hide the task.
function M.server_start(res, started_local, now_local)
  local server_now = res and dates.parse_http_date(http.headers(res).date)
  if not server_now then return started_local end
  return server_now - (now_local - started_local)
end

--- The newest task matching a create whose answer was lost, marked reconciled.
-- claimed: ids already handed to other creates of the same batch (create_all).
function M.match_lost_create(list, params, started, claimed)
  local depth = params.depth or "medium"
  for _, t in ipairs(list or {}) do
    local at = dates.parse_iso(t.created_at)
    if t.brief == params.brief and (t.depth or "medium") == depth and not (claimed
      and claimed[t.id]) and
       (not at or at >= started - M.RECONCILE_SKEW) then
      t.reconciled = true
      return t
    end
  end
  return nil
end

--- The error for a create that may or may not have made a task.
function M.ambiguous(cause, how)
  local what = cause.status and ("it was answered HTTP " .. cause.status .. ": " ..
    tostring(cause.message))
    or ("its answer was lost: " .. tostring(cause.message))
  return errors.new("ambiguous", string.format(
    "the create request was sent and %s; a task may exist and may be billed. Check with %s " ..
    "before creating it again", what, how),
    { retryable = false, attempts = cause.attempts, cause = cause, sent = true,
      status = cause.status,
      request_id = cause.request_id })
end

--- Whether a failed create may have made a task on the server. Only answers that say
-- "nothing was made" rule it out: a refusal (4xx), the API's own JSON 503, or a request
-- that never left. A lost answer, any 2xx (the task exists, whatever the body), a 5xx that
-- is not the API's 503 (a proxy may fail after forwarding) all may have made one.
function M.maybe_created(err)
  if err.sent == false then return false end
  local status = err.status
  if status == nil then return err.sent == true end
  if status >= 200 and status < 300 then return true end
  if status == 503 and err.api then return false end
  return status >= 500
end

--- What a create returns when no task was found: `ambiguous` when the create may have made
-- one, else the server's own error (it said nothing was made).
function M.unresolved(err, how)
  if M.maybe_created(err) then return M.ambiguous(err, how) end
  err.retryable = false
  return err
end

-- Creates of one poller that are waiting for their answer, by what they would create: a lost
-- create must not reconcile while a sibling of the same request may still claim a task.
local function sibling_key(params)
  return tostring(params.brief) .. "\0" .. tostring(params.depth or "medium")
end
M.sibling_key = sibling_key

--- Counts a create of key that waits for its answer (delta 1) or has it (-1), by the poller
-- operation (coroutine) sending it, so that one ended by an error is not waited for.
function M.sending(runtime, key, delta)
  if not runtime.claimed then return end -- the blocking client sends one create at a time
  local s = runtime.sending
  if not s then
    s = {}
    runtime.sending = s
  end
  local senders = s[key]
  if not senders then
    senders = setmetatable({}, { __mode = "k" })
    s[key] = senders
  end
  local me = coroutine.running() or M
  local n = (senders[me] or 0) + delta
  senders[me] = n > 0 and n or nil
  -- No create of key waits any more: its entry goes, or a long-lived poller keeps one per brief.
  if n <= 0 and next(senders) == nil then s[key] = nil end
end

-- The longest a lost create waits for its siblings: each answers within its own timeout once
-- sent. A backstop: a sibling whose operation ended without unwinding (an error, a callback
-- that yielded, a closed client: rt.ended says so) is not waited for at all.
M.SIBLING_WAIT = 600

local function siblings_sending(runtime, senders)
  if not senders then return false end
  for co in pairs(senders) do
    if not (runtime.ended and runtime.ended(co)) then return true end
  end
  return false
end

--- Sleeps (yielding, in a poller) until no sibling create of key waits for its answer.
function M.await_siblings(runtime, key)
  local s = runtime.sending
  if not s then return end
  local deadline = runtime.now() + M.SIBLING_WAIT
  while siblings_sending(runtime, s[key]) and runtime.now() < deadline do runtime.sleep(0.05) end
end

function ops.create(runtime, self, params)
  local state = data(self)
  local body, err = M.create_body(params, "create")
  if not body then return nil, err end
  local started = os.time()
  local key = sibling_key(params)
  M.sending(runtime, key, 1)
  local task
  task, err = call(runtime, state, { method = "POST", path = kind_of(state).path, body = body,
    effect = "create", expect = "object", check = M.check_task })
  M.sending(runtime, key, -1)
  if task and runtime.claimed then runtime.claimed[task.id] = true end
  if task or not M.maybe_created(err) then return task, err end
  M.await_siblings(runtime, key)
  local list, _, res = http.request(runtime, state, { method = "GET", path = kind_of(state).path,
    query = { offset = 0, limit = 20 }, effect = "read", expect = "array" })
  local found = M.match_lost_create(list, params, M.server_start(res, started, os.time()),
    runtime.claimed)
  if found then
    if runtime.claimed then runtime.claimed[found.id] = true end
    return found
  end
  return nil, M.unresolved(err, "client:list{limit = 10} (newest first) for this brief")
end

local REPORT_KINDS = { markdown = "markdown", schema = "fields" }

--- What is wrong with a body that should be a Deep Research task, or nil.
function M.check_task(t)
  if type(t.id) ~= "string" or type(t.status) ~= "string" then
    return "a task without a string id and status"
  end
  local r = t.report
  if r ~= nil then
    if type(r) ~= "table" or not REPORT_KINDS[r.kind] then
      return "a report of unknown kind " .. tostring(type(r) == "table" and r.kind or r)
    end
    if r.kind == "markdown" and type(r.markdown) ~= "string" then
      return "a markdown report without markdown"
    end
    if r.kind == "schema" and type(r.fields) ~= "table" then
      return "a schema report without fields"
    end
  end
  return nil
end

--- check_task, plus: a done task carries its report. A list may be lighter; a GET may not.
function M.check_full_task(t)
  local problem = M.check_task(t)
  if problem then return problem end
  if t.status == "done" and t.report == nil then return "a done task without its report" end
  return nil
end

local function check_list(list)
  for i, t in ipairs(list) do
    local problem = type(t) ~= "table" and "a non-object item" or M.check_task(t)
    if problem then return "item " .. i .. ": " .. problem end
  end
  return nil
end

local function get_req(state, id, retries)
  return { method = "GET", path = kind_of(state).path .. "/" .. http.escape(id), effect = "read",
    expect = "object", max_retries = retries, check = M.check_full_task }
end

local function get_by_id(runtime, self, id, retries)
  local state = data(self)
  return call(runtime, state, get_req(state, id, retries))
end

-- A client keeps the request of each id it GETs (up to GET_CACHE ids, then starts over):
-- polls repeat the same GET, and an id found here was validated and escaped before.
local GET_CACHE = 64

local function get_cached(runtime, state, id)
  local cache = state.get_reqs
  local req = cache and cache[id]
  if not req then
    local err
    id, err = validate.id("get", id)
    if not id then return nil, err end
    req = get_req(state, id)
    req.reuse = true -- http.prepare keeps its transport spec on it
    if not cache or state.get_count >= GET_CACHE then
      cache = {}
      state.get_reqs, state.get_count = cache, 0
    end
    cache[id], state.get_count = req, state.get_count + 1
  end
  local body, err = http.request(runtime, state, req)
  return body, err
end

function ops.get(runtime, self, id) return get_cached(runtime, data(self), id) end

function ops.list(runtime, self, opts)
  validate.type("list", 1, opts, "table", true)
  local ok, err = validate.page(opts)
  if not ok then return nil, err end
  opts = opts or {}
  local state = data(self)
  return call(runtime, state, { method = "GET", path = kind_of(state).path,
    query = { offset = opts.offset,
      limit = opts.limit }, effect = "read", expect = "array", check = check_list })
end

--- Iterates every item across pages, fetching each page when the last is used up.
-- An error ends the loop after yielding false, err.
function M.pager(fetch, opts)
  local limit = opts.limit or 50
  local offset = opts.offset or 0
  local page, i, done = nil, 0, false
  return function()
    if done then return nil end
    if not page or i >= #page then
      if page and #page < limit then done = true return nil end
      local err
      page, err = fetch(offset, limit)
      if not page then done = true return false, err end
      offset, i = offset + #page, 0
      if #page == 0 then done = true return nil end
    end
    i = i + 1
    return page[i]
  end
end

--- An iterator that yields false, err once: for argument errors found before paging.
function M.failing_iterator(err)
  local once = false
  return function()
    if once then return nil end
    once = true
    return false, err
  end
end

function M.tasks(self, opts)
  validate.type("tasks", 1, opts, "table", true)
  opts = opts or {}
  local ok, err = validate.page(opts)
  if ok and opts.limit == 0 then ok, err = nil, errors.invalid("limit must be at least 1") end
  if not ok then return M.failing_iterator(err) end
  return M.pager(function(offset, limit) return self:list{ offset = offset, limit = limit } end,
    opts)
end

local shown = json.shown

local function research_verdict(task, state)
  if state == "done" then return "done" end
  if state == "failed" then
    return errors.new("task_failed", "task " .. shown(task.id, "?") .. " failed: " ..
      shown(task.failure_reason, "no reason given"), { reason = task.failure_reason,
        task = task })
  end
  if state == nil then
    return errors.new("invalid_response", "task " .. shown(task.id, "?") ..
      " has a status this client " ..
      "does not know: " .. shown(task.status, "none"), { task = task })
  end
  return nil
end
M.research_verdict = research_verdict

--- The wait loop for any provider and kind, on runtime rt.
-- get(rt, self, id) fetches one poll without retries (the loop has its own).
-- timeout_for: optional fn(task) -> the default timeout that task implies (runtime/wait.lua).
function M.wait_on(runtime, self, kind, id_or_task, opts, get, verdict, fname, timeout_for)
  local id, err = validate.id(fname, id_or_task)
  if not id then return nil, err end
  validate.type(fname, 2, opts, "table", true)
  opts = opts or {}
  validate.type(fname, 2, opts.on_progress, "function", true)
  -- One clock table per runtime, not one per wait (a poller may hold thousands of waits).
  local clock = runtime.clock
  if not clock then
    clock = { now = runtime.now, sleep = runtime.sleep }
    runtime.clock = clock
  end
  local ctx = {
    clock = clock,
    policy = data(self), -- the client's retry policy: max_retry_after, base_delay, max_delay
    get = function(task_id) return get(runtime, self, task_id) end,
    verdict = verdict,
    timeout_for = timeout_for,
  }
  local task
  task, err = waitloop.run(ctx, kind, id, opts)
  return task, err
end

function ops.wait(runtime, self, id_or_task, opts)
  local get = function(r, c, id) return get_by_id(r, c, id, 0) end
  return M.wait_on(runtime, self, kind_of(data(self)), id_or_task, opts, get, research_verdict,
    "wait")
end

--- run's work once its params are checked, for any provider's op table: create with
-- create_params, then wait on the new task with run's own wait options.
function M.create_then_wait(op_table, runtime, self, params, create_params)
  local task, err = op_table.create(runtime, self, create_params)
  if not task then return nil, err end
  return op_table.wait(runtime, self, task.id, { on_progress = params.on_progress,
    timeout = params.timeout, interval = params.interval, max_interval = params.max_interval,
    task = task })
end

function ops.run(runtime, self, params)
  validate.type("run", 1, params, "table")
  return M.create_then_wait(ops, runtime, self, params, params)
end

--- The account behind the token: GET /v1/user (credits, organisation).
function ops.user(runtime, self)
  return call(runtime, data(self), { method = "GET", path = "/v1/user", effect = "read",
    expect = "object" })
end

--- Public methods: each op on the client's blocking runtime. A method with an entry in
-- accepts checks its arguments first, blaming its caller (level 2), before anything is sent.
function M.blocking_methods(op_table, accepts)
  local t = {}
  for name, op in pairs(op_table) do
    local sig = accepts and accepts[name]
    if sig then
      t[name] = function(self, ...)
        options.check_call(name, sig, 2, ...)
        return op(http.blocking(data(self)), self, ...)
      end
    else
      t[name] = function(self, ...) return op(http.blocking(data(self)), self, ...) end
    end
  end
  return t
end

M.methods = M.blocking_methods(ops, M.accepts)
function M.methods.tasks(self, opts)
  options.check_call("tasks", M.accepts.tasks, 2, opts)
  return M.tasks(self, opts)
end
-- The most frequent call, without the generic wrapper's varargs and second data(self).
function M.methods.get(self, id)
  local state = states[self] or data(self)
  return get_cached(state.rt or http.blocking(state), state, id)
end

return M

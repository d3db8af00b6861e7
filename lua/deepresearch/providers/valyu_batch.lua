-- Valyu DeepResearch batches (CONTRACT B.9): create, add tasks, get, tasks, cancel, list, wait.
-- Loaded with the Valyu client (providers/valyu.lua merges M.methods). Each operation takes the
-- runtime first, as valyu.lua's do, so a poller could drive it too.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local utf8 = require "deepresearch.base.utf8"
local options = require "deepresearch.base.options"
local waitloop = require "deepresearch.runtime.wait"
local policy = require "deepresearch.base.policy"
local extruct = require "deepresearch.providers.extruct"
local limits = require("deepresearch.providers.limits").valyu

local data = http.state
local call = extruct.call
local M = { ops = {} }
local ops = M.ops

M.PATH = "/v1/deepresearch/batches"
M.MAX_TASKS = 100 -- per batch_add call (CONTRACT B.9)
M.NONCE_KEY = "deepresearch_nonce" -- the same metadata key valyu.lua's create uses
M.ID_PREFIX = "dr-" -- ids the client gives tasks the caller left without one
M.TASK_STATUSES = { "queued", "running", "completed", "failed", "cancelled" }
-- The Python SDK's batch wait gives up after 4 hours; a batch of max tasks may need longer.
M.WAIT_TIMEOUT = 14400

local BATCH_FIELDS = { name = "string", mode = "string", output_formats = "table",
  search = "table", webhook_url = "string", metadata = "table" }
-- A task of a batch: its own text; mode, formats and search come from the batch (a create
-- table reused as a task may repeat the batch's own: check_inherited).
local TASK_FIELDS = { id = "string", query = "string", input = "string",
  research_strategy = "string", strategy = "string", report_format = "string", urls = "table",
  metadata = "table", mode = "string", output_formats = "table", search = "table" }
local INHERITED = { "mode", "output_formats", "search" }
local WAIT_FIELDS = { on_progress = "function", timeout = "number", interval = "number",
  max_interval = "number", growth = "number", max_failures = "number" }

M.accepts = {
  batch_create = { opts = 1, fields = BATCH_FIELDS },
  batch_add = { id = true, arg2 = "table" },
  batch_get = { id = true },
  batch_tasks = { id = true, opts = 2,
    fields = { status = "string", limit = "number", include_output = "boolean" } },
  batch_cancel = { id = true },
  batch_list = { opts = 1, fields = { limit = "number" } },
  batch_wait = { id = true, opts = 2, fields = WAIT_FIELDS },
}

-- A batch as polled by the shared wait loop: its statuses on the normalised words, and the
-- fields whose change calls on_progress (the status and every count).
M.KIND = {
  label = "batch",
  states = { open = "running", processing = "running", completed = "done",
    completed_with_errors = "done", cancelled = "cancelled" },
  progress = { "status", "counts.total", "counts.queued", "counts.running", "counts.completed",
    "counts.failed", "counts.cancelled" },
}

-- The modes a create accepts (the operations module derives them from the descriptor).
local function mode_names(self)
  return require(data(self).provider.module).MODES
end

local function mode_alias(self, mode)
  local aliases = data(self).provider.mode_aliases or { lite = "standard" }
  return aliases[mode] or mode
end

-- 16 hex digits from the system's random source: two processes started in the same second
-- (Lua 5.1 seeds math.random identically) still pick different ids.
local function nonce()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(8)
  if f then f:close() end
  if bytes and #bytes == 8 then
    return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
  end
  return string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end
M.nonce = nonce

local function encode(body)
  local ok, text = pcall(json.encode, body)
  if not ok then return nil, errors.invalid("cannot encode the request: " .. tostring(text)) end
  return text
end

--- The JSON body of batch_create, its nonce; or nil, err.
function M.create_body(self, p)
  local body = { name = p.name, search = p.search, webhook_url = p.webhook_url }
  if p.mode ~= nil then
    local ok, err = validate.enum("mode", p.mode, mode_names(self))
    if not ok then return nil, err end
    body.mode = mode_alias(self, p.mode)
  end
  if p.output_formats ~= nil then
    -- The same rules as a single task's formats: create_body checks them alone.
    local vmod = require(data(self).provider.module)
    local ok, err = vmod.create_body{ query = "x", output_formats = p.output_formats }
    if not ok then return nil, err end
    body.output_formats = p.output_formats
  end
  if p.webhook_url ~= nil then
    local ok, err = validate.webhook_url("webhook_url", p.webhook_url)
    if not ok then return nil, err end
  end
  -- A nonce in metadata finds a batch whose create answer was lost.
  local meta, n = {}, nonce()
  for k, v in pairs(p.metadata or {}) do meta[k] = v end
  meta[M.NONCE_KEY] = n
  body.metadata = meta
  local text, err = encode(body)
  if not text then return nil, err end
  return text, n
end

local function check_batch(b)
  if type(b.batch_id) ~= "string" or b.batch_id == "" then return "a batch without a batch_id" end
  return nil
end

-- Entries of a list that are not objects (null, a number): the answer is not the API's.
local function all_objects(list, what)
  for _, v in ipairs(list) do
    if type(v) ~= "table" or json.is_null(v) then
      return what .. " with an entry that is not an object"
    end
  end
  return nil
end

-- The batches of a list answer: {batches = [...]}, {data = [...]} or a bare array.
local function batches_of(body)
  if body[1] ~= nil or next(body) == nil then return body end
  local list = body.batches or body.data
  if type(list) == "table" then return list end
  return nil
end

local function list_batches(runtime, self, limit)
  return call(runtime, data(self), { method = "GET", path = M.PATH, query = { limit = limit },
    effect = "read", check = function(b)
      local list = batches_of(b)
      if not list then return "a batch list without batches" end
      return all_objects(list, "a batch list")
    end })
end

-- A lost create answer: the newest batches, the one carrying our nonce.
local function find_created(runtime, self, n)
  local body = list_batches(runtime, self, 100)
  for _, b in ipairs(body and batches_of(body) or {}) do
    local meta = type(b) == "table" and b.metadata
    if type(meta) == "table" and meta[M.NONCE_KEY] == n then
      b.reconciled = true
      return b
    end
  end
  return nil
end

function ops.batch_create(runtime, self, params)
  local body, n = M.create_body(self, params or {})
  if not body then return nil, n end
  local batch, err = call(runtime, data(self), { method = "POST", path = M.PATH, body = body,
    effect = "create", expect = "object", check = check_batch })
  if batch or not extruct.maybe_created(err) then return batch, err end
  -- A batch costs nothing until tasks are added; still, never a blind second create.
  local found = find_created(runtime, self, n)
  if found then return found end
  return nil, extruct.unresolved(err, "client:batch_list{} (look for metadata." ..
    M.NONCE_KEY .. " = " .. n .. ")")
end

-- Checks one task of batch_add (a brief or a create table); returns its JSON table.
-- Types raise (blaming the caller of the method: level), values return nil, err.
local function task_body(t, i, level)
  if type(t) == "string" then t = { query = t } end
  if type(t) ~= "table" then
    error(string.format("bad argument #2 to 'batch_add' (tasks[%d]: string or table expected, " ..
      "got %s)", i, type(t)), level + 1)
  end
  options.check("batch_add", t, TASK_FIELDS, level + 1)
  local where = "tasks[" .. i .. "]."
  local q = t.query or t.input
  if type(q) ~= "string" then
    error(string.format("bad argument #2 to 'batch_add' (tasks[%d].query: string expected, " ..
      "got no value)", i), level + 1)
  end
  local ok, err = validate.text(where .. "query", q, limits.brief)
  if not ok then return nil, err end
  local strategy = t.research_strategy or t.strategy
  local combined = 0
  for _, s in ipairs({ strategy or "", t.report_format or "" }) do
    local n = utf8.len(s)
    if not n then return nil, errors.invalid(where .. "research_strategy is not valid UTF-8") end
    combined = combined + n
  end
  if combined > limits.strategy_and_format then
    return nil, errors.invalid(string.format("%sresearch_strategy and report_format combined " ..
      "length (%d) exceeds 15,000 character limit", where, combined),
      { field = "research_strategy" })
  end
  if t.urls ~= nil and #t.urls > 10 then
    return nil, errors.invalid(string.format("%surls holds %d entries; at most 10", where,
      #t.urls), { field = "urls" })
  end
  if t.id ~= nil and (t.id == "" or t.id:find("%c")) then
    return nil, errors.invalid(where .. "id must be a non-empty string without control " ..
      "characters", { field = "id" })
  end
  return { id = t.id, query = q, research_strategy = strategy, report_format = t.report_format,
    urls = t.urls, metadata = t.metadata }
end

--- Checks batch_add's tasks; gives each one without an id an id of its own, so that a lost
-- answer can be looked up in the batch's task list. Returns the list of bodies, or nil, err.
-- level: as options.check's (2 blames the caller of the method calling this).
function M.task_bodies(tasks, level)
  local n = #tasks
  if n < 1 or n > M.MAX_TASKS then
    return nil, errors.invalid(string.format("batch_add takes 1..%d tasks per call, got %d",
      M.MAX_TASKS, n), { field = "tasks" })
  end
  local out, seen = {}, {}
  local prefix = M.ID_PREFIX .. nonce() .. "-"
  for i = 1, n do
    local body, err = task_body(tasks[i], i, level + 1)
    if not body then return nil, err end
    body.id = body.id or (prefix .. i)
    if seen[body.id] then
      return nil, errors.invalid(string.format("tasks[%d].id %q repeats an earlier task's id", i,
        body.id), { field = "id" })
    end
    seen[body.id] = true
    out[i] = body
  end
  return out
end

-- Batch ids: non-empty strings without control characters (a type mistake raised earlier).
local function batch_id(id)
  if id == "" then return nil, errors.invalid("batch id must not be empty", { field = "id" }) end
  if id:find("%c") then
    return nil, errors.invalid("batch id contains control characters", { field = "id" })
  end
  return id
end

local function batch_path(id, suffix)
  return M.PATH .. "/" .. http.escape(id) .. (suffix or "")
end

local function check_added(a)
  if type(a.tasks) ~= "table" then return "an add-tasks answer without tasks" end
  return nil
end

-- The user id a listed task carries (the simulator and the API name it batch_task_id; the add
-- answer task_id).
local function user_id(t)
  return type(t) == "table" and (t.batch_task_id or t.task_id) or nil
end

-- A lost batch_add answer: the batch's tasks, looking for the ids sent. The add is atomic,
-- so either all are there (it happened) or none (it did not, or has not yet: see the docs).
local function reconcile_add(runtime, self, id, bodies)
  local want, n = {}, 0
  for _, b in ipairs(bodies) do want[b.id] = true end
  local found = {}
  for t, err in M.iterate(runtime, self, id, { limit = 100 }) do
    if not t then return nil, err end
    local uid = user_id(t)
    if uid and want[uid] then
      want[uid] = nil
      n = n + 1
      found[#found + 1] = { task_id = uid, deepresearch_id = t.deepresearch_id,
        status = t.status }
    end
  end
  return found, nil, n
end

-- The ids sent, in order: what a caller keeps to check again later.
local function ids_of(bodies)
  local ids = {}
  for i, b in ipairs(bodies) do ids[i] = b.id end
  return ids
end

local function lost_add(runtime, self, id, bodies, cause)
  local found, err, n = reconcile_add(runtime, self, id, bodies)
  local ids = ids_of(bodies)
  if found and n == #bodies then
    return { batch_id = id, added = n, tasks = found, reconciled = true, ids = ids }
  end
  local what = cause.status and ("it was answered HTTP " .. cause.status .. ": " ..
    tostring(cause.message)) or ("its answer was lost: " .. tostring(cause.message))
  local seen = err and ("the batch's tasks could not be listed (" .. tostring(err.message) ..
    ")") or string.format("%d of its %d tasks are in the batch's list", n, #bodies)
  return nil, errors.new("ambiguous", string.format("the add-tasks request to batch %s was " ..
    "sent and %s; %s. The tasks may exist and be billed: look for the ids in err.ids with " ..
    "client:batch_tasks later, and add them again (with the same ids) only if they are " ..
    "still missing", id, what, seen),
    { retryable = false, sent = true, cause = cause, status = cause.status,
      attempts = cause.attempts, request_id = cause.request_id, batch_id = id, ids = ids,
      found = found, reconcile_error = err })
end

-- The batch's own value of an inherited key, as a create table gives it.
local function batch_value(batch, k)
  if k == "output_formats" then return batch.output_formats or { "markdown" } end
  if k == "search" then return batch.search_params or batch.search or {} end
  return batch.mode
end

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Tasks given as create tables may carry the batch's own mode, output_formats or search; another
-- value is refused before anything is sent (the batch decides them). One batch_get, if needed.
local function check_inherited(runtime, self, id, tasks)
  local batch, err
  for i, t in ipairs(tasks) do
    for _, k in ipairs(type(t) == "table" and INHERITED or {}) do
      if t[k] ~= nil then
        if not batch then batch, err = ops.batch_get(runtime, self, id) end
        if not batch then return nil, err end
        local v = k == "mode" and mode_alias(self, t[k]) or t[k]
        if not same(v, batch_value(batch, k)) then
          return nil, errors.invalid(string.format("tasks[%d].%s differs from batch %s's: its " ..
            "tasks share the batch's %s (leave it out)", i, k, id, k), { field = k })
        end
      end
    end
  end
  return true
end

function ops.batch_add(runtime, self, id, tasks, level)
  local err
  id, err = batch_id(id)
  if not id then return nil, err end
  local bodies
  bodies, err = M.task_bodies(tasks, (level or 1) + 1)
  if not bodies then return nil, err end
  local ok
  ok, err = check_inherited(runtime, self, id, tasks)
  if not ok then return nil, err end
  local text
  text, err = encode({ tasks = bodies })
  if not text then return nil, err end
  local added
  added, err = call(runtime, data(self), { method = "POST", path = batch_path(id, "/tasks"),
    body = text, effect = "create", expect = "object", check = check_added })
  if added then
    added.ids = ids_of(bodies)
    return added
  end
  if not extruct.maybe_created(err) then return nil, err end
  return lost_add(runtime, self, id, bodies, err)
end

function ops.batch_get(runtime, self, id)
  local err
  id, err = batch_id(id)
  if not id then return nil, err end
  return call(runtime, data(self), { method = "GET", path = batch_path(id), effect = "read",
    expect = "object", check = check_batch })
end

function ops.batch_cancel(runtime, self, id)
  local err
  id, err = batch_id(id)
  if not id then return nil, err end
  return call(runtime, data(self), { method = "POST", path = batch_path(id, "/cancel"),
    body = "{}", effect = "mutate", expect = "object" })
end

local function check_limit(limit)
  if limit == nil then return true end
  local ok, err = validate.nonneg_int("limit", limit, 1)
  if ok and limit > 100 then ok, err = nil, errors.invalid("limit must be in 1..100") end
  return ok, err
end

function ops.batch_list(runtime, self, opts)
  opts = opts or {}
  local ok, err = check_limit(opts.limit)
  if not ok then return nil, err end
  local body
  body, err = list_batches(runtime, self, opts.limit)
  if not body then return nil, err end
  return batches_of(body)
end

local function check_page(p)
  if type(p.tasks) ~= "table" then return "a batch task page without tasks" end
  return all_objects(p.tasks, "a batch task page")
end

--- One page of a batch's tasks: body { tasks, pagination = { count, last_key, has_more } }.
function M.page(runtime, self, id, opts, last_key)
  return call(runtime, data(self), { method = "GET", path = batch_path(id, "/tasks"),
    query = { status = opts.status, limit = opts.limit, include_output = opts.include_output,
      last_key = last_key },
    effect = "read", expect = "object", check = check_page })
end

-- A listing stops there (docs/valyu.md says so): a server still saying has_more after this
-- many tasks is taken to loop. Empty pages are refused, so the pages are bounded too.
M.MAX_LISTED = 10000

local function bad_cursor(why)
  return errors.new("invalid_response", "the batch task list " .. why, { retryable = false })
end

-- The cursor after a used-up page: the key to fetch next, false at the end, or nil, err.
local function next_cursor(page, seen, listed)
  local p = type(page.pagination) == "table" and page.pagination or {}
  if p.has_more ~= true then return false end
  if #page.tasks == 0 then return nil, bad_cursor("says it has more but sent an empty page") end
  local key = p.last_key
  if (type(key) ~= "string" and type(key) ~= "number") or seen[key] then
    return nil, bad_cursor("says it has more but gives no new last_key")
  end
  if listed >= M.MAX_LISTED then
    return nil, bad_cursor(string.format("still says it has more after %d tasks; stopped",
      listed))
  end
  seen[key] = true
  return key
end

--- Iterates a batch's tasks across cursor pages (last_key, has_more), fetching a page when the
-- last is used up. A failed page, a cursor that does not move or comes back, an empty page
-- that has more, or more than MAX_LISTED tasks yields false, err once.
function M.iterate(runtime, self, id, opts)
  local page, i, done, seen, listed = nil, 0, false, {}, 0
  return function()
    if done then return nil end
    while not page or i >= #page.tasks do
      local key, err
      if page then key, err = next_cursor(page, seen, listed) end
      if key == false then done = true return nil end
      if err then done = true return false, err end
      page, err = M.page(runtime, self, id, opts, key)
      if not page then done = true return false, err end
      i = 0
    end
    i = i + 1
    listed = listed + 1
    return page.tasks[i]
  end
end

local function check_tasks_opts(opts)
  local ok, err = check_limit(opts.limit)
  if ok and opts.status ~= nil then ok, err = validate.enum("status", opts.status,
    M.TASK_STATUSES) end
  return ok, err
end

local function tasks_iterator(runtime, self, id, opts)
  local err
  id, err = batch_id(id)
  if not id then return extruct.failing_iterator(err) end
  opts = opts or {}
  local ok
  ok, err = check_tasks_opts(opts)
  if not ok then return extruct.failing_iterator(err) end
  return M.iterate(runtime, self, id, opts)
end
ops.batch_tasks = tasks_iterator

-- How a polled batch ends the wait: done (completed or completed_with_errors: the caller reads
-- counts.failed), cancelled, or a status this client does not know.
local function verdict(batch, state)
  if state == "done" then return "done" end
  if state == "cancelled" then
    return errors.new("cancelled", "batch " .. tostring(batch.batch_id) .. " was cancelled",
      { batch = batch })
  end
  if state == nil then
    return errors.new("invalid_response", "batch has a status this client does not know: " ..
      tostring(batch.status), { batch = batch })
  end
  return nil
end

-- The default wait: the Python SDK's 4 hours, longer when the batch's mode runs longer.
local function default_timeout(self, batch)
  local modes = data(self).provider.modes
  local m = type(modes) == "table" and modes[batch.mode]
  local upper = type(m) == "table" and tonumber(m.runtime)
  return math.max(M.WAIT_TIMEOUT, upper and 1.5 * upper or 0)
end

-- One poll of batch_wait: the batch, or nil, err; and the server's Retry-After (the pace).
local function poll(runtime, self, id)
  local batch, err, res = http.request(runtime, data(self), { method = "GET",
    path = batch_path(id), effect = "read", expect = "object", check = check_batch,
    max_retries = 0 })
  local pace = res and policy.parse_retry_after(http.headers(res)["retry-after"]) or nil
  return batch, err, pace
end

function ops.batch_wait(runtime, self, id, opts)
  local err
  id, err = batch_id(id)
  if not id then return nil, err end
  opts = opts or {}
  local ctx = { clock = { now = runtime.now, sleep = runtime.sleep }, policy = data(self),
    verdict = verdict, timeout_for = function(b) return default_timeout(self, b) end }
  local w = waitloop.waiter(ctx, M.KIND, id, opts)
  -- Until the first answer names the mode.
  if opts.timeout == nil then w.timeout = M.WAIT_TIMEOUT end
  while true do
    local action, v = w:observe(poll(runtime, self, id))
    if action == "done" then return v end
    if action == "error" then
      if v.code == "timeout" and v.task then v.batch, v.task = v.task, nil end
      return nil, v
    end
    runtime.sleep(v)
  end
end

--- Public methods: each op on the client's blocking runtime, arguments checked first. A batch
-- table is taken for its batch_id.
local function method(name, op)
  local sig = M.accepts[name]
  return function(self, a, ...)
    if sig.id and type(a) == "table" and a.batch_id ~= nil then a = a.batch_id end
    options.check_call(name, sig, 2, a, ...)
    return op(http.blocking(data(self)), self, a, ...)
  end
end

M.methods = {}
for name, op in pairs(ops) do M.methods[name] = method(name, op) end
-- batch_add checks each task's fields itself; it blames the caller of the method (level 2).
local add = ops.batch_add
function M.methods.batch_add(self, id, tasks)
  if type(id) == "table" and id.batch_id ~= nil then id = id.batch_id end
  options.check_call("batch_add", M.accepts.batch_add, 2, id, tasks)
  -- Not a tail call: the checks inside count this frame.
  local added, err = add(http.blocking(data(self)), self, id, tasks, 2)
  return added, err
end

return M

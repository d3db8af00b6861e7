-- Valyu DeepResearch: create, get (status), list, cancel, delete, update, respond, wait.
-- Batches (valyu_batch.lua) and assets (valyu_assets.lua) add their methods at the end.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local dates = require "deepresearch.base.dates"
local extruct = require "deepresearch.providers.extruct"
local options = require "deepresearch.base.options"
local utf8 = require "deepresearch.base.utf8"
local policy = require "deepresearch.base.policy"
local waitloop = require "deepresearch.runtime.wait"
local D = require "deepresearch.providers.descriptor.valyu"
local hitl = require "deepresearch.providers.valyu_hitl"

local data = http.state
local call = extruct.call
local M = { ops = {} }
local ops = M.ops

-- The modes create accepts: the descriptor's, then their legacy aliases (lite).
M.MODES = {}
for i, m in ipairs(D.mode_order) do M.MODES[i] = m end
for alias in pairs(D.mode_aliases) do M.MODES[#M.MODES + 1] = alias end

--- The wait timeout when the caller gives none: at least wait.lua's default, and 1.5 x the
-- mode's documented upper run time (a max task runs up to ~180 min: 16200 s).
function M.default_timeout(mode)
  local m = D.modes[D.mode_aliases[mode] or mode or D.default_mode]
  if not m then return nil end
  return math.max(waitloop.defaults.timeout, 1.5 * m.runtime)
end
M.MAX_QUERY = require("deepresearch.providers.limits").valyu.brief
M.MAX_STRATEGY_AND_FORMAT = require("deepresearch.providers.limits").valyu.strategy_and_format
M.NONCE_KEY = "deepresearch_nonce"
local LIST_LIMITS = { urls = 10, files = 10, deliverables = 10, mcp_servers = 5,
  previous_reports = 3 }
-- Options passed through as given (documented by Valyu; see CONTRACT B.2).
local PASS = { "mode", "output_formats", "research_strategy", "report_format", "search", "urls",
  "files",
  "deliverables", "mcp_servers", "tools", "previous_reports", "webhook_url", "alert_email",
  "brand_collection_id", "metadata", "hitl", "workflow_id", "workflow_params", "workflow_version",
  "code_execution" }

-- What each public method accepts (base/options.lua): PASS, the aliases create reads
-- (query/input, strategy), each with the type CONTRACT B.2 gives it.
-- brief: every provider's word for the text asked (issue 16), sent as query.
local CREATE = { query = "string", input = "string", brief = "string", strategy = "string",
  mode = "string",
  output_formats = "table", research_strategy = "string", report_format = "string",
  search = "table", urls = "table", files = "table", deliverables = "table", mcp_servers = "table",
  tools = "table",
  previous_reports = "table", webhook_url = "string", alert_email = "string|table",
  brand_collection_id = "string", metadata = "table", hitl = "table", workflow_id = "string",
  workflow_params = "table", workflow_version = "number", code_execution = "boolean" }
local QUERY = { "query", "input", "brief", "workflow_id" } -- one of these (see check_create)
M.accepts = {
  create = { opts = 1, required = true, fields = CREATE, needs = { QUERY } },
  run = { opts = 1, required = true, fields = options.extend(CREATE, { on_progress = "function",
    timeout = "number", interval = "number", max_interval = "number",
    on_input = "function" }), needs = { QUERY } },
  list = { opts = 1, fields = { limit = "number" } },
  wait = { id = true, opts = 2, fields = options.extend(extruct.WAIT,
    { on_input = "function" }) },
  cancel = { id = true },
  respond = { id = true }, -- arg 2 (interaction id or table) and 3 checked by respond
  delete = { id = true },
  update = { id = true, arg2 = "string" }, -- the instruction
}

local function kind_of(self) return data(self).provider.kinds.research end

local function check_formats(formats)
  local schema, doc = false, false
  for i, f in ipairs(formats) do
    if type(f) == "table" then
      schema = true
      if f.type ~= "object" then
        return nil,
          errors.invalid(string.format("output_formats[%d]: a JSON schema needs type = \"object\"",
          i))
      end
    elseif f == "markdown" or f == "pdf" then
      doc = true
    elseif f ~= "toon" then
      return nil,
        errors.invalid(string.format("output_formats[%d] must be \"markdown\", \"pdf\", " ..
        "\"toon\" " ..
        "or a JSON schema, got %q", i, tostring(f)), { field = "output_formats" })
    end
  end
  if schema and doc then
    return nil, errors.invalid("output_formats cannot mix a JSON schema with markdown or pdf",
      { field = "output_formats" })
  end
  return true
end

-- research_strategy + report_format in characters, as the server counts (a CJK character is
-- 3 bytes but 1 toward the limit).
local function strategy_chars(p)
  local n = 0
  for _, name in ipairs({ "research_strategy", "report_format" }) do
    local s = p[name] or (name == "research_strategy" and p.strategy) or nil
    if s ~= nil then
      local len, pos = utf8.len(s)
      if not len then
        return nil, errors.invalid(string.format("%s is not valid UTF-8 (byte %d)", name, pos),
          { field = name })
      end
      n = n + len
    end
  end
  return n
end

local function check_create(p)
  if p.brief ~= nil and (p.query ~= nil or p.input ~= nil) then -- one rule for every provider
    return nil, errors.invalid("give brief or " .. (p.query ~= nil and "query" or "input") ..
      ", not both", { field = p.query ~= nil and "query" or "input" })
  end
  local q = p.query or p.input or p.brief
  if p.workflow_id ~= nil then
    if q or p.research_strategy or p.report_format then
      return nil,
        errors.invalid("workflow_id cannot be combined with query, research_strategy or " ..
        "report_format",
        { field = "workflow_id", server_code = "workflow_and_freeform_mutually_exclusive" })
    end
  else
    validate.type("create", 1, q, "string")
    local ok, err = validate.text("query", q, M.MAX_QUERY)
    if not ok then return nil, err end
  end
  if p.mode ~= nil then
    local ok, err = validate.enum("mode", p.mode, M.MODES)
    if not ok then return nil, err end
  end
  local combined, err = strategy_chars(p)
  if not combined then return nil, err end
  if combined > M.MAX_STRATEGY_AND_FORMAT then
    return nil,
      errors.invalid(string.format("research_strategy and report_format combined length (%d) " ..
      "exceeds 15,000 character limit", combined), { field = "research_strategy" })
  end
  for name, max in pairs(LIST_LIMITS) do
    if p[name] ~= nil then
      validate.type("create", 1, p[name], "table")
      if #p[name] > max then
        return nil, errors.invalid(string.format("%s holds %d entries; at most %d", name, #p[name],
          max),
          { field = name })
      end
    end
  end
  if p.webhook_url ~= nil then
    local ok, bad = validate.webhook_url("webhook_url", p.webhook_url)
    if not ok then return nil, bad end
  end
  local flags_ok, flags_err = hitl.check_flags(p.hitl)
  if not flags_ok then return nil, flags_err end
  if p.output_formats ~= nil then
    validate.type("create", 1, p.output_formats, "table")
    return check_formats(p.output_formats)
  end
  return true
end

--- Validates create parameters; returns the body (with a nonce in metadata) and the nonce.
function M.create_body(p)
  validate.type("create", 1, p, "table")
  validate.type("create", 1, p.metadata, "table", true)
  local ok, err = check_create(p)
  if not ok then return nil, err end
  local body = {}
  for _, k in ipairs(PASS) do body[k] = p[k] end
  body.query = p.query or p.input or p.brief
  body.research_strategy = p.research_strategy or p.strategy
  if body.mode == "lite" then body.mode = "standard" end
  -- A nonce in metadata lets a lost create be found again without guessing.
  local nonce = string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local meta = {}
  for k, v in pairs(p.metadata or {}) do meta[k] = v end
  meta[M.NONCE_KEY] = nonce
  body.metadata = meta
  local encoded, text = pcall(json.encode, body)
  if not encoded then
    return nil, errors.invalid("cannot encode the request: " .. tostring(text))
  end
  return text, nonce
end

-- Valyu's list answers a bare array; the official CLI also unwraps {data: [...]}: accept both.
local function list_items(body)
  if type(body) ~= "table" then return nil end
  if body[1] ~= nil or next(body) == nil then return body end
  local d = body.data
  if type(d) == "table" and (d[1] ~= nil or next(d) == nil) then return d end
  return nil
end
M.list_items = list_items

local function check_list(body)
  if not list_items(body) then return "a list that is neither an array nor {data: [...]}" end
  return nil
end

local function list_req(limit)
  return { method = "GET", path = "/v1/deepresearch/list", query = { limit = limit },
    effect = "read", check = check_list }
end

local function status_path(self, id)
  local k = kind_of(self)
  return k.path .. "/" .. http.escape(id) .. k.status_suffix
end

-- Looks for the task a lost create made: recent tasks with our query, then the nonce.
-- claimed: ids other creates of the same poller returned (a server that does not echo
-- metadata leaves only the query to match on).
local function reconcile(runtime, self, query, mode, nonce, started)
  local body, _, res = http.request(runtime, data(self), list_req(20))
  local list = list_items(body)
  started = extruct.server_start(res, started, os.time())
  local claimed = runtime.claimed or {}
  for _, t in ipairs(list or {}) do
    local at = dates.parse_iso(t.created_at)
    local id = t.deepresearch_id
    if t.query == query and (t.mode == nil or t.mode == mode) and not claimed[id] and
       (not at or at >= started - extruct.RECONCILE_SKEW) then
      -- Held while its status is fetched (a poller runs other reconciles meanwhile).
      claimed[id] = true
      local full = call(runtime, data(self), { method = "GET", path = status_path(self, id),
        effect = "read", expect = "object" })
      local meta = full and full.metadata
      if full and (full.mode == nil or full.mode == mode) and
         (type(meta) ~= "table" or meta[M.NONCE_KEY] == nil or meta[M.NONCE_KEY] == nonce) then
        full.reconciled = true
        return full
      end
      claimed[id] = nil
    end
  end
  return nil
end

-- A create's answer names its task; without an id the 2xx is unreadable (and may have made one).
local function check_created(t)
  if type(t.deepresearch_id) ~= "string" or t.deepresearch_id == "" then
    return "a create answer without a deepresearch_id"
  end
  return nil
end

function ops.create(runtime, self, params)
  local body, nonce = M.create_body(params)
  if not body then return nil, nonce end
  local started = os.time()
  local query = params.query or params.input or params.brief
  -- The mode the server records (lite is sent as standard, absent means standard): the
  -- siblings of a create are the creates a reconcile could confuse with it.
  local mode = (params.mode == nil or params.mode == "lite") and "standard" or params.mode
  local key = tostring(query) .. "\0" .. mode
  extruct.sending(runtime, key, 1)
  local task, err = call(runtime, data(self), { method = "POST", path = kind_of(self).path,
    body = body,
    effect = "create", expect = "object", check = check_created })
  extruct.sending(runtime, key, -1)
  if task and runtime.claimed then runtime.claimed[task.deepresearch_id] = true end
  if task or not extruct.maybe_created(err) then return task, err end
  extruct.await_siblings(runtime, key)
  local found = reconcile(runtime, self, query, mode, nonce, started)
  if found then
    if runtime.claimed then runtime.claimed[found.deepresearch_id] = true end
    return found
  end
  return nil, extruct.unresolved(err, "client:list{limit = 10} (newest first)")
end

function ops.get(runtime, self, id)
  local err
  id, err = validate.id("get", id)
  if not id then return nil, err end
  return call(runtime, data(self), { method = "GET", path = status_path(self, id), effect = "read",
    expect = "object" })
end

function ops.list(runtime, self, opts)
  validate.type("list", 1, opts, "table", true)
  opts = opts or {}
  local ok, err = validate.page({ limit = opts.limit }, 100)
  if ok and opts.limit == 0 then ok, err = nil, errors.invalid("limit must be in 1..100") end
  if not ok then return nil, err end
  local body
  body, err = call(runtime, data(self), list_req(opts.limit))
  if not body then return nil, err end
  return list_items(body)
end

local function mutate(runtime, self, fname, id, suffix, method, body)
  local err
  id, err = validate.id(fname, id)
  if not id then return nil, err end
  return call(runtime, data(self), { method = method, path = kind_of(self).path .. "/" ..
    http.escape(id) .. suffix,
    body = body, effect = "mutate", expect = "object" })
end

function ops.cancel(runtime, self, id) return mutate(runtime, self, "cancel", id, "/cancel", "POST",
  "{}") end
function ops.delete(runtime, self, id) return mutate(runtime, self, "delete", id, "/delete",
  "DELETE") end

function ops.update(runtime, self, id, instruction)
  validate.type("update", 2, instruction, "string")
  if instruction:find("^%s*$") then return nil, errors.invalid("instruction must not be empty") end
  return mutate(runtime, self, "update", id, "/update", "POST",
    json.encode({ instruction = instruction }))
end

--- Answers a checkpoint: POST .../respond {interaction_id, response}. interaction: its id, or
-- the table from task.interaction (its type selects the shape checked before sending).
function ops.respond(runtime, self, id, interaction, response)
  local body, err = hitl.body(interaction, response, 2)
  if not body then return nil, err end
  return mutate(runtime, self, "respond", id, "/respond", "POST", body)
end

local function valyu_verdict(task, state)
  if state == "done" then return "done" end
  if state == "failed" then
    return errors.new("task_failed", "task " .. json.shown(task.deepresearch_id, "?") ..
      " failed: " .. json.shown(task.error, "no reason given"), { reason = task.error,
        task = task })
  end
  if state == "cancelled" then
    return errors.new("cancelled", "task " .. tostring(task.deepresearch_id) .. " was cancelled",
      { task = task })
  end
  if state == nil then
    return errors.new("invalid_response", "task has a status this client does not know: " ..
      tostring(task.status), { task = task })
  end
  return nil
end

-- Polls with If-None-Match: an unchanged task answers 304 and costs no body.
local function conditional_get()
  local etag, cached
  return function(runtime, self, id)
    local headers = etag and { "If-None-Match: " .. etag } or nil
    local body, err, res = http.request(runtime, data(self), { method = "GET",
      path = status_path(self,
      id),
      effect = "read", expect = "object", max_retries = 0, headers = headers, allow_304 = true })
    if err then return nil, err end
    -- The server's pace (SDKs follow it too): a Retry-After on a 200 or 304 status answer.
    local pace = res and policy.parse_retry_after(http.headers(res)["retry-after"])
    if not body and res and res.status == 304 then
      if cached then return cached, nil, pace end
      -- A 304 to a request that sent no ETag (or whose body we never had): nothing to
      -- reuse. A transient failure: the next poll goes without If-None-Match.
      etag = nil
      return nil, errors.new("invalid_response",
        "HTTP 304 Not Modified to a status poll with no " ..
        "cached task; polling again without If-None-Match", { status = 304, retryable = true })
    end
    if res then etag = http.headers(res).etag end
    cached = body
    return body, nil, pace
  end
end

local function timeout_for(task) return M.default_timeout(task.mode) end

function ops.wait(runtime, self, id_or_task, opts)
  validate.type("wait", 2, opts, "table", true)
  local on_input = opts and opts.on_input
  validate.type("wait", 2, on_input, "function", true)
  local verdict = hitl.verdict(valyu_verdict, on_input, function(task, interaction, response)
    return ops.respond(runtime, self, task.deepresearch_id or id_or_task, interaction, response)
  end)
  return extruct.wait_on(runtime, self, kind_of(self), id_or_task, opts, conditional_get(),
    verdict, "wait", timeout_for)
end

function ops.run(runtime, self, params)
  validate.type("run", 1, params, "table")
  local task, err = ops.create(runtime, self, params)
  if not task then return nil, err end
  -- The create answer names the mode the server runs: its default timeout (a max task runs
  -- past the 2-hour default).
  return ops.wait(runtime, self, task.deepresearch_id, { on_progress = params.on_progress,
    timeout = params.timeout or M.default_timeout(task.mode or params.mode),
    interval = params.interval, max_interval = params.max_interval,
    on_input = params.on_input })
end

M.methods = extruct.blocking_methods(ops, M.accepts)

-- Batches and assets come in modules of their own, each exporting ops, accepts and methods
-- like this one. Registered as loaded first, so that they may require this module back.
package.loaded["deepresearch.providers.valyu"] = M
local function optional(name)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  if type(mod) == "string" and mod:find("module '" .. name .. "' not found", 1, true) then
    return nil
  end
  error(mod, 0)
end
for _, name in ipairs({ "deepresearch.providers.valyu_batch",
  "deepresearch.providers.valyu_assets" }) do
  local mod = optional(name)
  if type(mod) == "table" then
    for k, v in pairs(mod.ops or {}) do ops[k] = v end
    for k, v in pairs(mod.accepts or {}) do M.accepts[k] = v end
    for k, v in pairs(mod.methods or {}) do M.methods[k] = v end
  end
end

return M

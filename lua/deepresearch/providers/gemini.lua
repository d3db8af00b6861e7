-- Gemini Deep Research (Interactions API): create, get, wait, run, cancel, delete.
-- No list and no idempotency key: a create is sent once, and one whose answer is lost is
-- reported (ambiguous, with the nonce in its labels), never sent again.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local options = require "deepresearch.base.options"
local extruct = require "deepresearch.providers.extruct"
local D = require "deepresearch.providers.descriptor.gemini"
local read = require "deepresearch.report.read"

local data = http.state
local M = { ops = {} }
local ops = M.ops

M.NONCE_LABEL = D.nonce_label
M.CONFIG_TYPE = "deep-research"
-- agent_config's documented keys and, for the enums, their words (gemini.md A.3).
local CONFIG_ENUMS = { thinking_summaries = { "auto", "none" }, visualization = { "auto", "off" } }
local CONFIG_BOOLS = { collaborative_planning = true, enable_bigquery_tool = true }

local CREATE = { brief = "string", input = "string|table", agent = "string",
  agent_config = "table", tools = "table", system_instruction = "string",
  previous_interaction_id = "string", labels = "table", webhook_config = "table",
  output_schema = "table" }
local WAIT_OPTS = { on_progress = "function", timeout = "number", interval = "number",
  max_interval = "number" }
M.accepts = {
  create = { opts = 1, required = true, fields = CREATE, needs = { { "brief", "input" } } },
  run = { opts = 1, required = true, fields = options.extend(CREATE, WAIT_OPTS),
    needs = { { "brief", "input" } } },
  wait = { id = true, opts = 2, fields = extruct.WAIT },
  cancel = { id = true },
  delete = { id = true },
}

-- Every request names the API revision whose answers carry steps[].
local HEADERS = { "Api-Revision: " .. D.api_revision }

local function path_of(id, suffix)
  return D.kinds.research.path .. "/" .. http.escape(id) .. (suffix or "")
end

local function check_interaction(t)
  if type(t.id) ~= "string" or t.id == "" or type(t.status) ~= "string" then
    return "an interaction without a string id and status"
  end
  return nil
end

local function call(runtime, self, req)
  req.headers = HEADERS
  local body, err = http.request(runtime, data(self), req)
  return body, err
end

local function check_config(cfg)
  if cfg.type ~= nil and cfg.type ~= M.CONFIG_TYPE then
    return nil, errors.invalid(string.format("agent_config.type must be %q, got %q",
      M.CONFIG_TYPE, tostring(cfg.type)), { field = "agent_config.type" })
  end
  for k, words in pairs(CONFIG_ENUMS) do
    if cfg[k] ~= nil then
      local ok, err = validate.enum("agent_config." .. k, cfg[k], words)
      if not ok then return nil, err end
    end
  end
  for k in pairs(CONFIG_BOOLS) do
    if cfg[k] ~= nil and type(cfg[k]) ~= "boolean" then
      return nil, errors.invalid("agent_config." .. k .. " must be a boolean",
        { field = "agent_config." .. k })
    end
  end
  return true
end

local function retired(agent)
  local r = D.retired_agents[agent]
  if not r then return nil end
  return errors.new("retired", string.format("the Gemini agent %s was shut down on %s; use " ..
    "agent = %q", agent, r.shut_down, r.successor), { agent = agent, successor = r.successor,
    retryable = false })
end

local function check_input(p)
  if p.brief ~= nil and p.input ~= nil then
    return nil, errors.invalid("give brief or input, not both", { field = "input" })
  end
  local text = p.brief or p.input
  if type(text) == "string" then
    return validate.text(p.brief and "brief" or "input", text, D.limits.brief)
  end
  if type(text) ~= "table" or #text == 0 then
    return nil, errors.invalid("input must be a string or a non-empty list of content parts",
      { field = "input" })
  end
  return true
end

local function check_create(p)
  if p.output_schema ~= nil then
    return nil, errors.invalid("Gemini Deep Research does not support structured output " ..
      "(output_schema): ask for the structure in the brief", { field = "output_schema" })
  end
  local ok, err = check_input(p)
  if not ok then return nil, err end
  local agent = p.agent or D.default_agent
  local gone = retired(agent)
  if gone then return nil, gone end
  if p.agent_config ~= nil then
    ok, err = check_config(p.agent_config)
    if not ok then return nil, err end
  end
  for k, v in pairs(p.labels or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      return nil, errors.invalid("labels maps strings to strings", { field = "labels" })
    end
  end
  return true
end

local function new_nonce()
  return string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

--- Validates create parameters; returns the JSON body and the nonce put in its labels (and in
-- webhook_config.user_metadata when the caller asked for webhooks), or nil, err.
function M.create_body(p)
  validate.type("create", 1, p, "table")
  local ok, err = check_create(p)
  if not ok then return nil, err end
  local nonce = new_nonce()
  local cfg = { type = M.CONFIG_TYPE }
  for k, v in pairs(p.agent_config or {}) do cfg[k] = v end
  local labels = {}
  for k, v in pairs(p.labels or {}) do labels[k] = v end
  labels[M.NONCE_LABEL] = nonce
  local hook
  if p.webhook_config ~= nil then
    hook = {}
    for k, v in pairs(p.webhook_config) do hook[k] = v end
    local meta = {}
    for k, v in pairs(type(hook.user_metadata) == "table" and hook.user_metadata or {}) do
      meta[k] = v
    end
    meta[M.NONCE_LABEL] = nonce
    hook.user_metadata = meta
  end
  -- Deep Research runs only in the background, and background needs a stored interaction.
  local body = { agent = p.agent or D.default_agent, input = p.brief or p.input,
    background = true, store = true, agent_config = cfg, tools = p.tools,
    system_instruction = p.system_instruction,
    previous_interaction_id = p.previous_interaction_id, labels = labels, webhook_config = hook }
  local encoded, text = pcall(json.encode, body)
  if not encoded then
    return nil, errors.invalid("cannot encode the request: " .. tostring(text))
  end
  return text, nonce
end

-- A create that may have left and got no usable answer: nothing can look the interaction up.
local function ambiguous(cause, nonce)
  local what = cause.status and ("it was answered HTTP " .. cause.status .. ": " ..
    tostring(cause.message)) or ("its answer was lost: " .. tostring(cause.message))
  return errors.new("ambiguous", string.format("the create request was sent and %s; an " ..
    "interaction may exist and may be billed. Gemini has no list and no idempotency key, so " ..
    "it cannot be looked up: it carries labels.%s = %q (seen only by a GET of its id or on a " ..
    "webhook); it was not sent again", what, M.NONCE_LABEL, nonce),
    { retryable = false, attempts = cause.attempts, cause = cause, sent = true,
      status = cause.status, nonce = nonce })
end

-- Google's JSON NOT_FOUND whose message names the agent: the agent id is unknown (a shut-down
-- preview). Any other 404 (a proxy's page, a wrong path) keeps its own error.
local function agent_not_found(err, agent)
  local e = err.status == 404 and type(err.details) == "table" and err.details or nil
  return e ~= nil and e.status == "NOT_FOUND" and type(err.message) == "string" and
    err.message:find(agent, 1, true) ~= nil
end

local function create_refused(err, agent)
  if agent_not_found(err, agent) then
    local gone = retired(agent)
    if gone then
      gone.status, gone.cause = 404, err
      return gone
    end
    return errors.new("retired", string.format("the Gemini agent %s was not found (a retired " ..
      "preview?): %s; current agents are listed in the gemini descriptor (default %s)",
      agent, tostring(err.message), D.default_agent),
      { status = 404, cause = err, agent = agent, retryable = false })
  end
  return err
end

function ops.create(runtime, self, params)
  local body, nonce = M.create_body(params)
  if not body then return nil, nonce end
  local agent = params.agent or D.default_agent
  local task, err = call(runtime, self, { method = "POST", path = D.kinds.research.path,
    body = body, effect = "create", expect = "object", check = check_interaction })
  if task then return task end
  if extruct.maybe_created(err) then return nil, ambiguous(err, nonce) end
  return nil, create_refused(err, agent)
end

local function get_req(id)
  return { method = "GET", path = path_of(id), effect = "read", expect = "object",
    check = check_interaction }
end

function ops.get(runtime, self, id)
  local err
  id, err = validate.id("get", id)
  if not id then return nil, err end
  return call(runtime, self, get_req(id))
end

local function mutate(runtime, self, fname, id, method, suffix, body)
  local err
  id, err = validate.id(fname, id)
  if not id then return nil, err end
  return call(runtime, self, { method = method, path = path_of(id, suffix), body = body,
    effect = "mutate", expect = "object" })
end

function ops.cancel(runtime, self, id)
  return mutate(runtime, self, "cancel", id, "POST", "/cancel", "{}")
end

--- Removes the stored record; a running interaction is not stopped by it (cancel first).
function ops.delete(runtime, self, id)
  return mutate(runtime, self, "delete", id, "DELETE")
end

-- The reason an interaction gives for ending badly: errors[] or the report step's error.
local function reason_of(task)
  local e = type(task.errors) == "table" and task.errors[1] or nil
  if type(e) == "table" then return tostring(e.message or e.code) end
  for _, s in ipairs(type(task.steps) == "table" and task.steps or {}) do
    if type(s) == "table" and type(s.error) == "table" then
      return tostring(s.error.message or s.error.code)
    end
  end
  return nil
end

local function fail(code, task, what)
  local reason = reason_of(task)
  return errors.new(code, string.format("interaction %s %s%s", tostring(task.id), what,
    reason and (": " .. reason) or ""), { reason = reason or task.status, task = task,
    retryable = false })
end

--- The wait's verdict on one snapshot: "done", an error, or nil (keep polling).
function M.verdict(task, state)
  if state == "done" then
    -- incomplete: done with a degradation note when a report came back, else a failure.
    local r = task.status == "incomplete" and read.read(task, D)
    if r and r.state == "failed" then
      return fail("incomplete", task, "ended incomplete without a report")
    end
    return "done"
  end
  if state == "failed" then
    if task.status == "budget_exceeded" then
      return fail("task_failed", task, "stopped: its token budget was exceeded")
    end
    return fail("task_failed", task, "failed")
  end
  if state == "cancelled" then return fail("cancelled", task, "was cancelled") end
  if state == "input_required" then
    return errors.new("input_required", string.format("interaction %s needs a new turn " ..
      "(requires_action): answer with client:create{ brief = ..., previous_interaction_id " ..
      "= %q }, or cancel it", tostring(task.id), tostring(task.id)),
      { task = task, retryable = false })
  end
  if state == nil then
    return errors.new("invalid_response", "interaction " .. tostring(task.id) ..
      " has a status this client does not know: " .. tostring(task.status), { task = task })
  end
  return nil
end

local function poll(runtime, self, id)
  local req = get_req(id)
  req.max_retries = 0 -- the wait loop has its own
  return call(runtime, self, req)
end

local function deadline() return D.deadline end

-- A run stops at 60 minutes; one still running at the default deadline is stuck (seen in
-- the wild): cancel it so that it stops billing, and say so. A caller's own timeout cancels
-- nothing (the interaction keeps running; wait again to resume).
local function give_up(runtime, self, err)
  local task = err.task
  if type(task) ~= "table" or type(task.id) ~= "string" then return err end
  local ok, cerr = ops.cancel(runtime, self, task.id)
  err.cancelled = ok ~= nil
  err.message = string.format("interaction %s was still %s after %d minutes (Gemini stops " ..
    "runs at 60): %s", task.id, tostring(task.status), math.floor(D.deadline / 60), ok and
    "cancelled it" or ("cancelling it failed: " .. tostring(cerr and cerr.message)))
  err.retryable = false
  return err
end

function ops.wait(runtime, self, id_or_task, opts)
  validate.type("wait", 2, opts, "table", true)
  local task, err = extruct.wait_on(runtime, self, D.kinds.research, id_or_task, opts, poll,
    M.verdict, "wait", deadline)
  if err and err.code == "timeout" and (opts == nil or opts.timeout == nil) then
    return nil, give_up(runtime, self, err)
  end
  return task, err
end

function ops.run(runtime, self, params)
  validate.type("run", 1, params, "table")
  return extruct.create_then_wait(ops, runtime, self, params, params)
end

M.methods = extruct.blocking_methods(ops, M.accepts)

return M

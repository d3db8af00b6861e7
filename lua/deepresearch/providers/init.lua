-- The provider registry: one descriptor per provider (providers/descriptor/<name>.lua) holds
-- everything that differs between providers, as data. The client, the command, the worker, the
-- editor and the report read descriptors; only a provider's own modules name a provider.
-- docs/providers.md: the fields, and how to add a provider.
local M = {}

local order = {} -- registered names, in registration order (the default first)

-- The fields every descriptor holds (descriptors_spec checks them all).
-- A provider without a list (has_list = false) may leave out list_paging, cli.list and
-- worker.matches (LIST_ONLY).
M.REQUIRED = { "name", "base_url", "base_env", "token_env", "token_option", "auth_header",
  "auth_prefix", "parse_error", "kinds", "module", "limits", "operations", "recovery",
  "list_paging",
  "report", "cost", "cli", "worker" }
M.REQUIRED_KIND = { "path", "id_field", "states", "progress", "failure_field", "label" }
-- cli.describe may be left out: the progress line then shows the kind's progress fields.
M.REQUIRED_CLI = { "name", "flags", "columns", "create", "list", "summary" }
M.REQUIRED_WORKER = { "id_field", "params", "validate", "matches", "progress" }
M.RECOVERY = { list_match = true, idempotency_key = true, none = true }
-- Needed only by a provider that lists its tasks (has_list ~= false): the command's list, the
-- worker's search for a lost create.
M.LIST_ONLY = { list_paging = true, ["cli.list"] = true, ["cli.columns"] = true,
  ["worker.matches"] = true }
-- Optional fields and the type each must have when present (docs/providers.md).
M.OPTIONAL = { base_suffixes = "table", detect = "function", has_list = "boolean",
  poll = "table", create_pace = "number", prices = "table", modes = "table", webhook = "table",
  default = "boolean", budget = "table" }

--- Whether a descriptor's provider can list its tasks (has_list = false says it cannot).
function M.has_list(d) return d.has_list ~= false end

--- The required fields d lacks and the optional ones of the wrong type, as "path" strings
-- (an empty table for a whole descriptor). descriptors_spec checks every registered one.
function M.missing(d)
  local out = {}
  local function need(v, path)
    if v == nil and not (M.LIST_ONLY[path] and not M.has_list(d)) then out[#out + 1] = path end
  end
  for _, f in ipairs(M.REQUIRED) do need(d[f], f) end
  for kname, kind in pairs(type(d.kinds) == "table" and d.kinds or {}) do
    for _, f in ipairs(M.REQUIRED_KIND) do need(kind[f], "kinds." .. kname .. "." .. f) end
  end
  for _, f in ipairs(M.REQUIRED_CLI) do need(type(d.cli) == "table" and d.cli[f] or nil,
    "cli." .. f) end
  for _, f in ipairs(M.REQUIRED_WORKER) do
    need(type(d.worker) == "table" and d.worker[f] or nil, "worker." .. f)
  end
  for f, t in pairs(M.OPTIONAL) do
    if d[f] ~= nil and type(d[f]) ~= t then out[#out + 1] = f .. " (" .. t .. ")" end
  end
  if type(d.poll) == "table" and (type(d.poll.floor) ~= "number" or
    type(d.poll.cap) ~= "number" or d.poll.floor > d.poll.cap) then
    out[#out + 1] = "poll (floor <= cap, numbers)"
  end
  table.sort(out)
  return out
end

--- Adds (or replaces) a provider's descriptor; returns it. Raises on a malformed one.
function M.register(d)
  if type(d) ~= "table" or type(d.name) ~= "string" or not d.name:match("^[%l][%l%d_]*$") then
    error("bad argument #1 to 'register' (a descriptor with a lower-case name expected)", 2)
  end
  local old = rawget(M, d.name)
  if old ~= nil and (type(old) ~= "table" or not old.kinds) then
    error("bad argument #1 to 'register' (name '" .. d.name .. "' is reserved)", 2)
  end
  if old == nil then order[#order + 1] = d.name end
  M[d.name] = d
  if d.default then M.DEFAULT = d.name end
  return d
end

--- Removes a registered provider (specs register fakes and take them away again).
function M.unregister(name)
  for i, n in ipairs(order) do
    if n == name then
      table.remove(order, i)
      M[name] = nil
      return true
    end
  end
  return false
end

--- The descriptor of a provider name, or nil.
function M.get(name)
  local d = type(name) == "string" and rawget(M, name) or nil
  return type(d) == "table" and d.kinds and d or nil
end

--- The registered names, default first then in registration order (a fresh table).
function M.names()
  local t = {}
  for i, n in ipairs(order) do t[i] = n end
  return t
end

--- The default provider's name.
function M.default_name() return M.DEFAULT end

M.register(require "deepresearch.providers.descriptor.extruct")
M.register(require "deepresearch.providers.descriptor.valyu")
M.register(require "deepresearch.providers.descriptor.gemini")
M.register(require "deepresearch.providers.descriptor.openai")
M.register(require "deepresearch.providers.descriptor.perplexity")

local function each_kind(names, fn)
  for _, n in ipairs(names) do
    local d = M.get(n)
    if d then
      local keys = {} -- a fixed order, whatever pairs does
      for k in pairs(d.kinds) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do
        local r = fn(d.kinds[k])
        if r ~= nil then return r end
      end
    end
  end
  return nil
end

--- The normalised state word (queued, running, input_required, done, failed, cancelled) of any
-- provider's task, or nil for a status nobody knows. name, when given, says whose task it is
-- (for a table whose fields alone are ambiguous). A task carrying a provider's id field is read
-- by that provider first; a bare { status = ... } by the first provider that knows the word.
-- The descriptor that says (D.detect) a bare task is its provider's, or nil.
local function detected(task)
  for _, n in ipairs(order) do
    local d = M.get(n)
    if d and type(d.detect) == "function" then
      local ok, yes = pcall(d.detect, task)
      if ok and yes then return d end
    end
  end
  return nil
end
M.detect = detected

-- PROVIDERS.md section 3 note 2: a run that stopped early (incomplete) is done when it left
-- report text, failed when it left none. The report reader (dr.result's) decides.
local function incomplete_state(task, name)
  local d = name ~= nil and M.get(name) or detected(task)
  local ok, res = pcall(require("deepresearch.report.read").read, task, d)
  return ok and res.state == "failed" and "failed" or "done"
end

function M.state(task, name)
  if type(task) ~= "table" or task.status == nil then return nil end
  local names = name ~= nil and { name } or order
  local status = task.status
  local r = each_kind(names, function(kind)
    if task[kind.id_field] ~= nil then return kind.states[status] end
  end)
  if r == nil then r = each_kind(names, function(kind) return kind.states[status] end) end
  if r == "done" and status == "incomplete" then return incomplete_state(task, name) end
  return r
end

return M

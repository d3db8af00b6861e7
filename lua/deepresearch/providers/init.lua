-- The provider registry: one descriptor per provider (providers/descriptor/<name>.lua) holds
-- everything that differs between providers, as data. The client, the command, the worker, the
-- editor and the report read descriptors; only a provider's own modules name a provider.
-- docs/providers.md: the fields, and how to add a provider.
local M = {}

local order = {} -- registered names, in registration order (the default first)

-- The fields every descriptor holds (descriptors_spec checks them all).
M.REQUIRED = { "name", "base_url", "base_env", "token_env", "token_option", "auth_header",
  "auth_prefix", "parse_error", "kinds", "module", "limits", "operations", "recovery",
  "list_paging",
  "report", "cost", "cli", "worker" }
M.REQUIRED_KIND = { "path", "id_field", "states", "progress", "failure_field", "label" }
M.REQUIRED_CLI = { "name", "flags", "describe", "columns", "create", "list", "summary" }
M.REQUIRED_WORKER = { "id_field", "params", "validate", "matches", "progress" }
M.RECOVERY = { list_match = true, idempotency_key = true, none = true }

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
function M.state(task, name)
  if type(task) ~= "table" or task.status == nil then return nil end
  local names = name ~= nil and { name } or order
  local status = task.status
  local r = each_kind(names, function(kind)
    if task[kind.id_field] ~= nil then return kind.states[status] end
  end)
  if r ~= nil then return r end
  return each_kind(names, function(kind) return kind.states[status] end)
end

return M

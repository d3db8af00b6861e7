-- What a job is: parsing and checking the producer's JSON, turning it into a
-- provider's create parameters, recognising its task in a listing, the
-- progress counters to publish, and the rendered report.
local dates = require "deepresearch.base.dates"
local errors = require "deepresearch.base.errors"
local json = require "deepresearch.base.json"
local providers = require "deepresearch.providers"

local M = {}

M.MAX_ID = 200

--- Encodes v as JSON text, never raising (a value that cannot be encoded becomes a note).
-- deepresearch.base.json: arrays stay arrays (empty ones too, as decoded), keys sorted.
function M.encode(v)
  local ok, text = pcall(json.encode, v)
  if ok then return text end
  return json.encode({ unencodable = tostring(text) })
end

--- Job text from Redis as a value: null means "absent" (deepresearch.base.json.decode).
M.decode = json.decode

--- A task as JSON text the way the API sent it (the same encoder: kept for its callers).
M.encode_task = M.encode

--- An error as the JSON stored in the job hash and in dead letters.
function M.error_json(err)
  if type(err) ~= "table" then return M.encode({ code = "worker", message = tostring(err) }) end
  return M.encode({ code = err.code, message = err.message, status = err.status,
    request_id = err.request_id, retryable = err.retryable })
end

-- Providers ------------------------------------------------------------------------------------

-- What the worker needs of a provider (descriptor.worker: id_field, params, validate, matches,
-- progress), looked up in the registry when asked, so a descriptor registered later is found.
M.providers = setmetatable({}, { __index = function(_, name)
  local d = providers.get(name)
  return d and d.worker or nil
end })

-- A job's own fields (besides its provider's options, under the provider's name).
local FIELDS = { id = true, brief = true, depth = true, output_schema = true, provider = true }

--- Parses one queue entry. Returns the job, or nil, err (err.job_id when the id was readable).
-- job = { raw, id, brief, depth, output_schema, params }
function M.parse(raw, provider_name)
  local v, perr = M.decode(raw)
  if v == nil then
    return nil, errors.invalid("the job is not JSON: " .. tostring(perr):gsub("^.-: ", ""))
  end
  if type(v) ~= "table" or v == json.null or v[1] ~= nil or json.is_array_marked(v) then
    return nil, errors.invalid("the job must be a JSON object")
  end
  local id = v.id
  if type(id) == "number" and id % 1 == 0 and id >= 0 and id < 2 ^ 53 then
    id = string.format("%d", id)
  end
  if type(id) ~= "string" or id == "" or #id > M.MAX_ID or id:find("[%c%s]") then
    return nil, errors.invalid("the job needs an id: a string of 1.." .. M.MAX_ID ..
      " characters without spaces, chosen by the producer")
  end
  local bad = function(msg) local e = errors.invalid(msg) e.job_id = id return nil, e end
  -- "provider": the job's own (one queue may mix providers); the worker's --provider else.
  if v.provider ~= nil and (type(v.provider) ~= "string" or not M.providers[v.provider]) then
    return bad("provider must be one of " .. table.concat(providers.names(), ", ") .. ", got " ..
      (type(v.provider) == "string" and ("'" .. v.provider .. "'") or type(v.provider)))
  end
  local name = v.provider or provider_name
  local provider = M.providers[name]
  -- Unknown fields dead-letter the job: a typo ("depht") or options under another provider's
  -- name would otherwise run, and bill, a different job than the producer meant.
  local names = {}
  for k in pairs(v) do names[#names + 1] = tostring(k) end
  table.sort(names)
  for _, k in ipairs(names) do
    if not FIELDS[k] then
      if k == name then
        if type(v[k]) ~= "table" or json.is_null(v[k]) or v[k][1] ~= nil then
          return bad(k .. " must be a JSON object of " .. k .. " create options, got " ..
            (json.is_null(v[k]) and "null" or type(v[k])))
        end
      elseif M.providers[k] then
        return bad(string.format("%s options on a job for %s: add \"provider\": %q, or drop them",
          k, name, k))
      else
        return bad("unknown job field " .. string.format("%q", k) .. " (a job has " ..
          "id, brief, depth, output_schema, provider and its provider's options)")
      end
    end
  end
  if type(v.brief) ~= "string" then return bad("brief must be a string") end
  if v.depth ~= nil and type(v.depth) ~= "string" then return bad("depth must be a string") end
  if v.output_schema ~= nil and type(v.output_schema) ~= "table" then
    return bad("output_schema must be a JSON object")
  end
  local job = { raw = raw, id = id, brief = v.brief, depth = v.depth,
    output_schema = v.output_schema, provider = name }
  -- The provider's own options, under its name ({"valyu": {"mode": ...}}): its params read them.
  if job[name] == nil then job[name] = v[name] end
  job.params = provider.params(job)
  local ok, body, err = pcall(provider.validate, job.params)
  if not ok then return bad(tostring(body):gsub("^.-:%d+: ", "")) end
  if not body then
    err.job_id = id
    return nil, err
  end
  return job
end

--- The task's creation time in seconds since the epoch (server clock), or nil.
function M.created_epoch(task)
  return dates.parse_iso(task and task.created_at)
end

-- Report ----------------------------------------------------------------------------------------

local function fallback_report(task)
  local r = type(task.report) == "table" and task.report or {}
  local out = {}
  if type(r.markdown) == "string" then
    out[1] = r.markdown
  elseif type(task.output) == "string" then
    out[1] = task.output
  elseif r.fields ~= nil then
    out[1] = "```json\n" .. M.encode(r.fields) .. "\n```\n"
  end
  local sources = type(r.sources) == "table" and r.sources or (type(task.sources) == "table"
    and task.sources) or {}
  if #sources > 0 then
    out[#out + 1] = "\n## Sources\n"
    for i, s in ipairs(sources) do
      local url = type(s) == "table" and (s.url or s.link) or tostring(s)
      out[#out + 1] = string.format("[^%s]: %s", type(s) == "table" and s.id or i, tostring(url))
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- The report to store: report.render (footnotes) when that module exists, else the markdown
-- with its sources appended.
function M.render(task)
  local ok, report = pcall(require, "deepresearch.report")
  if ok and type(report) == "table" and type(report.render) == "function" then
    local good, text = pcall(report.render, task, { style = "footnotes" })
    if good and type(text) == "string" then return text end
    if not good and require("deepresearch.worker.redis").is_interrupt(text) then error(text, 0) end
  end
  return fallback_report(task)
end

return M

-- What the OpenAI and Perplexity descriptors share: both speak the Responses shape (background
-- runs of /v1/responses-like routes). Helpers and data only; each descriptor still says
-- everything that differs. Pure Lua: no core, no CLI.
local M = {}

-- {"error": {"message", "type", "param", "code"}}; Perplexity adds an integer code and a
-- FastAPI {"detail": [...]} on 422. info.api stays nil on purpose: no error body of these APIs
-- is documented to mean "nothing was created" for a 5xx, so a failed create is never re-sent.
function M.parse_error(body)
  local info = {}
  if type(body) ~= "table" then return info end
  local e = body.error
  if type(e) == "table" then
    info.message = type(e.message) == "string" and e.message or nil
    local code = e.code
    info.server_code = type(code) == "string" and code or (type(e.type) == "string" and e.type)
      or nil
    if type(e.param) == "string" then
      info.fields = { { field = e.param, message = info.message, type = info.server_code } }
    end
    info.details = e
  elseif type(body.detail) == "table" then
    local parts, fields = {}, {}
    -- Server data of the wrong type is read as absent: a hostile body never raises here.
    for _, item in ipairs(body.detail) do
      if type(item) == "table" then
        local loc = type(item.loc) == "table" and item.loc or {}
        local last = loc[#loc]
        local name = (type(last) == "string" or type(last) == "number") and tostring(last) or "?"
        local msg = type(item.msg) == "string" and item.msg or "invalid"
        fields[#fields + 1] = { field = name, message = msg,
          type = type(item.type) == "string" and item.type or nil }
        parts[#parts + 1] = name .. ": " .. msg
      end
    end
    info.message = #parts > 0 and table.concat(parts, "; ") or nil
    info.fields = fields
    info.details = body.detail
  elseif type(body.error) == "string" then
    info.message = body.error
  end
  return info
end

-- The report text of a Responses-shaped task: the output_text parts of the last message
-- item, concatenated (the SDKs' output_text convenience is not on the wire). nil when there is
-- no message (a run still going, or one that stopped before writing).
function M.report_text(task)
  local output = type(task) == "table" and task.output
  if type(output) ~= "table" then return nil end
  for i = #output, 1, -1 do
    local item = output[i]
    if type(item) == "table" and item.type == "message" and type(item.content) == "table" then
      local parts = {}
      for _, c in ipairs(item.content) do
        if type(c) == "table" and c.type == "output_text" and type(c.text) == "string" then
          parts[#parts + 1] = c.text
        end
      end
      return table.concat(parts)
    end
  end
  return nil
end

--- Unix seconds (the Responses APIs' timestamps) as UTC "YYYY-MM-DD HH:MM", or nil.
function M.unix_time(t)
  if type(t) ~= "number" or t ~= t or t < 0 or t > 253402300799 then return nil end
  return os.date("!%Y-%m-%d %H:%M", math.floor(t))
end

-- Counts output items of a type (and, for web_search_call, an action type).
function M.count_items(task, kind, action)
  local n = 0
  for _, item in ipairs(type(task.output) == "table" and task.output or {}) do
    if type(item) == "table" and item.type == kind and (not action or
      (type(item.action) == "table" and item.action.type == action)) then
      n = n + 1
    end
  end
  return n
end

-- The research kind of a Responses API at `path`. incomplete is terminal with partial output:
-- done here; the wait's verdict makes it failed (code "incomplete") when no report text came
-- (PROVIDERS.md §3). cancelling appears only in the cancel answer.
function M.research_kind(path)
  return { path = path, id_field = "id",
    states = { queued = "queued", in_progress = "running", completed = "done",
               incomplete = "done", failed = "failed", cancelled = "cancelled" },
    progress = { "status", "#output" }, failure_field = "error.message", label = "response" }
end

M.columns = { { "ID", "id" }, { "STATUS", "status" }, { "MODEL", "model" } }

-- A --schema is passed on: create refuses it with a clear message where there is no
-- structured output.
function M.cli_create(client, text, _, schema)
  return client:create{ brief = text, output_schema = schema }
end

--- A worker's create parameters: the job's `key` table (its provider options), its brief, and
-- its output_schema (passed on so that validate refuses it clearly rather than dropping it).
function M.params(j, key)
  local p = {}
  for k, v in pairs(type(j[key]) == "table" and j[key] or {}) do p[k] = v end
  p.brief = j.brief
  p.output_schema = p.output_schema or j.output_schema
  return p
end

return M

-- Validation of POST /v1/deepresearch/tasks bodies (contract C.4 V2). Collects every problem as
-- {code, key, message} so either error shape (simple or validation_failed) can be built from it.
local json = require("simulator.valyu_json")
local content = require("simulator.valyu_content")
local webhook = require("simulator.valyu_webhook")

local M = {}

M.MODES = { instant = true, fast = true, standard = true, heavy = true, max = true }
M.MAX_QUERY = 25000
M.MAX_STRATEGY_AND_FORMAT = 15000
M.MAX_FILE_CONTEXT = 10000
M.WORKFLOW_CONFLICT = "workflow_and_freeform_mutually_exclusive"

-- The Rust crate (0.2.1) still sends camelCase option keys; accept them as aliases.
local CAMEL = {
  outputFormats = "output_formats", researchStrategy = "research_strategy",
  reportFormat = "report_format", mcpServers = "mcp_servers", codeExecution = "code_execution",
  previousReports = "previous_reports",
  webhookUrl = "webhook_url", alertEmail = "alert_email", brandCollectionId = "brand_collection_id",
  workflowId = "workflow_id", workflowParams = "workflow_params",
  workflowVersion = "workflow_version",
}

local LIMITS = { urls = 10, files = 10, deliverables = 10, mcp_servers = 5, previous_reports = 3 }
local LIMIT_ORDER = { "urls", "files", "deliverables", "mcp_servers", "previous_reports" }
local DELIVERABLE_TYPES = { csv = true, xlsx = true, pptx = true, docx = true, pdf = true }

local function present(v)
  return not json.is_null(v)
end

local function is_object(v)
  if type(v) ~= "table" or json.is_array(v) then return false end
  for k in pairs(v) do
    if type(k) ~= "string" then return false end
  end
  return true
end

local function is_array(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for k in pairs(v) do
    if type(k) ~= "number" then return false end
    n = n + 1
  end
  return n == #v
end

local function thousands(n)
  local s = tostring(n)
  while true do
    local t, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
    s = t
    if k == 0 then return s end
  end
end

--- Checks a decoded create body. Returns the normalised request, or nil and a list of errors
-- ({code, key, message}); `status` is set on the list when it is not 400 (unknown workflow: 404).
function M.create(body)
  local errs = {}
  local function add(code, key, message)
    errs[#errs + 1] = { code = code, key = key, message = message }
  end

  if not is_object(body) then
    add("invalid_body", "body", "Request body must be a JSON object")
    return nil, errs
  end
  local b = {}
  for k, v in pairs(body) do
    if present(v) then b[CAMEL[k] or k] = v end
  end

  local query = b.query
  if query == nil then query = b.input end
  local strategy = b.research_strategy
  if strategy == nil then strategy = b.strategy end
  local format = b.report_format

  if b.workflow_id ~= nil then
    if query ~= nil or strategy ~= nil or format ~= nil then
      add(M.WORKFLOW_CONFLICT, "workflow_id",
        "workflow_id cannot be combined with query, input, research_strategy or report_format")
      return nil, errs
    end
    errs.status = 404
    add("workflow_not_found", "workflow_id", "workflow_not_found")
    return nil, errs
  end

  if query == nil then
    add("missing_param", "query", 'Required parameter "query" is missing')
  elseif type(query) ~= "string" then
    add("invalid_type", "query", "query must be a string")
  elseif not query:find("%S") then
    add("invalid_value", "query", "query cannot be empty")
  elseif content.length(query) > M.MAX_QUERY then
    add("too_long", "query", string.format("query exceeds %s character limit (%d characters)",
      thousands(M.MAX_QUERY), content.length(query)))
  end

  local mode = b.mode
  if mode == nil then mode = b.model end
  if mode == nil then mode = "standard" end
  if mode == "lite" then mode = "standard" end
  if not M.MODES[mode] then
    add("invalid_value", "mode", string.format(
      'Invalid mode "%s": must be one of instant, fast, standard, heavy, max',
      tostring(mode)))
  end

  local combined = 0
  for _, pair in ipairs({ { "research_strategy", strategy }, { "report_format", format } }) do
    if pair[2] ~= nil then
      if type(pair[2]) ~= "string" then
        add("invalid_type", pair[1], pair[1] .. " must be a string")
      else
        combined = combined + content.length(pair[2])
      end
    end
  end
  if combined > M.MAX_STRATEGY_AND_FORMAT then
    add("too_long", "research_strategy", string.format(
      "research_strategy and report_format combined length (%d) exceeds 15,000 character limit",
      combined))
  end

  for _, key in ipairs(LIMIT_ORDER) do
    local list = b[key]
    if list ~= nil then
      if not is_array(list) then
        add("invalid_type", key, key .. " must be an array")
      elseif #list > LIMITS[key] then
        add("too_many_items", key, string.format("%s cannot contain more than %d items (got %d)",
          key, LIMITS[key], #list))
      end
    end
  end
  if is_array(b.urls) then
    for i, u in ipairs(b.urls) do
      if type(u) ~= "string" or not u:find("^https?://[^%s]+$") then
        add("invalid_value", string.format("urls[%d]", i - 1), "urls must contain http(s) URLs")
      end
    end
  end
  if is_array(b.files) then
    for i, f in ipairs(b.files) do
      local key = string.format("files[%d]", i - 1)
      if not is_object(f) then
        add("invalid_type", key, key .. " must be an object with data, filename and mediaType")
      elseif f.context ~= nil and present(f.context) then
        if type(f.context) ~= "string" then
          add("invalid_type", key .. ".context", key .. ".context must be a string")
        elseif content.length(f.context) > M.MAX_FILE_CONTEXT then
          add("too_long", key .. ".context", string.format(
            "File context exceeds 10,000 character limit (%d characters)",
            content.length(f.context)))
        end
      end
    end
  end
  if is_array(b.deliverables) then
    for i, d in ipairs(b.deliverables) do
      local key = string.format("deliverables[%d]", i - 1)
      if is_object(d) then
        if not DELIVERABLE_TYPES[d.type] then
          add("invalid_value", key .. ".type",
            key .. ".type must be one of csv, xlsx, pptx, docx, pdf")
        end
        if type(d.description) ~= "string" then
          add("missing_param", key .. ".description", key .. ".description is required")
        elseif content.length(d.description) > 500 then
          add("too_long", key .. ".description", key .. ".description exceeds 500 character limit")
        end
      elseif type(d) ~= "string" or not d:find("%S") then
        add("invalid_type", key, key .. " must be a non-empty string or an object")
      end
    end
  end
  if is_array(b.mcp_servers) then
    for i, s in ipairs(b.mcp_servers) do
      if not is_object(s) or type(s.url) ~= "string" then
        add("invalid_value", string.format("mcp_servers[%d]", i - 1), "each MCP server needs a url")
      end
    end
  end
  if is_array(b.previous_reports) then
    for i, id in ipairs(b.previous_reports) do
      if type(id) ~= "string" then
        add("invalid_type", string.format("previous_reports[%d]", i - 1),
          "previous_reports must contain task ids")
      end
    end
  end

  if b.webhook_url ~= nil and not webhook.allowed(b.webhook_url) then
    add("invalid_value", "webhook_url",
      "webhook_url must be an HTTPS URL (http only for 127.0.0.1, localhost, [::1])")
  end
  if b.alert_email ~= nil then
    local ae = b.alert_email
    if is_object(ae) then
      if type(ae.email) ~= "string" then
        add("missing_param", "alert_email.email", "alert_email.email is required")
      end
      if ae.custom_url ~= nil
        and (type(ae.custom_url) ~= "string" or not ae.custom_url:find("{id}", 1, true)) then
        add("invalid_value", "alert_email.custom_url", "alert_email.custom_url must contain {id}")
      end
    elseif type(ae) ~= "string" then
      add("invalid_type", "alert_email", "alert_email must be a string or an object")
    end
  end

  local formats, schema, kind, pdf = b.output_formats, nil, "markdown", false
  if formats == nil or (type(formats) == "table" and next(formats) == nil) then
    formats = json.array({ "markdown" })
  elseif not is_array(formats) then
    add("invalid_type", "output_formats", "output_formats must be an array")
  else
    local text, toon, schemas = false, false, 0
    for _, f in ipairs(formats) do
      if f == "markdown" then text = true
      elseif f == "pdf" then text, pdf = true, true
      elseif f == "toon" then toon = true
      elseif is_object(f) then schemas, schema = schemas + 1, f
      else
        add("invalid_value", "output_formats", string.format(
          'Unknown output format "%s": use markdown, pdf, toon or a JSON schema object',
          tostring(f)))
      end
    end
    if schemas > 0 and text then
      add("invalid_value", "output_formats",
        "A JSON schema output format cannot be combined with markdown or pdf")
    elseif schemas > 1 then
      add("invalid_value", "output_formats", "output_formats can contain at most one JSON schema")
    elseif toon and schemas == 0 then
      add("invalid_value", "output_formats", "toon output requires a JSON schema in output_formats")
    end
    if schema then kind = toon and "toon" or "json" end
  end

  if b.metadata ~= nil then
    if not is_object(b.metadata) then
      add("invalid_type", "metadata", "metadata must be an object")
    else
      for k, v in pairs(b.metadata) do
        local tv = type(v)
        if tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
          add("invalid_value", "metadata." .. k,
            "metadata values must be strings, numbers or booleans")
        end
      end
    end
  end
  if b.hitl ~= nil and not is_object(b.hitl) then
    add("invalid_type", "hitl", "hitl must be an object")
  end
  if is_object(b.search) and b.search.included_sources ~= nil
    and b.search.excluded_sources ~= nil then
    add("invalid_value", "search", "included_sources and excluded_sources are mutually exclusive")
  end

  if #errs > 0 then return nil, errs end
  return {
    query = query, mode = mode, output_formats = formats, output_kind = kind, schema = schema,
    pdf = pdf,
    metadata = b.metadata or {}, webhook_url = b.webhook_url, deliverables = b.deliverables,
    hitl = b.hitl or {}, brand_collection_id = type(b.brand_collection_id) == "string"
      and b.brand_collection_id or nil,
  }
end

---------------------------------------------------------------------------------------------------
-- HITL answers (contract B.8): the response shape each checkpoint type takes.

local function string_list(v)
  if not is_array(v) then return false end
  for _, s in ipairs(v) do
    if type(s) ~= "string" then return false end
  end
  return true
end

local RESPONSE = {}

function RESPONSE.planning_questions(r)
  if not is_array(r.answers) then
    return "response.answers must be an array of {question, answer}"
  end
  for i, a in ipairs(r.answers) do
    if not is_object(a) or type(a.question) ~= "string" or type(a.answer) ~= "string" then
      return string.format("response.answers[%d] must be {question: string, answer: string}",
        i - 1)
    end
  end
end

function RESPONSE.plan_review(r)
  if type(r.approved) ~= "boolean" then return "response.approved (boolean) is required" end
  if present(r.modifications) and type(r.modifications) ~= "string" then
    return "response.modifications must be a string"
  end
end
RESPONSE.outline_review = RESPONSE.plan_review

function RESPONSE.source_review(r)
  for _, key in ipairs({ "included_domains", "excluded_domains" }) do
    if not string_list(r[key]) then
      return "response." .. key .. " must be an array of domain names"
    end
  end
end

--- nil when `response` fits a checkpoint of type `kind`, else the 400 message.
function M.respond(kind, response)
  if not is_object(response) and not (type(response) == "table" and next(response) == nil) then
    return "response must be an object"
  end
  local check = RESPONSE[kind]
  return check and check(response)
end

return M

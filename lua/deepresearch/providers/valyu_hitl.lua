-- Valyu's human-in-the-loop checkpoints: the response shapes respond sends, checked before
-- anything leaves, and the wait rule (answer through on_input, or end with input_required).
-- A task at a checkpoint never finishes by itself: an unanswered one parks in `paused` until
-- someone responds, so a wait that keeps polling would only burn its timeout.
local errors = require "deepresearch.base.errors"
local json = require "deepresearch.base.json"

local M = {}

local function bad(field, message)
  return nil, errors.invalid("response." .. field .. " " .. message,
    { field = "response." .. field })
end

-- Extra keys are refused: { approve = true } for { approved = true } must not approve nothing.
local function only(r, allowed)
  for k in pairs(r) do
    if not allowed[k] then return bad(tostring(k), "is not part of this checkpoint's response") end
  end
  return true
end

local function string_list(r, name)
  local v = r[name]
  if v == nil then return json.array() end
  if type(v) ~= "table" then return bad(name, "must be a list of strings") end
  for i, s in ipairs(v) do
    if type(s) ~= "string" or s == "" then
      return bad(name .. "[" .. i .. "]", "must be a non-empty string")
    end
  end
  if next(v) ~= nil and #v == 0 then return bad(name, "must be a list of strings") end
  return json.array(v)
end

local check = {}

-- { answers = { { question = s, answer = s }, ... } }
function check.planning_questions(r)
  local ok, err = only(r, { answers = true })
  if not ok then return nil, err end
  if type(r.answers) ~= "table" or (next(r.answers) ~= nil and #r.answers == 0) then
    return bad("answers", "must be a list of { question = ..., answer = ... }")
  end
  local answers = json.array()
  for i, a in ipairs(r.answers) do
    if type(a) ~= "table" or type(a.question) ~= "string" or type(a.answer) ~= "string" then
      return bad("answers[" .. i .. "]", "must be { question = string, answer = string }")
    end
    answers[i] = { question = a.question, answer = a.answer }
  end
  return { answers = answers }
end

-- { approved = bool, modifications = string? }
function check.plan_review(r)
  local ok, err = only(r, { approved = true, modifications = true })
  if not ok then return nil, err end
  if type(r.approved) ~= "boolean" then return bad("approved", "must be true or false") end
  if r.modifications ~= nil and type(r.modifications) ~= "string" then
    return bad("modifications", "must be a string")
  end
  return { approved = r.approved, modifications = r.modifications }
end
check.outline_review = check.plan_review

-- { included_domains = { s... }, excluded_domains = { s... } }; empty lists accept the AI's picks.
function check.source_review(r)
  local ok, err = only(r, { included_domains = true, excluded_domains = true })
  if not ok then return nil, err end
  local inc, e1 = string_list(r, "included_domains")
  if not inc then return nil, e1 end
  local exc, e2 = string_list(r, "excluded_domains")
  if not exc then return nil, e2 end
  local seen = {}
  for _, d in ipairs(inc) do seen[d:lower()] = true end
  for _, d in ipairs(exc) do
    if seen[d:lower()] then return bad("excluded_domains", "also includes " .. d) end
  end
  return { included_domains = inc, excluded_domains = exc }
end

M.TYPES = { "planning_questions", "plan_review", "source_review", "outline_review" }

--- The JSON body of a respond, or nil, err (invalid_request). interaction: its id, or the
-- interaction table from task.interaction (then its type selects the shape checked). A wrong
-- Lua type raises at level (error()'s count from the caller of this function).
function M.body(interaction, response, level)
  local id, kind = interaction, nil
  if type(interaction) == "table" then id, kind = interaction.interaction_id, interaction.type end
  if type(id) ~= "string" then
    error(string.format("bad argument #2 to 'respond' (interaction id or interaction table " ..
      "expected, got %s)", type(interaction) == "table" and "a table without interaction_id"
      or type(interaction)), level + 1)
  end
  if type(response) ~= "table" then
    error(string.format("bad argument #3 to 'respond' (table expected, got %s)",
      response == nil and "no value" or type(response)), level + 1)
  end
  if id == "" or id:find("%c") then
    return nil, errors.invalid("interaction_id must be a non-empty string without control " ..
      "characters", { field = "interaction_id" })
  end
  local shaped = response
  if kind ~= nil and check[kind] then
    local err
    shaped, err = check[kind](response)
    if not shaped then return nil, err end
  end
  local ok, text = pcall(json.encode, { interaction_id = id, response = shaped })
  if not ok then return nil, errors.invalid("cannot encode the response: " .. tostring(text)) end
  return text
end

--- The error a wait ends with at a checkpoint nobody answers.
function M.input_required(task)
  local i = type(task.interaction) == "table" and task.interaction or nil
  local what = i and string.format("checkpoint %s (interaction %s)", tostring(i.type),
    tostring(i.interaction_id)) or "a checkpoint"
  return errors.new("input_required", string.format(
    "task %s is %s at %s: answer it with client:respond(id, interaction, response) " ..
    "(or pass on_input to wait), or cancel it", tostring(task.deepresearch_id),
    task.status == "paused" and "paused" or "waiting for input", what),
    { task = task, interaction = i, retryable = false })
end

--- A wait verdict that handles input_required, then defers to verdict(task, state).
-- respond(task, interaction, response) -> ack | nil, err sends the answer. on_input is asked
-- once per interaction_id; an answered one keeps the wait polling until the task moves on.
function M.verdict(verdict, on_input, respond)
  local answered = {}
  return function(task, state, opts)
    if state ~= "input_required" then return verdict(task, state, opts) end
    local i = type(task.interaction) == "table" and task.interaction or nil
    local id = i and i.interaction_id
    if id ~= nil and answered[id] then return nil end
    if not on_input or type(id) ~= "string" then return M.input_required(task) end
    local response = on_input(task, i)
    if response == nil then return M.input_required(task) end
    if type(response) ~= "table" then
      return errors.invalid("on_input must return a response table or nil, got " ..
        type(response), { task = task, interaction = i })
    end
    answered[id] = true
    local ack, err = respond(task, i, response)
    if not ack then
      err.task, err.interaction = err.task or task, err.interaction or i
      return err
    end
    return nil
  end
end

return M

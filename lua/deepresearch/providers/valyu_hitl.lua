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

--- Checks create's hitl table before sending: checkpoint names (M.TYPES) set to true or false.
-- A typo ({ plan_reveiw = true }) would otherwise run the task with no checkpoint at all.
function M.check_flags(flags)
  if flags == nil then return true end
  for k, v in pairs(flags) do
    local known = false
    for _, t in ipairs(M.TYPES) do known = known or k == t end
    if not known then
      return nil, errors.invalid(string.format("hitl key %s is not a checkpoint: hitl = { " ..
        "name = true }, with name one of %s", type(k) == "string" and k or "[" .. tostring(k) ..
        "]", table.concat(M.TYPES, ", ")), { field = "hitl" })
    end
    if type(v) ~= "boolean" then
      return nil, errors.invalid("hitl." .. k .. " must be true or false", { field = "hitl." .. k })
    end
  end
  return true
end

-- The keys that name a shape, for a response sent with a bare interaction id.
local SHAPE_OF = { answers = "planning_questions", approved = "plan_review",
  modifications = "plan_review", included_domains = "source_review",
  excluded_domains = "source_review" }

-- The checkpoint type a response's keys imply (outline_review shares plan_review's shape), or
-- nil, err when they imply none or several: nothing unchecked leaves.
local function infer(response)
  local kind
  for k in pairs(response) do
    local k_kind = SHAPE_OF[k]
    if not k_kind then return bad(tostring(k), "is not part of any checkpoint's response") end
    if kind and kind ~= k_kind then
      return bad(tostring(k), "mixes the shapes of " .. kind .. " and " .. k_kind)
    end
    kind = k_kind
  end
  if not kind then
    return nil, errors.invalid("response names no checkpoint's fields (answers, approved, " ..
      "included_domains...); pass the interaction table to answer a source_review with {}",
      { field = "response" })
  end
  return kind
end

-- An interaction id as sent: a string, or a number some server gave (sent as its digits).
local function id_text(id)
  if type(id) == "number" and id == id and id ~= math.huge and id ~= -math.huge then
    return math.floor(id) == id and string.format("%d", id) or tostring(id)
  end
  return id
end
M.id_text = id_text

--- The JSON body of a respond, or nil, err (invalid_request). interaction: its id, or the
-- interaction table from task.interaction. Its type selects the shape checked; without one
-- (a bare id) the response's keys must imply a single shape. An unknown type (newer than this
-- client) is sent as given. A wrong Lua type raises at level (counted from the caller).
function M.body(interaction, response, level)
  local id, kind = interaction, nil
  if type(interaction) == "table" then id, kind = interaction.interaction_id, interaction.type end
  id = id_text(id)
  if type(kind) ~= "string" then kind = nil end
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
  if kind == nil then
    local err
    kind, err = infer(response)
    if not kind then return nil, err end
  end
  local shaped = response
  if check[kind] then
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

-- How many polls may still show an answered interaction pending before the wait gives up (the
-- server took the answer but the task does not move on), and how many sends one answer gets
-- when the network or the server fails on the way.
M.STILL_PENDING_POLLS = 3
M.MAX_SENDS = 3

-- The wait's end when an answered checkpoint stays: input_required, err.answered = true.
local function stuck(task, i)
  local err = M.input_required(task)
  err.answered = true
  err.message = string.format("task %s still waits at checkpoint %s (interaction %s) after " ..
    "its answer was sent: the server took the answer but the task is %s; look at it with " ..
    "client:get, respond again or cancel it", tostring(task.deepresearch_id), tostring(i.type),
    tostring(i.interaction_id), tostring(task.status))
  return err
end

-- Sends (or sends again) an answer. A transient failure keeps the wait polling: the answer is
-- sent again only if the next poll still shows the same checkpoint. After such a resend, a
-- refusal (400/409: "not awaiting input", "already answered") means the first one arrived.
local function send(a, task, i, respond)
  a.sends = a.sends + 1
  local ack, err = respond(task, i, a.response)
  if ack or (a.sends > 1 and (err.status == 400 or err.status == 409)) then
    a.acked, a.stale = true, 0
    return nil
  end
  -- By code, not err.retryable (false for a POST that may have arrived): the next poll
  -- decides whether it did.
  if errors.RETRYABLE[err.code] and a.sends < M.MAX_SENDS then return nil end
  err.task, err.interaction = err.task or task, err.interaction or i
  return err
end

--- A wait verdict that handles input_required, then defers to verdict(task, state).
-- respond(task, interaction, response) -> ack | nil, err sends the answer. on_input is asked
-- once per interaction_id; an answered one keeps the wait polling until the task moves on, for
-- at most STILL_PENDING_POLLS polls (at once if it shows paused): then input_required with
-- err.answered = true.
function M.verdict(verdict, on_input, respond)
  local answers = {}
  return function(task, state, opts)
    if state ~= "input_required" then return verdict(task, state, opts) end
    local i = type(task.interaction) == "table" and task.interaction or nil
    local id = i and id_text(i.interaction_id)
    local a = type(id) == "string" and answers[id]
    if a and a.acked then
      a.stale = a.stale + 1
      if task.status == "paused" or a.stale >= M.STILL_PENDING_POLLS then return stuck(task, i) end
      return nil
    end
    if a then return send(a, task, i, respond) end
    if not on_input or type(id) ~= "string" then return M.input_required(task) end
    local response = on_input(task, i)
    if response == nil then return M.input_required(task) end
    if type(response) ~= "table" then
      return errors.invalid("on_input must return a response table or nil, got " ..
        type(response), { task = task, interaction = i })
    end
    a = { response = response, sends = 0 }
    answers[id] = a
    return send(a, task, i, respond)
  end
end

return M

-- What a checkpoint asks (a task in state input_required), read from its interaction, for the
-- command's prompts and the editor's: a label, the questions, the plan or outline, the domains,
-- and the answer that accepts what the research agent proposes. Pure Lua: no core, no editor.
-- Checkpoint data is read loosely: the real API and older simulators differ in shape (a domain
-- is a string or an object, an outline a string or a list), and a wrong guess must not raise.
local json = require "deepresearch.base.json"

local M = {}

-- The checkpoint types, in the order a task meets them.
M.TYPES = { "planning_questions", "plan_review", "source_review", "outline_review" }

-- What an accepted question gets (--yes, respond --approve, an empty answer in the editor):
-- the research agent decides, as it would have without the checkpoint.
M.NO_PREFERENCE = "No preference: use your judgement."

local LABEL = {
  planning_questions = "questions before planning", plan_review = "review the research plan",
  source_review = "review the sources", outline_review = "review the report outline",
}

local function data_of(interaction)
  return type(interaction) == "table" and type(interaction.data) == "table" and interaction.data
    or {}
end

local function list_of(v) return type(v) == "table" and v or {} end

--- The interaction's type, or nil.
function M.type_of(interaction)
  return type(interaction) == "table" and interaction.type or nil
end

--- What the checkpoint asks, in a few words ("review the research plan").
function M.label(interaction)
  local t = M.type_of(interaction)
  return LABEL[t] or ("checkpoint " .. tostring(t))
end

--- Whether the checkpoint is of a type this module can read.
function M.known(interaction) return LABEL[M.type_of(interaction)] ~= nil end

--- The questions of a planning_questions checkpoint: { {question =, context =}, ... }.
function M.questions(interaction)
  local out = {}
  for _, q in ipairs(list_of(data_of(interaction).questions)) do
    if type(q) == "string" then
      out[#out + 1] = { question = q }
    elseif type(q) == "table" and q.question ~= nil then
      out[#out + 1] = { question = tostring(q.question),
        context = type(q.context) == "string" and q.context or nil }
    end
  end
  return out
end

--- The domains of a source_review checkpoint:
-- { {domain =, pick = "include" | "exclude" | nil, count =, score =}, ... }.
function M.domains(interaction)
  local out = {}
  for _, d in ipairs(list_of(data_of(interaction).domains)) do
    if type(d) == "string" then
      out[#out + 1] = { domain = d }
    elseif type(d) == "table" and d.domain ~= nil then
      out[#out + 1] = { domain = tostring(d.domain), pick = d.ai_recommendation,
        count = tonumber(d.source_count), score = tonumber(d.avg_relevance_score) }
    end
  end
  return out
end

--- The plan or outline as lines of text, with its research areas or sections and the
-- estimated step count.
function M.proposal(interaction)
  local d = data_of(interaction)
  local lines, body = {}, d.plan or d.outline
  if type(body) == "string" then
    lines[1] = body
  elseif type(body) == "table" then
    for i, s in ipairs(body) do lines[#lines + 1] = string.format("%d. %s", i, tostring(s)) end
  end
  for _, e in ipairs({ { "Research areas", d.research_areas }, { "Sections", d.sections } }) do
    if type(e[2]) == "table" and #e[2] > 0 and e[2] ~= body then
      local items = {}
      for i, v in ipairs(e[2]) do items[i] = tostring(v) end
      lines[#lines + 1] = e[1] .. ": " .. table.concat(items, ", ")
    end
  end
  if type(d.estimated_steps) == "number" then
    lines[#lines + 1] = "Estimated steps: " .. tostring(d.estimated_steps)
  end
  return table.concat(lines, "\n")
end

--- The answer that accepts what the research agent proposes: plans and outlines approved, the
-- AI's source picks (empty lists), questions left to its judgement. nil for an unknown type.
-- answer: the text each question gets (default NO_PREFERENCE; a template passes a placeholder).
function M.proposed(interaction, answer)
  local t = M.type_of(interaction)
  if t == "plan_review" or t == "outline_review" then return { approved = true } end
  if t == "source_review" then
    return { included_domains = json.array(), excluded_domains = json.array() }
  end
  if t == "planning_questions" then
    local answers = json.array()
    for i, q in ipairs(M.questions(interaction)) do
      answers[i] = { question = q.question, answer = answer or M.NO_PREFERENCE }
    end
    return { answers = answers }
  end
  return nil
end

return M

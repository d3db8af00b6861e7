-- Checkpoints in the editor: a task waiting for a human (state input_required) is answered
-- through vim.ui.select and vim.ui.input, which the user's UI plugin may replace (dressing.nvim,
-- telescope). The response shapes are client:respond's (docs/neovim.md). Checkpoint data is
-- read loosely (a domain may be a string or an object, a plan a string or a list): a shape we
-- did not expect must never raise in the middle of someone's editing.
-- luacheck: globals vim
local M = {}

-- What an empty answer to a planning question sends: the research agent decides, as it would
-- have without the checkpoint.
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

local function one_line(s) return (tostring(s):gsub("%s+", " ")) end

--- What the checkpoint asks, in a few words ("review the research plan").
function M.label(interaction)
  local t = type(interaction) == "table" and interaction.type or nil
  return LABEL[t] or ("checkpoint " .. tostring(t))
end

--- Whether the editor knows how to ask this checkpoint.
function M.known(interaction)
  return type(interaction) == "table" and LABEL[interaction.type] ~= nil
end

-- { {question =, context =}, ... }
local function questions(interaction)
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

-- { {domain =, pick = "include" | "exclude" | nil, count =, score =}, ... }
local function domains(interaction)
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

-- The plan or outline as text, with its research areas or sections.
local function proposal(interaction)
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
  return table.concat(lines, "\n")
end

--- The answer that accepts what the research agent proposes: plans and outlines approved, the
-- AI's source picks (empty lists), questions left to its judgement. nil for an unknown type.
function M.proposed(interaction)
  local t = type(interaction) == "table" and interaction.type or nil
  if t == "plan_review" or t == "outline_review" then return { approved = true } end
  if t == "source_review" then return { included_domains = {}, excluded_domains = {} } end
  if t == "planning_questions" then
    local answers = {}
    for i, q in ipairs(questions(interaction)) do
      answers[i] = { question = q.question, answer = M.NO_PREFERENCE }
    end
    return { answers = answers }
  end
  return nil
end

-- Each asker: ask(ui, interaction, header, done); done(response) or done(nil) when the user
-- cancels (the checkpoint stays open, to answer later).
local ask = {}

local REVIEW_CHOICES = {
  { key = "approve", label = "Approve as proposed" },
  { key = "amend", label = "Approve with changes..." },
  { key = "revise", label = "Ask for a revision..." },
}

local function review(ui, interaction, header, done)
  local prompt = header .. "\n" .. proposal(interaction) .. "\n"
  ui.select(REVIEW_CHOICES, { prompt = prompt, kind = "deepresearch.checkpoint",
    format_item = function(c) return c.label end }, function(choice)
    if not choice then return done(nil) end
    if choice.key == "approve" then return done({ approved = true }) end
    local approve = choice.key == "amend"
    ui.input({ prompt = approve and "Changes: " or "What should change: " }, function(text)
      if text == nil then return done(nil) end
      local mods = text:find("%S") and text or nil
      done({ approved = approve, modifications = mods })
    end)
  end)
end
ask.plan_review = review
ask.outline_review = review

function ask.planning_questions(ui, interaction, header, done)
  local qs, answers = questions(interaction), {}
  local function next_question(i)
    local q = qs[i]
    if not q then return done({ answers = answers }) end
    local prompt = string.format("%s (%d/%d) %s%s: ", header, i, #qs, one_line(q.question),
      q.context and (" [" .. one_line(q.context) .. "]") or "")
    ui.input({ prompt = prompt }, function(text)
      if text == nil then return done(nil) end
      answers[i] = { question = q.question, answer = text:find("%S") and text or M.NO_PREFERENCE }
      next_question(i + 1)
    end)
  end
  next_question(1)
end

local function domain_text(d)
  local facts = {}
  if d.count then facts[#facts + 1] = string.format("%d sources", d.count) end
  if d.score then facts[#facts + 1] = string.format("relevance %.2f", d.score) end
  if d.pick then facts[#facts + 1] = "AI: " .. tostring(d.pick) end
  return d.domain .. (#facts > 0 and (" (" .. table.concat(facts, ", ") .. ")") or "")
end

-- One select per domain, the AI's recommendation first.
local function choose_domains(ui, list, done)
  local inc, exc = {}, {}
  local function next_domain(i)
    local d = list[i]
    if not d then return done({ included_domains = inc, excluded_domains = exc }) end
    local items = d.pick == "exclude" and { "exclude", "include" } or { "include", "exclude" }
    ui.select(items, { prompt = string.format("(%d/%d) %s", i, #list, domain_text(d)),
      kind = "deepresearch.checkpoint" }, function(choice)
      if not choice then return done(nil) end
      local into = choice == "include" and inc or exc
      into[#into + 1] = d.domain
      next_domain(i + 1)
    end)
  end
  next_domain(1)
end

function ask.source_review(ui, interaction, header, done)
  local list = domains(interaction)
  local inc, exc = 0, 0
  for _, d in ipairs(list) do
    if d.pick == "include" then inc = inc + 1 elseif d.pick == "exclude" then exc = exc + 1 end
  end
  local choices = {
    { key = "accept", label = string.format("Accept the AI's picks (%d included, %d excluded)",
      inc, exc) },
    { key = "choose", label = string.format("Choose for each of the %d domains...", #list) },
  }
  local lines = {}
  for i, d in ipairs(list) do lines[i] = "  " .. domain_text(d) end
  ui.select(choices, { prompt = header .. "\n" .. table.concat(lines, "\n") .. "\n",
    kind = "deepresearch.checkpoint", format_item = function(c) return c.label end },
    function(choice)
      if not choice then return done(nil) end
      if choice.key == "accept" then return done(M.proposed(interaction)) end
      choose_domains(ui, list, done)
    end)
end

--- Asks the user about a checkpoint through ui (vim.ui by default: select and input), then
-- calls done(response), or done(nil) when the user cancelled. Returns false (and never calls
-- done) for a checkpoint type the editor does not know.
function M.ask(interaction, header, done, ui)
  local fn = type(interaction) == "table" and ask[interaction.type] or nil
  if not fn then return false end
  -- Each answer is handed on once: a UI plugin calling back twice must not respond twice.
  local called = false
  fn(ui or vim.ui, interaction, header, function(response)
    if called then return end
    called = true
    done(response)
  end)
  return true
end

return M

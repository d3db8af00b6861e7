-- Checkpoints in the editor: a task waiting for a human (state input_required) is answered
-- through vim.ui.select and vim.ui.input, which the user's UI plugin may replace (dressing.nvim,
-- telescope). The response shapes are client:respond's (docs/neovim.md). Checkpoint data is
-- read loosely (a domain may be a string or an object, a plan a string or a list): a shape we
-- did not expect must never raise in the middle of someone's editing.
-- luacheck: globals vim
local reading = require "deepresearch.checkpoint"

local M = {}

-- What a checkpoint asks, read loosely (deepresearch.checkpoint, shared with the command).
M.NO_PREFERENCE = reading.NO_PREFERENCE
M.label = reading.label -- what the checkpoint asks, in a few words
M.known = reading.known -- whether the editor knows how to ask it
-- The answer that accepts what the research agent proposes (nil for an unknown type).
M.proposed = reading.proposed

local questions, domains, proposal = reading.questions, reading.domains, reading.proposal

local function one_line(s) return (tostring(s):gsub("%s+", " ")) end

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

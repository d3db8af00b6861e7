-- deepresearch.checkpoint: what a checkpoint asks, read from whatever the server sent.
local checkpoint = require "deepresearch.checkpoint"
local json = require "deepresearch.base.json"

describe("checkpoint reading", function()
  it("reads the real shapes: questions, domains, plan and outline", function()
    local q = { type = "planning_questions", data = { questions = {
      { question = "Which region?", context = "EU or US" }, "Which years?" } } }
    assert.same({ { question = "Which region?", context = "EU or US" },
      { question = "Which years?" } }, checkpoint.questions(q))
    local s = { type = "source_review", data = { domains = {
      { domain = "a.com", source_count = 4, avg_relevance_score = 0.8,
        ai_recommendation = "include" }, "b.com" } } }
    assert.same({ { domain = "a.com", pick = "include", count = 4, score = 0.8 },
      { domain = "b.com" } }, checkpoint.domains(s))
    local p = { type = "plan_review", data = { plan = "Read filings", research_areas = { "x", "y" },
      estimated_steps = 12 } }
    assert.equal("Read filings\nResearch areas: x, y\nEstimated steps: 12", checkpoint.proposal(p))
    local o = { type = "outline_review", data = { outline = "# A", sections = { "A", "B" } } }
    assert.equal("# A\nSections: A, B", checkpoint.proposal(o))
    assert.equal("review the research plan", checkpoint.label(p))
    assert.is_true(checkpoint.known(o))
  end)

  it("proposes the answer that accepts the agent's proposal, per type", function()
    assert.same({ approved = true }, checkpoint.proposed({ type = "plan_review" }))
    assert.same({ approved = true }, checkpoint.proposed({ type = "outline_review" }))
    local src = checkpoint.proposed({ type = "source_review" })
    assert.equal('{"excluded_domains":[],"included_domains":[]}',
      json.encode(src):gsub("%s", ""))
    local q = checkpoint.proposed({ type = "planning_questions",
      data = { questions = { { question = "Q1" } } } })
    assert.same({ { question = "Q1", answer = checkpoint.NO_PREFERENCE } }, q.answers)
    local mine = checkpoint.proposed({ type = "planning_questions",
      data = { questions = { { question = "Q1" } } } }, "YOURS")
    assert.same({ { question = "Q1", answer = "YOURS" } }, mine.answers)
    assert.is_nil(checkpoint.proposed({ type = "something_new" }))
  end)

  it("never raises on odd server data", function()
    local odd = { 42, "x", true, {}, { type = 7 }, { type = "plan_review", data = "text" },
      { type = "source_review", data = { domains = { 1, { domain = {} }, { x = 1 } } } },
      { type = "planning_questions", data = { questions = "why?" } },
      { type = "plan_review", data = { plan = { "a", 2, {} }, research_areas = "r" } } }
    for _, i in ipairs(odd) do
      assert.has_no.errors(function()
        checkpoint.questions(i)
        checkpoint.domains(i)
        checkpoint.proposal(i)
        checkpoint.label(i)
        checkpoint.known(i)
        checkpoint.proposed(i)
      end)
    end
    assert.equal("checkpoint nil", checkpoint.label(nil))
    assert.is_false(checkpoint.known({ type = "nope" }))
  end)
end)

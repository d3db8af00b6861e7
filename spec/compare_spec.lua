-- dr.compare (issue 19 part 1): per provider state, duration, cost, report length, source
-- count; sources every provider cited, those only one cited, and each one's agreement, over
-- normalised URLs. Tasks are hand-made in each provider's shape (read through dr.result).
local dr = require "deepresearch"
local compare = require "deepresearch.compare"

local function extruct_task(urls, text)
  local sources = {}
  for i, u in ipairs(urls) do sources[i] = { id = i, url = u, title = "s" .. i } end
  return { id = "ex-1", status = "done", brief = "b", depth = "medium", agents = 9,
    created_at = "2026-12-01T10:00:00Z", updated_at = "2026-12-01T10:05:00Z",
    report = { kind = "markdown", markdown = text or "Flexport [1] moved [2].",
      sources = sources } }
end

local function valyu_task(urls)
  local sources = {}
  for i, u in ipairs(urls) do sources[i] = { title = "v" .. i, url = u } end
  return { deepresearch_id = "va-1", status = "completed", query = "b", mode = "fast",
    output_type = "markdown", output = "Valyu's report, long enough.", sources = sources,
    cost = 0.1 }
end

describe("compare", function()
  describe("normalise_url", function()
    local n = compare.normalise_url
    it("drops the scheme, www., a trailing slash, a fragment and tracking parameters", function()
      assert.equals("a.com/x", n("https://www.a.com/x/"))
      assert.equals("a.com/x", n("http://A.com/x#part"))
      assert.equals("a.com/x", n("https://a.com:443/x?utm_source=news&utm_medium=mail"))
      assert.equals("a.com/x?id=3", n("https://a.com/x?gclid=1&id=3&fbclid=2&ref=hn"))
      assert.equals("a.com", n("https://www.a.com/"))
      assert.equals("a.com/x?q=1", n("  https://a.com/x?q=1  "))
    end)
    it("keeps what is not an http(s) URL as it is", function()
      assert.equals("doi:10.1000/1", n("doi:10.1000/1"))
      assert.is_nil(n(nil))
    end)
  end)

  it("lists per provider state, duration, cost, report length and source count", function()
    local c = dr.compare{ extruct = extruct_task({ "https://a.com/x", "https://b.com/y" }),
      valyu = valyu_task({ "https://a.com/x/" }) }
    assert.same({ "extruct", "valyu" }, c.order)
    local ex, va = c.providers.extruct, c.providers.valyu
    assert.equals("done", ex.state)
    assert.equals(300, ex.duration) -- from its own timestamps
    assert.equals(9, ex.cost.credits)
    assert.equals(2, ex.source_count)
    assert.truthy(ex.report_length > 10)
    assert.equals("done", va.state)
    assert.equals(0.1, va.cost.usd)
    assert.equals(1, va.source_count)
    assert.equals(#"Valyu's report, long enough.", va.report_length)
  end)

  it("finds the sources every provider cited, those only one cited, and agreement", function()
    local c = dr.compare{
      extruct = extruct_task({ "https://www.a.com/x/", "https://b.com/y?utm_source=z",
        "https://only-ex.com/" }),
      valyu = valyu_task({ "http://a.com/x", "https://b.com/y", "https://only-va.com/p" }),
    }
    assert.same({ "a.com/x", "b.com/y" }, c.common)
    assert.same({ "only-ex.com" }, c.unique.extruct)
    assert.same({ "only-va.com/p" }, c.unique.valyu)
    assert.near(2 / 3, c.agreement.extruct, 1e-9)
    assert.near(2 / 3, c.agreement.valyu, 1e-9)
  end)

  it("common needs every provider with a report; agreement with any other", function()
    local x = extruct_task({ "https://a.com", "https://b.com" })
    local v = valyu_task({ "https://a.com" })
    local g = { object = "interaction", id = "g-1", status = "completed",
      agent = "deep-research-preview-04-2026", steps = {} }
    local c = dr.compare({ extruct = x, valyu = v, gemini = g })
    assert.same({}, c.common) -- gemini cited nothing
    assert.equals(0.5, c.agreement.extruct)
    assert.equals(1, c.agreement.valyu)
    assert.is_nil(c.agreement.gemini) -- no sources: no share
  end)

  it("shows a provider that failed, from its error", function()
    local c = dr.compare({ extruct = extruct_task({ "https://a.com" }) },
      { perplexity = { code = "unauthorized", message = "bad key" } })
    assert.same({ "extruct", "perplexity" }, c.order)
    assert.equals("failed", c.providers.perplexity.state)
    assert.equals("unauthorized", c.providers.perplexity.error.code)
    assert.same({}, c.common)
  end)

  it("never raises on odd server data", function()
    local c = dr.compare{
      extruct = { id = 1, status = {}, report = { sources = { 7, { url = {} } } } },
      valyu = { deepresearch_id = "v", output = 5, sources = "x" } }
    assert.is_table(c.providers.extruct)
    assert.is_table(c.providers.valyu)
  end)
end)

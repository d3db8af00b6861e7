-- dr.compare (issue 19 part 1): per provider state, duration, cost, report length, source
-- count; sources every provider cited, those only one cited, and each one's agreement, over
-- normalised URLs. "Cited" is what the report's markers point at (an Extruct report's uncited
-- "Other sources" never count); a report with no marker at all falls back to its source list.
-- Tasks are hand-made in each provider's shape (read through dr.result).
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

local function valyu_task(urls, text)
  local sources = {}
  for i, u in ipairs(urls) do sources[i] = { title = "v" .. i, url = u } end
  return { deepresearch_id = "va-1", status = "completed", query = "b", mode = "fast",
    output_type = "markdown", output = text or "Valyu's report, long enough.", sources = sources,
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
    assert.equals(2, ex.cited)
    assert.equals("markers", ex.cited_from)
    assert.truthy(ex.report_length > 10)
    assert.equals("done", va.state)
    assert.equals(0.1, va.cost.usd)
    assert.equals(1, va.source_count)
    assert.equals(1, va.cited) -- no marker in its report: its whole source list
    assert.equals("sources", va.cited_from)
    assert.equals(#"Valyu's report, long enough.", va.report_length)
  end)

  it("finds the sources every provider cited, those only one cited, and agreement", function()
    local c = dr.compare{
      extruct = extruct_task({ "https://www.a.com/x/", "https://b.com/y?utm_source=z",
        "https://only-ex.com/" }, "A [1], b [2] and only [3]."),
      valyu = valyu_task({ "http://a.com/x", "https://b.com/y", "https://only-va.com/p" }),
    }
    assert.same({ "a.com/x", "b.com/y" }, c.common)
    assert.same({ "only-ex.com" }, c.unique.extruct)
    assert.same({ "only-va.com/p" }, c.unique.valyu)
    assert.near(2 / 3, c.agreement.extruct, 1e-9)
    assert.near(2 / 3, c.agreement.valyu, 1e-9)
  end)

  it("counts the sources a report cites, not the uncited ones it also lists", function()
    -- extruct cites [1] and [3]; [2] (shared.com) is one of its uncited "Other sources".
    -- valyu cites [1] (shared.com) and [2]; its [3] (a.com) is listed, never cited.
    local c = dr.compare{
      extruct = extruct_task({ "https://a.com/x", "https://shared.com/", "https://b.com" },
        "A [1] and b [3]."),
      valyu = valyu_task({ "https://shared.com", "https://b.com/", "https://a.com/x" },
        "Shared [1], b [2]."),
    }
    local ex, va = c.providers.extruct, c.providers.valyu
    assert.equals(3, ex.source_count)
    assert.equals(2, ex.cited)
    assert.same({ "a.com/x", "b.com" }, ex.cited_sources)
    assert.equals("markers", ex.cited_from)
    assert.equals(3, va.source_count)
    assert.equals(2, va.cited)
    assert.equals("markers", va.cited_from)
    -- shared.com is listed by both but cited by valyu only; a.com/x cited by extruct only
    assert.same({ "b.com" }, c.common)
    assert.same({ "a.com/x" }, c.unique.extruct)
    assert.same({ "shared.com" }, c.unique.valyu)
    assert.equals(0.5, c.agreement.extruct)
    assert.equals(0.5, c.agreement.valyu)
  end)

  it("a marker citing a source that is not listed cites no URL", function()
    local c = dr.compare{
      extruct = extruct_task({ "https://a.com" }, "Only a dangling one [4]."),
      valyu = valyu_task({ "https://a.com" }, "A [1]."),
    }
    assert.equals("markers", c.providers.extruct.cited_from)
    assert.equals(0, c.providers.extruct.cited)
    assert.equals(1, c.providers.extruct.source_count)
    assert.same({}, c.common)
    assert.is_nil(c.agreement.extruct)
    assert.equals(0, c.agreement.valyu)
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

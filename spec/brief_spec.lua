local brief = require "deepresearch.brief"
local utf8 = require "deepresearch.base.utf8"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/"
local FIXTURES = here .. "fixtures/briefs/"

local function fixture(name)
  local f = assert(io.open(FIXTURES .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function codes(findings)
  local out = {}
  for _, f in ipairs(findings) do out[#out + 1] = f.code end
  table.sort(out)
  return out
end

local function find_code(findings, code)
  for _, f in ipairs(findings) do
    if f.code == code then return f end
  end
  return nil
end

describe("deepresearch.base.utf8", function()
  it("counts characters, not bytes", function()
    assert.equal(0, utf8.len(""))
    assert.equal(5, utf8.len("hello"))
    assert.equal(1, utf8.len("\195\169"))                 -- é
    assert.equal(1, utf8.len("\226\130\172"))             -- €
    assert.equal(1, utf8.len("\240\159\152\128"))         -- U+1F600
    assert.equal(4, utf8.len("a\195\169\226\130\172\240\159\152\128"))
  end)

  it("returns nil and the byte position of the first invalid sequence", function()
    local cases = {
      { "ab\128", 3 },                  -- stray continuation byte
      { "a\192\175", 2 },               -- overlong '/'
      { "\224\128\175", 1 },            -- overlong 3-byte form
      { "\240\128\128\175", 1 },        -- overlong 4-byte form
      { "xy\237\160\128", 3 },          -- surrogate U+D800
      { "\244\144\128\128", 1 },        -- U+110000
      { "\226\130", 1 },                -- truncated
      { "ok\255", 3 },
    }
    for _, c in ipairs(cases) do
      local n, pos = utf8.len(c[1])
      assert.is_nil(n)
      assert.equal(c[2], pos)
    end
  end)

  it("accepts the largest code point and the edges around surrogates", function()
    assert.equal(1, utf8.len("\244\143\191\191"))  -- U+10FFFF
    assert.equal(1, utf8.len("\237\159\191"))      -- U+D7FF
    assert.equal(1, utf8.len("\238\128\128"))      -- U+E000
  end)

  it("encodes code points and finds character offsets", function()
    assert.equal("\195\169", utf8.char(0xE9))
    assert.equal("A\226\130\172\240\159\152\128", utf8.char(65, 0x20AC, 0x1F600))
    local s = utf8.char(0xE9, 0x20AC, 65)
    assert.equal(1, utf8.offset(s, 1))
    assert.equal(3, utf8.offset(s, 2))
    assert.equal(6, utf8.offset(s, 3))
    assert.equal(7, utf8.offset(s, 4))
    assert.is_nil(utf8.offset(s, 6))
    assert.has_error(function() utf8.char(0x110000) end)
    assert.has_error(function() utf8.len(nil) end)
  end)
end)

describe("brief.render", function()
  it("fills placeholders, with or without spaces inside the braces", function()
    local text = assert(brief.render("Research {{company}} ({{ domain }}) for {{  team  }}.",
      { company = "Acme", domain = "acme.com", team = "sales" }))
    assert.equal("Research Acme (acme.com) for sales.", text)
  end)

  it("turns numbers into text", function()
    assert.equal("the last 18 months", brief.render("the last {{months}} months", { months = 18 }))
  end)

  it("never expands a value again", function()
    local text = brief.render("{{a}} and {{b}}", { a = "{{b}}", b = "%1 {{a}}" })
    assert.equal("{{b}} and %1 {{a}}", text)
  end)

  it("returns an error naming every placeholder without a value", function()
    local text, err = brief.render(
      fixture("template_outreach.txt"), { seller = "a CRM vendor", domain = "" })
    assert.is_nil(text)
    assert.equal("invalid_request", err.code)
    assert.same({ "company", "domain", "months" }, err.missing)
    assert.truthy(
      err.message:find("no value for placeholders 'company', 'domain', 'months'", 1, true))
    assert.truthy(tostring(err):find("company", 1, true))
  end)

  it("names a single missing placeholder the way the error message promises", function()
    local _, err = brief.render("Research {{company}}.", {})
    assert.equal("brief template: no value for placeholder 'company'", err.message)
    assert.same({ "company" }, err.missing)
  end)

  it("treats a missing vars table as no values and leaves text without placeholders " ..
    "alone", function()
    assert.equal("no placeholders {here}", brief.render("no placeholders {here}"))
    local _, err = brief.render("{{x}}")
    assert.same({ "x" }, err.missing)
  end)

  it("treats json null as no value", function()
    local _, err = brief.render("{{x}}", { x = require("deepresearch.base.json").null })
    assert.same({ "x" }, err.missing)
  end)

  it("raises on argument type mistakes", function()
    assert.has_error(function() brief.render(nil, {}) end,
      "bad argument #1 to 'render' (string expected, got no value)")
    assert.has_error(function() brief.render("x", "y") end)
    assert.has_error(function() brief.render("{{x}}", { x = {} }) end)
    assert.has_error(function() brief.render("{{x}}", { x = true }) end)
  end)
end)

describe("brief.load", function()
  it("reads a template file", function()
    local text = assert(brief.load(FIXTURES .. "template_outreach.txt"))
    assert.truthy(text:find("{{ company }}", 1, true))
  end)

  it("drops a UTF-8 byte order mark", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("\239\187\191Research {{x}}")
    f:close()
    local text = brief.load(path)
    os.remove(path)
    assert.equal("Research {{x}}", text)
  end)

  it("returns nil, err with code io for a missing file", function()
    local text, err = brief.load(FIXTURES .. "does-not-exist.txt")
    assert.is_nil(text)
    assert.equal("io", err.code)
    assert.truthy(err.message:find("does%-not%-exist"))
  end)

  it("raises without a path", function()
    assert.has_error(function() brief.load() end)
  end)
end)

describe("brief.lint", function()
  local GOOD = { "good_freight.txt", "good_competitor.txt", "good_market.txt", "good_person.txt",
    "good_account.txt" }

  for _, name in ipairs(GOOD) do
    it("finds nothing in the well-formed brief " .. name, function()
      assert.same({}, brief.lint(fixture(name)))
      assert.is_true((brief.ok(fixture(name))))
    end)
  end

  it("accepts an elided [a product] and numeric [1] brackets", function()
    local text = "We sell [a product] to mid-market logistics firms [1]. Research Flexport " ..
      "(flexport.com) and its last 12 months of announcements, so we can decide whether to " ..
      "pitch them."
    assert.same({}, brief.lint(text))
  end)

  local TRIPS = {
    { "bad_placeholder.txt", "placeholder", "error" },
    { "bad_one_liner.txt", "one_liner", "warning" },
    { "bad_no_target.txt", "no_target", "warning" },
    { "bad_no_context.txt", "no_context", "warning" },
    { "bad_no_decision.txt", "no_decision", "warning" },
    { "bad_no_time_window.txt", "no_time_window", "info" },
  }
  for _, t in ipairs(TRIPS) do
    it("flags " .. t[2] .. " and nothing else in " .. t[1], function()
      local findings = brief.lint(fixture(t[1]))
      assert.same({ t[2] }, codes(findings))
      assert.equal(t[3], findings[1].severity)
      assert.equal("string", type(findings[1].message))
    end)
  end

  it("flags an empty or blank brief as one error and stops", function()
    for _, text in ipairs({ "", fixture("bad_empty.txt") }) do
      local findings = brief.lint(text)
      assert.equal(1, #findings)
      assert.equal("empty", findings[1].code)
      assert.equal("error", findings[1].severity)
    end
  end)

  it("counts the 20000-character limit in characters", function()
    local e_acute, euro = "\195\169", "\226\130\172"
    assert.is_nil(find_code(brief.lint(("a"):rep(20000)), "too_long"))
    assert.is_nil(find_code(brief.lint(e_acute:rep(20000)), "too_long"))  -- 40000 bytes
    assert.is_nil(find_code(brief.lint(euro:rep(19999)), "too_long"))     -- 59997 bytes
    local f = find_code(brief.lint(e_acute:rep(20001)), "too_long")
    assert.equal("error", f.severity)
    assert.truthy(f.message:find("20001", 1, true))
    assert.equal(40001, f.pos) -- the byte where character 20001 starts
    assert.truthy(find_code(brief.lint(("a"):rep(20001)), "too_long"))
  end)

  it("takes another limit through opts.max_length", function()
    assert.is_nil(find_code(brief.lint(("a"):rep(25000), { max_length = 25000 }), "too_long"))
    assert.truthy(find_code(brief.lint(("a"):rep(25001), { max_length = 25000 }), "too_long"))
  end)

  it("flags invalid UTF-8 with its byte position", function()
    for _, text in ipairs({ "We are \192\175", "Acme \237\160\128 market", "x\244\144\128\128" }) do
      local findings = brief.lint(text)
      assert.equal(1, #findings)
      assert.equal("invalid_utf8", findings[1].code)
      assert.equal("error", findings[1].severity)
      assert.equal("number", type(findings[1].pos))
    end
  end)

  it("finds every kind of leftover placeholder, with positions", function()
    local text = "We are {{ seller }}. Research [company] and <COMPANY NAME> and [your product] " ..
      "and <target domain> and [TODO] and [company_name] in the last year so we can decide " ..
      "whether to act."
    local found = {}
    for _, f in ipairs(brief.lint(text)) do
      if f.code == "placeholder" then found[#found + 1] = text:sub(f.pos, f.pos + 2) end
    end
    assert.same({ "{{ ", "[co", "<CO", "[yo", "<ta", "[TO", "[co" }, found)
  end)

  it("does not mistake links, citations, tags, comparisons or names for placeholders", function()
    local text = "We are Acme Robotics. See [the deck](https://acme.example/deck) [2] [3, 5] " ..
      "and <b>bold</b>; revenue < 5M and > 2M; a < b > c; we partner with [HubSpot] and [Acme " ..
      "Corp]. Research Flexport in the last 12 months so we can decide whether to pitch them [sic]."
    assert.is_nil(find_code(brief.lint(text), "placeholder"))
  end)

  it("recognises targets by URL, domain, quotes, names and named markets", function()
    local base = " so we can decide whether to pitch them. We are a small vendor. Cover the " ..
      "last 12 months."
    local targets = {
      "Research https://example.org/team",
      "Research acme.io",
      "Research the company called \"tiny robots\"",
      "Research the team at Globex",
      "Acme Robotics is the subject",
      "Research the market for cold-chain sensors",
      "Research the cold-chain sensor industry",
    }
    for _, t in ipairs(targets) do
      assert.is_nil(find_code(brief.lint(t .. base), "no_target"), t)
    end
    assert.truthy(find_code(brief.lint("Research the vendor we spoke to" .. base), "no_target"))
    assert.truthy(find_code(brief.lint("Research e.g. the leader" .. base), "no_target"))
    assert.truthy(find_code(brief.lint("Research the 3.5bn leader" .. base), "no_target"))
  end)

  -- Issue 15 item 12 (audit M7): the vendor's notes' schema limits are warnings here.
  it("adds the output schema's findings: the notes' limits warn, a bad root is an error",
    function()
    local deep = { type = "string" }
    for i = 6, 1, -1 do deep = { type = "object", properties = { ["l" .. i] = deep } } end
    local good = fixture("good_freight.txt")
    local findings = brief.lint(good, { output_schema = deep })
    assert.same({ "schema_depth" }, codes(findings))
    assert.equal("warning", findings[1].severity)
    assert.is_false((brief.ok(good, { output_schema = deep })))
    findings = brief.lint(good, { output_schema = { type = "object",
      properties = { notes = { description = "free text" } } } })
    assert.same({ "schema_no_type" }, codes(findings))
    findings = brief.lint(good, { output_schema = { type = "array" } })
    assert.same({ "schema_invalid" }, codes(findings))
    assert.equal("error", findings[1].severity)
    assert.same({}, brief.lint(good, { output_schema = { type = "object",
      properties = { ceo = { type = "string" } } } }))
  end)

  it("raises when text is not a string", function()
    assert.has_error(function() brief.lint(nil) end)
    assert.has_error(function() brief.lint(42) end)
  end)

  it("returns findings with the documented fields", function()
    local findings = brief.lint("Research acme.")
    assert.truthy(#findings > 0)
    for _, f in ipairs(findings) do
      assert.equal("string", type(f.code))
      assert.truthy(f.severity == "error" or f.severity == "warning" or f.severity == "info")
      assert.equal("string", type(f.message))
    end
  end)
end)

describe("brief.build", function()
  local parts = {
    seller = "a seed-stage climate fund",
    target = "the European heat-pump installer market",
    goal = "decide whether to lead a round in an installer-software startup",
    window = "2022 to 2025",
  }

  it("writes a paragraph that lints clean from seller, target, goal and window", function()
    local text = assert(brief.build(parts))
    assert.truthy(text:find("We are a seed-stage climate fund.", 1, true))
    assert.truthy(text:find("the European heat-pump installer market", 1, true))
    assert.truthy(text:find("decide whether to lead a round", 1, true))
    assert.truthy(text:find("2022 to 2025", 1, true))
    assert.same({}, brief.lint(text))
  end)

  it("stays clean with a lowercase target and a vague window", function()
    local text = assert(brief.build { seller = "freight software people", target = "flexport",
      goal = "pitch or not", window = "lately" })
    assert.truthy(text:find('"flexport"', 1, true))
    for _, f in ipairs(brief.lint(text)) do
      assert.equal("info", f.severity)
    end
    assert.is_true((brief.ok(text)))
  end)

  it("keeps a seller sentence that already states context", function()
    local text = brief.build {
      seller = "We sell route planning to regional carriers.", target = "Flexport" }
    assert.equal(
      1, text:find("We sell route planning to regional carriers. Research Flexport.", 1, true))
  end)

  it("includes questions, focus, avoid, sources and format notes", function()
    local text = assert(brief.build {
      seller = "Acme Robotics", target = "Globex (globex.com)", goal = "choose a channel partner",
      window = "the last 12 months",
      questions = { "who runs their partner programme", "What do they resell?" },
      focus = "EMEA", avoid = "stock-price commentary", sources = "filings and trade press",
      format = "short sections with a risk table",
    })
    assert.truthy(
      text:find("(1) Who runs their partner programme? (2) What do they resell?", 1, true))
    assert.truthy(text:find("Focus on EMEA.", 1, true))
    assert.truthy(text:find("Leave out stock-price commentary.", 1, true))
    assert.truthy(text:find("Preferred sources: filings and trade press.", 1, true))
    assert.truthy(text:find("Format: short sections with a risk table.", 1, true))
    assert.same({}, brief.lint(text))
  end)

  it("returns nil, err without a target", function()
    for _, target in ipairs({ false, "", "   " }) do
      local p = { seller = "x", goal = "y", window = "z", target = target or nil }
      local text, err = brief.build(p)
      assert.is_nil(text)
      assert.equal("invalid_request", err.code)
      assert.equal("target", err.field)
    end
  end)

  it("raises on wrong types and unknown parts", function()
    assert.has_error(function() brief.build() end)
    assert.has_error(function() brief.build { target = 42 } end)
    assert.has_error(function() brief.build { target = "Acme", questions = { 1 } } end)
    assert.has_error(function() brief.build { target = "Acme", taget = "typo" } end)
  end)
end)

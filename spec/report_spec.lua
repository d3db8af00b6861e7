local report = require "deepresearch.report"
local json = require "deepresearch.base.json"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/"
local TASKS = here .. "fixtures/tasks/"

local function task_md(markdown, sources, reasons)
  local list = {}
  for i, url in ipairs(sources or {}) do list[i] = { id = i, url = url } end
  return {
    id = "t1", status = "done", report = { kind = "markdown", markdown = markdown, sources = list,
    degradation_reasons = reasons } }
end

local function nums(result)
  local out = {}
  for i, c in ipairs(result.list) do out[i] = c.n end
  return out
end

local function count(haystack, needle)
  local n, at = 0, 1
  while true do
    local s, e = haystack:find(needle, at, true)
    if not s then return n end
    n, at = n + 1, e + 1
  end
end

local A, B, C = "https://a.example/1", "https://b.example/2", "https://c.example/3"

describe("report.citations", function()
  it("finds [n] citations in order of first appearance, with byte positions", function()
    local text = "Alpha [2]. Beta [1]. Gamma [2]."
    local r = assert(report.citations(task_md(text, { A, B })))
    assert.same({ 2, 1 }, nums(r))
    assert.equal(B, r.list[1].url)
    assert.same({ 7, 28 }, r.list[1].positions)
    assert.equal("[", text:sub(7, 7))
    assert.same({ 17 }, r.list[2].positions)
    assert.same({}, r.dangling)
    assert.same({}, r.unused)
  end)

  it("exposes the list as the array part of the result too", function()
    local r = report.citations(task_md("x [1] y [3]", { A, B, C }))
    assert.equal(2, #r)
    assert.equal(r.list[1], r[1])
    assert.equal(r.list[2], r[2])
    assert.equal(3, r[2].n)
  end)

  it("reads [3, 5], [3,5], [3][5], [3-5] and [3–5]", function()
    local srcs = { A, B, C, A .. "4", A .. "5" }
    assert.same({ 3, 5 }, nums(report.citations(task_md("x [3, 5]", srcs))))
    assert.same({ 3, 5 }, nums(report.citations(task_md("x [3,5]", srcs))))
    assert.same({ 3, 5 }, nums(report.citations(task_md("x [3][5]", srcs))))
    assert.same({ 3, 4, 5 }, nums(report.citations(task_md("x [3-5]", srcs))))
    assert.same({ 3, 4, 5 }, nums(report.citations(task_md("x [3\226\128\1475]", srcs))))
    assert.same({ 1, 3, 4, 5 }, nums(report.citations(task_md("x [1; 3 - 5]", srcs))))
  end)

  it("gives both numbers of [3, 5] the position of the bracket", function()
    local r = report.citations(task_md("ab [3, 5] [5]", { A, B, C, A, B }))
    assert.same({ 4 }, r.list[1].positions)
    assert.same({ 4, 11 }, r.list[2].positions)
  end)

  it("skips links, footnote markers, reference links, escapes and code", function()
    local text = table.concat({
      "A [link](https://x.example) and [2](https://y.example).",
      "A footnote[^1] and an image ![1](pic.png).",
      "A reference [text][1] link. Escaped \\[1].",
      "[1]: https://definition.example",
      "Inline `arr[1]` code.",
      "```", "code [1]", "```",
      "Real [2].",
    }, "\n")
    local r = report.citations(task_md(text, { A, B }))
    assert.same({ 2 }, nums(r))
    assert.same({ 1 }, { r.unused[1].n })
  end)

  it("does not read years, words or empty brackets as citations", function()
    local r = report.citations(task_md("[see below] [] [0] [a1] [1,] [5-3] [2026 ]", { A }))
    assert.same({ 2026 }, nums(r)) -- a bare number is a citation: it dangles
    assert.same({ 2026 }, r.dangling)
  end)

  it("lists dangling numbers and unused sources", function()
    local r = report.citations(task_md("one [1], seven [7], nine [9][7]", { A, B, C }))
    assert.same({ 7, 9 }, r.dangling)
    assert.same({ 1, 7, 9 }, nums(r))
    assert.is_true(r.list[2].dangling)
    assert.is_nil(r.list[2].url)
    assert.equal(2, #r.unused)
    assert.equal(2, r.unused[1].n)
    assert.equal(2, r.unused[1].id)
    assert.equal(B, r.unused[1].url)
    assert.equal(C, r.unused[2].url)
  end)

  it("resolves against source ids, not list positions", function()
    local t = { report = { kind = "markdown", markdown = "x [10] [20]",
      sources = { { id = 20, url = B }, { id = 10, url = A } } } }
    local r = report.citations(t)
    assert.equal(A, r[1].url)
    assert.equal(B, r[2].url)
  end)

  it("takes integral floats as ids (cjson on Lua 5.3+)", function()
    local t = {
      report = { kind = "markdown", markdown = "x [1]", sources = { { id = 1.0, url = A } } } }
    assert.equal(A, report.citations(t)[1].url)
    assert.truthy(report.render(t):find("[^1]: " .. A, 1, true))
  end)

  it("handles an empty report and empty source list", function()
    local r = report.citations(task_md("", {}))
    assert.same({}, r.list)
    assert.same({}, r.dangling)
    assert.same({}, r.unused)
    assert.equal(0, #r)
  end)

  it("resolves Valyu citations by 1-based position in sources", function()
    local t = assert(report.load(TASKS .. "valyu_markdown.json"))
    local r = report.citations(t)
    assert.same({ 1, 2, 3 }, nums(r))
    assert.equal("https://news.example/adyen-issuing", r[1].url)
    assert.equal("Adyen issuing launch", r[1].title)
  end)

  it("returns nil, err no_report for a task without a report", function()
    local t = assert(report.load(TASKS .. "extruct_running.json"))
    local r, err = report.citations(t)
    assert.is_nil(r)
    assert.equal("no_report", err.code)
    assert.truthy(err.message:find("in_progress", 1, true))
  end)

  it("raises without a task table", function()
    assert.has_error(function() report.citations("x") end)
  end)
end)

describe("report.render", function()
  local md = assert(report.load(TASKS .. "extruct_markdown.json"))

  it("turns citations into footnotes by default and lists them at the end", function()
    local out = assert(report.render(md))
    assert.equal(out, report.render(md, { style = "footnotes" }))
    assert.truthy(out:find("platform [^1].", 1, true))
    assert.truthy(out:find("in 2025 [^2][^3].", 1, true))
    assert.truthy(out:find("vary [^3][^1], see also [^1][^2] and [^2][^3].", 1, true))
    assert.truthy(out:find("\n[^1]: https://source-1.example/flexport-overview\n" ..
      "[^2]: https://source-2.example/flexport-leadership\n[^3]: " ..
      "https://source-3.example/flexport-funding", 1, true))
    assert.equal(1, count(out, "[^1]: "))
    -- untouched: links, our own footnote marker, code
    assert.truthy(out:find("[link](https://example.com/x)", 1, true))
    assert.truthy(out:find("footnote[^1] and", 1, true))
    assert.truthy(out:find("code [4] stays", 1, true))
    assert.truthy(out:find("`arr[4]`", 1, true))
    -- the uncited source is still shown
    assert.truthy(
      out:find("Other sources:\n\n- [4] https://source-4.example/flexport-hiring", 1, true))
  end)

  it("leaves dangling citations as [n] and warns about them", function()
    local out = report.render(md)
    assert.truthy(out:find("a missing source [7].", 1, true))
    assert.truthy(out:find("> Warning: citation [7] has no matching source.", 1, true))
    assert.is_nil(out:find("[^7]", 1, true))
    local mixed = report.render(task_md("x [1, 8] y [8][9]", { A }))
    assert.truthy(mixed:find("x [^1][8] y [8][9]", 1, true))
    assert.truthy(mixed:find("citations [8], [9] have no matching source.", 1, true))
  end)

  it("renders inline links", function()
    local out = report.render(md, { style = "inline" })
    assert.truthy(out:find("platform [[1]](https://source-1.example/flexport-overview).", 1, true))
    assert.truthy(out:find("2025 [[2]](https://source-2.example/flexport-leadership)" ..
      "[[3]](https://source-3.example/flexport-funding).", 1, true))
    assert.truthy(out:find("a missing source [7].", 1, true))
    assert.is_nil(out:find("%[%^%d+%]:")) -- no footnote definitions
  end)

  it("wraps URLs with spaces or parentheses in inline links", function()
    local out = report.render(task_md("x [1]", { "https://w.example/a_(b)" }), { style = "inline" })
    assert.truthy(out:find("[[1]](<https://w.example/a_(b)>)", 1, true))
  end)

  it("renders plain text with citations kept and a Sources list", function()
    local out = report.render(md, { style = "plain" })
    assert.truthy(out:find("Leadership changed in 2025 [2, 3].", 1, true))
    assert.truthy(out:find("\nSources\n[1] https://source-1.example/flexport-overview\n" ..
      "[2] https://source-2.example/flexport-leadership\n[3] " ..
      "https://source-3.example/flexport-funding\n" ..
      "[4] https://source-4.example/flexport-hiring\n", 1, true))
    assert.truthy(out:find("\nWarning: citation [7] has no matching source.", 1, true) or
      out:find("^Warning: citation %[7%]"))
    assert.is_nil(out:find("[^2]", 1, true))
  end)

  it("shows degradation reasons at the top, and treats null, absent and empty alike", function()
    local reasons = { "Stopped at the agent budget.", "Two agents failed." }
    local out = report.render(task_md("Body [1].", { A }, reasons))
    assert.equal(
      1, out:find("> Note: Stopped at the agent budget.\n>\n> Note: Two agents failed.", 1, true))
    local plain = report.render(task_md("Body [1].", { A }, reasons), { style = "plain" })
    assert.equal(
      1, plain:find("Note: Stopped at the agent budget.\nNote: Two agents failed.", 1, true))
    local clean = report.render(task_md("Body [1].", { A }))
    assert.equal(clean, report.render(task_md("Body [1].", { A }, {})))
    assert.equal(clean, report.render(task_md("Body [1].", { A }, json.null)))
    assert.is_nil(clean:find("Note:", 1, true))
    assert.equal(1, clean:find("Body [^1].", 1, true))
  end)

  it("returns nil, err no_report for unfinished and failed tasks", function()
    local running = assert(report.load(TASKS .. "extruct_running.json"))
    local out, err = report.render(running)
    assert.is_nil(out)
    assert.equal("no_report", err.code)
    local _, e2 = report.render({
      id = "t9", status = "failed", failure_reason = "No identifiable target." })
    assert.equal("no_report", e2.code)
    assert.truthy(e2.message:find("No identifiable target.", 1, true))
    local _, e3 = report.render({ deepresearch_id = "dr_1", status = "running" })
    assert.equal("no_report", e3.code)
  end)

  it("raises on a bad style or a non-table task", function()
    assert.has_error(function() report.render(md, { style = "html" }) end)
    assert.has_error(function() report.render(nil) end)
  end)
end)

describe("schema reports", function()
  local t = assert(report.load(TASKS .. "extruct_schema.json"))

  it("maps each field to its sources' URLs, flattening nested basis to dotted paths", function()
    local b = assert(report.basis(t))
    assert.same({
      "https://source-1.example/heat-pumps-overview",
      "https://source-2.example/heat-pumps-installers" },
      b.summary)
    assert.same({ "https://source-2.example/heat-pumps-installers" }, b.installers)
    assert.same({}, b.growing)
    assert.same({ "https://source-3.example/heat-pumps-news" }, b.angles) -- id 9 has no source
    assert.same({ "https://source-1.example/heat-pumps-overview" }, b["leader.name"])
    assert.same({ "https://source-3.example/heat-pumps-news" }, b["leader.share"])
    assert.is_nil(b.leader)
  end)

  it("accepts dotted basis keys and single ids", function()
    local b = report.basis({ report = { kind = "schema", fields = { a = { b = 1 } },
      basis = { ["a.b"] = 2, c = { 1, 1 } },
      sources = { { id = 1, url = A }, { id = 2, url = B } } } })
    assert.same({ B }, b["a.b"])
    assert.same({ A }, b.c)
  end)

  it("returns an empty map for a markdown report and nil, err without a report", function()
    assert.same({}, report.basis(task_md("x", {})))
    local r, err = report.basis({ id = "x", status = "created" })
    assert.is_nil(r)
    assert.equal("no_report", err.code)
  end)

  it("lays fields out as sections followed by their sources", function()
    local out = assert(report.render(t))
    assert.equal(1, out:find("> Note: The research stopped at the agent budget", 1, true))
    assert.truthy(
      out:find(
      "## summary\n\nInstaller numbers grew every year [^2].\n\nSources: [^1][^2]", 1, true))
    assert.truthy(
      out:find(
      "## angles\n\n- subsidy-driven demand\n- software adoption is low\n\nSources: [^3][9]",
      1, true))
    assert.truthy(out:find("## risks\n\n_none_", 1, true))
    assert.truthy(out:find("## installers\n\n41000\n\nSources: [^2]", 1, true))
    assert.truthy(out:find("## growing\n\ntrue\n\n## installers", 1, true))
    assert.truthy(
      out:find(
      "## leader\n\n### name\n\nOctopus Energy\n\nSources: [^1]\n\n### share\n\n0.12", 1, true))
    assert.truthy(out:find("[^3]: https://source-3.example/heat-pumps-news", 1, true))
    assert.truthy(out:find("Warning: citation [9] has no matching source.", 1, true))
    local plain = report.render(t, { style = "plain" })
    assert.truthy(plain:find("Sources: [1, 2]", 1, true))
    assert.truthy(
      plain:find("\nSources\n[1] https://source-1.example/heat-pumps-overview\n", 1, true))
  end)

  it("counts the basis ids as the report's citations", function()
    local r = report.citations(t)
    assert.same({ 3, 9, 2, 1 }, nums(r))
    assert.same({ 9 }, r.dangling)
    assert.same({}, r.unused)
  end)
end)

describe("Valyu tasks", function()
  it("renders markdown output with titled sources and a cost and PDF trailer", function()
    local t = assert(report.load(TASKS .. "valyu_markdown.json"))
    local out = assert(report.render(t))
    assert.truthy(
      out:find("issuing product [^1] and opened a partner programme [^2][^3].", 1, true))
    assert.truthy(
      out:find("[^1]: https://news.example/adyen-issuing - Adyen issuing launch", 1, true))
    assert.truthy(out:find("\nCost: $0.35 | PDF: https://files.example/dr_7a1b2c3d.pdf\n$"))
    local plain = report.render(t, { style = "plain" })
    assert.truthy(plain:find("[2] https://adyen.example/partners - Partner programme", 1, true))
    assert.truthy(plain:find("Cost: $0.35 | PDF: https://files.example/dr_7a1b2c3d.pdf\n$"))
  end)

  it("renders JSON output like a schema report", function()
    local t = assert(report.load(TASKS .. "valyu_json.json"))
    local out = assert(report.render(t))
    assert.truthy(out:find("## reasons\n\n- issuing\n- coverage", 1, true))
    assert.truthy(out:find("## scores\n\n### adyen\n\n8\n\n### stripe\n\n7.5", 1, true))
    assert.truthy(out:find("## winner\n\nAdyen", 1, true))
    assert.truthy(out:find("- [1] https://a.example/1 - Source A", 1, true))
    assert.truthy(out:find("Cost: $1.20\n$"))
    assert.same({}, report.basis(t))
  end)

  it("decodes JSON output sent as a string and shows TOON verbatim", function()
    local t = {
      deepresearch_id = "d", status = "completed", output_type = "json", output = '{"k":"v"}',
      sources = {} }
    if pcall(require, "cjson") then
      assert.truthy(report.render(t):find("## k\n\nv", 1, true))
    end
    local toon = {
      deepresearch_id = "d", status = "completed", output_type = "toon", output = "k: [1]\n" }
    local out = report.render(toon)
    assert.truthy(out:find("```\nk: [1]\n```", 1, true))
    assert.same({}, report.citations(toon).dangling)
  end)

  it("marks partial output of a failed task", function()
    local t = {
      deepresearch_id = "d", status = "failed", error = "timeout", output = "Partial [1].",
      sources = { { title = "T", url = A } } }
    local out = report.render(t)
    assert.equal(
      1, out:find("> Note: the task failed (timeout); this output may be partial.", 1, true))
  end)
end)

describe("report.load", function()
  it("reads a task and drops JSON nulls from objects", function()
    local t = assert(report.load(TASKS .. "extruct_markdown.json"))
    assert.equal("done", t.status)
    assert.is_nil(t.output_schema)
    assert.is_nil(t.failure_reason)
    assert.is_nil(t.report.degradation_reasons)
    assert.equal(4, #t.report.sources)
    local running = report.load(TASKS .. "extruct_running.json")
    assert.is_nil(running.report)
  end)

  it("returns nil, err for a missing file or bad JSON", function()
    local t, err = report.load(TASKS .. "nope.json")
    assert.is_nil(t)
    assert.equal("io", err.code)
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write("{not json")
    f:close()
    local t2, e2 = report.load(path)
    local f2 = assert(io.open(path, "wb"))
    f2:write("[1, 2]")
    f2:close()
    local t3, e3 = report.load(path)
    os.remove(path)
    assert.is_nil(t2)
    assert.equal("decode", e2.code)
    assert.is_nil(t3)
    assert.equal("decode", e3.code)
  end)
end)

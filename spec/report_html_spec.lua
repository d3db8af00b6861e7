-- report.html (issue 19 part 6): one self-contained page for every kind of task. What is
-- checked here is the markup itself (anchors, escaping, nothing to fetch, schema order);
-- spec/report_html_browser_spec.lua opens it in a real browser.
local dr = require "deepresearch"
local env = require "support.env"
local tasks = require "support.report_tasks"
local cli = require "support.cli"
local cjson = require "cjson"

-- Every href="#src-N" has its id="src-N"; returns the count of citation anchors.
local function anchors_resolve(html)
  local ids, n = {}, 0
  for id in html:gmatch('id="(src%-%d+)"') do ids[id] = true end
  for id in html:gmatch('href="#(src%-%d+)"') do
    n = n + 1
    assert.truthy(ids[id], "anchor #" .. id .. " has a source entry")
  end
  return n
end

-- Nothing a browser would fetch: no src attribute, no <link>, no url(), no @import, no script.
local function self_contained(html)
  assert.truthy(html:find("^<!DOCTYPE html>"))
  assert.falsy(html:find("<script", 1, true))
  assert.falsy(html:find("<img", 1, true))
  assert.falsy(html:find("<link", 1, true))
  assert.falsy(html:find("<iframe", 1, true))
  assert.falsy(html:find("<%a[^>]*%ssrc="))
  assert.falsy(html:find("url%("))
  assert.falsy(html:find("@import", 1, true))
  assert.truthy(html:find("default-src 'none'", 1, true), "a CSP forbids fetches")
  assert.truthy(html:find("<style>", 1, true), "inline CSS")
end

describe("report.html", function()
  local s
  setup(function() s = env.sim() end)

  for _, kind in ipairs(tasks.KINDS) do
    it("renders a finished " .. kind .. " task: metadata, cited report, sources, link marks",
      function()
        local task = tasks.finished(s, kind, { pages = true, mix = { "ok", "404", "redirect/1" } })
        local checked = dr.assert(dr.report.check_links(task, { timeout = 2 }))
        local html = dr.assert(dr.report.html(task, { links = checked }))
        self_contained(html)
        assert.truthy(anchors_resolve(html) > 0, "the report cites its sources")
        assert.truthy(html:find("<h1>[^<]+</h1>"), "a title")
        assert.truthy(html:find("<dt>Provider</dt><dd>" .. (kind == "search" and "extruct" or kind),
          1, true), "the provider")
        assert.truthy(html:find("<dt>Created</dt>", 1, true), "dates")
        assert.truthy(html:find("<dt>Counters</dt>", 1, true), "counters")
        assert.truthy(html:find('<ol class="sources">', 1, true))
        -- Every page kind got its mark: the mix has a 404 and a redirect.
        if checked.counts.not_found then
          assert.truthy(html:find("✗ dead link: 404 not found", 1, true))
          assert.truthy(html:find('class="dead"', 1, true), "a dead citation is marked in the text")
          assert.truthy(html:find('class="notes warn"', 1, true), "and at the top")
        end
        if checked.counts.ok then assert.truthy(html:find("✓ live", 1, true)) end
        if kind ~= "search" then
          assert.truthy(html:find("<dt>Cost</dt>", 1, true), "the cost")
          -- A dr.result renders the same page.
          local again = dr.assert(dr.report.html(dr.result(task), { links = checked }))
          assert.equals(select(2, html:gsub('href="#src', "")), select(2, again:gsub('href="#src',
            "")))
        end
        -- Without a check the page has no marks.
        local plain = dr.assert(dr.report.html(task))
        assert.falsy(plain:find("✗", 1, true))
        assert.falsy(plain:find("✓", 1, true))
      end)
  end

  it("shows an Extruct schema report as a table in schema order, with its basis", function()
    local task = {
      id = "t-schema", status = "done", depth = "medium", created_at = "2026-01-01T00:00:00Z",
      output_schema = { type = "object", required = { "zeta", "alpha", "mid" },
        properties = { zeta = { type = "string" }, alpha = { type = "number" },
          mid = { type = "object", propertyOrdering = { "y", "x" },
            properties = { x = { type = "string" }, y = { type = "array" } } } } },
      report = { kind = "schema", sources = { { id = 1, url = "https://a.example/1" },
        { id = 2, url = "https://b.example/2", title = "B <two>" } },
        fields = { alpha = 3, zeta = "last <b>letter</b>", mid = { x = "ex", y = { "p", "q" } },
          extra = true },
        basis = { zeta = { 1 }, mid = { x = { 2 } } } },
    }
    local html = dr.assert(dr.report.html(task))
    self_contained(html)
    assert.equals(2, anchors_resolve(html))
    local order = {}
    for key in html:gmatch("<tr[^>]*><th>([%w%.]+)</th><td>") do order[#order + 1] = key end
    assert.same({ "zeta", "alpha", "mid", "mid.y", "mid.x", "extra" }, order)
    assert.truthy(html:find("last &lt;b&gt;letter&lt;/b&gt;", 1, true))
    assert.truthy(html:find("<ul><li>p</li><li>q</li></ul>", 1, true))
    assert.truthy(html:find("B &lt;two&gt;", 1, true))
  end)

  it("puts the degradation notes and missing citations at the top", function()
    local task = { id = "t-notes", status = "done", report = { kind = "markdown",
      markdown = "# Title\n\nClaim [1]. Other [7].",
      sources = { { id = 1, url = "https://a.example/" } },
      degradation_reasons = { "Stopped at the agent budget." } } }
    local html = dr.assert(dr.report.html(task))
    local notes = html:find("Stopped at the agent budget.", 1, true)
    local missing = html:find("Citation [7] has no matching source.", 1, true)
    local main = html:find('<main class="report">', 1, true)
    assert.truthy(notes and missing and main)
    assert.truthy(notes < main and missing < main)
    assert.truthy(html:find("<h1>Title</h1>", 1, true), "the report's own title is the page's")
    assert.truthy(html:find('<span class="missing" title="no such source">7</span>', 1, true))
  end)

  it("escapes everything from a hostile report: no live markup", function()
    local evil = '<script>alert(1)</script>'
    local task = { id = "t-evil", status = "done", model = evil, report = { kind = "markdown",
      markdown = "# " .. evil .. "\n\nText " .. evil .. " [1] and <img src=x onerror=alert(1)> " ..
        "[click](javascript:alert(1)) [ok](https://fine.example/?a=1&b=2) `<b>` \1 \2 [2]\n\n" ..
        "| h | <i>x</i> |\n|---|---|\n| <script>x</script> | y [1] |\n\n```\n</code>" .. evil ..
        "\n```\n\n- item " .. evil .. "\n> quote " .. evil,
      sources = { { id = 1, url = "javascript:alert(1)", title = evil },
        { id = 2, url = 'https://x.example/"><script>alert(2)</script>', title = "t" } },
      degradation_reasons = { evil } } }
    local html = dr.assert(dr.report.html(task))
    self_contained(html)
    assert.falsy(html:find("<script", 1, true))
    assert.falsy(html:find("<img", 1, true))
    assert.falsy(html:find("<i>", 1, true))
    assert.falsy(html:find("javascript:", 1, true) and html:find('href="javascript', 1, true))
    assert.falsy(html:find("[\1\2]"))
    assert.truthy(html:find("&lt;script&gt;alert(1)&lt;/script&gt;", 1, true))
    assert.truthy(html:find('<a href="https://fine.example/?a=1&amp;b=2">ok</a>', 1, true))
    assert.equals(3, anchors_resolve(html))
    -- Every tag left is one of ours.
    local allowed = { html = 1, head = 1, meta = 1, title = 1, style = 1, body = 1, h1 = 1,
      h2 = 1, h3 = 1, p = 1, dl = 1, dt = 1, dd = 1, div = 1, main = 1, sup = 1, a = 1, span = 1,
      ol = 1, ul = 1, li = 1, table = 1, tr = 1, th = 1, td = 1, pre = 1, code = 1, em = 1,
      strong = 1, blockquote = 1, hr = 1, br = 1, small = 1 }
    for tag in html:gmatch("<(%a[%w]*)") do assert.truthy(allowed[tag:lower()], "tag " .. tag) end
  end)

  it("refuses unknown options and returns no_report for a task without one", function()
    local task = { id = "x", status = "done", report = { kind = "markdown", markdown = "x" } }
    assert.has_error(function() dr.report.html(task, { link = {} }) end,
      "bad option 'link' to 'html' (did you mean 'links'?)")
    local html, err = dr.report.html({ id = "x", status = "running" })
    assert.is_nil(html)
    assert.equals("no_report", err.code)
  end)
end)

describe("deepresearch report --format, -o, --check-links", function()
  local s, id
  setup(function()
    s = env.sim()
    local task = tasks.finished(s, "extruct", { pages = true, mix = { "ok", "404" } })
    id = task.id
  end)
  teardown(cli.cleanup)

  it("writes the HTML page to a file, with dead links marked and counted on stderr", function()
    local path = cli.tmp()
    local code, out, err = cli.run(s.url, { "report", id, "--format", "html", "-o", path,
      "--check-links" })
    assert.equals(0, code, err)
    assert.equals("", out)
    local html = cli.slurp(path)
    assert.truthy(html:find("^<!DOCTYPE html>"))
    assert.truthy(html:find("✗ dead link: 404 not found", 1, true))
    local n, ok, dead = err:match("links: (%d+) checked: (%d+) ok, (%d+) not found")
    assert.truthy(n, err)
    assert.equals(tonumber(n), tonumber(ok) + tonumber(dead))
    assert.truthy(err:find("wrote " .. path .. " (html, ", 1, true), err)
  end)

  it("prints markdown with marks, and JSON with the task and the check", function()
    local code, out = cli.run(s.url, { "report", id, "--format", "md", "--check-links" })
    assert.equals(0, code)
    assert.truthy(out:find("[dead link: 404 not found]", 1, true), out:sub(1, 300))
    local code2, out2 = cli.run(s.url, { "report", id, "--format", "json", "--check-links" })
    assert.equals(0, code2)
    local v = cjson.decode(out2)
    assert.equals(id, v.task.id)
    assert.truthy(#v.links.links > 0)
    assert.equals(#v.links.links, v.links.checked)
    local code3, out3 = cli.run(s.url, { "report", id, "--format", "json" })
    assert.equals(0, code3)
    assert.equals(id, cjson.decode(out3).id)
    local code4, out4 = cli.run(s.url, { "report", id, "--format", "html" })
    assert.equals(0, code4)
    assert.truthy(out4:find("^<!DOCTYPE html>"))
  end)

  it("refuses flags that ask for two outputs", function()
    assert.equals(2, (cli.run(s.url, { "report", id, "--json", "--format", "html" })))
    assert.equals(2, (cli.run(s.url, { "report", id, "--style", "plain", "--format", "html" })))
    assert.equals(2, (cli.run(s.url, { "report", id, "--format", "pdf" })))
  end)
end)

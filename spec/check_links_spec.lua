-- report.check_links (issue 19 part 5): every source URL checked at once on the core's multi
-- engine, against pages the simulator serves itself (/_sim/pages/<kind>/...). Counts, not
-- timings: links checked, requests the pages saw, the most in flight at once.
local dr = require "deepresearch"
local env = require "support.env"
local tasks = require "support.report_tasks"

-- What a page of each kind must come out as, and the requests it costs the simulator.
local EXPECT = {
  ok = { "ok", 1 }, ["404"] = { "not_found", 1 }, ["410"] = { "gone", 1 },
  ["500"] = { "unreachable", 1 }, nohead = { "ok", 2 }, forbidhead = { "ok", 2 },
  redirect = { "redirected", 3 }, -- redirect/2: two hops, then the page
  slow = { "timeout", 1 }, big = { "ok", 1 },
}

local function kind_of(url)
  local kind, n = url:match("/_sim/pages/([^/]+)/([^/]+)/")
  if kind == "redirect" and tonumber(n) > 5 then return "toomany" end
  return url:match("/_sim/pages/([^/]+)/")
end

local function pages(s) return s:state().pages end

local function task_citing(urls, text)
  local sources, marks = {}, {}
  for i, u in ipairs(urls) do
    sources[i] = { id = i, url = u, title = "Source " .. i }
    marks[#marks + 1] = "Claim " .. i .. " [" .. i .. "]."
  end
  return { id = "t-links", status = "done", report = { kind = "markdown",
    markdown = text or table.concat(marks, " "), sources = sources } }
end

describe("report.check_links", function()
  local s
  setup(function() s = env.sim() end)

  for _, kind in ipairs(tasks.KINDS) do
    it("checks every source of a finished " .. kind .. " task once, and sends no credential",
      function()
        -- No slow page here: a client that gives up on one closes its connection, and the
        -- simulator may see the next request before it sees that close.
        local task = tasks.finished(s, kind, { pages = true, mix = { "ok", "404", "redirect/2",
          "410", "nohead", "redirect/7", "forbidhead", "500" } })
        local before = pages(s).count
        local checked = dr.assert(dr.report.check_links(task, { concurrency = 4, timeout = 0.5 }))
        local seen, want_requests, want_hits = {}, 0, 0
        assert.truthy(#checked.links > 0, "the task has sources")
        for _, l in ipairs(checked.links) do
          assert.is_nil(seen[l.url], "each URL once")
          seen[l.url] = true
          local k = kind_of(l.url)
          assert.truthy(k, "a simulator page: " .. l.url)
          if k == "toomany" then
            assert.equals("unreachable", l.status)
            assert.truthy(l.reason:find("more than 5 redirects", 1, true))
            want_requests, want_hits = want_requests + 1, want_hits + 6
          else
            assert.equals(EXPECT[k][1], l.status, l.url)
            want_requests = want_requests + ((k == "nohead" or k == "forbidhead") and 2 or 1)
            want_hits = want_hits + EXPECT[k][2]
          end
          if l.status == "redirected" then
            assert.truthy(l.final_url:find("/redirect/0/", 1, true))
          end
        end
        assert.equals(#checked.links, checked.checked)
        assert.equals(want_requests, checked.requests)
        local p = pages(s)
        assert.equals(want_hits, p.count - before)
        assert.truthy(p.max_in_flight <= 4, "concurrency 4 honoured: " .. p.max_in_flight)
        local heads = {}
        for _, r in ipairs(p.requests) do
          assert.is_false(r.authorization)
          assert.is_false(r.cookie)
          if r.method == "HEAD" then
            assert.is_nil(heads[r.path], "one HEAD per URL: " .. r.path)
            heads[r.path] = true
          else
            assert.equals("bytes=0-0", r.range)
          end
        end
      end)
  end

  describe("on a task made by hand", function()
    local base
    before_each(function()
      s:reset()
      s:config{ pages = { base = s.url } }
      base = s.url .. "/_sim/pages/"
    end)

    it("gives each kind of page its status, markers without a source, sources never cited",
      function()
        local urls = { base .. "ok/a", base .. "404/b", base .. "410/c", base .. "redirect/3/d",
          base .. "nohead/e", base .. "forbidhead/f", base .. "redirect/6/g", base .. "500/h",
          base .. "big/i", "ftp://example.test/file", "http://user:pw@127.0.0.1:1/x" }
        local text = "A [1][2]. B [3], C [4] and D [5, 6]. E [7][8][9][10][11]. F [1]. G [42]."
        local task = task_citing(urls, text)
        task.report.sources[#urls + 1] = { id = 12, url = base .. "ok/uncited" }
        local checked = dr.assert(dr.report.check_links(task, { timeout = 2 }))
        local by = checked.by_url
        assert.equals("ok", by[urls[1]].status)
        assert.equals(200, by[urls[1]].http_status)
        assert.equals("not_found", by[urls[2]].status)
        assert.equals(404, by[urls[2]].http_status)
        assert.equals("gone", by[urls[3]].status)
        assert.equals("redirected", by[urls[4]].status)
        assert.equals(base .. "redirect/0/d", by[urls[4]].final_url)
        assert.equals("ok", by[urls[5]].status)
        assert.equals("GET", by[urls[5]].method)
        assert.equals("ok", by[urls[6]].status)
        assert.equals("unreachable", by[urls[7]].status)
        assert.equals("unreachable", by[urls[8]].status)
        assert.equals(500, by[urls[8]].http_status)
        assert.equals("ok", by[urls[9]].status) -- a 1 MiB body that ignored the Range is cut
        assert.equals("unreachable", by[urls[10]].status)
        assert.truthy(by[urls[10]].reason:find("not an http", 1, true))
        assert.equals("unreachable", by[urls[11]].status)
        assert.truthy(by[urls[11]].reason:find("credentials", 1, true))
        assert.same({ 42 }, checked.missing)
        assert.equals(1, #checked.uncited)
        assert.equals(base .. "ok/uncited", checked.uncited[1].url)
        assert.equals("ok", by[base .. "ok/uncited"].status)
        -- [1] is cited twice and requested once; ftp and user@ never leave.
        assert.equals(10, checked.checked)
        assert.equals(12, checked.requests) -- two HEADs refused, two GETs
        local n = 0
        for _, r in ipairs(pages(s).requests) do
          if r.path == "/_sim/pages/ok/a" then n = n + 1 end
        end
        assert.equals(1, n)
      end)

    it("reports a page slower than the timeout as timeout", function()
      local checked = dr.assert(dr.report.check_links(task_citing({ base .. "slow/5000/x" }),
        { timeout = 0.3 }))
      assert.equals("timeout", checked.links[1].status)
      assert.equals(1, checked.requests)
    end)

    it("keeps at most `concurrency` requests in flight, and uses them", function()
      local urls = {}
      for i = 1, 40 do urls[i] = base .. "ok/p" .. i end
      s:config{ pages = { delay_ms = 50 } }
      local checked = dr.assert(dr.report.check_links(task_citing(urls), { concurrency = 5 }))
      assert.equals(40, checked.checked)
      assert.equals(40, checked.requests)
      local p = pages(s)
      assert.equals(40, p.count)
      assert.truthy(p.max_in_flight <= 5, "at most 5: " .. p.max_in_flight)
      assert.truthy(p.max_in_flight >= 2, "in parallel: " .. p.max_in_flight)
      s:reset()
      s:config{ pages = { base = s.url, delay_ms = 50 } }
      dr.assert(dr.report.check_links(task_citing(urls), { concurrency = 1 }))
      assert.equals(1, pages(s).max_in_flight)
    end)

    it("marks dead citations in report.render", function()
      local task = task_citing({ base .. "ok/a", base .. "404/b", base .. "redirect/1/c" })
      local checked = dr.assert(dr.report.check_links(task))
      local text = dr.assert(dr.report.render(task, { links = checked }))
      assert.truthy(text:find("[^2]: " .. base .. "404/b - Source 2 [dead link: 404 not found]", 1,
        true), text)
      assert.truthy(text:find("Warning: cited link [2] is dead", 1, true), text)
      assert.truthy(text:find("[moved to " .. base .. "redirect/0/c]", 1, true), text)
      assert.falsy(text:find("ok/a - Source 1 [", 1, true))
      local plain = dr.assert(dr.report.render(task, { links = checked, style = "plain" }))
      assert.truthy(plain:find("[2] " .. base .. "404/b - Source 2 [dead link", 1, true), plain)
    end)
  end)

  it("refuses unknown and bad options before sending anything", function()
    local task = task_citing({ "http://127.0.0.1:9/x" })
    assert.has_error(function() dr.report.check_links(task, { concurency = 4 }) end,
      "bad option 'concurency' to 'check_links' (did you mean 'concurrency'?)")
    assert.has_error(function() dr.report.check_links(task, { concurrency = 0 }) end)
    assert.has_error(function() dr.report.check_links(task, { timeout = -1 }) end)
    assert.has_error(function() dr.report.check_links("nope") end)
    assert.has_error(function() dr.report.render(task, { links = "x" }) end)
  end)

  it("returns no_report for a task without one", function()
    local checked, err = dr.report.check_links({ id = "x", status = "running" })
    assert.is_nil(checked)
    assert.equals("no_report", err.code)
  end)
end)

-- An Extruct Deep Search result ({ task fields..., results = rows }, as discovery_results
-- returns a page) as report/html.lua's page: the query, the criteria, a table of companies with
-- each criterion's grade and its sources as citation superscripts, and the numbered source list.
local links_mod = require "deepresearch.report.links"
local md = require "deepresearch.report.html_md"

local M = {}

local esc = md.escape

local function num(n) return string.format("%d", n) end

local function criteria_of(task, rows)
  local list = {}
  if type(task.criteria) == "table" then
    for _, c in ipairs(task.criteria) do
      if type(c) == "table" and type(c.key) == "string" then list[#list + 1] = c end
    end
  end
  if #list == 0 then -- no criteria on the page: the keys the rows were graded on
    local seen = {}
    for _, r in ipairs(rows) do
      for k in pairs(type(r) == "table" and type(r.scores) == "table" and r.scores or {}) do
        if type(k) == "string" and not seen[k] then
          seen[k] = true
          list[#list + 1] = { key = k }
        end
      end
    end
    table.sort(list, function(a, b) return a.key < b.key end)
  end
  return list
end

function M.render(task, opts)
  local H = require "deepresearch.report.html"
  local rows = links_mod.search_rows(task)
  local crit = criteria_of(task, rows)
  local sources, by_url, by_n = {}, {}, {}
  local function n_of(url)
    if not by_url[url] then
      local s = { n = #sources + 1, url = url }
      sources[#sources + 1], by_url[url], by_n[s.n] = s, s.n, s
    end
    return by_url[url]
  end
  local function cite(urls)
    local nums = {}
    for _, u in ipairs(urls) do nums[#nums + 1] = n_of(u) end
    return #nums > 0 and H.cite_markup(nums, by_n, opts.links) or ""
  end
  local head = { "<th>#</th><th>Company</th><th>Relevance</th>" }
  for _, c in ipairs(crit) do head[#head + 1] = "<th>" .. esc(H.str(c.name) or c.key) .. "</th>" end
  local out = { '<table class="companies">', "<tr>" .. table.concat(head) .. "</tr>" }
  for i, r in ipairs(rows) do
    if type(r) == "table" then
      local site = H.str(r.company_website)
      local cells = { "<td>" .. num(i) .. "</td>", "<td><strong>" .. esc(H.str(r.company_name) or
        "?") .. "</strong>" .. (site and ("<br>" .. esc(site)) or "") ..
        ((H.str(r.hq_city) or H.str(r.hq_country)) and ("<br>" .. esc(table.concat({
          H.str(r.hq_city) or "", H.str(r.hq_country) or "" }, ", "):gsub("^, ", ""):gsub(", $",
          ""))) or "") .. "</td>",
        "<td>" .. esc(H.str(r.relevance) or "") .. "</td>" }
      local scores = type(r.scores) == "table" and r.scores or {}
      for _, c in ipairs(crit) do
        local sc = type(scores[c.key]) == "table" and scores[c.key] or {}
        local urls = {}
        for _, u in ipairs(type(sc.sources) == "table" and sc.sources or {}) do
          if type(u) == "string" then urls[#urls + 1] = u end
        end
        cells[#cells + 1] = "<td>" .. esc(H.str(sc.grade) and (H.str(sc.grade) .. "/5") or "") ..
          cite(urls) .. (H.str(sc.explanation) and ("<br><small>" .. esc(sc.explanation) ..
          "</small>") or "") .. "</td>"
      end
      out[#out + 1] = "<tr>" .. table.concat(cells) .. "</tr>"
    end
  end
  out[#out + 1] = "</table>"
  local clist = {}
  for _, c in ipairs(crit) do
    clist[#clist + 1] = "<li><strong>" .. esc(H.str(c.name) or c.key) .. "</strong>" ..
      (H.str(c.criterion) and (": " .. esc(c.criterion)) or "") .. "</li>"
  end
  local query = H.brief_of(task)
  local title = opts.title or (query and ("Deep Search: " .. H.head_of(query, 80))) or
    "Deep Search results"
  local cited = {}
  for _, s in ipairs(sources) do cited[s.n] = true end
  local notes = {}
  if H.str(task.failure_reason) then notes[1] = "Failure: " .. task.failure_reason end
  return H.page(title, {
    query and ('<p class="brief">' .. esc(H.head_of(query, 400)) .. "</p>") or "",
    H.meta_rows(task, { provider = "extruct (Deep Search)", id = task.id }, {
      num(#rows) .. " companies", num(#sources) .. " sources" }),
    H.notes_html(notes, "warn"), H.dead_note(sources, cited, opts.links),
    #clist > 0 and ("<h2>Criteria</h2><ul>" .. table.concat(clist) .. "</ul>") or "",
    '<main class="report">', out[1] and table.concat(out, "\n"), "</main>",
    H.source_list(sources, cited, opts.links) })
end

return M

-- report.html(task, opts): one self-contained HTML page to read and share (issue 19 part 6).
-- Inline CSS, no script, nothing fetched (no <img>, <link>, fonts; a CSP that forbids every
-- fetch besides). At the top: title, provider, model or depth, dates, duration, cost, counters,
-- degradation notes; then the report with citation superscripts linked to a numbered source
-- list (title, domain, link-check mark); a schema report as a table in schema order; an
-- Extruct Deep Search result ({task..., results = rows}) as a table of companies. Everything the
-- server sent is escaped (report/html_md.lua).
local report = require "deepresearch.report"
local read = require "deepresearch.report.read"
local links_mod = require "deepresearch.report.links"
local md = require "deepresearch.report.html_md"
local json = require "deepresearch.base.json"
local dates = require "deepresearch.base.dates"
local options = require "deepresearch.base.options"

local M = {}

local esc = md.escape
local FIELDS = { links = "table", title = "string" }

local function present(v) return v ~= nil and not json.is_null(v) end

local function str(v)
  if type(v) == "string" and v:find("%S") then return v end
  if type(v) == "number" then return tostring(v) end
  return nil
end

local function num(n) return string.format("%d", n) end

local CSS = [[
body{font:16px/1.55 Georgia,"Times New Roman",serif;color:#1d1d1f;max-width:52em;margin:2em auto;
padding:0 1.2em;background:#fff}
h1{font-size:1.7em;line-height:1.25;margin-bottom:.3em}
h2,h3,h4{line-height:1.3}
.brief{color:#555;font-style:italic}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;font:14px/1.4 sans-serif;
background:#f5f5f7;padding:.8em 1em;border-radius:6px}
dl.meta dt{font-weight:bold;color:#444}dl.meta dd{margin:0}
.notes{border-left:4px solid #c77c02;background:#fff7e6;padding:.5em 1em;margin:1em 0;
font-family:sans-serif;font-size:14px}
.warn{border-left-color:#c0392b;background:#fdecea}
sup.cites{font-size:.7em;font-family:sans-serif}sup.cites a{text-decoration:none}
a.dead{color:#c0392b;text-decoration:line-through}
.missing{color:#c0392b}
table{border-collapse:collapse;width:100%;margin:1em 0;font-size:15px}
th,td{border:1px solid #ccc;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f2}
pre{background:#f5f5f7;padding:.8em;overflow-x:auto;white-space:pre-wrap}
ol.sources{font-size:14px;font-family:sans-serif}ol.sources li{margin:.3em 0}
.domain{color:#666}.mark{font-weight:bold}.ok{color:#1e7e34}.moved{color:#8a6d00}
.dead-mark{color:#c0392b}.uncited{color:#888}
@media print{body{margin:0;max-width:none}a{color:inherit}}
]]

----------------------------------------------------------------------------------------------
-- Metadata.

local function when(v)
  local t = type(v) == "number" and v > 1e8 and v or dates.parse_iso(v)
  if not t then return nil end
  return t, os.date("!%Y-%m-%d %H:%M UTC", math.floor(t))
end

local function first_field(t, names)
  for _, k in ipairs(names) do
    if present(t[k]) and (type(t[k]) == "string" or type(t[k]) == "number") then return t[k], k end
  end
  return nil
end

local function duration(s)
  s = math.floor(s + 0.5)
  if s < 60 then return num(s) .. " s" end
  if s < 3600 then return string.format("%d min %d s", math.floor(s / 60), s % 60) end
  return string.format("%d h %d min", math.floor(s / 3600), math.floor(s % 3600 / 60))
end

local SKIP = { created_at = true, updated_at = true, completed_at = true, created = true,
  cost = true, price = true, id = true, progress = true, temperature = true, top_p = true,
  top_logprobs = true, max_output_tokens = true, max_tool_calls = true, seed = true }

-- Whole-number top-level fields (agents, iterations, num_results...) and token usage.
local function counters(task, extra)
  local out, keys = {}, {}
  for k, v in pairs(task) do
    if type(k) == "string" and type(v) == "number" and v >= 0 and v % 1 == 0 and v < 1e8
      and not SKIP[k] and not k:find("_at$") then
      keys[#keys + 1] = k
    end
  end
  local usage = type(task.usage) == "table" and task.usage or {}
  for k, v in pairs(usage) do
    if type(k) == "string" and type(v) == "number" and v % 1 == 0 then
      keys[#keys + 1] = "usage." .. k
    end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = k:sub(1, 6) == "usage." and usage[k:sub(7)] or task[k]
    out[#out + 1] = k:gsub("_", " ") .. " " .. num(v)
  end
  for _, e in ipairs(extra) do out[#out + 1] = e end
  return table.concat(out, " · ")
end

local function money(usd)
  local s = string.format("%.4f", usd):gsub("0+$", "")
  if s:find("%.$") then s = s .. "00" elseif s:find("%.%d$") then s = s .. "0" end
  return "$" .. s
end

local function meta_rows(task, res, extra)
  local rows = {}
  local function add(k, v) if v then rows[#rows + 1] = { k, v } end end
  add("Provider", res and res.provider or nil)
  add("Task", str(res and res.id or task.id))
  local model, field = first_field(task, { "model", "agent", "depth", "mode", "preset" })
  add(field and field:gsub("^%l", string.upper) or nil, str(model))
  add("Status", str(task.status))
  local created = first_field(task, { "created_at", "created", "create_time", "createTime" })
  local finished = first_field(task, { "completed_at", "finished_at", "update_time",
    "updated_at", "updated" })
  local t0, s0 = when(created)
  local t1, s1 = when(finished)
  add("Created", s0)
  add("Finished", s1)
  if t0 and t1 and t1 >= t0 then add("Duration", duration(t1 - t0)) end
  local cost = res and res.cost or {}
  if type(cost.usd) == "number" then
    add("Cost", (cost.estimated and "~" or "") .. money(cost.usd) ..
      (cost.estimated and " (estimated)" or ""))
  elseif type(cost.credits) == "number" then
    add("Cost", num(cost.credits) .. " credits")
  end
  add("Counters", counters(task, extra))
  local out = { '<dl class="meta">' }
  for _, r in ipairs(rows) do
    out[#out + 1] = "<dt>" .. esc(r[1]) .. "</dt><dd>" .. esc(r[2]) .. "</dd>"
  end
  out[#out + 1] = "</dl>"
  return table.concat(out, "\n")
end

----------------------------------------------------------------------------------------------
-- Sources and citations.

local function domain(url)
  local host = type(url) == "string" and url:match("^%a[%w+.%-]*://([^/?#:]+)")
  return host and host:lower():gsub("^www%.", "") or nil
end

local function check_of(links, url)
  local by = links and (links.by_url or links)
  local t = by and url and by[url]
  return type(t) == "table" and t or nil
end

local function mark_html(t)
  if not t then return "" end
  if t.status == "ok" then return ' <span class="mark ok">✓ live</span>' end
  if t.status == "redirected" then
    return ' <span class="mark moved">↪ moved to ' .. esc(t.final_url or "?") .. "</span>"
  end
  local why = links_mod.mark({ by_url = { x = t } }, "x") or "dead link"
  return ' <span class="mark dead-mark">✗ ' .. esc(why) .. "</span>"
end

-- The numbered source list: <li id="src-N">, every source (cited or not).
local function source_list(sources, cited, links)
  if #sources == 0 then return "" end
  local out = { "<h2>Sources</h2>", '<ol class="sources">' }
  for _, s in ipairs(sources) do
    local url = s.url
    local title = s.title or domain(url) or url or "(no URL)"
    local link = url and md.safe_url(url) and ('<a href="' .. esc(url) .. '">' .. esc(title) ..
      "</a>") or esc(title)
    local d = domain(url)
    out[#out + 1] = string.format('<li id="src-%s" value="%s">%s%s%s%s%s</li>', num(s.n), num(s.n),
      link, d and (' <span class="domain">(' .. esc(d) .. ")</span>") or "",
      url and not md.safe_url(url) and (" " .. esc(url)) or "",
      mark_html(check_of(links, url)),
      cited and not cited[s.n] and ' <span class="uncited">(not cited)</span>' or "")
  end
  out[#out + 1] = "</ol>"
  return table.concat(out, "\n")
end

-- Markup for one citation group: its numbers as links to the source list.
local function cite_markup(nums, by_n, links)
  local parts = {}
  for i, n in ipairs(nums) do
    local s = by_n[n]
    if s then
      local t = check_of(links, s.url)
      local dead = t and links_mod.DEAD[t.status]
      parts[i] = string.format('<a href="#src-%s"%s>%s</a>', num(n),
        dead and ' class="dead" title="dead link"' or "", num(n))
    else
      parts[i] = '<span class="missing" title="no such source">' .. num(n) .. "</span>"
    end
  end
  return '<sup class="cites">[' .. table.concat(parts, ", ") .. "]</sup>"
end

----------------------------------------------------------------------------------------------

local function notes_html(list, class)
  if #list == 0 then return "" end
  local out = { '<div class="notes' .. (class and " " .. class or "") .. '">' }
  for _, n in ipairs(list) do out[#out + 1] = "<p>" .. esc(n) .. "</p>" end
  out[#out + 1] = "</div>"
  return table.concat(out, "\n")
end

local function page(title, parts)
  return table.concat({ "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
    -- Nothing may be fetched, even if some markup slipped through: styles inline only.
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; ' ..
      'style-src \'unsafe-inline\'; img-src data:">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>" .. esc(title) .. "</title>", "<style>" .. CSS .. "</style>", "</head>", "<body>",
    "<h1>" .. esc(title) .. "</h1>", table.concat(parts, "\n"), "</body>", "</html>", "" }, "\n")
end

M.page = page

--- How the page reads a task's provider, id and cost: dr.result once deepresearch.linkcheck has
-- loaded (dr.report does), else the shape alone (no provider, no cost). Set from outside, as
-- report/ never reaches the providers.
M.result_of = function(task)
  if read.is_result(task) then return task end
  return read.read(task)
end
M.esc, M.meta_rows, M.notes_html, M.source_list = esc, meta_rows, notes_html, source_list
M.cite_markup, M.check_of, M.str = cite_markup, check_of, str

-- A dead-link warning for the top: the cited sources whose check says dead.
local function dead_note(sources, cited, links)
  if not links then return "" end
  local dead = {}
  for _, s in ipairs(sources) do
    local t = cited[s.n] and check_of(links, s.url)
    if t and links_mod.DEAD[t.status] then dead[#dead + 1] = "[" .. num(s.n) .. "]" end
  end
  if #dead == 0 then return "" end
  return notes_html({ string.format("Cited link%s %s %s dead (marked in the sources below).",
    #dead > 1 and "s" or "", table.concat(dead, ", "), #dead > 1 and "are" or "is") }, "warn")
end
M.dead_note = dead_note

local function brief_of(t)
  for _, k in ipairs({ "brief", "query", "input", "prompt" }) do
    local s = type(t[k]) == "string" and t[k]:find("%S") and t[k]
    if s then return s end
  end
  return nil
end
M.brief_of = brief_of

local function head_of(s, n)
  s = s:gsub("%s+", " "):gsub("^ ", "")
  if #s <= n then return s end
  return s:sub(1, n):gsub("[\128-\191]*$", ""):gsub("[\192-\255]$", "") .. "…"
end
M.head_of = head_of

local function research_page(origin, res, v, opts)
  local R = report.internal
  local body = R.body_of(v)
  local cites, groups = R.collect(v, body)
  local cited = {}
  for _, c in ipairs(cites.list) do cited[c.n] = true end
  local links = opts.links
  local function cite(nums) return cite_markup(nums, v.by_n, links) end
  local title, content = opts.title
  if v.kind == "schema" then
    content = require("deepresearch.report.html_schema").table(v, origin, R, cite)
  elseif v.verbatim then
    content = "<pre><code>" .. esc(v.text) .. "</code></pre>"
  else
    local text, at = {}, 1
    for k, g in ipairs(groups) do
      text[#text + 1] = body:sub(at, g.s - 1):gsub("[\1-\4]", "")
      text[#text + 1] = md.CITE_OPEN .. k .. md.CITE_CLOSE
      at = g.e + 1
    end
    text[#text + 1] = body:sub(at):gsub("[\1-\4]", "")
    text = table.concat(text)
    local h1, rest = text:match("^#%s+([^\n]+)\n?(.*)$")
    if h1 and not title then
      title, text = h1:gsub(md.CITE_OPEN .. "%d+" .. md.CITE_CLOSE, ""), rest
    end
    content = md.render(text, function(k) return cite(groups[k].nums) end, 1)
  end
  local brief = brief_of(origin)
  title = title or (brief and head_of(brief, 90)) or "Research report"
  local missing = {}
  if #cites.dangling > 0 then
    local marks = {}
    for i, n in ipairs(cites.dangling) do marks[i] = "[" .. num(n) .. "]" end
    missing[1] = "Citation" .. (#marks > 1 and "s " or " ") .. table.concat(marks, ", ") ..
      (#marks > 1 and " have" or " has") .. " no matching source."
  end
  local extra = { num(#v.sources) .. " listed sources", num(#cites.list) .. " cited" }
  return page(title, {
    brief and ('<p class="brief">' .. esc(head_of(brief, 400)) .. "</p>") or "",
    meta_rows(origin, res, extra), notes_html(v.reasons), notes_html(missing, "warn"),
    dead_note(v.sources, cited, links), '<main class="report">', content, "</main>",
    source_list(v.sources, cited, links) })
end

--- The page for task (any provider's finished task or dr.result; a Deep Search results page).
-- opts: links (a check_links result), title. Returns the HTML, or nil, err (no_report).
function M.render(task, opts)
  options.table_arg("html", 1, task, false, 2)
  options.table_arg("html", 2, opts, true, 2)
  opts = opts or {}
  options.check("html", opts, FIELDS, 2)
  if links_mod.search_rows(task) then return require("deepresearch.report.html_search").render(
    task, opts) end
  local v, err = report.internal.view(task)
  if not v then return nil, err end
  local origin = read.is_result(task) and read.origin(task) or task
  local ok, res = pcall(M.result_of, task)
  res = ok and res or nil
  return research_page(origin, res, v, opts)
end

return M

-- Reports: resolve citations, map schema basis to URLs, and render a finished task as
-- markdown with footnotes, markdown with inline links, or plain text for a terminal.
-- Works on Extruct tasks (report.kind markdown|schema) and Valyu tasks (output + sources) as
-- they always did, and on every other shape report/read.lua reads (annotated or search-result
-- citations become numbered footnotes), or on a dr.result table.
local errors = require "deepresearch.base.errors"
local read = require "deepresearch.report.read"
local json = require "deepresearch.base.json"
local is_null = json.is_null
local is_sequence = json.is_sequence
local argcheck = require("deepresearch.base.validate").type

local M = {}

local STYLES = { footnotes = true, inline = true, plain = true }

local function present(v)
  return v ~= nil and not is_null(v)
end

-- Citation and source numbers are small positive integers. Anything else a server sends
-- (1e300, 20 digits) is not one: such a marker stays text, and string.format("%d") never sees
-- a number without an integer representation (it raises on Lua 5.3+).
local MAX_NUMBER = 2 ^ 53

-- cjson 2.1 on Lua 5.3+ decodes 3 as 3.0; "[^3.0]" would be a broken footnote.
local function as_id(v)
  local n = tonumber(v)
  if not n or n ~= n or n % 1 ~= 0 or n < 0 or n >= MAX_NUMBER then return nil end
  return math.floor(n)
end

local function num(n)
  return string.format("%d", n)
end

local function no_report(task, why)
  local id = task.id or task.deepresearch_id
  local msg = "task " .. (id and tostring(id) .. " " or "") .. "has no report"
  if present(task.status) then msg = msg .. " (status: " .. tostring(task.status) .. ")" end
  if type(why) == "string" or type(why) == "number" then msg = msg .. ": " .. tostring(why) end
  return nil, errors.new("no_report", msg, { task_id = id, task_status = task.status })
end

local function add_source(v, n, src)
  if not n or v.by_n[n] then return end
  local entry = { n = n, id = n, url = present(src.url) and tostring(src.url) or nil,
    title = present(src.title) and tostring(src.title) or nil }
  v.by_n[n] = entry
  v.sources[#v.sources + 1] = entry
end

local function reasons_of(list)
  local out = {}
  if type(list) == "table" then
    for _, r in ipairs(list) do
      if present(r) and tostring(r):find("%S") then out[#out + 1] = tostring(r) end
    end
  end
  return out
end

local function extruct_view(r)
  local v = { sources = {}, by_n = {}, reasons = reasons_of(r.degradation_reasons) }
  for _, s in ipairs(type(r.sources) == "table" and r.sources or {}) do
    if type(s) == "table" then add_source(v, as_id(s.id), s) end
  end
  local kind = r.kind
  if kind == "schema" or (kind == nil and type(r.fields) == "table") then
    v.kind = "schema"
    v.fields = type(r.fields) == "table" and r.fields or {}
    v.basis = type(r.basis) == "table" and r.basis or {}
  else
    v.kind = "markdown"
    v.text = type(r.markdown) == "string" and r.markdown or ""
  end
  return v
end

local function decode_json(text)
  local value = json.decode(text)
  if type(value) == "table" and value ~= json.null then return value end
  return nil
end

local function valyu_view(task)
  local v = { sources = {}, by_n = {}, reasons = {} }
  -- Valyu's [n] markers count sources from 1 in list order.
  for i, s in ipairs(type(task.sources) == "table" and task.sources or {}) do
    if type(s) == "table" then add_source(v, i, s) end
  end
  local status = present(task.status) and tostring(task.status) or nil
  if status == "failed" or status == "cancelled" then
    v.reasons[1] = "the task " .. status .. (present(task.error) and " (" .. tostring(task.error) ..
      ")" or "") ..
      "; this output may be partial."
  end
  local out, otype = task.output, task.output_type
  if type(out) == "string" and otype == "json" then out = decode_json(out) or out end
  if type(out) == "table" then
    v.kind, v.fields, v.basis = "schema", out, {}
  elseif otype == "toon" or otype == "json" then
    v.kind, v.text, v.verbatim = "markdown", tostring(out), true
  else
    v.kind, v.text = "markdown", tostring(out)
  end
  v.cost = type(task.cost) == "number" and task.cost or nil
  v.pdf_url = present(task.pdf_url) and tostring(task.pdf_url) or nil
  return v
end

-- A read.lua result: its text already carries [n] markers, and where it inserted them (marks)
-- they are the only citations (a "[2]" the API wrote is text).
local function result_view(res)
  if not res.text and not res.fields then
    return no_report(res, res.failure and res.failure.message or nil)
  end
  -- Marks point into the text; a structured answer renders its fields instead.
  local v = { sources = {}, by_n = {}, reasons = {}, groups = res.fields and {} or res.marks }
  for _, s in ipairs(res.sources) do add_source(v, s.n, s) end
  for i, note in ipairs(res.notes) do v.reasons[i] = note end
  if res.fields then
    v.kind, v.fields, v.basis = "schema", res.fields, {}
  else
    v.kind, v.text = "markdown", res.text
  end
  v.cost, v.estimated = res.cost and res.cost.usd, res.cost and res.cost.estimated
  return v
end

local ANNOTATED = { annotations_chars = true, annotations_bytes = true, search_results = true }

-- What every function needs from a task, whichever provider it came from.
local view
view = function(task)
  if read.is_result(task) then
    -- Extruct's and Valyu's own markers and layout: rendered from the task as always.
    local origin = read.origin(task)
    if origin and (task.citation_kind == "numbered" or task.citation_kind == "list") then
      return view(origin)
    end
    return result_view(task)
  end
  local r = task.report
  if type(r) == "table" then return extruct_view(r) end
  if (task.kind == "markdown" or task.kind == "schema") and (task.markdown ~= nil
    or task.fields ~= nil) then
    return extruct_view(task) -- a report table passed on its own
  end
  if ANNOTATED[read.guess(task)] then return result_view(read.read(task)) end
  if task.deepresearch_id ~= nil or task.output ~= nil then
    if not present(task.output) then
      return no_report(task, present(task.error) and task.error or nil)
    end
    return valyu_view(task)
  end
  return no_report(task, present(task.failure_reason) and task.failure_reason or nil)
end

----------------------------------------------------------------------------------------------
-- Citation markers: [1], [3, 5], [3,5], [3][5], [3-5], [3–5]. Not [text](url), [^1],
-- reference links [text][1], link definitions, escaped \[1], or anything in code.

local EN_DASH, EM_DASH = "\226\128\147", "\226\128\148"
local MAX_RANGE = 100

local function parse_group(inner)
  local s = inner:gsub(EN_DASH, "-"):gsub(EM_DASH, "-")
  if not s:find("^%s*%d[%d%s,;%-]*$") then return nil end
  local nums = {}
  for part in (s .. ","):gmatch("([^,;]*)[,;]") do
    local a = part:match("^%s*(%d+)%s*$")
    if a then
      nums[#nums + 1] = tonumber(a)
    else
      local x, y = part:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
      x, y = tonumber(x), tonumber(y)
      if not x or y < x or y - x > MAX_RANGE or y >= MAX_NUMBER then return nil end
      for n = x, y do nums[#nums + 1] = n end
    end
  end
  for _, n in ipairs(nums) do
    if n < 1 or n >= MAX_NUMBER then return nil end
  end
  return nums
end

local code_ranges = read.code_ranges

-- A link definition "[1]: url" starts its line (up to three spaces of indent).
local function at_line_start(text, s)
  local before = text:sub(math.max(1, s - 4), s - 1)
  return before:find("\n ? ? ?$") ~= nil or (s <= 4 and before:find("^ ? ? ?$") ~= nil)
end

--- The citation groups in text, in order: {s = first byte, e = last byte, nums = {...}}.
local function scan(text)
  local groups = {}
  local ranges = code_ranges(text)
  local ri = 1
  local prev_end, prev_was_citation = -1, false
  local at = 1
  while true do
    local s, e, inner = text:find("%[([^%[%]\n]*)%]", at)
    if not s then break end
    while ranges[ri] and ranges[ri][2] < s do ri = ri + 1 end
    local in_code = ranges[ri] and ranges[ri][1] <= s
    local nums = not in_code and parse_group(inner)
    local after = text:sub(e + 1, e + 1)
    if nums and (after == "(" or text:sub(s - 1,
      s - 1) == "\\" or (after == ":" and at_line_start(text, s))
      or (prev_end == s - 1 and not prev_was_citation)) then
      nums = nil
    end
    if nums then groups[#groups + 1] = { s = s, e = e, nums = nums } end
    prev_end, prev_was_citation = e, nums and true or false
    at = e + 1
  end
  return groups
end

-- Flattens basis to dotted paths: { a = { b = {1, 2} } } gives { ["a.b"] = {1, 2} }.
local function flatten_basis(basis, prefix, out)
  for k, v in pairs(basis) do
    local key = prefix and prefix .. "." .. tostring(k) or tostring(k)
    if type(v) == "table" and next(v) ~= nil and not is_sequence(v) then
      flatten_basis(v, key, out)
    else
      local ids = {}
      if type(v) == "table" then
        for _, x in ipairs(v) do ids[#ids + 1] = as_id(x) end
      elseif as_id(v) then
        ids[1] = as_id(v)
      end
      out[key] = ids
    end
  end
  return out
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local body_of -- the text a view renders to, before any style is applied

-- Citations of a view's body text (for schema reports, the laid-out fields with their
-- basis), in order of first appearance.
local function collect(v, body)
  local result = { list = {}, dangling = {}, unused = {} }
  local by_n = {}
  local groups = v.verbatim and {} or v.groups or scan(body)
  for _, g in ipairs(groups) do
    for _, n in ipairs(g.nums) do
      local c = by_n[n]
      if not c then
        local src = v.by_n[n]
        c = { n = n, id = n, url = src and src.url, title = src and src.title, positions = {} }
        if not src then
          c.dangling = true
          result.dangling[#result.dangling + 1] = n
        end
        by_n[n] = c
        result.list[#result.list + 1] = c
      end
      -- Offsets into a schema report's layout would point at text the API never sent.
      if v.kind ~= "schema" then c.positions[#c.positions + 1] = g.s end
    end
  end
  for _, s in ipairs(v.sources) do
    if not by_n[s.n] then
      result.unused[#result.unused + 1] = { n = s.n, id = s.n, url = s.url, title = s.title }
    end
  end
  for i, c in ipairs(result.list) do result[i] = c end
  return result, groups
end

--- The citations of a finished task: {list = {{n, url, positions}...}, dangling = {n...},
-- unused = {{n, url}...}}, with list's entries also at result[1..n]. nil, err without a report.
function M.citations(task)
  argcheck("citations", 1, task, "table")
  local v, err = view(task)
  if not v then return nil, err end
  return (collect(v, body_of(v)))
end

--- Maps each field (dotted path when nested) of a schema report to its sources' URLs.
-- Returns {} for markdown reports; nil, err without a report.
function M.basis(task)
  argcheck("basis", 1, task, "table")
  local v, err = view(task)
  if not v then return nil, err end
  local out = {}
  if v.kind ~= "schema" then return out end
  for key, ids in pairs(flatten_basis(v.basis, nil, {})) do
    local urls, seen = {}, {}
    for _, n in ipairs(ids) do
      local src = v.by_n[n]
      if src and src.url and not seen[src.url] then
        seen[src.url] = true
        urls[#urls + 1] = src.url
      end
    end
    out[key] = urls
  end
  return out
end

----------------------------------------------------------------------------------------------
-- Rendering.

local function scalar_text(x)
  if type(x) == "number" then
    if x % 1 == 0 and x > -2 ^ 53 and x < 2 ^ 53 then return num(x) end
    return string.format("%.14g", x)
  end
  if not present(x) then return "_none_" end
  return tostring(x)
end

local function inline_value(x)
  if type(x) ~= "table" then return scalar_text(x) end
  local parts = {}
  if next(x) == nil then return "_none_" end
  if is_sequence(x) then
    for i, item in ipairs(x) do parts[i] = inline_value(item) end
    return table.concat(parts, ", ")
  end
  for _, k in ipairs(sorted_keys(x)) do
    parts[#parts + 1] = tostring(k) .. ": " .. inline_value(x[k])
  end
  return table.concat(parts, "; ")
end

local function cite_line(ids)
  if not ids or #ids == 0 then return nil end
  local list = {}
  for i, n in ipairs(ids) do list[i] = num(n) end
  return "Sources: [" .. table.concat(list, ", ") .. "]"
end

-- A schema report's fields as markdown sections, each followed by the sources in its basis.
local function lay_out(value, path, level, basis, out)
  local keys = sorted_keys(value)
  for _, k in ipairs(keys) do
    local x = value[k]
    local key = path and path .. "." .. tostring(k) or tostring(k)
    out[#out + 1] = level <= 6 and string.rep("#", level) .. " " .. tostring(k) or "**" ..
      tostring(k) .. "**"
    if type(x) == "table" and next(x) ~= nil and not is_sequence(x) then
      out[#out + 1] = cite_line(basis[key])
      lay_out(x, key, level + 1, basis, out)
    else
      if type(x) == "table" then
        if next(x) == nil then
          out[#out + 1] = "_none_"
        else
          local bullets = {}
          for i, item in ipairs(x) do bullets[i] = "- " .. inline_value(item):gsub("\n", "\n  ") end
          out[#out + 1] = table.concat(bullets, "\n")
        end
      else
        out[#out + 1] = scalar_text(x)
      end
      out[#out + 1] = cite_line(basis[key])
    end
  end
end

body_of = function(v)
  if v.kind == "schema" then
    local sections = {}
    lay_out(v.fields, nil, 2, flatten_basis(v.basis, nil, {}), sections)
    return table.concat(sections, "\n\n")
  elseif v.verbatim then
    return "```\n" .. v.text:gsub("\n$", "") .. "\n```"
  end
  return (v.text:gsub("%s+$", ""))
end

-- Replaces each citation group by what `each` returns for it.
local function rewrite(text, groups, each)
  local out, at = {}, 1
  for _, g in ipairs(groups) do
    out[#out + 1] = text:sub(at, g.s - 1)
    out[#out + 1] = each(g) or text:sub(g.s, g.e)
    at = g.e + 1
  end
  out[#out + 1] = text:sub(at)
  return table.concat(out)
end

local function link_target(url)
  if url:find("[%s()<>]") then return "<" .. url:gsub("[<>]", "") .. ">" end
  return url
end

-- links: a report.check_links result, whose mark ("dead link: 404 not found") ends the line.
local function source_line(prefix, s, links)
  local line = prefix .. (s.url or "(no URL)")
  if s.title then line = line .. " - " .. s.title end
  local mark = links and require("deepresearch.report.links").mark(links, s.url)
  if mark then line = line .. " [" .. mark .. "]" end
  return line
end

local function money(cost)
  local s = string.format("%.4f", cost):gsub("0+$", "")
  if s:find("%.%d$") then return s .. "0" end
  if s:find("%.$") then return s .. "00" end
  return s
end

--- The markers ("[2]") of cited sources whose link a check_links result calls dead.
function M.dead_citations(list, links)
  local dead, by = {}, links.by_url or links
  local DEAD = require("deepresearch.report.links").DEAD
  for _, c in ipairs(list) do
    local t = c.url and by[c.url]
    if type(t) == "table" and DEAD[t.status] then dead[#dead + 1] = "[" .. num(c.n) .. "]" end
  end
  return dead
end

--- report.html(task, opts): report/html.lua. report.check_links(task, opts) sends requests, so
-- it lives outside report/ (deepresearch.linkcheck), which adds it here as dr.report loads.
function M.html(...) return require("deepresearch.report.html").render(...) end

--- Renders a finished task. opts.style: "footnotes" (default), "inline" or "plain"; opts.links:
-- a check_links result, whose dead links are marked on their source lines and listed on top.
-- Returns the text, or nil, err (code no_report) when the task has no report yet.
function M.render(task, opts)
  argcheck("render", 1, task, "table")
  argcheck("render", 2, opts, "table", true)
  local style = opts and opts.style or "footnotes"
  if not STYLES[style] then
    error(string.format("bad argument #2 to 'render' (style must be footnotes, inline or plain, " ..
      "got %s)",
      tostring(style)), 2)
  end
  local links = opts and opts.links
  if links ~= nil and type(links) ~= "table" then
    error("bad argument #2 to 'render' (links must be a check_links result)", 2)
  end
  local v, err = view(task)
  if not v then return nil, err end
  local body = body_of(v)
  local cites, groups = collect(v, body)

  local markdown = style ~= "plain"
  local parts = {}
  local note = markdown and "> Note: " or "Note: "
  local notes = {}
  for i, r in ipairs(v.reasons) do notes[i] = note .. r:gsub("\n", " ") end
  if #notes > 0 then parts[#parts + 1] = table.concat(notes, markdown and "\n>\n" or "\n") end
  if #cites.dangling > 0 then
    local marks = {}
    for i, n in ipairs(cites.dangling) do marks[i] = "[" .. num(n) .. "]" end
    parts[#parts + 1] = string.format("%sWarning: citation%s %s %s no matching source.",
      markdown and "> " or "",
      #marks > 1 and "s" or "", table.concat(marks, ", "), #marks > 1 and "have" or "has")
  end

  if style == "footnotes" then
    body = rewrite(body, groups, function(g)
      local out, any = {}, false
      for _, n in ipairs(g.nums) do
        if v.by_n[n] then any = true end
        out[#out + 1] = (v.by_n[n] and "[^" or "[") .. num(n) .. "]"
      end
      return any and table.concat(out) or nil
    end)
  elseif style == "inline" then
    body = rewrite(body, groups, function(g)
      local out, any = {}, false
      for _, n in ipairs(g.nums) do
        local s = v.by_n[n]
        if s and s.url then
          any = true
          out[#out + 1] = "[[" .. num(n) .. "]](" .. link_target(s.url) .. ")"
        else
          out[#out + 1] = "[" .. num(n) .. "]"
        end
      end
      return any and table.concat(out) or nil
    end)
  end
  local dead = links and M.dead_citations(cites.list, links) or {}
  if #dead > 0 then
    parts[#parts + 1] = string.format("%sWarning: cited link%s %s %s dead (see the sources).",
      markdown and "> " or "", #dead > 1 and "s" or "", table.concat(dead, ", "),
      #dead > 1 and "are" or "is")
  end
  if body ~= "" then parts[#parts + 1] = body end

  if style == "footnotes" then
    local defs = {}
    for _, s in ipairs(cites.list) do
      if not s.dangling then defs[#defs + 1] = source_line("[^" .. num(s.n) .. "]: ", s, links) end
    end
    if #defs > 0 then parts[#parts + 1] = table.concat(defs, "\n") end
  end
  if markdown and #cites.unused > 0 then
    local lines = { #cites.list > #cites.dangling and "Other sources:" or "Sources:", "" }
    for _, s in ipairs(cites.unused) do
      lines[#lines + 1] = source_line("- [" .. num(s.n) .. "] ", s, links)
    end
    parts[#parts + 1] = table.concat(lines, "\n")
  elseif not markdown and #v.sources > 0 then
    local lines = { "Sources" }
    for _, s in ipairs(v.sources) do
      lines[#lines + 1] = source_line("[" .. num(s.n) .. "] ", s, links)
    end
    parts[#parts + 1] = table.concat(lines, "\n")
  end

  local trailer = {}
  if v.cost then
    trailer[#trailer + 1] = v.estimated and "Cost: ~$" .. money(v.cost) .. " (estimated)" or
      "Cost: $" .. money(v.cost)
  end
  if v.pdf_url then trailer[#trailer + 1] = "PDF: " .. v.pdf_url end
  if #trailer > 0 then
    if markdown then parts[#parts + 1] = "---" end
    parts[#parts + 1] = table.concat(trailer, " | ")
  end
  return table.concat(parts, "\n\n") .. "\n"
end

----------------------------------------------------------------------------------------------

--- Reads a task saved as JSON. Returns the task table (deepresearch.base.json.decode: nulls
-- removed from objects, as in the tables the client returns), or nil, err with code "io"
-- (cannot read) or "decode" (not JSON, or not an object).
function M.load(path)
  argcheck("load", 1, path, "string")
  local f, msg = io.open(path, "rb")
  if not f then
    return nil, errors.new("io", "cannot read task file: " .. tostring(msg), { path = path })
  end
  local text = f:read("*a")
  f:close()
  local value, why = json.decode(text or "")
  if value == nil then
    return nil, errors.new("decode", path .. " is not valid JSON: " .. tostring(why),
      { path = path })
  end
  if type(value) ~= "table" or value == json.null or json.is_array_marked(value) or
    (next(value) ~= nil and is_sequence(value)) then
    return nil, errors.new("decode", path .. " does not hold a task object", { path = path })
  end
  return value
end

-- For report/html.lua: the same reading of a task the renderers use.
M.internal = { view = view, collect = collect, body_of = body_of, flatten_basis = flatten_basis }

return M

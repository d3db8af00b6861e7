-- dr.compare(results [, errors]): what several providers made of one brief, side by side.
-- results[provider] = a finished task (dr.fanout's), errors[provider] = its err. Returns
--   { order = { provider ... },
--     providers = { [p] = { state, duration, cost = { usd, credits, estimated }, report_length,
--                           source_count, sources = { normalised url ... },
--                           cited, cited_sources = { normalised url ... }, cited_from, error } },
--     common = { url ... },          -- sources every provider with a report cited
--     unique = { [p] = { url ... } }, -- sources only that provider cited
--     agreement = { [p] = share } }   -- of its cited sources, the share another one cited too
-- "Cited" means what the report's citation markers point at (report.citations, the same
-- resolution the renderer uses): an Extruct report also lists "Other sources" it never cites,
-- and those say nothing about agreement. A report with no marker at all (a Valyu answer without
-- [n], a structured answer) falls back to its whole source list: cited_from = "sources" then,
-- "markers" otherwise. source_count stays the number of sources listed.
-- Reports and sources are read through dr.result (report/read.lua), never per-provider code;
-- URLs are compared normalised (M.normalise_url). Never raises on what a server sent.
local result = require "deepresearch.result"
local report = require "deepresearch.report"
local validate = require "deepresearch.base.validate"

local M = {}

-- Query parameters that track a click and never change the page.
M.TRACKING = { gclid = true, fbclid = true, dclid = true, msclkid = true, yclid = true,
  ref = true, ref_src = true, ref_url = true, igshid = true, mc_cid = true, mc_eid = true,
  _hsenc = true, _hsmi = true, mkt_tok = true, spm = true }

local function tracking(name)
  name = name:lower()
  return M.TRACKING[name] == true or name:sub(1, 4) == "utm_"
end

--- A URL as compared: no scheme, host lower-cased without "www." and a default port, no
-- fragment, no tracking parameters, no trailing slash. A string that is not an http(s) URL
-- comes back trimmed.
function M.normalise_url(url)
  if type(url) ~= "string" then return nil end
  url = url:match("^%s*(.-)%s*$")
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then return url end
  rest = rest:gsub("#.*$", "")
  local host, path = rest:match("^([^/?]*)(.*)$")
  host = host:gsub("^[^@]*@", ""):lower():gsub("%.$", "")
  host = host:gsub(":80$", ""):gsub(":443$", ""):gsub("^www%.", "")
  local p, query = path:match("^([^?]*)%??(.*)$")
  local kept = {}
  for pair in query:gmatch("[^&;]+") do
    local name = pair:match("^([^=]*)")
    if not tracking(name) then kept[#kept + 1] = pair end
  end
  p = p:gsub("/+$", "")
  return host .. p .. (#kept > 0 and ("?" .. table.concat(kept, "&")) or "")
end

-- Characters in a UTF-8 text (bytes that do not continue a character).
local function length(text)
  if type(text) ~= "string" then return 0 end
  local _, n = text:gsub("[^\128-\191]", "")
  return n
end

-- Seconds a task ran: fanout's own timing, else the task's own timestamps.
local function duration(task)
  local d = require("deepresearch.fanout").duration(task)
  if d then return d end
  local dates = require "deepresearch.base.dates"
  local function t(v)
    if type(v) == "number" then return v end
    if type(v) == "string" then
      local ok, r = pcall(dates.parse_iso, v)
      return ok and r or nil
    end
    return nil
  end
  local from = t(task.created_at) or t(task.created)
  local to = t(task.completed_at) or t(task.updated_at) or t(task.updated)
  if from and to and to >= from then return to - from end
  return nil
end

-- The distinct normalised URLs of a list of { url = ... } entries, in order.
local function urls_of(list)
  local out, set = {}, {}
  for _, src in ipairs(type(list) == "table" and list or {}) do
    local u = type(src) == "table" and M.normalise_url(src.url) or nil
    if u and u ~= "" and not set[u] then
      set[u] = true
      out[#out + 1] = u
    end
  end
  return out, set
end

-- What a report cites: the URLs its markers resolve to and "markers", or, when it has no marker
-- at all, every source it lists and "sources". A dangling marker (no such source) counts as a
-- marker and cites no URL.
local function cited_of(res, listed, listed_set)
  local ok, cites = pcall(report.citations, res)
  if ok and type(cites) == "table" and type(cites.list) == "table" and #cites.list > 0 then
    local urls, set = urls_of(cites.list)
    return urls, set, "markers"
  end
  return listed, listed_set, "sources"
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- Compares finished tasks (see the top of this file).
function M.compare(results, errs)
  validate.type("compare", 1, results, "table")
  validate.type("compare", 2, errs, "table", true)
  errs = errs or {}
  local seen = {}
  for k in pairs(results) do seen[k] = true end
  for k in pairs(errs) do seen[k] = true end
  local out = { order = sorted_keys(seen), providers = {}, common = {}, unique = {},
    agreement = {} }
  local cited = {} -- provider -> set of normalised urls
  local with_report = {}
  for _, name in ipairs(out.order) do
    local task = results[name]
    local row = { sources = {}, source_count = 0, cited_sources = {}, cited = 0,
      report_length = 0 }
    out.providers[name] = row
    if type(task) == "table" then
      local ok, res = pcall(result, task, type(name) == "string" and
        require("deepresearch.providers").get(name) and name or nil)
      if ok and res then
        row.state = res.state
        row.cost = res.cost
        row.report_length = length(res.text)
        row.degraded = res.degraded or nil
        local listed, listed_set = urls_of(res.sources)
        row.sources, row.source_count = listed, #listed
        local set
        row.cited_sources, set, row.cited_from = cited_of(res, listed, listed_set)
        row.cited = #row.cited_sources
        cited[name] = set
        with_report[#with_report + 1] = name
      end
      row.duration = duration(task)
    end
    local err = errs[name]
    if type(err) == "table" and not row.state then
      row.state = err.code == "cancelled" and "cancelled" or "failed"
      row.error = { code = err.code, message = err.message }
      if type(err.task) == "table" then row.duration = duration(err.task) end
    end
  end
  -- Which providers cited each URL.
  local by = {}
  for _, name in ipairs(with_report) do
    for u in pairs(cited[name]) do
      by[u] = by[u] or {}
      by[u][#by[u] + 1] = name
    end
  end
  for _, u in ipairs(sorted_keys(by)) do
    if #with_report > 1 and #by[u] == #with_report then out.common[#out.common + 1] = u end
  end
  for _, name in ipairs(with_report) do
    local unique, shared = {}, 0
    for _, u in ipairs(out.providers[name].cited_sources) do
      if #by[u] == 1 then unique[#unique + 1] = u else shared = shared + 1 end
    end
    table.sort(unique)
    out.unique[name] = unique
    local n = out.providers[name].cited
    out.agreement[name] = n > 0 and shared / n or nil
    out.providers[name].agreement = out.agreement[name]
  end
  return out
end

return M

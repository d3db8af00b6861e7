-- The pure half of report.check_links (issue 19 part 5): which URLs a task's report cites and
-- how often, which ones are never requested (and why), what a finished request means for a
-- link, and the marks a rendered report shows. The requests themselves go out from
-- deepresearch.linkcheck, on the C core (report/ never reaches the core: architecture_spec).
local json = require "deepresearch.base.json"

local M = {}

M.MAX_REDIRECTS = 5
M.BODY_CAP = 16 * 1024 -- a server that ignores Range is cut here; the status is all we read
M.DEAD = { not_found = true, gone = true, unreachable = true, timeout = true }

local CURLE_TOO_MANY_REDIRECTS = 47
local HEAD_REFUSED = { [405] = true, [501] = true, [403] = true }

local function present(v) return v ~= nil and not json.is_null(v) end

--- The rows of an Extruct Deep Search result ({ task..., results = rows }), or nil.
function M.search_rows(task)
  local rows = task.results
  if type(rows) ~= "table" or json.is_null(rows) then return nil end
  local first = rows[1]
  if first ~= nil and not (type(first) == "table" and present(first.company_name)) then
    return nil
  end
  if first == nil and not present(task.query) then return nil end
  return rows
end

--- A search row's source URLs, criterion by criterion (sorted keys), each once.
function M.row_sources(row, seen, out)
  local scores = type(row) == "table" and type(row.scores) == "table" and row.scores or {}
  local keys = {}
  for k in pairs(scores) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local s = scores[k]
    for _, url in ipairs(type(s) == "table" and type(s.sources) == "table" and s.sources or {}) do
      if type(url) == "string" and not seen[url] then
        seen[url] = true
        out[#out + 1] = url
      end
    end
  end
  return out
end

--- What to check: { {url, n = {numbers citing it}, cited} }, missing, uncited; or nil, err.
function M.targets(task)
  local list, by_url, missing, uncited = {}, {}, {}, {}
  local function add(url, n, cited)
    local t = by_url[url]
    if not t then
      t = { url = url, n = {}, cited = false }
      by_url[url] = t
      list[#list + 1] = t
    end
    if n then t.n[#t.n + 1] = n end
    t.cited = t.cited or cited
  end
  local rows = M.search_rows(task)
  if rows then
    local seen, urls = {}, {}
    for _, row in ipairs(rows) do M.row_sources(row, seen, urls) end
    for _, url in ipairs(urls) do add(url, nil, true) end
    return list, missing, uncited
  end
  local cites, err = require("deepresearch.report").citations(task)
  if not cites then return nil, err end
  for _, c in ipairs(cites.list) do
    if c.url then add(c.url, c.n, true) end
  end
  for i, n in ipairs(cites.dangling) do missing[i] = n end
  for _, s in ipairs(cites.unused) do
    uncited[#uncited + 1] = { n = s.n, url = s.url, title = s.title }
    if s.url then add(s.url, s.n, false) end
  end
  return list, missing, uncited
end

--- Why a URL is not requested at all, or nil.
function M.refusal(url)
  local scheme = url:match("^(%a[%w+.%-]*):")
  if not scheme or (scheme:lower() ~= "http" and scheme:lower() ~= "https") then
    return "not an http or https URL"
  end
  if url:find("[%c%s]") then return "malformed URL (spaces or control characters)" end
  local authority = url:match("^%a[%w+.%-]*://([^/?#]*)")
  if not authority or authority == "" then return "malformed URL (no host)" end
  if authority:find("@", 1, true) then
    return "the URL carries credentials (user@host); not sent"
  end
  return nil
end

--- The core request for link t (HEAD, or the ranged GET after a refused HEAD).
function M.request(t, method, timeout, ua)
  local h = { "Accept: */*", "User-Agent: " .. ua }
  if method == "GET" then h[#h + 1] = "Range: bytes=0-0" end
  return { method = method, url = t.url, headers = h, decode = false, timeout = timeout }
end

--- Sets t's status from a core result; true when a ranged GET should follow.
function M.settle(t, res)
  if res.error then
    t.final_url = res.final_url ~= t.url and res.final_url or nil
    if res.error == "timeout" then
      t.status, t.reason = "timeout", "no answer within the timeout"
    elseif res.curl_code == CURLE_TOO_MANY_REDIRECTS then
      t.status = "unreachable"
      t.reason = "more than " .. M.MAX_REDIRECTS .. " redirects"
    else
      t.status, t.reason = "unreachable", tostring(res.message or res.error)
    end
    return false
  end
  local code = res.status
  if t.method == "HEAD" and HEAD_REFUSED[code] then return true end
  t.http_status = code
  if res.final_url and (res.redirects or 0) > 0 and res.final_url ~= t.url then
    t.final_url = res.final_url
  end
  if code >= 200 and code < 300 then
    t.status = t.final_url and "redirected" or "ok"
  elseif code == 404 then
    t.status = "not_found"
  elseif code == 410 then
    t.status = "gone"
  else
    t.status, t.reason = "unreachable", "HTTP " .. tostring(code)
  end
  return false
end

local LABEL = { not_found = "404 not found", gone = "410 gone", timeout = "timed out" }

--- The mark a rendered source line gets from a check: "dead link: 404 not found", ...; nil
-- for a live link (a redirect says where it went).
function M.mark(checked, url)
  local by = type(checked) == "table" and (checked.by_url or checked) or nil
  local t = by and url and by[url]
  if type(t) ~= "table" then return nil end
  if t.status == "redirected" and t.final_url then return "moved to " .. t.final_url end
  if not M.DEAD[t.status] then return nil end
  local why = LABEL[t.status] or (t.reason and "unreachable: " .. t.reason) or "unreachable"
  return "dead link: " .. why
end

return M

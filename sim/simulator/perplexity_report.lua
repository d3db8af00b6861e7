-- luacheck: std lua54
-- What a Perplexity run produces (perplexity-agent.md A.5, A.6; PART C PA8): search_results
-- items whose result ids come in blocks of 10 per search call, the blocks in a shuffled order;
-- fetch_url_results without ids; one final message whose markdown cites with the preset's
-- marker style ([N] glued for fast, [web:N] otherwise, markdown links under custom
-- instructions), sections, a table with markers in its cells, and non-ASCII text.
local common = require "simulator.responses_common"
local text = require "simulator.responses_content"

local M = {}

local function shuffled(r, n)
  local perm = {}
  for i = 1, n do perm[i] = i end
  for i = n, 2, -1 do
    local j = r:random(i)
    perm[i], perm[j] = perm[j], perm[i]
  end
  return perm
end

local function search_item(task, r, block)
  local m = r:random(5, 10)
  local results = {}
  for j, src in ipairs(text.sources(r, task.topic, m)) do
    local res = { id = (block - 1) * 10 + j, url = src.url, title = src.title,
      snippet = src.snippet, source = "web" }
    if r:random() < 0.7 then res.date = src.date end
    if r:random() < 0.5 then res.last_updated = src.date end
    results[j] = res
  end
  local queries = {}
  for q = 1, r:random(1, 3) do
    queries[q] = task.topic .. ({ " overview", " 2026", " market size", " régulation" })[q]
  end
  return { type = "search_results", queries = queries, results = results }
end

local function fetch_item(task, r)
  local src = text.sources(r, task.topic, 1)[1]
  return { type = "fetch_url_results", contents = { { url = src.url, title = src.title,
    snippet = src.snippet } } }
end

local function plan_items(task, r)
  local p = task.engine.p
  local n = r:random(p.searches[1], p.searches[2])
  local f = r:random(p.fetches[1], p.fetches[2])
  if task.max_tool_calls then -- a cap on every tool call (0 disables the preset's tools too)
    n = math.min(n, task.max_tool_calls)
    f = math.min(f, task.max_tool_calls - n)
  end
  local perm, d = shuffled(r, n), task.finish - task.start
  task.items, task.results = {}, {}
  for k = 1, n + f do
    local item = k <= n and search_item(task, r, perm[k]) or fetch_item(task, r)
    task.items[k] = { t = task.start + d * 0.9 * (k - 0.5) / (n + f), item = item,
      search = k <= n }
    for _, res in ipairs(item.results or {}) do task.results[#task.results + 1] = res end
  end
end

-- One citation for a result, in the run's style.
local function marker(style, res, r)
  if style == "link" then return " [" .. res.title .. "](" .. res.url .. ")" end
  if style == "bracket" then return "[" .. res.id .. "]" end
  return (r:random() < 0.3 and " " or "") .. "[web:" .. res.id .. "]"
end

local function cite(task, r, style)
  local list = task.results
  if #list == 0 then return "" end
  local out = marker(style, r:pick(list), r)
  if r:random() < 0.3 then
    local second = marker(style, r:pick(list), r)
    out = out .. (style == "link" and second or second:gsub("^ ", ""))
  end
  return out
end

local function write(task, r, c)
  local style = (task.instructions and c.links_with_instructions) and "link"
    or task.engine.p.style
  local out = { "## " .. task.topic .. " — Überblick", "" }
  for _, sec in ipairs(text.plan(r, task.topic, #task.results)) do
    out[#out + 1] = "## " .. sec.title
    out[#out + 1] = ""
    local para = {}
    for j, claim in ipairs(sec.claims) do para[j] = claim.text .. cite(task, r, style) .. "." end
    out[#out + 1] = table.concat(para, " ")
    out[#out + 1] = ""
  end
  out[#out + 1] = "| Kennzahl | Wert | Quelle |"
  out[#out + 1] = "|---|---|---|"
  out[#out + 1] = "| Marktvolumen | €4.2 bn | " .. cite(task, r, style) .. " |"
  out[#out + 1] = "| Wachstum (CAGR) | 12 % | " .. cite(task, r, style) .. " |"
  local tail = {}
  if c.dangling_marker and #task.results > 0 then
    tail[#tail + 1] = style == "bracket" and "[999]" or "[web:999]"
  end
  if c.page_marker then tail[#tail + 1] = "[page:1]" end
  if #tail > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "Further context is in the attached material " .. table.concat(tail) .. "."
  end
  task.text = table.concat(out, "\n")
end

--- Plans items, result ids and the report text for a task (times must be planned).
function M.plan(task, r, c)
  plan_items(task, r)
  if c.duplicate_id and #task.items > 0 and task.items[1].search then
    local first = task.items[1].item.results
    first[#first + 1] = { id = first[1].id, url = "https://duplicate.example/other-page",
      title = "Another page with a repeated id", snippet = "…", source = "web" }
  end
  write(task, r, c)
end

--- Search and fetch items the run has made by virtual time `upto`.
function M.counts(task, upto)
  local s, f = 0, 0
  for _, e in ipairs(task.items) do
    if e.t <= upto then
      if e.search then s = s + 1 else f = f + 1 end
    end
  end
  return s, f
end

--- The final message item (status "completed", or "incomplete" with the text cut).
function M.message(task, status, app)
  local body = task.text
  if status == "incomplete" then
    local n = math.floor(common.chars(body) * 0.6)
    body = body:sub(1, (utf8.offset(body, n + 1) or #body + 1) - 1)
  end
  return { id = task.msg_id, type = "message", role = "assistant",
    status = status == "incomplete" and "incomplete" or "completed",
    content = { { type = "output_text", text = body, annotations = app.empty_array } } }
end

return M

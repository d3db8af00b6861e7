-- What a simulated Valyu task "finds": sources, a cited markdown report, HITL checkpoint data and
-- deliverables (structured output lives in valyu_structured.lua). Every task draws from its
-- own small PRNG, seeded once at create, so the content does not depend on how often or in what
-- order anyone polls (same simulator seed, same requests => same bytes).
local json = require("simulator.valyu_json")
local pages = require "simulator.pages"

local M = {}

-- Park-Miller "minimal standard" generator: products stay below 2^53, exact on any Lua number.
local Rng = {}
Rng.__index = Rng

function M.rng(seed)
  local s = math.floor(seed) % 2147483647
  if s <= 0 then s = s + 2147483646 end
  return setmetatable({ s = s }, Rng)
end

function Rng:next()
  self.s = (self.s * 48271) % 2147483647
  return self.s
end

function Rng:int(m, n)
  return m + self:next() % (n - m + 1)
end

function Rng:pick(list)
  return list[self:int(1, #list)]
end

function Rng:hex(n)
  local out = {}
  for i = 1, n do out[i] = string.format("%x", self:int(0, 15)) end
  return table.concat(out)
end

function Rng:uuid()
  local h = self:hex(32)
  local variant = string.format("%x", 8 + self:int(0, 3))
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-4" .. h:sub(14, 16) .. "-" .. variant
    .. h:sub(18, 20) .. "-" .. h:sub(21, 32)
end

-- UTF-8 aware helpers (queries are user text; invalid UTF-8 falls back to bytes).
-- Counting lead bytes (not 10xxxxxx) gives code points for valid UTF-8, bytes otherwise.
function M.length(s)
  local _, n = s:gsub("[^\128-\191]", "")
  return n
end

local function clip(s, n)
  if M.length(s) <= n then return s end
  local count = 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 128 or b > 191 then
      count = count + 1
      if count > n then return s:sub(1, i - 1) end
    end
  end
  return s
end
M.clip = clip

local function keywords(query)
  local seen, words = {}, {}
  for w in query:lower():gmatch("[%w%-]+") do
    if #w > 3 and not seen[w] and #words < 6 then
      seen[w] = true
      words[#words + 1] = w
    end
  end
  if #words == 0 then words[1] = "research" end
  return words
end

function M.topic(query)
  local t = query:gsub("%[[%w%-]+%]", ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if t == "" then t = "Research topic" end
  return clip(t, 80)
end

local PUBLISHERS = {
  { "www.nature.com", "Nature", "academic" },
  { "www.reuters.com", "Reuters", "web" },
  { "arxiv.org", "arXiv", "academic" },
  { "www.ft.com", "Financial Times", "finance" },
  { "pubmed.ncbi.nlm.nih.gov", "PubMed", "academic" },
  { "www.sec.gov", "SEC EDGAR", "finance" },
  { "en.wikipedia.org", "Wikipedia", "web" },
  { "www.oecd.org", "OECD", "web" },
  { "patents.google.com", "Google Patents", "patent" },
  { "www.bloomberg.com", "Bloomberg", "finance" },
  { "www.science.org", "Science", "academic" },
  { "www.brookings.edu", "Brookings", "web" },
}

local ANGLES = {
  "market overview", "recent developments", "key players", "regulatory landscape",
  "technical analysis", "risks and open questions", "historical context", "quantitative data",
  "expert commentary", "case studies", "outlook", "comparative study",
}

local SOURCE_COUNT = { instant = 3, fast = 4, standard = 6, heavy = 8, max = 12 }

--- Everything a task will report, drawn at create time.
function M.plan(rng, query, mode)
  local topic = M.topic(query)
  local words = keywords(topic)
  local slug = table.concat(words, "-", 1, math.min(3, #words))
  local sources = {}
  for i = 1, SOURCE_COUNT[mode] or 6 do
    local pub = rng:pick(PUBLISHERS)
    local angle = ANGLES[(i - 1) % #ANGLES + 1]
    sources[i] = {
      title = string.format("%s: %s (%s)", pub[2], topic, angle),
      url = pages.map(string.format("https://%s/%s/%s-%s", pub[1],
        angle:gsub("%s", "-"):gsub("[^%w%-]", ""), slug, rng:hex(6))),
      snippet = string.format("%s on %s: %s.", pub[2], angle, clip(topic, 60)),
      source = pub[3],
      category = pub[3],
      word_count = rng:int(400, 6000),
    }
  end
  return { topic = topic, words = words, sources = sources, seed = rng:next() }
end

--- Sources found after `fraction` of the work (at least one).
function M.sources_at(content, fraction)
  local n = #content.sources
  local k = math.max(1, math.min(n, math.floor(n * fraction + 0.5)))
  local out = json.array()
  for i = 1, k do out[i] = content.sources[i] end
  return out
end

--- A markdown report citing [n] = 1-based positions in `sources`.
function M.markdown(content, sources, opts)
  local lines = { "# " .. content.topic, "" }
  if opts.partial then
    lines[#lines + 1] = string.format("_Partial report: research stopped at step %d of %d._",
      opts.step, opts.total)
    lines[#lines + 1] = ""
  end
  lines[#lines + 1] = "## Summary"
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format("This report examines %s across %d sources [1].", content.topic,
    #sources)
  lines[#lines + 1] = ""
  lines[#lines + 1] = "## Findings"
  for i, s in ipairs(sources) do
    lines[#lines + 1] = ""
    lines[#lines + 1] = string.format("### %d. %s", i,
      ANGLES[(i - 1) % #ANGLES + 1]:gsub("^%l", string.upper))
    local also = (i < #sources) and string.format(" [%d]", i + 1) or ""
    lines[#lines + 1] = string.format("%s [%d].%s", s.snippet, i, also)
  end
  if opts.instructions and #opts.instructions > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "## Follow-up instructions addressed"
    for _, ins in ipairs(opts.instructions) do
      lines[#lines + 1] = "- " .. clip(ins, 200)
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "## Sources"
  for i, s in ipairs(sources) do
    lines[#lines + 1] = string.format("%d. [%s](%s)", i, s.title, s.url)
  end
  return table.concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------------------------------------------
-- HITL checkpoint payloads and deliverables.

-- The real payload shapes (the official CLI's handlers): planning_questions {questions =
-- [{question, context?}]}, plan_review {plan, research_areas, estimated_steps}, source_review
-- {domains = [{domain, source_count, avg_relevance_score, ai_recommendation}]}, outline_review
-- {outline (a string), sections}.
local checkpoint = {}

function checkpoint.planning_questions(content)
  return { questions = json.array({
    { question = "Which time period should the research cover?",
      context = "Recent developments differ a lot from the historical picture." },
    { question = "Which regions or markets matter most for " .. clip(content.topic, 60) .. "?" },
  }) }
end

function checkpoint.plan_review(content, task)
  local steps, areas = {}, json.array()
  for i, w in ipairs(content.words) do
    steps[i] = string.format("%d. Investigate %s", i, w)
    areas[i] = w
  end
  steps[#steps + 1] = string.format("%d. Write the report", #steps + 1)
  return { plan = table.concat(steps, "\n"), research_areas = areas,
    estimated_steps = task.total_steps }
end

function checkpoint.source_review(content)
  local domains, by_name = json.array(), {}
  for i, s in ipairs(content.sources) do
    local d = s.url:match("^https://([^/]+)")
    if d then
      local entry = by_name[d]
      if not entry then
        -- deterministic scores from the source's position: early sources rank higher
        local score = math.floor((0.95 - 0.07 * (i - 1)) * 100 + 0.5) / 100
        entry = { domain = d, source_count = 0, avg_relevance_score = math.max(0.05, score),
          ai_recommendation = score >= 0.6 and "include" or "exclude" }
        by_name[d] = entry
        domains[#domains + 1] = entry
      end
      entry.source_count = entry.source_count + 1
    end
  end
  return { domains = domains }
end

function checkpoint.outline_review(content)
  local sections = json.array({ "Summary", "Findings", "Sources" })
  local lines = { "# " .. content.topic }
  for _, name in ipairs(sections) do lines[#lines + 1] = "## " .. name end
  return { outline = table.concat(lines, "\n"), sections = sections }
end

--- The `data` of an interaction of type `kind` for a task.
function M.checkpoint_data(content, kind, task)
  return (checkpoint[kind] or checkpoint.outline_review)(content, task)
end

local DELIVERABLE_TYPES = {
  { "csv", "csv" }, { "spreadsheet", "xlsx" }, { "excel", "xlsx" }, { "xlsx", "xlsx" },
  { "powerpoint", "pptx" }, { "slides", "pptx" }, { "pptx", "pptx" }, { "word", "docx" },
  { "docx", "docx" }, { "pdf", "pdf" },
}

local function deliverable_type(text)
  local lower = text:lower()
  for _, pair in ipairs(DELIVERABLE_TYPES) do
    if lower:find(pair[1], 1, true) then return pair[2] end
  end
  return "unknown"
end

--- DeliverableResult objects for the requested deliverables (a type we cannot tell is `failed`).
function M.deliverables(rng, requested, task_url, created_at, token)
  local out = json.array()
  for i, d in ipairs(requested) do
    local text = type(d) == "table" and (d.description or d.type or "") or tostring(d)
    local kind = type(d) == "table" and d.type or deliverable_type(text)
    local id = "dlv_" .. rng:hex(16)
    local item = {
      id = id, request = text, type = kind, title = string.format("Deliverable %d (%s)", i, kind),
      description = clip(text, 500), created_at = math.floor(created_at),
    }
    if kind == "unknown" then
      item.status = "failed"
      item.error = "Could not determine the deliverable type"
    else
      item.status = "completed"
      item.url = string.format("%s/assets/%s?token=%s", task_url, id, token)
      if kind == "csv" or kind == "xlsx" then
        item.row_count, item.column_count = rng:int(5, 50), rng:int(3, 8)
      end
    end
    out[i] = item
  end
  return out
end

return M

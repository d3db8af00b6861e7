-- luacheck: std lua54
-- What a simulated Gemini Deep Research run produces (gemini.md Part C, G5-G9): the steps it
-- appends while it runs, the markdown report with UTF-8 byte-range url_citation annotations,
-- the collaborative-planning plan and the usage block. Pure functions of a seeded RNG.
local content = require "simulator.content"
local pages = require "simulator.pages"

local M = {}

-- A 1x1 PNG: the chart a prompt asking for one gets when visualization is "auto".
M.PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E"
  .. "rkJggg=="

local DOMAINS = { "reuters.com", "ft.com", "lemonde.fr", "nikkei.com", "statista.com",
  "wikipedia.org", "bloomberg.com", "heise.de", "aljazeera.com", "nature.com", "oecd.org",
  "techcrunch.com" }

local ASPECTS = { "market size", "competitors", "pricing", "regulation", "funding", "customers",
  "technology", "risks", "outlook", "history", "supply chain", "reviews" }

-- Non-ASCII on purpose: byte offsets differ from character offsets in every cited sentence.
local SENTENCES = {
  "Le marché de %s a progressé d'environ 12 %% en 2025 — selon les données publiées",
  "Analysts describe %s's position as « solide » despite a crowded field",
  "In Japan (日本), %s is mostly sold through resellers",
  "Revenue estimates for %s range from €40 M to €55 M; figures are not audited",
  "Customer reviews of %s cite naïve onboarding but praise the café-style support desk",
  "Regulators in the EU (Straße-level enforcement aside) have opened no case against %s",
  "%s's roadmap mentions a “next-generation” platform for 2027",
  "Competitors benchmark against %s on price ≈ 10–15 %% lower",
}

local TITLES = { "Überblick", "Marktposition", "Risiken", "Ausblick" }

-- The subject a prompt names, for readable text (a fixed word when it names none).
function M.target(text)
  -- A leading lower-case word: a name that opens the prompt is not read as a sentence start.
  return content.target("about " .. (text or "")) or "the subject"
end

local function domain_url(rng, domain, slug, redirect)
  if redirect then
    local token = {}
    for i = 1, 24 do token[i] = string.format("%x", rng:random(0, 15)) end
    return "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AUZIY"
      .. table.concat(token)
  end
  return string.format("https://www.%s/%s-%d", domain, slug, rng:random(100, 999))
end

-- Appends s to the byte buffer; returns the 0-based byte offsets [start, end) of s.
local function push(buf, s)
  local start = buf.n
  buf[#buf + 1] = s
  buf.n = buf.n + #s
  return start, buf.n
end

--- The report: text and its url_citation annotations (UTF-8 byte offsets, end exclusive).
-- opts: target, sections (count), redirect (boolean).
function M.report(rng, opts)
  local target, slug = opts.target, content.slug(opts.target)
  local buf, notes = { n = 0 }, {}
  push(buf, "# Recherche approfondie : " .. target .. " — synthèse\n\n")
  for s = 1, opts.sections do
    push(buf, "## " .. TITLES[(s - 1) % #TITLES + 1] .. "\n\n")
    for j = 1, 2 do
      local sentence = string.format(SENTENCES[(s * 2 + j - 3) % #SENTENCES + 1], target)
      local a, b = push(buf, sentence)
      push(buf, j == 1 and ". " or ".\n\n")
      local domain = rng:pick(DOMAINS)
      notes[#notes + 1] = { type = "url_citation", title = domain,
        url = pages.map(domain_url(rng, domain, slug, opts.redirect)), start_index = a,
        end_index = b }
    end
  end
  push(buf, "## Méthode\n\nCompiled from web searches; figures in € are converted at 2025 rates.\n")
  return table.concat(buf), notes
end

--- A numbered research plan (collaborative planning); revision 0 is the first plan.
function M.plan(target, revision)
  local lines = { "Research plan for " .. target
    .. (revision > 0 and (" (revision " .. revision .. ")") or "") .. ":", "" }
  for i, aspect in ipairs({ "market size", "competitors", "pricing", "regulation", "outlook" }) do
    lines[#lines + 1] = string.format("%d. Investigate %s's %s.", i, target, aspect)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Reply to refine the plan, or approve it to start the research."
  return table.concat(lines, "\n")
end

local function queries_for(target, first, n)
  local list = {}
  for i = 1, n do
    list[i] = string.format("%s %s", target, ASPECTS[(first + i - 2) % #ASPECTS + 1])
  end
  return list
end

local function thought_step(rng, target, round, summaries)
  local step = { type = "thought",
    signature = string.format("sig_%08x", rng:random(0, 0x7fffffff)) }
  if summaries then
    step.summary = { { type = "text", text = string.format(
      "**Examining %s (%d)**\n\nI'm cross-checking what the sources say about %s's %s.",
      target, round, target, ASPECTS[(round - 1) % #ASPECTS + 1]) } }
  end
  return step
end

local function search_pair(rng, target, round, first, n)
  local id = string.format("call_%d_%04x", round, rng:random(0, 0xffff))
  local queries = queries_for(target, first, n)
  return { type = "google_search_call", id = id, arguments = { queries = queries } },
    { type = "google_search_result", call_id = id,
      result = { { search_suggestions = "<div class=\"chips\">" .. queries[1] .. "</div>" } } }
end

local function url_pair(rng, target, round)
  local id = string.format("url_%d_%04x", round, rng:random(0, 0xffff))
  local url = pages.map(string.format("https://www.%s/%s", rng:pick(DOMAINS),
    content.slug(target)))
  return { type = "url_context_call", id = id, arguments = { urls = { url } } },
    { type = "url_context_result", call_id = id, result = { { url = url, status = "success" } } }
end

local function code_pair(rng, round)
  local id = string.format("code_%d_%04x", round, rng:random(0, 0xffff))
  return { type = "code_execution_call", id = id,
    arguments = { language = "python", code = "print(sum([12.5, 14.1, 15.9]) / 3)" } },
    { type = "code_execution_result", call_id = id, result = "14.166666666666666\n" }
end

local function split(total, parts, i)
  return total // parts + (i <= total % parts and 1 or 0)
end

--- Timed steps of a run over [start, start + span): rounds of thought + search (+ url context,
-- sometimes code). opts: target, queries (total), rounds, summaries. Returns { {t, step}, ... }.
function M.schedule(rng, start, span, opts)
  local list, first = {}, 1
  local function add(t, step) list[#list + 1] = { t = t, step = step } end
  for r = 1, opts.rounds do
    local t = start + span * (r - 1) / opts.rounds
    local gap = span / opts.rounds / 4
    add(t, thought_step(rng, opts.target, r, opts.summaries))
    local n = split(opts.queries, opts.rounds, r)
    local call, result = search_pair(rng, opts.target, r, first, n)
    first = first + n
    add(t + gap, call)
    add(t + gap * 2, result)
    if r % 3 == 0 then
      call, result = url_pair(rng, opts.target, r)
      add(t + gap * 2.5, call)
      add(t + gap * 3, result)
    elseif r % 5 == 1 and r > 1 then
      call, result = code_pair(rng, r)
      add(t + gap * 2.5, call)
      add(t + gap * 3, result)
    end
  end
  return list
end

local function modality(n) return { { modality = "TEXT", tokens = n } } end

--- The usage block (A.6) of a run of this size, scaled by the share of the work done.
-- size: { input, output, thought, tool, cached_share, queries }.
function M.usage(size, share)
  local function part(n) return math.floor(n * share + 0.5) end
  local input, output, thought, tool = part(size.input), part(size.output), part(size.thought),
    part(size.tool)
  local cached = math.floor(input * size.cached_share + 0.5)
  return {
    total_input_tokens = input, total_cached_tokens = cached, total_output_tokens = output,
    total_thought_tokens = thought, total_tool_use_tokens = tool,
    total_tokens = input + output + thought + tool,
    input_tokens_by_modality = modality(input), cached_tokens_by_modality = modality(cached),
    output_tokens_by_modality = modality(output), tool_use_tokens_by_modality = modality(tool),
    grounding_tool_count = { { type = "google_search", count = part(size.queries) } },
  }
end

--- The A.6 estimate in USD of a usage block at the given rates (USD per million tokens; search
-- per 1000 queries).
function M.cost(usage, rates)
  local fresh = usage.total_input_tokens - usage.total_cached_tokens
  local queries = usage.grounding_tool_count[1].count
  local usd = (fresh * rates.input + usage.total_cached_tokens * rates.cached
    + (usage.total_output_tokens + usage.total_thought_tokens) * rates.output) / 1e6
    + queries * rates.search_per_1000 / 1000
  return math.floor(usd * 10000 + 0.5) / 10000
end

return M

-- luacheck: std lua54
-- Deterministic research content for the Responses-shaped simulators: a pool of web sources
-- (ASCII URLs, titles and snippets with non-ASCII text) and report sentences. Non-ASCII text sits
-- before citations on purpose: byte offsets and character offsets must differ in every report.
local content = require "simulator.content"
local pages = require "simulator.pages"

local M = {}

local DOMAINS = {
  { "reuters.com", "Reuters" }, { "en.wikipedia.org", "Wikipedia" },
  { "ft.com", "Financial Times" }, { "nature.com", "Nature" }, { "oecd.org", "OECD" },
  { "heise.de", "heise online" }, { "lemonde.fr", "Le Monde" }, { "nikkei.com", "日本経済新聞" },
  { "arxiv.org", "arXiv" }, { "gov.uk", "GOV.UK" }, { "bloomberg.com", "Bloomberg" },
  { "sec.gov", "SEC EDGAR" }, { "techcrunch.com", "TechCrunch" }, { "who.int", "WHO" },
}

local ANGLES = { "overview", "market-size", "pricing", "regulation", "outlook", "history",
  "adoption", "risks", "funding", "survey" }

local TITLE_FORMS = {
  "%s: an overview", "Why %s matters — analysis", "%s market outlook 2026",
  "Zürich study on %s", "%s in numbers (données clés)", "%s: 市場の動向",
}

--- The topic of a brief or input: its named target, else its first words, else "the topic".
function M.topic(text)
  text = type(text) == "string" and text or ""
  local t = content.target(text)
  if t then return t end
  local words = {}
  for w in text:gmatch("[%a][%w%-]*") do
    words[#words + 1] = w
    if #words == 4 then break end
  end
  return #words > 0 and table.concat(words, " ") or "the topic"
end

--- n distinct sources { url, title, domain, snippet, date? } about topic.
function M.sources(rng, topic, n)
  local list, slug, seen = {}, content.slug(topic), {}
  while #list < n do
    local d = rng:pick(DOMAINS)
    local angle = rng:pick(ANGLES)
    local url = string.format("https://%s/%s/%s-%d", d[1], angle, slug, rng:random(100, 999))
    if not seen[url] then
      seen[url] = true
      list[#list + 1] = { url = pages.map(url), domain = d[1], site = d[2],
        title = string.format(rng:pick(TITLE_FORMS), topic),
        snippet = string.format("**%s** … figures for %s (€%d.%d bn, +%d %%) — see the full "
          .. "report …", d[2], topic, rng:random(1, 90), rng:random(0, 9), rng:random(2, 40)),
        date = string.format("2026-%02d-%02d", rng:random(1, 11), rng:random(1, 28)) }
    end
  end
  return list
end

local CLAIMS = {
  "%s grew faster than its peers in the last two years",
  "Regulators in the EU and in Zürich are watching %s closely",
  "Analysts describe %s as a “category leader” in Europe",
  "Spending on %s reached €4.2 bn in 2025",
  "Surveys in Japan (日本) show rising interest in %s",
  "The outlook for %s stays positive 📈 despite higher costs",
  "Critics of %s point to a naïve reading of the numbers",
  "Most buyers of %s compare at least three vendors",
}

local SECTIONS = { "Summary", "Market and adoption", "Regulation — Überblick",
  "Risks and open questions" }

--- A report plan: sections of claims, each claim naming the index of the source it cites.
function M.plan(rng, topic, n_sources)
  local sections = {}
  for i, title in ipairs(SECTIONS) do
    local claims = {}
    for j = 1, rng:random(2, 3) do
      claims[j] = { text = string.format(rng:pick(CLAIMS), topic),
        source = n_sources > 0 and rng:random(n_sources) or nil }
    end
    sections[i] = { title = title, claims = claims }
  end
  return sections
end

return M

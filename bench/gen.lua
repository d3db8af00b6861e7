-- Canned API responses for the benchmark, written the way the Extruct API shapes them
-- (the simulator's serialize(): nulls included, integers as integers, raw UTF-8).
-- usage: lua5.4 bench/gen.lua OUTDIR   -> OUTDIR/{small,big,list,list75}.json
-- Prints one line per file: name, bytes, and the check value contenders must report
-- (small: agents, big: number of report sources, list pages: number of tasks).
local outdir = assert(arg[1], "usage: gen.lua OUTDIR")

local M = {}

M.SMALL_ID = "7b0e4c6a-2f4d-4a63-9d1e-5c8b2a9f3e10"
M.BIG_ID = "c91f2d3b-8a47-4e1f-b2d6-0f5e7a3c9b24"

-- A fixed linear congruential generator: the same bytes on every Lua.
local function rng(seed)
  local s = seed % 2147483647
  return function(n)
    s = (s * 16807) % 2147483647
    return 1 + s % n
  end
end

local function pick(r, t) return t[r(#t)] end

local function esc(s)
  return (s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" end
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\t" then return "\\t" end
    return string.format("\\u%04x", c:byte())
  end))
end

-- Objects as ordered key/value arrays, so the output is byte-identical on every run.
local NULL = {}
local function encode(v, buf)
  local t = type(v)
  if v == NULL then
    buf[#buf + 1] = "null"
  elseif t == "string" then
    buf[#buf + 1] = '"' .. esc(v) .. '"'
  elseif t == "number" then
    buf[#buf + 1] = string.format("%d", v)
  elseif t == "boolean" then
    buf[#buf + 1] = tostring(v)
  elseif v.array then
    buf[#buf + 1] = "["
    for i, x in ipairs(v.array) do
      if i > 1 then buf[#buf + 1] = "," end
      encode(x, buf)
    end
    buf[#buf + 1] = "]"
  else
    buf[#buf + 1] = "{"
    for i = 1, #v, 2 do
      if i > 1 then buf[#buf + 1] = "," end
      buf[#buf + 1] = '"' .. v[i] .. '":'
      encode(v[i + 1], buf)
    end
    buf[#buf + 1] = "}"
  end
  return buf
end

local COMPANIES = { "Flexport", "Acme Logistics", "Globex Freight", "Nordhafen Shipping",
  "Café Logística", "Initech Cargo", "Umbrella Transit", "Stark Supply" }
local TOPICS = { "overview", "pricing", "customers", "funding", "leadership", "product", "news",
  "reviews", "competitors", "hiring", "filings", "partners" }
local SECTIONS = { "Summary", "Company overview", "Market position", "Customers and segments",
  "Recent developments", "Leadership", "Technology and product", "Financials", "Risks",
  "Open questions", "Recommendation" }
local SENTENCES = {
  "%s is an established player in its segment and has grown steadily over the last two years",
  "Public filings and press coverage describe %s's core product line in some detail",
  "Analysts place %s among the top vendors in its category, citing integration breadth",
  "Competitors frequently benchmark themselves against %s on price and delivery times",
  "Hiring data suggests %s is expanding its engineering team in Europe and Asia",
  "%s announced new partnerships this year — most of them with mid-market carriers",
  "Customer concentration is a risk for %s: the top ten accounts make up a large share of revenue",
  "Several reviewers mention support delays at %s during peak season",
  "Independent data on %s's retention is scarce, so the figures below are estimates",
  "%s's leadership team changed twice in the last twelve months, including the CFO",
}

local function markdown(r, company, nsrc, target_bytes)
  local out, n = { "# " .. company .. ": research report", "" }, 0
  local section = 0
  while n < target_bytes do
    section = section + 1
    local title = SECTIONS[(section - 1) % #SECTIONS + 1]
    out[#out + 1] = "## " .. title .. (section > #SECTIONS and (" (" .. section .. ")") or "")
    out[#out + 1] = ""
    for _ = 1, 3 do
      local para = {}
      for j = 1, 5 do
        local cite = "[" .. r(nsrc) .. "]"
        if r(6) == 1 then cite = cite .. "[" .. r(nsrc) .. "]" end
        para[j] = string.format(pick(r, SENTENCES), company) .. " " .. cite .. "."
      end
      out[#out + 1] = table.concat(para, " ")
      out[#out + 1] = ""
    end
    out[#out + 1] = "| Metric | Value | Source |"
    out[#out + 1] = "| --- | --- | --- |"
    for _ = 1, 3 do
      out[#out + 1] = string.format("| %s | %d | [%d] |", pick(r, TOPICS), r(100000), r(nsrc))
    end
    out[#out + 1] = ""
    for i = #out - 20, #out do
      if i > 0 then n = n + #out[i] + 1 end
    end
  end
  out[#out + 1] = "This report was compiled from " .. nsrc .. " sources by the research agents."
  return table.concat(out, "\n") .. "\n"
end

local function sources(r, company, k)
  local slug = company:lower():gsub("[^%w]+", "-")
  local list = {}
  for i = 1, k do
    local topic = pick(r, TOPICS)
    list[i] = { "id", i, "url",
      string.format("https://source-%d.example/%s/%s-%d", i, slug, topic, r(9999)),
      "title",
      string.format("%s %s — %s", company, topic, pick(r, { "press release", "analyst note",
        "customer review", "filing", "interview", "job posting" })) }
  end
  return { array = list }
end

local BRIEF =
  "We sell freight-visibility software to mid-market logistics firms. Research %s: their " ..
  "current tooling, leadership changes and public statements in the last 12 months."

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%S", t) .. string.format(".%06dZ", (t * 7919) % 1000000)
end

local function task(r, id, status, created, opts)
  local company = opts.company or pick(r, COMPANIES)
  local nsrc = opts.sources or 0
  local agents = opts.agents or 0
  local report = NULL
  if status == "done" then
    report = { "kind", "markdown", "markdown", markdown(r, company, nsrc, opts.markdown_bytes),
      "sources", sources(r, company, nsrc), "degradation_reasons", { array = {} } }
  end
  return { "id", id, "created_at", iso(created), "updated_at", iso(created + 300 + r(900)),
    "status", status, "brief", opts.brief or string.format(BRIEF, company),
    "depth", opts.depth or "medium",
    "iterations", math.floor((agents + 4) / 5), "agents", agents, "sources", nsrc,
    "owner", { "id", "u1", "email", "alice@acme.test" }, "output_schema", NULL, "failure_reason",
    NULL, "report", report }
end

local function uuid(r)
  local hex = "0123456789abcdef"
  local s = {}
  for i = 1, 32 do
    local k = r(16)
    s[i] = hex:sub(k, k)
  end
  local x = table.concat(s)
  return x:sub(1, 8) .. "-" .. x:sub(9, 12) .. "-4" .. x:sub(14, 16) .. "-a" .. x:sub(18, 20) ..
    "-" .. x:sub(21, 32)
end

local function write(name, value, check)
  local text = table.concat(encode(value, {}))
  local f = assert(io.open(outdir .. "/" .. name .. ".json", "wb"))
  f:write(text)
  f:close()
  print(string.format("%s %d %d", name, #text, check))
end

local T0 = 1767225600 -- 2026-01-01

local r = rng(20260101)
-- An in-progress task, as most polls see it (~300 B).
write("small", task(r, M.SMALL_ID, "in_progress", T0, { agents = 7, sources = 12, company = "Acme",
  brief = "Research Acme: tooling and leadership changes." }), 7)
-- A finished task: ~50 KB markdown report and 100 sources.
write("big", task(r, M.BIG_ID, "done", T0, { agents = 25, sources = 100, markdown_bytes = 50000,
  company = "Flexport" }), 100)

local function page(n, seed)
  local pr = rng(seed)
  local items = {}
  for i = 1, n do
    items[i] = task(pr, uuid(pr), "done", T0 - i * 3600,
      { agents = 10 + pr(40), sources = 60 + pr(80),
      markdown_bytes = 42000 + pr(32000), depth = pick(pr, { "medium", "high", "xhigh" }) })
  end
  return { array = items }
end
-- The list page users fetch (limit=50, a few MB) and a ~5 MB one (limit=75) for peak memory.
write("list", page(50, 7), 50)
write("list75", page(75, 11), 75)

-- luacheck: std lua54
-- Deterministic content: a seeded RNG (splitmix64), ids, and the text the simulated providers
-- serve (markdown reports with citations, schema-conforming fields, companies, criteria).
-- Everything is a function of a seed, so the same seed always yields the same bytes.
local M = {}
local pages = require "simulator.pages"

local Rng = {}
Rng.__index = Rng

--- 64-bit FNV-1a of a string: turns ids and briefs into seeds.
function M.hash(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = (h ~ s:byte(i)) * 1099511628211
  end
  return h
end

function M.rng(seed)
  if type(seed) == "string" then seed = M.hash(seed) end
  return setmetatable({ s = math.tointeger(seed) or math.floor(seed or 0) }, Rng)
end

function Rng:next64()
  self.s = self.s + 0x9E3779B97F4A7C15
  local z = self.s
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

--- Like math.random: () -> [0,1), (n) -> 1..n, (m, n) -> m..n.
function Rng:random(m, n)
  local f = (self:next64() >> 11) * 2.0 ^ -53
  if not m then return f end
  if not n then m, n = 1, m end
  return m + math.floor(f * (n - m + 1))
end

function Rng:pick(list)
  return list[self:random(#list)]
end

function Rng:derive()
  return M.rng(self:next64())
end

function Rng:uuid()
  local hex = string.format("%016x%016x", self:next64(), self:next64())
  local variant = string.format("%x", 8 + tonumber(hex:sub(17, 17), 16) % 4)
  return hex:sub(1, 8) .. "-" .. hex:sub(9, 12) .. "-4" .. hex:sub(14, 16) .. "-" .. variant
    .. hex:sub(18, 20) .. "-" .. hex:sub(21, 32)
end

function M.slug(s)
  local slug = s:lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  return slug ~= "" and slug:sub(1, 40) or "topic"
end

--- The research target named by a brief: a domain or URL host, else the first run of capitalised
-- words that does not start a sentence, else nil (the brief names no target).
function M.target(brief)
  local domain = brief:match("https?://([%w%-%.]+)") or brief:match("([%w][%w%-]*%.%a%a+)")
  if domain then return (domain:gsub("^www%.", "")) end
  local words, prev_end = {}, 1
  for pos, word in brief:gmatch("()([%w'%-&]+)") do
    words[#words + 1] = { word = word, gap = brief:sub(prev_end, pos - 1) }
    prev_end = pos + #word
  end
  for i, w in ipairs(words) do
    local starts_sentence = i == 1 or w.gap:find("[%.!?\n]") ~= nil
    if not starts_sentence and w.word:match("^%u") and w.word ~= "I" then
      local name = { w.word }
      for j = i + 1, #words do
        if not (words[j].gap:match("^ +$") and words[j].word:match("^[%u&]")) then break end
        name[#name + 1] = words[j].word
      end
      return (table.concat(name, " "):gsub("'s$", ""))
    end
  end
  return nil
end

function M.sources(rng, target, k)
  local topics = { "overview", "pricing", "customers", "funding", "leadership", "product", "news",
    "reviews", "competitors", "hiring", "filings", "partners" }
  local list, slug = {}, M.slug(target)
  for i = 1, k do
    list[i] = { id = i, url = pages.map(
      string.format("https://source-%d.example/%s-%s", i, slug, rng:pick(topics))) }
  end
  return list
end

local SECTIONS = {
  { "Summary",
    { "%s is an established player in its segment", "%s has grown steadily over the last two years",
    "The evidence on %s points to a focused, well-funded organisation" } },
  { "Company overview", { "%s sells primarily to mid-market and enterprise customers",
    "Public filings and press coverage describe %s's core product line",
    "%s's leadership team has been stable" } },
  { "Market position", { "Analysts place %s among the top vendors in its category",
    "Competitors frequently benchmark themselves against %s",
    "%s's pricing sits slightly above the median" } },
  { "Recent developments", { "%s announced new partnerships this year",
    "Hiring data suggests %s is expanding its engineering team",
    "%s shipped a major release recently" } },
  { "Risks",
    { "Customer concentration is a risk for %s", "Regulatory changes could affect %s's margins",
    "Several reviewers mention support delays at %s" } },
  { "Open questions", { "It is unclear how %s will fund its next phase of growth",
    "Independent data on %s's retention is scarce" } },
  { "Recommendation", { "A follow-up call with %s's sales team is warranted",
    "Proceed with %s, but verify the claims marked above" } },
}

local function citation(rng, k)
  local a, r = rng:random(k), rng:random()
  if k > 1 and r < 0.15 then
    local b = rng:random(k)
    if b == a then b = a % k + 1 end
    return string.format(" [%d, %d]", a, b)
  elseif k > 1 and r < 0.3 then
    local b = rng:random(k)
    if b == a then b = a % k + 1 end
    return string.format(" [%d][%d]", a, b)
  end
  return string.format(" [%d]", a)
end

--- A markdown report citing sources 1..k; `sections` picks how many sections.
function M.markdown(rng, target, k, sections)
  local out = { "# " .. target .. ": research report", "" }
  for i = 1, math.min(#SECTIONS, sections) do
    local title, sentences = SECTIONS[i][1], SECTIONS[i][2]
    out[#out + 1] = "## " .. title
    out[#out + 1] = ""
    local para = {}
    for j = 1, #sentences do
      para[j] = string.format(sentences[j], target) .. citation(rng, k) .. "."
    end
    out[#out + 1] = table.concat(para, " ")
    out[#out + 1] = ""
  end
  out[1 + #out] = "## Method"
  out[1 + #out] = ""
  out[1 + #out] = "This report was compiled from " .. k .. " sources by the research agents."
  return table.concat(out, "\n") .. "\n"
end

--- The keys of a table, sorted (pairs order changes from run to run; output must not).
function M.sorted_keys(t)
  local keys = {}
  for k in pairs(type(t) == "table" and t or {}) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

local TYPES = { object = true, array = true, string = true, integer = true, number = true,
  boolean = true, null = true }

local function is_object(v)
  return type(v) == "table" and (next(v) == nil or v[1] == nil)
end

local function is_list(v)
  return type(v) == "table" and (next(v) == nil or v[1] ~= nil)
end

local function problem(s, where, depth)
  if not is_object(s) then return where .. " must be a JSON object" end
  if depth > 32 then return where .. " is nested too deeply" end
  local t = s.type
  if type(t) == "table" then
    if t[1] == nil then return where .. ".type must be a type name or a non-empty array of them" end
    for _, x in ipairs(t) do
      if not TYPES[x] then return where .. ' has unknown type "' .. tostring(x) .. '"' end
    end
  elseif t ~= nil then
    if not TYPES[t] then return where .. ' has unknown type "' .. tostring(t) .. '"' end
  elseif s.enum == nil and s.const == nil and s.anyOf == nil and s.oneOf == nil
    and s.properties == nil then
    return where .. ' needs a "type"'
  end
  if s.properties ~= nil then
    if not is_object(s.properties) then return where .. ".properties must be an object" end
    for _, k in ipairs(M.sorted_keys(s.properties)) do
      local p = problem(s.properties[k], where .. ".properties." .. k, depth + 1)
      if p then return p end
    end
  end
  if s.required ~= nil then
    if not is_list(s.required) then
      return where .. ".required must be an array of property names"
    end
    for _, name in ipairs(s.required) do
      if type(name) ~= "string" then
        return where .. ".required must be an array of property names"
      end
      if type(s.properties) ~= "table" or s.properties[name] == nil then
        return where .. '.required names "' .. name .. '", which is not in properties'
      end
    end
  end
  if s.items ~= nil then
    local p = problem(s.items, where .. ".items", depth + 1)
    if p then return p end
  end
  for _, key in ipairs({ "anyOf", "oneOf" }) do
    if s[key] ~= nil then
      if type(s[key]) ~= "table" or s[key][1] == nil then
        return where .. "." .. key .. " must be a non-empty array"
      end
      for i, sub in ipairs(s[key]) do
        local p = problem(sub, where .. "." .. key .. "[" .. (i - 1) .. "]", depth + 1)
        if p then return p end
      end
    end
  end
  if s.enum ~= nil and (type(s.enum) ~= "table" or s.enum[1] == nil) then
    return where .. ".enum must be a non-empty array"
  end
  return nil
end

--- Why an output_schema is not a usable object JSON Schema, or nil when it is.
function M.schema_problem(schema)
  if type(schema) ~= "table" or schema.type ~= "object" then
    return 'output_schema must be a JSON Schema with "type": "object" at the root'
  end
  return problem(schema, "output_schema", 0)
end

--- Why a brief cannot be researched (E10), as a failure_reason with fix-it suggestions, or nil.
function M.unusable(brief, cfg)
  local reasons = {}
  if cfg.reject_pattern and brief:find(cfg.reject_pattern) then
    reasons[#reasons + 1] = "the brief was flagged as unusable input"
  end
  if cfg.reject_heuristic and not M.target(brief) then
    reasons[#reasons + 1] =
      "no identifiable research target (no company, person, product or organisation is named)"
    reasons[#reasons + 1] = "no website, domain or URL is given"
  end
  if #reasons == 0 then return nil end
  return "Brief rejected: " .. table.concat(reasons, "; ") ..
    ". Suggestions: name the company or organisation "
    .. "to research (for example \"Acme Corp\"), add its website (for example acme.com), and say "
    .. "what decision "
    .. "the research should inform and over what time window."
end

local function schema_type(schema)
  local t = schema.type
  if type(t) == "table" then
    for _, v in ipairs(t) do if v ~= "null" then return v end end
    return "null"
  end
  if t == nil and schema.properties then return "object" end
  return t
end

--- A value valid against a JSON-Schema subset (type, properties, required, items, enum,
-- const, minItems/maxItems, minLength/maxLength, minimum/maximum, anyOf/oneOf).
-- json = { null = <JSON null>, array = fn(t) -> t or an empty-array marker }.
function M.value(rng, schema, target, name, json)
  if schema.const ~= nil then return schema.const end
  if type(schema.enum) == "table" and schema.enum[1] ~= nil then return rng:pick(schema.enum) end
  local alt = schema.anyOf or schema.oneOf
  if type(alt) == "table" and alt[1] then return M.value(rng, alt[1], target, name, json) end
  local t = schema_type(schema)
  if t == "object" then
    local obj = {}
    for _, key in ipairs(M.sorted_keys(schema.properties)) do
      local sub = schema.properties[key]
      if type(sub) == "table" then obj[key] = M.value(rng, sub, target, key, json) end
    end
    return obj
  elseif t == "array" then
    local lo = math.tointeger(schema.minItems) or 1
    local hi = math.tointeger(schema.maxItems) or math.max(lo, 3)
    local n = math.max(lo, math.min(hi, rng:random(2, 3)))
    local items, sub = {}, type(schema.items) == "table" and schema.items or { type = "string" }
    for i = 1, n do items[i] = M.value(rng, sub, target, name, json) end
    return json.array(items)
  elseif t == "integer" or t == "number" then
    local lo = tonumber(schema.minimum) or (tonumber(schema.exclusiveMinimum) or -1) + 1
    local hi = tonumber(schema.maximum) or (tonumber(schema.exclusiveMaximum) or lo + 1001) - 1
    if hi < lo then hi = lo end
    local v = math.floor(lo + rng:random() * (hi - lo))
    if v < lo then v = math.ceil(lo) end
    if t == "number" and v + 0.5 <= hi then return v + 0.5 end
    return math.tointeger(v) or v
  elseif t == "boolean" then
    return rng:random() < 0.5
  elseif t == "null" then
    return json.null
  end
  local s = string.format("%s of %s", (name or "value"):gsub("_", " "), target)
  if schema.format == "date" then s = "2025-0" .. rng:random(1, 9) .. "-1" .. rng:random(0, 9)
  elseif schema.format == "date-time" then s = "2025-06-1" .. rng:random(0, 9) .. "T12:00:00Z"
  elseif schema.format == "uri" or schema.format == "url" then
    s = "https://" .. M.slug(target) .. ".example/"
  elseif schema.format == "email" then s = "info@" .. M.slug(target) .. ".example" end
  local min, max = math.tointeger(schema.minLength) or 0, math.tointeger(schema.maxLength)
  if utf8.len(s) and utf8.len(s) < min then s = s .. string.rep(".", min - utf8.len(s)) end
  if max and #s > max then s = s:sub(1, max) end
  return s
end

local NAME_A = { "Nor", "Vel", "Quan", "Bright", "Hex", "Lum", "Cor", "Stra", "Ard", "Pol", "Tern",
  "Mav" }
local NAME_B = { "ex", "ora", "tix", "wave", "grid", "io", "ata", "ent", "ium", "ly", "sys",
  "forge" }
local PLACES = { { "US", "California", "San Francisco" }, { "US", "New York", "New York" },
  { "DE", "Bavaria", "Munich" }, { "GB", "England", "London" }, { "FR", "Ile-de-France", "Paris" },
  { "US", "Texas", "Austin" }, { "NL", "North Holland", "Amsterdam" },
  { "SE", "Stockholm", "Stockholm" } }
M.SIZES = { "1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5001-10000", "10001+" }

--- A fictional company (the n-th of a pool); `query` flavours its description.
function M.company(rng, n, query)
  local name = rng:pick(NAME_A) .. rng:pick(NAME_B) .. " " ..
    rng:pick({ "Labs", "AI", "Systems", "GmbH", "Inc" })
  local place = rng:pick(PLACES)
  local domain = M.slug(name:match("^%S+")) .. n .. "." .. rng:pick({ "com", "io", "ai", "de" })
  return {
    company_name = name, company_website = domain,
    company_description = name .. " builds software for " .. query:sub(1, 60),
    company_full_description = name .. " is a company headquartered in " .. place[3]
      .. ". It matches the search \"" .. query:sub(1, 120) .. "\" on several criteria.",
    founding_year = rng:random(1995, 2024), employee_count = rng:pick(M.SIZES),
    hq_country = place[1], hq_state_province = place[2], hq_city = place[3],
  }
end

local CRITERIA = {
  { "fit", "Product fit",
    "The company offers a product that directly matches the search description." },
  { "size", "Company size",
    "The company has between 11 and 1000 employees according to public data." },
  { "region", "Region", "The company is headquartered in the region named in the search, if any." },
  { "traction", "Traction",
    "The company shows signs of commercial traction such as customers or funding." },
  { "activity", "Recent activity",
    "The company has published news, releases or job posts in the last year." },
}

--- 2..5 criteria generated for a query (when the caller gave none).
function M.criteria(rng, query)
  local n, out = rng:random(2, 5), {}
  for i = 1, n do
    local c = CRITERIA[i]
    out[i] = { key = c[1], name = c[2], criterion = c[3] .. " Search: " .. query:sub(1, 80) }
  end
  return out
end

return M

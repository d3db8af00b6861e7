-- Briefs: templates, a builder, and a linter that catches what makes the APIs reject a
-- brief or write a thin report (no target, no context, no decision, no time window).
local errors = require "deepresearch.base.errors"
local json = require "deepresearch.base.json"
local utf8 = require "deepresearch.base.utf8"
local is_null = json.is_null
local argcheck = require("deepresearch.base.validate").type
local limits = require "deepresearch.providers.limits"

local M = {}

-- The default provider's limit in characters (others differ: lint{max_length=}).
M.MAX_LENGTH = limits.brief()

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function is_blank(s)
  return s:find("^%s*$") ~= nil
end

-- {{name}} with optional spaces; names are identifiers, dots and dashes allowed.
local PLACEHOLDER = "{{%s*([%a_][%w_%.%-]*)%s*}}"

local function has_value(v)
  return type(v) == "number" or (type(v) == "string" and not is_blank(v))
end

--- Fills {{name}} placeholders from vars. Returns the text, or nil, err listing every
-- placeholder without a value (nil, empty or blank string). Values are not re-expanded.
function M.render(template, vars)
  argcheck("render", 1, template, "string")
  argcheck("render", 2, vars, "table", true)
  vars = vars or {}
  local missing, seen = {}, {}
  for name in template:gmatch(PLACEHOLDER) do
    local v = vars[name]
    if v ~= nil and type(v) ~= "string" and type(v) ~= "number" and not is_null(v) then
      error(string.format("bad argument #2 to 'render' (value for '%s' must be a string or " ..
        "number, got %s)",
        name, type(v)), 2)
    end
    if not has_value(v) and not seen[name] then
      seen[name] = true
      missing[#missing + 1] = name
    end
  end
  if #missing > 0 then
    local quoted = {}
    for i, name in ipairs(missing) do quoted[i] = "'" .. name .. "'" end
    return nil, errors.invalid(string.format("brief template: no value for placeholder%s %s",
      #missing > 1 and "s" or "", table.concat(quoted, ", ")), { missing = missing })
  end
  -- One pass with a function: a value containing {{x}} is never expanded again.
  local text = template:gsub(PLACEHOLDER, function(name) return tostring(vars[name]) end)
  return text
end

--- Reads a template (or brief) file. Returns its text, or nil, err with code "io".
function M.load(path)
  argcheck("load", 1, path, "string")
  local f, msg = io.open(path, "rb")
  if not f then
    -- io.open's message starts with the path: "cannot read brief file b.txt: No such file ..."
    return nil, errors.new("io", "cannot read brief file " .. tostring(msg), { path = path })
  end
  local text, rerr = f:read("*a")
  f:close()
  if not text then
    return nil, errors.new("io", "cannot read " .. path .. ": " .. tostring(rerr), { path = path })
  end
  return (text:gsub("^\239\187\191", "")) -- an editor's BOM is not part of the brief
end

----------------------------------------------------------------------------------------------
-- Heuristics shared by the linter and the builder. They err towards "found": a false
-- warning on a good brief costs the user more than a missed hint on a weak one.

local function words_of(text)
  local list = {}
  for pos, word in text:gmatch("()(%S+)") do list[#list + 1] = { pos = pos, word = word } end
  return list
end

local function count_words(text)
  local n = 0
  for _ in text:gmatch("%w[%w'%-]*") do n = n + 1 end
  return n
end

-- Capitalised words that name no company, person or market on their own.
local NOT_NAMES = {}
for w in ([[I I'm I've I'd I'll A An The We Our Us My You Your It Its They Their This That
  These Those
  January February March April May June July August September October November December
  Monday Tuesday Wednesday Thursday Friday Saturday Sunday
  CEO CTO CFO COO CRO CMO CIO CISO VP SVP EVP CRM ERP SaaS B2B B2C AI ML LLM API APIs KPI KPIs
  ROI ARR MRR
  GTM SMB SMBs SME SMEs TAM SAM SOM USD EUR GBP PDF FAQ HR IT PR OK TODO TBD FY YoY QoQ
  Q1 Q2 Q3 Q4 H1 H2 Research Summarize Summarise Find Identify List Include Focus
  Please]]):gmatch("%S+") do
  NOT_NAMES[w] = true
end

local function strip_word(w)
  return (w:gsub("^[%(%[\"'`*_]+", ""):gsub("^\226\128[\156\152]", ""):gsub("[%p]+$", ""))
end

-- A word begins a sentence when it is the first, follows ., !, ? or :, or starts a line.
local function starts_sentence(text, words, k)
  if k == 1 then return true end
  local prev = words[k - 1]
  if prev.word:find("[%.!?:]+[\"')%]]*$") or prev.word:find("^[-*\226]") then return true end
  local gap = text:sub(prev.pos + #prev.word, words[k].pos - 1)
  return gap:find("\n") ~= nil
end

local MARKET_WORDS = { market = true, markets = true, industry = true, sector = true,
  segment = true,
  vertical = true }
local DETERMINERS = { the = true, a = true, an = true, this = true, that = true, our = true,
  their = true,
  its = true, any = true, your = true, my = true, same = true, whole = true, overall = true, stock =
    true }

local function find_target(text)
  local lower = text:lower()
  if lower:find("https?://") or lower:find("%f[%w]www%.") then return "url" end
  -- Token scans keep this linear: a brief of M.MAX_LENGTH characters must lint in milliseconds.
  for token in text:gmatch("[%w%.%-]+") do
    token = token:gsub("%.+$", "")
    -- acme.com, acme.co.uk: a dotted name ending in a label of 2+ letters (not e.g., not 3.5bn).
    if token:find("^[%w%-]+%.[%w%-%.]*%f[%w]%a%a+$") and not token:find("%.%.") then
      return "domain"
    end
  end
  for q in text:gmatch('"([^"\n]+)"') do
    if q:find("^%s*[%w]") and count_words(q) <= 8 then return "quoted" end
  end
  local open_q, close_q = "\226\128\156", "\226\128\157" -- “ and ”
  local at = 1
  while true do
    local s1, e1 = text:find(open_q, at, true)
    if not s1 then break end
    local s2, e2 = text:find(close_q, e1 + 1, true)
    if not s2 then break end
    local q = text:sub(e1 + 1, s2 - 1)
    if q:find("%a") and not q:find("\n") and count_words(q) <= 8 then return "quoted" end
    at = e2 + 1
  end
  local words = words_of(text)
  for k, item in ipairs(words) do
    local w = strip_word(item.word)
    local capital = w:find("^%u") and not NOT_NAMES[w] and not NOT_NAMES[(w:gsub("'s$", ""))]
    if capital then
      -- CamelCase (HubSpot), digits (3M) or a possessive mark a name even at sentence start.
      if not starts_sentence(text, words, k) or w:find("^%u%l+%u") or w:find("%d") or
        item.word:find("^%u[%w%-]*'s") then
        return "name"
      end
      local nxt = words[k + 1] and strip_word(words[k + 1].word)
      if nxt and nxt:find("^%u") and not NOT_NAMES[nxt] and not item.word:find("[%p]$") then
        return "name" -- two capitalised words in a row: Acme Robotics
      end
    end
  end
  if lower:find("market for %a") or lower:find("market of %a") then return "market" end
  local prev
  for word in lower:gmatch("[%w%-]+") do
    if MARKET_WORDS[word] and prev and not DETERMINERS[prev] then return "market" end
    prev = word
  end
  return nil
end

local function has_any(lower, patterns)
  for _, p in ipairs(patterns) do
    if lower:find(p) then return true end
  end
  return false
end

local CONTEXT_PATTERNS = {
  "%f[%a]we are%f[%A]", "%f[%a]we're%f[%A]", "%f[%a]we've%f[%A]", "%f[%a]i am%f[%A]",
  "%f[%a]i'm%f[%A]",
  "%f[%a]our%f[%A]", "%f[%a]my team%f[%A]", "%f[%a]my company%f[%A]", "%f[%a]my firm%f[%A]",
  "%f[%a]my role%f[%A]", "%f[%a]my client", "%f[%a]my startup%f[%A]", "%f[%a]my business%f[%A]",
  "%f[%a]as an? %a", "%f[%a]as the %a", "%f[%a]on behalf of%f[%A]", "%f[%a]here is my%f[%A]",
  "%f[%a]context:", "%f[%a]about us%f[%A]", "%f[%a]i work%f[%A]", "%f[%a]i lead%f[%A]",
  "%f[%a]i run%f[%A]", "%f[%a]i head%f[%A]", "%f[%a]i manage%f[%A]", "%f[%a]i own%f[%A]",
}
-- "we <verb>" states context unless the verb only says what we want from the report.
local NOT_CONTEXT_VERBS = { can = true, could = true, should = true, will = true, would = true,
  might = true,
  may = true, must = true, need = true, want = true, ["to"] = true, ["do"] = true, ["don't"] = true,
  decide = true, choose = true, plan = true, hope = true, expect = true, wish = true, ["and"] =
    true }

local function has_context(lower)
  if has_any(lower, CONTEXT_PATTERNS) then return true end
  for verb in lower:gmatch("%f[%a]we%s+([%a']+)") do
    if not NOT_CONTEXT_VERBS[verb] then return true end
  end
  return false
end

local DECISION_PATTERNS = {
  "%f[%a]decid", "%f[%a]decision", "%f[%a]whether%f[%A]", "%f[%a]so that%f[%A]",
  "%f[%a]so we can%f[%A]",
  "%f[%a]so i can%f[%A]", "%f[%a]in order to%f[%A]", "%f[%a]choos", "%f[%a]to choose",
  "%f[%a]evaluat",
  "%f[%a]assess", "%f[%a]prioriti[sz]", "go/no%-go", "go or no%-go", "%f[%a]should we%f[%A]",
  "%f[%a]should i%f[%A]", "%f[%a]compar", "%f[%a]recommend", "%f[%a]determine", "%f[%a]select",
  "%f[%a]shortlist", "%f[%a]pitch", "%f[%a]outreach", "%f[%a]account plan", "%f[%a]angles?%f[%A]",
  "%f[%a]deal%f[%A]", "%f[%a]invest", "%f[%a]conversation", "%f[%a]inform%f[%A]",
  "%f[%a]to help us",
  "%f[%a]negotiat", "%f[%a]pricing change", "%f[%a]strategy%f[%A]", "%f[%a]due diligence",
  "%f[%a]acquir", "%f[%a]partner with%f[%A]", "%f[%a]enter the%f[%A]", "%f[%a]worth%f[%A]",
}

local TIME_PATTERNS = {
  "%f[%a]last %d", "%f[%a]past%f[%A]", "%f[%a]since%f[%A]",
  "%f[%a]recent", "%f[%a]this year", "%f[%a]this quarter", "%f[%a]this month", "%f[%a]next %a",
  "%f[%a]upcoming%f[%A]", "%f[%a]current", "%f[%a]latest%f[%A]", "%f[%a]to date%f[%A]",
  "%f[%a]ytd%f[%A]",
  "%f[%a]today%f[%A]", "%f[%a]time ?window", "%f[%a]time ?frame", "%f[%a]period%f[%A]",
  "%f[%a]between %d", "%f[%a]as of%f[%A]", "%f[%a]until%f[%A]",
  "%f[%w]q[1-4]%f[%W]", "%f[%w]h[12]%f[%W]", "%f[%w]fy%d", "%f[%a]years?%f[%A]",
  "%f[%a]months?%f[%A]",
  "%f[%a]quarters?%f[%A]", "%f[%a]weeks?%f[%A]", "%f[%a]days%f[%A]",
  "%f[%a]january", "%f[%a]february", "%f[%a]march%f[%A]", "%f[%a]april", "%f[%a]june%f[%A]",
  "%f[%a]july%f[%A]", "%f[%a]august", "%f[%a]september", "%f[%a]october", "%f[%a]november",
  "%f[%a]december",
}

local function has_year(text)
  for y in text:gmatch("%f[%d](%d%d%d%d)%f[%D]") do
    local n = tonumber(y)
    if n >= 1900 and n <= 2199 then return true end
  end
  return false
end

local function has_time_window(lower)
  return has_any(lower, TIME_PATTERNS) or has_year(lower)
end

-- Words that make a bracketed or angled phrase a fill-in: [company], <COMPANY NAME>.
local PLACEHOLDER_NOUNS = { company = true, name = true, domain = true, url = true, website = true,
  product = true, target = true, competitor = true, market = true, person = true, date = true,
  industry = true, customer = true, client = true, brand = true, region = true, country = true,
  email = true, title = true, role = true, team = true, goal = true, decision = true }
local ARTICLES = { a = true, an = true, the = true, some = true, any = true, one = true }

local function looks_like_fill_in(inner)
  inner = trim(inner)
  if inner == "" or #inner > 40 or not inner:find("^[%a][%w _%-]*$") then return false end
  local words = {}
  for w in inner:gmatch("[^%s_%-]+") do words[#words + 1] = w end
  if #words > 4 then return false end
  local first = words[1]:lower()
  if ARTICLES[first] then return false end -- "[a product]": a deliberate elision, not a blank
  if inner == "x" or inner == "sic" then return false end -- checkbox, quotation mark-up
  if not inner:find("%l") then return true end -- COMPANY, COMPANY NAME, X
  if first == "your" or first == "insert" or first == "enter" or first == "add"
    or first == "todo" or
    first == "tbd" or first == "fill" then
    return true
  end
  if #words == 1 and not inner:find("[%s_%-]") and not inner:find("^%u%l+%u") then
    return true -- [company], [Company]; [HubSpot] is a name
  end
  for _, w in ipairs(words) do
    if PLACEHOLDER_NOUNS[w:lower()] then return true end
  end
  return inner:find("[_%-]") ~= nil and not inner:find("%s") -- company_name, target-domain
end

local function find_placeholders(text)
  local found = {}
  for pos, name in text:gmatch("(){{%s*([^{}\n]-)%s*}}") do
    found[#found + 1] = { pos = pos, text = "{{" .. name .. "}}" }
  end
  for pos, inner, after in text:gmatch("()%[([^%[%]\n]*)%]()") do
    local nextc = text:sub(after, after)
    if nextc ~= "(" and nextc ~= "[" and nextc ~= ":" and looks_like_fill_in(inner) then
      found[#found + 1] = { pos = pos, text = "[" .. inner .. "]" }
    end
  end
  for pos, inner in text:gmatch("()<([^<>\n]*)>") do
    local t = trim(inner)
    -- <b>, <br> and other tags are lowercase single words: only CAPS or a fill-in noun counts.
    if looks_like_fill_in(t) and (not t:find("%l") or t:find("[%s_%-]")
      or PLACEHOLDER_NOUNS[t:lower()]) then
      found[#found + 1] = { pos = pos, text = "<" .. inner .. ">" }
    end
  end
  table.sort(found, function(a, b) return a.pos < b.pos end)
  return found
end

----------------------------------------------------------------------------------------------

local function finding(list, code, severity, message, pos)
  list[#list + 1] = { code = code, severity = severity, message = message, pos = pos }
end

-- The advice an account-research brief gets (who asks, about whom, to decide what): a provider
-- whose descriptor lists them in brief_advice gets them; a question for any other provider's
-- research does not (lint{advice = list}). The other findings are for every brief.
M.ADVICE = { "no_target", "no_context", "no_decision" }

-- The text's findings, appended to out. advice: code -> true for the advice to give.
local function lint_text(text, max, out, advice)
  local n, bad = utf8.len(text)
  if not n then
    finding(out, "invalid_utf8", "error", string.format("the brief is not valid UTF-8 (byte %d)",
      bad), bad)
    return out
  end
  if is_blank(text) then
    finding(out, "empty", "error", "the brief is empty")
    return out
  end
  if n > max then
    finding(out, "too_long", "error",
      string.format("the brief is %d characters long; the limit is %d",
      n, max), utf8.offset(text, max + 1))
  end
  for _, p in ipairs(find_placeholders(text)) do
    finding(out, "placeholder", "error", string.format("unfilled placeholder %s at byte %d", p.text,
      p.pos),
      p.pos)
  end
  local words = count_words(text)
  if words < 12 then
    finding(out, "one_liner", "warning",
      string.format("the brief is a single short sentence (%d words); " ..
      "write a detailed paragraph: your context, the target, the decision, the time window", words))
  end
  local lower = text:lower()
  if advice.no_target and not find_target(text) then
    finding(out, "no_target", "warning",
      "no identifiable target: name the company, domain, person, URL " ..
      "or market to research")
  end
  if advice.no_context and not has_context(lower) then
    finding(out, "no_context", "warning",
      "no requester context: say who you are and what you sell or " ..
      "research (\"We are ...\", \"Our team ...\")")
  end
  if advice.no_decision and not has_any(lower, DECISION_PATTERNS) then
    finding(out, "no_decision", "warning",
      "no decision stated: say what the report should help you " ..
      "decide (\"so we can decide whether ...\")")
  end
  if not has_time_window(lower) then
    finding(out, "no_time_window", "info", "no time window: say which period matters " ..
      "(\"in the last 12 months\", \"since 2023\")")
  end
  return out
end

--- Checks a brief. Returns a sequence of findings {code, severity, message, pos?}; an empty
-- list means nothing to report. opts.max_length overrides M.MAX_LENGTH; opts.output_schema
-- adds the schema check's findings (schema_invalid, an error; the vendor's notes' limits,
-- warnings: schema_no_type, schema_no_items, schema_depth, schema_properties). opts.advice:
-- the codes of M.ADVICE to check (a provider's descriptor.brief_advice, {} for none); nil checks
-- them all.
function M.lint(text, opts)
  argcheck("lint", 1, text, "string")
  argcheck("lint", 2, opts, "table", true)
  local advice = {}
  local list = opts and opts.advice
  if list ~= nil and type(list) ~= "table" then
    error("bad option 'advice' to 'lint' (a list of finding codes expected, got " .. type(list) ..
      ")", 2)
  end
  for _, code in ipairs(list or M.ADVICE) do advice[code] = true end
  local out = lint_text(text, opts and opts.max_length or M.MAX_LENGTH, {}, advice)
  if opts and opts.output_schema ~= nil then
    for _, f in ipairs(require("deepresearch.schema.check").lint_output_schema(
      opts.output_schema)) do
      out[#out + 1] = f
    end
  end
  return out
end

--- true when lint found no error and no warning; the findings as second value.
function M.ok(text, opts)
  local findings = M.lint(text, opts)
  for _, f in ipairs(findings) do
    if f.severity ~= "info" then return false, findings end
  end
  return true, findings
end

----------------------------------------------------------------------------------------------

local function sentence(s)
  s = trim(s)
  if not s:find("[%.!?]$") then s = s .. "." end
  return s:sub(1, 1):upper() .. s:sub(2)
end

local function clause(s)
  return (s:gsub("^%s+", ""):gsub("[%s%.]+$", ""))
end

local function text_part(parts, key)
  local v = parts[key]
  if v == nil then return nil end
  if type(v) == "table" then
    local items = {}
    for i, item in ipairs(v) do
      if type(item) ~= "string" then
        error(string.format("bad argument #1 to 'build' (%s[%d] must be a string, got %s)", key, i,
          type(item)), 3)
      end
      if not is_blank(item) then items[#items + 1] = clause(item) end
    end
    return #items > 0 and table.concat(items, "; ") or nil
  end
  if type(v) ~= "string" then
    error(string.format("bad argument #1 to 'build' (%s must be a string, got %s)", key, type(v)),
      3)
  end
  if is_blank(v) then return nil end
  return clause(v)
end

local KNOWN_PARTS = { seller = true, target = true, goal = true, questions = true, window = true,
  focus = true, avoid = true, sources = true, format = true, notes = true }

--- Writes a brief paragraph from its parts: seller (who asks), target (required), goal (the
-- decision), questions, window, focus, avoid, sources, format, notes. Returns text or nil, err.
function M.build(parts)
  argcheck("build", 1, parts, "table")
  for k in pairs(parts) do
    if not KNOWN_PARTS[k] then
      error(string.format("bad argument #1 to 'build' (unknown part '%s')", tostring(k)), 2)
    end
  end
  local target = text_part(parts, "target")
  if not target then
    return nil,
      errors.invalid("brief: target is required (the company, person, domain or market to " ..
      "research)",
      { field = "target" })
  end
  local seller = text_part(parts, "seller")
  local goal = text_part(parts, "goal")
  local window = text_part(parts, "window")
  local out = {}
  if seller then
    out[#out + 1] = sentence(has_context(seller:lower()) and seller or "We are " .. seller)
  end
  -- A lowercase target would read as no target at all, to the linter and to the research agent.
  if not find_target("Research " .. target) then target = '"' .. target .. '"' end
  out[#out + 1] = sentence("Research " .. target)
  local questions = parts.questions
  if type(questions) == "string" then questions = { questions } end
  if questions ~= nil then
    argcheck("build", 1, questions, "table")
    local numbered = {}
    for i, q in ipairs(questions) do
      if type(q) ~= "string" then
        error(string.format("bad argument #1 to 'build' (questions[%d] must be a string, got %s)",
          i, type(q)), 2)
      end
      if not is_blank(q) then
        q = trim(q)
        if not q:find("[%.!?]$") then q = q .. "?" end
        numbered[#numbered + 1] = string.format("(%d) %s%s", #numbered + 1, q:sub(1, 1):upper(),
          q:sub(2))
      end
    end
    if #numbered > 0 then
      out[#out + 1] = "Answer these questions: " .. table.concat(numbered, " ")
    end
  end
  local focus = text_part(parts, "focus")
  if focus then out[#out + 1] = sentence("Focus on " .. focus) end
  if window then
    out[#out + 1] = sentence("Time window: " .. window)
  end
  if goal then
    out[#out + 1] = sentence("The report should support this decision: " .. goal)
  end
  local avoid = text_part(parts, "avoid")
  if avoid then out[#out + 1] = sentence("Leave out " .. avoid) end
  local sources = text_part(parts, "sources")
  if sources then out[#out + 1] = sentence("Preferred sources: " .. sources) end
  local format = text_part(parts, "format")
  if format then out[#out + 1] = sentence("Format: " .. format) end
  local notes = text_part(parts, "notes")
  if notes then out[#out + 1] = sentence(notes) end
  local text = table.concat(out, " ")
  local n = utf8.len(text)
  if not n then
    return nil, errors.invalid("brief: the parts are not valid UTF-8")
  end
  if n > M.MAX_LENGTH then
    return nil,
      errors.invalid(string.format("brief: the built brief is %d characters; the limit is %d",
      n, M.MAX_LENGTH))
  end
  return text
end

return M

-- dr.result and report.render over every provider's task shape (issue 16 item 5). Task tables
-- are written from the contracts' examples (openai.md A.4/A.5, perplexity-agent.md A.5-A.7,
-- gemini.md A.4-A.6, CONTRACT.md); the descriptor data read.read takes is spelled out here
-- the way the descriptors hold it, so that these cases stand whichever descriptors are
-- registered.
local read = require "deepresearch.report.read"
local report = require "deepresearch.report"
local json = require "deepresearch.base.json"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "spec/"
local TASKS = here .. "fixtures/tasks/"

local function load(name) return assert(report.load(TASKS .. name)) end

local DONE = { queued = "queued", in_progress = "running", completed = "done",
  incomplete = "done", failed = "failed", cancelled = "cancelled" }

-- Descriptor data as the Responses descriptors and the Interactions one hold it.
local CHARS = {
  name = "chars-provider",
  kinds = { research = { id_field = "id", states = DONE, failure_field = "error.message" } },
  report = { citation_kind = "annotations_chars" },
  cost = { source = "computed", model_field = "model", input = "usage.input_tokens",
    cached = "usage.input_tokens_details.cached_tokens", output = "usage.output_tokens",
    searches = "tool_usage.web_search.num_requests", search_items = "web_search_call" },
  prices = { as_of = "2026-12-07",
    ["o4-mini-deep-research"] = { input = 2, cached_input = 0.50, output = 8, web_search = 0.01 },
    ["o4"] = { input = 1000, output = 1000 } },
}
local MARKERS = {
  name = "markers-provider",
  kinds = { research = { id_field = "id", states = DONE, failure_field = "error" } },
  report = { citation_kind = "search_results" },
  cost = { source = "returned", field = "usage.cost.total_cost" },
}
local BYTES_STATES = {}
for k, v in pairs(DONE) do BYTES_STATES[k] = v end
BYTES_STATES.requires_action, BYTES_STATES.budget_exceeded = "input_required", "failed"
local BYTES = {
  name = "bytes-provider",
  kinds = { research = { id_field = "id", states = BYTES_STATES, failure_field = "errors" } },
  report = { citation_kind = "annotations_bytes" },
  cost = { source = "computed" },
  prices = { as_of = "2026-12-07", ["deep-research-preview"] = { low = 1, high = 3 } },
}

-- One text with non-ASCII characters before each citation: "café ☕", "3 €" and "Zürich"
-- take more bytes than characters, so a character range read as bytes (or the reverse)
-- puts the marker in the wrong place.
local TEXT = "Prices: café ☕ costs 3 € ([menu](https://cafe.example/menu)). Zürich is next."
local WANT = "Prices: café ☕ costs 3 € ([menu](https://cafe.example/menu))[1]. Zürich is next[2]."
local MENU, ZURICH = "https://cafe.example/menu", "https://zurich.example/"

local function response(status, annotations, extra)
  local t = {
    id = "resp_" .. string.rep("ab", 25), object = "response", status = status,
    model = "o4-mini-deep-research-2025-06-26", created_at = 1791572935,
    output = {
      { type = "reasoning", id = "rs_1", summary = {} },
      { type = "web_search_call", id = "ws_1", status = "completed",
        action = { type = "search", query = "cafe prices" } },
      { type = "message", id = "msg_1", role = "assistant", status = "completed",
        content = { { type = "output_text", text = TEXT, annotations = annotations } } },
    },
    usage = { input_tokens = 60506, input_tokens_details = { cached_tokens = 0 },
      output_tokens = 22883, output_tokens_details = { reasoning_tokens = 20416 },
      total_tokens = 83389 },
    tool_usage = { web_search = { num_requests = 77 } },
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local CHAR_ANNOTATIONS = {
  { type = "url_citation", url = MENU, title = "Menu", start_index = 8, end_index = 60 },
  { type = "url_citation", url = ZURICH, title = "Zürich", start_index = 62, end_index = 76 },
}
local BYTE_ANNOTATIONS = {
  { type = "url_citation", url = MENU, title = "cafe.example", start_index = 8, end_index = 65 },
  { type = "url_citation", url = ZURICH, title = "zurich.example", start_index = 67,
    end_index = 82 },
}

local function interaction(status, extra)
  local t = {
    id = "v1_ChdpbnRlcmFjdGlvbl8x", object = "interaction", status = status,
    agent = "deep-research-preview-04-2026", created = "2026-12-07T10:00:00Z",
    steps = {
      { type = "user_input", content = { { type = "text", text = "Prices in Zürich?" } } },
      { type = "thought", summary = { { type = "text", text = "planning" } } },
      { type = "google_search_call", id = "c1", arguments = { queries = { "zurich cafe" } } },
      { type = "model_output", content = { { type = "text", text = "draft" } } },
      { type = "model_output", content = { { type = "text", text = TEXT,
        annotations = BYTE_ANNOTATIONS } } },
    },
    usage = { total_input_tokens = 250000, total_cached_tokens = 150000,
      total_output_tokens = 60000, grounding_tool_count = { { type = "google_search",
        count = 80 } } },
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

-- A medium-preset run: search result ids are unique per response, not contiguous and not in
-- output order (perplexity-agent.md A.6).
local function agent_response(status, text, extra)
  local t = {
    id = "resp_8762b9bb-2d06-44a4-b68c-412dc85b24db", object = "response", status = status,
    model = "openai/gpt-6-luna", created_at = 1791572975, completed_at = 1791572975,
    output = {
      { type = "search_results", queries = { "q" }, results = {
        { id = 11, url = "https://eleven.example/", title = "Eleven", snippet = "s" },
        { id = 12, url = "https://twelve.example/", title = "Twelve", snippet = "s" } } },
      { type = "fetch_url_results", contents = { { url = "https://fetched.example/",
        title = "F", snippet = "s" } } },
      { type = "search_results", results = {
        { id = 1, url = "https://one.example/", title = "One", snippet = "s" },
        { id = 3, url = "https://eleven.example/", title = "Eleven again", snippet = "s" } } },
      { type = "message", id = "msg_1", role = "assistant", status = "completed",
        content = { { type = "output_text", text = text, annotations = {} } } },
    },
    usage = { input_tokens = 1000, output_tokens = 500, total_tokens = 1500,
      cost = { currency = "USD", input_cost = 0.0002, output_cost = 0.0006,
        tool_calls_cost = 0.003, total_cost = 0.0038 } },
    error = json.null, incomplete_details = json.null,
  }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local function urls(res)
  local out = {}
  for i, s in ipairs(res.sources) do
    assert.equal(i, s.n)
    out[i] = s.url
  end
  return out
end

describe("report.read: character ranges (Responses output, annotations_chars)", function()
  it("puts [n] where each character range ends, after non-ASCII text", function()
    local res = read.read(response("completed", CHAR_ANNOTATIONS), CHARS)
    assert.equal(WANT, res.text)
    assert.same({ MENU, ZURICH }, urls(res))
    assert.equal("Menu", res.sources[1].title)
    assert.equal("done", res.state)
    assert.is_false(res.degraded)
    assert.equal("resp_" .. string.rep("ab", 25), res.id)
    assert.equal("chars-provider", res.provider)
    -- The marks are where the markers are, in bytes of the new text.
    for _, m in ipairs(res.marks) do
      assert.equal("[" .. m.nums[1] .. "]", res.text:sub(m.s, m.e))
    end
  end)

  it("the same offsets read as bytes land elsewhere (char vs byte is the format's)", function()
    local t = response("completed", BYTE_ANNOTATIONS)
    assert.not_equal(WANT, read.read(t, CHARS).text)
  end)

  it("one URL cited twice is one source; two ranges ending together make [1][2]", function()
    local anns = {
      { type = "url_citation", url = MENU, start_index = 0, end_index = 6 },
      { type = "url_citation", url = ZURICH, start_index = 0, end_index = 6 },
      { type = "url_citation", url = MENU, start_index = 8, end_index = 60 },
    }
    local res = read.read(response("completed", anns), CHARS)
    assert.equal("Prices[1][2]: café", res.text:sub(1, #"Prices[1][2]: café"))
    assert.same({ MENU, ZURICH }, urls(res))
    assert.equal(2, #res.marks)
    assert.same({ 1, 2 }, res.marks[1].nums)
  end)

  it("cost is tokens x the dated price table + searches x their price: an estimate", function()
    local res = read.read(response("completed", CHAR_ANNOTATIONS), CHARS)
    -- openai.md A.5's worked example: 60 506 in / 22 883 out, 77 searches.
    local want = (60506 * 2 + 22883 * 8) / 1e6 + 77 * 0.01
    assert.near(want, res.cost.usd, 1e-9)
    assert.is_true(res.cost.estimated)
    assert.equal("2026-12-07", res.cost.as_of)
    assert.equal(77, res.cost.searches)
    -- the longest price key that starts the dated snapshot's name wins over "o4"
    assert.equal("o4-mini-deep-research-2025-06-26", res.cost.model)
  end)

  it("without tool_usage, searches are the web_search_call items that searched", function()
    local t = response("completed", CHAR_ANNOTATIONS, { tool_usage = json.null })
    local res = read.read(t, CHARS)
    assert.equal(1, res.cost.searches)
  end)

  it("no usage yet (running): no cost, no text, no failure", function()
    local t = response("in_progress", {}, { usage = json.null })
    t.output = { t.output[1] }
    local res = read.read(t, CHARS)
    assert.equal("running", res.state)
    assert.is_nil(res.text)
    assert.is_nil(res.cost.usd)
    assert.is_true(res.cost.estimated)
    assert.is_nil(res.failure)
  end)

  it("incomplete with a report: done, degraded, with the reason", function()
    local t = response("incomplete", CHAR_ANNOTATIONS,
      { incomplete_details = { reason = "max_output_tokens" } })
    local res = read.read(t, CHARS)
    assert.equal("done", res.state)
    assert.is_true(res.degraded)
    assert.matches("max_output_tokens", res.notes[1])
  end)

  it("incomplete without a message: failed, code incomplete", function()
    local t = response("incomplete", {}, { incomplete_details = { reason = "content_filter" } })
    t.output = { t.output[1] }
    local res = read.read(t, CHARS)
    assert.equal("failed", res.state)
    assert.equal("incomplete", res.failure.code)
    assert.matches("content_filter", res.failure.message)
  end)

  it("failed: the error's code and message", function()
    local t = response("failed", {}, { error = { code = "server_error", message = "boom" } })
    t.output = {}
    local res = read.read(t, CHARS)
    assert.equal("failed", res.state)
    assert.same({ code = "server_error", message = "boom" }, res.failure)
  end)

  it("a json_schema answer is read into fields", function()
    local t = response("completed", {}, { text = { format = { type = "json_schema" } } })
    t.output[3].content[1].text = '{"ceo": "A. B.", "founded": 2011}'
    local res = read.read(t, CHARS)
    assert.same({ ceo = "A. B.", founded = 2011 }, res.fields)
  end)
end)

describe("report.read: byte ranges (Interactions steps, annotations_bytes)", function()
  it("puts [n] where each UTF-8 byte range ends (end exclusive), last model_output", function()
    local res = read.read(interaction("completed"), BYTES)
    assert.equal(WANT, res.text)
    assert.same({ MENU, ZURICH }, urls(res))
    assert.equal("done", res.state)
  end)

  it("a byte range ending inside a character moves to its end", function()
    local t = interaction("completed")
    local anns = { { type = "url_citation", url = MENU, start_index = 0, end_index = 12 } }
    t.steps[5].content[1].annotations = anns -- byte 12 is inside "é" (bytes 12-13)
    assert.equal("Prices: café[1]", read.read(t, BYTES).text:sub(1, #"Prices: café[1]"))
  end)

  it("reads the legacy outputs[] shape: the last text block", function()
    local t = interaction("completed", { steps = json.null, outputs = {
      { type = "text", text = "old" },
      { type = "text", text = TEXT, annotations = BYTE_ANNOTATIONS },
      { type = "image", data = "AAAA", mime_type = "image/png" } } })
    assert.equal(WANT, read.read(t, BYTES).text)
  end)

  it("cost: the agent's estimate band when there is no token rate; estimated", function()
    local res = read.read(interaction("completed"), BYTES)
    assert.equal(2, res.cost.usd)
    assert.equal(1, res.cost.low)
    assert.equal(3, res.cost.high)
    assert.is_true(res.cost.estimated)
  end)

  it("budget_exceeded is failed with errors[]; requires_action needs the caller", function()
    local t = interaction("budget_exceeded", { errors = {
      { code = "budget/exceeded", message = "token budget exceeded" } } })
    t.steps = { t.steps[1] }
    local res = read.read(t, BYTES)
    assert.equal("failed", res.state)
    assert.equal("budget/exceeded", res.failure.code)
    assert.equal("input_required", read.read(interaction("requires_action"), BYTES).state)
  end)
end)

describe("report.read: search-result markers (search_results)", function()
  local text = "Alpha [web:11] and beta [web:1][web:12]. Bare[3] and [1]. " ..
    "Fetched only [web:0], a page [page:2], code `a[1]` and [12]."

  it("resolves [web:N] and [N] by id across search_results items, renumbered in order",
    function()
    local res = read.read(agent_response("completed", text), MARKERS)
    -- ids 11 and 3 are one URL: one source
    assert.same({ "https://eleven.example/", "https://one.example/", "https://twelve.example/" },
      urls(res))
    assert.equal("Alpha [1] and beta [2][3]. Bare[1] and [2]. " ..
      "Fetched only [web:0], a page [page:2], code `a[1]` and [3].", res.text)
    assert.equal(1, #res.notes)
    assert.matches("%[web:0%]", res.notes[1])
  end)

  it("an unresolved bare [N] is escaped: it never reads as a renumbered source", function()
    local res = read.read(agent_response("completed", "A [web:11] B [2] C [99]."), MARKERS)
    assert.equal("A [1] B \\[2] C \\[99].", res.text)
    assert.equal(1, #res.marks)
    assert.matches("%[2%], %[99%]", res.notes[1])
    local out = assert(report.render(agent_response("completed", "A [web:11] B [2].")))
    assert.matches("A %[%^1%] B \\%[2%]%.", out)
  end)

  it("cost is the returned usage.cost.total_cost, not an estimate; nil when cancelled", function()
    local res = read.read(agent_response("completed", text), MARKERS)
    assert.equal(0.0038, res.cost.usd)
    assert.is_false(res.cost.estimated)
    local t = agent_response("cancelled", "", { usage = json.null,
      error = { code = "cancelled", message = "cancelled", type = "cancelled" } })
    t.output = { t.output[1] }
    local c = read.read(t, MARKERS)
    assert.is_nil(c.cost.usd)
    assert.equal("cancelled", c.state)
    assert.equal("cancelled", c.failure.code)
  end)
end)

describe("report.read: Extruct and Valyu", function()
  local providers = require "deepresearch.providers"

  it("Extruct: report markdown, sources by id, credits from agents", function()
    local task = load("extruct_markdown.json")
    local res = read.read(task, providers.get("extruct"))
    assert.equal(task.report.markdown, res.text)
    assert.equal(4, #res.sources)
    assert.equal(12, res.cost.credits)
    assert.is_nil(res.cost.usd)
    assert.equal("done", res.state)
    assert.equal(task.id, res.id)
  end)

  it("Extruct: a schema report's fields", function()
    local res = read.read(load("extruct_schema.json"), providers.get("extruct"))
    assert.is_table(res.fields)
  end)

  it("Valyu: output, sources in list order, cost returned in USD", function()
    local task = load("valyu_markdown.json")
    local res = read.read(task, providers.get("valyu"))
    assert.equal(task.output, res.text)
    assert.same({ "https://news.example/adyen-issuing", "https://adyen.example/partners",
      "https://analyst.example/adyen" }, urls(res))
    assert.equal(0.35, res.cost.usd)
    assert.is_false(res.cost.estimated)
    assert.equal("dr_7a1b2c3d", res.id)
    assert.equal("done", res.state)
  end)

  it("Valyu: a JSON output is fields", function()
    local res = read.read(load("valyu_json.json"), providers.get("valyu"))
    assert.is_table(res.fields)
  end)
end)

describe("dr.result", function()
  local result = require "deepresearch.result"
  local providers = require "deepresearch.providers"

  it("detects Extruct and Valyu tasks through their descriptors' detect", function()
    assert.equal("extruct", result(load("extruct_markdown.json")).provider)
    assert.equal("extruct", result(load("extruct_running.json")).provider)
    assert.equal("valyu", result(load("valyu_markdown.json")).provider)
    assert.equal("valyu", result(load("valyu_json.json")).provider)
  end)

  it("detects an OpenAI response whatever its hex id's length; not Perplexity's uuid ids",
    function()
      local function resp(id) return { object = "response", id = id, status = "completed",
        output = {} } end
      assert.equal("openai", result(resp("resp_" .. string.rep("ab", 24))).provider) -- 48 hex
      assert.equal("openai", result(resp("resp_" .. string.rep("c", 50))).provider)
      assert.equal("perplexity",
        result(resp("resp_12345678-1234-1234-1234-123456789012")).provider)
      assert.is_false(providers.openai.detect(resp("resp_abc")))
    end)

  it("dr.state: incomplete without report text is failed, with text done (PROVIDERS.md 3)",
    function()
      local dr = require "deepresearch"
      local id = "resp_" .. string.rep("ab", 25)
      local bare = { object = "response", id = id, status = "incomplete",
        incomplete_details = { reason = "max_output_tokens" }, output = {} }
      local gm = { id = "v1_x", status = "incomplete", steps = {},
        errors = { { code = "x", message = "cut" } } }
      assert.equal("failed", dr.state(bare))
      assert.equal("failed", dr.state(bare, "openai"))
      assert.equal("failed", dr.state(gm, "gemini"))
      local texted = { object = "response", id = id, status = "incomplete", output = {
        { type = "message", content = { { type = "output_text", text = "Partial." } } } } }
      assert.equal("done", dr.state(texted))
      assert.equal("done", dr.state(texted, "openai"))
    end)

  it("takes a provider name; an unknown one is a programming error", function()
    assert.equal("valyu", result(load("valyu_markdown.json"), "valyu").provider)
    assert.has_error(function() result({}, "nobody") end)
    assert.has_error(function() result("task") end)
  end)

  it("a table no one claims and no shape fits: nil, no_report", function()
    local res, err = result({ id = "x", hello = true })
    assert.is_nil(res)
    assert.equal("no_report", err.code)
  end)

  it("Extruct and Valyu results render exactly as their tasks do", function()
    for _, f in ipairs({ "extruct_markdown.json", "extruct_schema.json", "valyu_markdown.json",
      "valyu_json.json" }) do
      local task = load(f)
      assert.equal(assert(report.render(task)), assert(report.render(result(task))))
    end
  end)

  it("a result passes through", function()
    local r = result(load("valyu_markdown.json"))
    assert.equal(r, result(r))
  end)

  -- The new providers' descriptors, once registered: their detect and data.
  for _, case in ipairs({
    { "openai", function() return response("completed", CHAR_ANNOTATIONS) end, WANT },
    { "gemini", function() return interaction("completed") end, WANT },
    { "perplexity", function() return agent_response("completed", "A [web:11] B [1].") end,
      "A [1] B [2]." },
  }) do
    local name, make, want = case[1], case[2], case[3]
    it(name .. ": detected by its descriptor; text with [n] markers", function()
      if not providers.get(name) then
        pending(name .. " is not registered yet")
        return
      end
      local r = assert(result(make()))
      assert.equal(name, r.provider)
      assert.equal(want, r.text)
    end)
  end
end)

describe("report.render over the new shapes", function()
  it("character-range citations become numbered footnotes", function()
    local out = assert(report.render(response("completed", CHAR_ANNOTATIONS)))
    assert.matches("menu%)%)%[%^1%]%. Zürich is next%[%^2%]%.", out)
    assert.matches("%[%^1%]: https://cafe%.example/menu %- Menu", out)
    assert.matches("%[%^2%]: https://zurich%.example/ %- Zürich", out)
  end)

  it("byte-range and search-result citations too; a '[1]' the API wrote stays text", function()
    local out = assert(report.render(interaction("completed")))
    assert.matches("next%[%^2%]%.", out)
    local t = agent_response("completed", "A [web:11] and `x[1]` and [web:0].")
    out = assert(report.render(t))
    assert.matches("A %[%^1%] and `x%[1%]` and %[web:0%]%.", out)
    assert.matches("%[%^1%]: https://eleven%.example/ %- Eleven", out)
    assert.matches("> Note: citation %[web:0%]", out)
  end)

  it("a dr.result table renders with its cost; an estimate says so", function()
    local res = read.read(response("completed", CHAR_ANNOTATIONS), CHARS)
    local out = assert(report.render(res))
    assert.matches("Cost: ~%$1%.0741 %(estimated%)", out)
    assert.matches("%[%^1%]", out)
    local pp = read.read(agent_response("completed", "A [web:11]."), MARKERS)
    assert.matches("Cost: %$0%.0038\n", assert(report.render(pp)))
  end)

  it("a structured answer renders its fields, its sources listed", function()
    local t = response("completed", { { type = "url_citation", url = MENU, start_index = 1,
      end_index = 5 } }, { text = { format = { type = "json_schema" } } })
    t.output[3].content[1].text = '{"ceo": "A. B."}'
    local out = assert(report.render(t))
    assert.matches("## ceo\n\nA%. B%.", out)
    assert.matches("Sources:\n\n%- %[1%] https://cafe%.example/menu", out)
  end)

  it("inline and plain styles", function()
    local t = response("completed", CHAR_ANNOTATIONS)
    local inline = assert(report.render(t, { style = "inline" }))
    assert.matches("%[%[1%]%]%(https://cafe%.example/menu%)", inline)
    local plain = assert(report.render(t, { style = "plain" }))
    assert.matches("next%[2%]%.", plain)
    assert.matches("Sources\n%[1%] https://cafe%.example/menu", plain)
  end)

  it("a run with no report yet: nil, no_report with the failure", function()
    local t = response("failed", {}, { error = { code = "server_error", message = "boom" } })
    t.output = {}
    local out, err = report.render(t)
    assert.is_nil(out)
    assert.equal("no_report", err.code)
    assert.matches("boom", err.message)
  end)
end)

describe("server data never makes a reader raise", function()
  -- A small deterministic generator (math.random differs between Lua versions).
  local seed = 12345
  local function rnd(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n + 1
  end
  local WORDS = { "message", "output_text", "url_citation", "search_results", "model_output",
    "text", "completed", "incomplete", "failed", "cancelled", "response", "interaction",
    "web_search_call", "[web:1]", "[1]", "é☕", "\255\254", "" }
  local KEYS = { "type", "text", "annotations", "content", "output", "steps", "outputs",
    "results", "id", "url", "title", "start_index", "end_index", "usage", "status", "object",
    "error", "errors", "incomplete_details", "report", "markdown", "sources", "cost",
    "input_tokens", "output_tokens", "model", "agent", "tool_usage", "output_type", "fields",
    "deepresearch_id", "kind", "degradation_reasons", "action", "format", 1, 2, 3 }
  local function value(depth)
    local k = rnd(depth > 3 and 6 or 8)
    if k == 1 then return WORDS[rnd(#WORDS)] end
    if k == 2 then return ({ 0, -1, 3.5, 1e300, 0 / 0, math.huge, 7, 2 ^ 60 })[rnd(8)] end
    if k == 3 then return ({ true, false })[rnd(2)] end
    if k == 4 then return json.null end
    if k == 5 then return WORDS[rnd(#WORDS)] .. WORDS[rnd(#WORDS)] end
    if k == 6 then return rnd(80) end
    local t = {}
    for _ = 1, rnd(6) do t[KEYS[rnd(#KEYS)]] = value(depth + 1) end
    return t
  end

  it("read.read, dr.result and report.render on 2000 random tables", function()
    local result = require "deepresearch.result"
    local specs = { CHARS, MARKERS, BYTES, nil }
    for i = 1, 2000 do
      local task = value(0)
      if type(task) ~= "table" then task = { output = task } end
      for _, spec in ipairs({ specs[1], specs[2], specs[3], false }) do
        local ok, err = pcall(read.read, task, spec or nil)
        assert(ok, "read.read raised on case " .. i .. ": " .. tostring(err))
      end
      local ok, err = pcall(result, task)
      assert(ok, "dr.result raised on case " .. i .. ": " .. tostring(err))
      ok, err = pcall(report.render, task)
      assert(ok, "report.render raised on case " .. i .. ": " .. tostring(err))
    end
  end)
end)

-- One run per provider against the simulator: what the client hands back reads through
-- dr.result and renders as numbered footnotes whose URLs the API gave.
describe("dr.result end to end (simulator)", function()
  local env = require "support.env"
  local dr = require "deepresearch"
  local providers = require "deepresearch.providers"
  local s
  setup(function() s = env.sim() end)
  before_each(function() s:reset() end)

  local CASES = {
    { "openai", { api_key = "openai-key", base = "/v1" } },
    { "perplexity", { api_key = "pplx-key", base = "" } },
    { "gemini", { api_key = "gemini-key", base = "/v1beta" } },
    { "valyu", { api_key = "valyu-key", base = "" } },
    { "extruct", { token = "test-token", base = "" } },
  }
  for _, case in ipairs(CASES) do
    local name, o = case[1], case[2]
    it(name .. ": a finished run's text, numbered sources and cost", function()
      if not providers.get(name) then
        pending(name .. " is not registered yet")
        return
      end
      local client = env.client(s, { provider = name, api_key = o.api_key,
        token = o.token or false, base_url = s.url .. o.base, base_delay = 0.01 })
      local done = dr.assert(client:run{ brief = env.BRIEF })
      client:close()
      local r = assert(dr.result(done))
      assert.equal(name, r.provider)
      assert.equal("done", r.state)
      assert.is_string(r.text)
      assert.truthy(#r.sources >= 1, name .. ": no sources")
      local out = assert(dr.report.render(r))
      assert.matches("\n%[%^%d+%]: https?://", out)
      assert.is_table(r.cost)
      assert.truthy(r.cost.usd or r.cost.credits, name .. ": no cost")
      assert.equal(r.cost.estimated, providers.get(name).cost.source == "computed")
    end)
  end
end)

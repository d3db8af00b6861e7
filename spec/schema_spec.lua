local S = require "deepresearch.schema"
local json = require "deepresearch.base.json"

local function messages(list)
  local out = {}
  for i, v in ipairs(list or {}) do out[i] = tostring(v) end
  return out
end

local function nested(levels)
  local node = S.string()
  for i = levels, 1, -1 do node = S.object { ["l" .. i] = node } end
  return node
end

describe("schema builder", function()
  local report = S.object {
    summary = S.string(),
    angles = S.array(S.string(), { min_items = 1 }),
    risks = S.array(S.string()),
  }

  it("derives required from the fields not marked optional", function()
    local t = report:to_table()
    assert.equal("object", t.type)
    assert.same({ "angles", "risks", "summary" }, t.required)
    assert.same({ type = "array", items = { type = "string" }, minItems = 1 }, t.properties.angles)
    assert.same({ type = "string" }, t.properties.summary)
  end)

  it("derives required at every nesting level", function()
    local t = S.object {
      company = S.object {
        name = S.string(),
        domain = S.optional(S.string()),
        hq = S.optional(S.object { city = S.string(), country = S.optional(S.string()) }),
      },
      note = S.optional(S.string()),
    }:to_table()
    assert.same({ "company" }, t.required)
    assert.same({ "name" }, t.properties.company.required)
    assert.same({ "city" }, t.properties.company.properties.hq.required)
  end)

  it("marks required as an array so it encodes as [] when every field is optional", function()
    local t = S.object { a = S.optional(S.string()) }:to_table()
    assert.is_true(json.is_array_marked(t.required))
    assert.equal(
      '{"properties":{"a":{"type":"string"}},"required":[],"type":"object"}', json.encode(t))
    assert.equal('{"properties":{},"required":[],"type":"object"}', S.object {}:json())
  end)

  it("has every scalar kind, with options mapped to JSON Schema names", function()
    assert.same({
      type = "string", minLength = 2, maxLength = 80, pattern = "^[a-z]+$", format = "uri" },
      S.string { min_length = 2, max_length = 80, pattern = "^[a-z]+$", format = "uri" }:to_table())
    assert.same({ type = "number", minimum = 0, maximum = 1 },
      S.number { minimum = 0, maximum = 1 }:to_table())
    assert.same({ type = "integer", exclusiveMinimum = 0 },
      S.integer { exclusive_minimum = 0 }:to_table())
    assert.same({ type = "boolean" }, S.boolean():to_table())
    assert.same({
      type = "array", items = { type = "integer" }, minItems = 1, maxItems = 3,
      uniqueItems = true },
      S.array(S.integer(), { min_items = 1, max_items = 3, unique_items = true }):to_table())
    assert.same({ type = "object", properties = {}, required = {}, additionalProperties = false },
      S.object({}, { additional_properties = false }):to_table())
  end)

  it("accepts JSON Schema spellings of options too", function()
    assert.same({ type = "array", items = { type = "string" }, minItems = 2 },
      S.array(S.string(), { minItems = 2 }):to_table())
  end)

  it("takes descriptions as an option, a string, or :describe", function()
    assert.equal("a", S.string { description = "a" }:to_table().description)
    assert.equal("b", S.string("b"):to_table().description)
    assert.equal("c", S.string():describe("c"):to_table().description)
    assert.equal("d", S.object({ x = S.string() }, { description = "d" }):to_table().description)
    assert.equal("e", S.object { x = S.string(), description = "e" }:to_table().description)
    assert.equal("f", S.array(S.string()):describe("f"):to_table().description)
    assert.equal("g", S.enum { "x", "y", description = "g" }:to_table().description)
  end)

  it("keeps a field called description when its value is a schema", function()
    local t = S.object { description = S.string() }:to_table()
    assert.same({ type = "string" }, t.properties.description)
    assert.same({ "description" }, t.required)
  end)

  it("does not change the original when describing or making optional", function()
    local base = S.string()
    local described = base:describe("x")
    local opt = S.optional(base)
    assert.is_nil(base:to_table().description)
    assert.equal("x", described:to_table().description)
    local t = S.object { a = base, b = opt, c = opt:required(), d = base:optional() }:to_table()
    assert.same({ "a", "c" }, t.required)
  end)

  it("makes enums with their value type, as arrays even with one value", function()
    assert.same({ type = "string", enum = { "low", "high" } }, S.enum { "low", "high" }:to_table())
    assert.equal('{"enum":["only"],"type":"string"}', S.enum { "only" }:json())
    assert.equal('{"enum":[1,2],"type":"number"}', S.enum { 1, 2 }:json())
    assert.equal('{"enum":["a",1]}', S.enum { "a", 1 }:json())
  end)

  it("accepts plain JSON Schema tables as fields, optional ones too", function()
    local t = S.object { a = { type = "string" }, b = S.optional({ type = "number" }) }:to_table()
    assert.same({ "a" }, t.required)
    assert.same({ type = "number" }, t.properties.b)
  end)

  it("accepts optional = true as an option", function()
    assert.same({ "b" },
      S.object { a = S.string { optional = true }, b = S.string() }:to_table().required)
  end)

  it("raises on programming mistakes", function()
    assert.has_error(function() S.string { min_lenght = 1 } end)
    assert.has_error(function() S.string { min_length = "1" } end)
    assert.has_error(function() S.number { min_items = 1 } end)
    assert.has_error(function() S.array() end)
    assert.has_error(function() S.enum {} end)
    assert.has_error(function() S.enum { {} } end)
    assert.has_error(function() S.object { a = "string" } end)
    assert.has_error(function() S.object { [1] = S.string() } end)
    assert.has_error(function() S.object(S.string()) end)
    assert.has_error(function() S.optional("x") end)
    assert.has_error(function() S.string():describe(5) end)
  end)
end)

describe("schema.encode", function()
  local function build()
    return S.object {
      summary = S.string { description = "One paragraph." },
      angles = S.array(S.string(), { min_items = 1 }),
      risks = S.array(S.string()),
      score = S.optional(S.integer { minimum = 0, maximum = 10 }),
      stage = S.enum { "seed" },
    }
  end

  it("gives the same bytes for the same schema", function()
    local a, b = build():json(), S.encode(build())
    assert.equal(a, b)
    for _ = 1, 20 do assert.equal(a, S.encode(build():to_table())) end
    assert.equal(
      '{"properties":{"angles":{"items":{"type":"string"},"minItems":1,"type":"array"},' ..
      '"risks":{"items":{"type":"string"},"type":"array"},' ..
      '"score":{"maximum":10,"minimum":0,"type":"integer"},' ..
      '"stage":{"enum":["seed"],"type":"string"},"summary":{"description":"One ' ..
      'paragraph.","type":"string"}},"required":["angles","risks","stage","summary"],' ..
      '"type":"object"}', a)
  end)

  it("matches json.encode of to_table, so the client sends the same bytes", function()
    assert.equal(json.encode(build():to_table()), build():json())
    assert.equal(json.encode(build()), build():json())
  end)

  it("keeps lists as arrays in plain tables, even empty or single", function()
    assert.equal('{"properties":{},"required":[],"type":"object"}',
      S.encode { type = "object", properties = {}, required = {} })
    assert.equal('{"enum":[],"type":"string"}', S.encode { type = "string", enum = {} })
    assert.equal('{"enum":["x"]}', S.encode { enum = { "x" } })
    assert.equal('{"type":["string","null"]}', S.encode { type = { "string", "null" } })
    assert.equal('{"items":[{"type":"string"},{"type":"number"}],"type":"array"}',
      S.encode { type = "array", items = { { type = "string" }, { type = "number" } } })
    assert.equal('{"items":{},"type":"array"}', S.encode { type = "array", items = {} })
  end)

  it("encodes a property named like a keyword as a schema, not a list", function()
    assert.equal('{"properties":{"enum":{},"required":{"type":"boolean"}},"type":"object"}',
      S.encode { type = "object", properties = { required = { type = "boolean" }, enum = {} } })
  end)

  it("encodes builder nodes nested in plain tables", function()
    assert.equal('{"properties":{"a":{"type":"string"}},"type":"object"}',
      S.encode { type = "object", properties = { a = S.string() } })
  end)

  it("encodes additionalProperties as a boolean or a schema", function()
    assert.equal('{"additionalProperties":false,"properties":{},"required":[],"type":"object"}',
      S.object({}, { additional_properties = false }):json())
    assert.equal('{"additionalProperties":{"type":"string"},"type":"object"}',
      S.encode { type = "object", additionalProperties = S.string() })
  end)

  it("raises on what JSON cannot hold", function()
    assert.has_error(function() S.encode("x") end)
    assert.has_error(
      function() S.encode { type = "object", properties = { [1] = { type = "string" } } } end)
    assert.has_error(function() S.encode { required = { a = 1 } } end)
  end)
end)

describe("schema.check_output_schema", function()
  it("accepts builder nodes and valid plain tables", function()
    assert.is_true(
      S.check_output_schema(S.object { a = S.string(), b = S.array(S.object { c = S.number() }) }))
    assert.is_true(S.check_output_schema { type = "object" })
    assert.is_true(S.check_output_schema { type = "object", properties = {}, required = {} })
    assert.is_true(
      S.check_output_schema { type = "object", properties = { a = { type = { "string", "null" } },
      b = { enum = { "x" } } }, required = { "a" } })
  end)

  it("rejects what the API documents and what is no JSON Schema, naming the problem", function()
    local cases = {
      { "x", "must be a table" },
      { S.string(), 'root must have type "object"' },
      { { type = "array", items = { type = "string" } }, 'root must have type "object"' },
      { { properties = {} }, 'root must have type "object"' },
      { { type = "object", properties = { "a" } }, "properties must be a table" },
      { { type = "object", properties = { a = "string" } }, "a: a schema must be a table" },
      { { type = "object", properties = { a = { type = "strng" } } }, "a: unknown type 'strng'" },
      { { type = "object", properties = { a = { type = "array", items = { type = "map" } } } },
        "a[]: unknown type 'map'" },
      { { type = "object", properties = { a = { type = "string" } }, required = { "b" } },
        "required names 'b', which is not in properties" },
      { { type = "object", properties = { a = { type = "string" } }, required = "a" },
      "required must be a list" },
      { { type = "object", properties = { a = { type = "string" } }, required = { 1 } },
      "required must be a list" },
      { {
        type = "object",
        properties = { a = { type = "object", properties = { b = { type = "bool" } } } } },
        "a.b: unknown type 'bool'" },
      { { type = "object", properties = { a = { type = "string", enum = {} } } },
      "a: enum must be a non-empty list" },
    }
    for _, c in ipairs(cases) do
      local ok, msg = S.check_output_schema(c[1])
      assert.is_nil(ok)
      assert.equal("string", type(msg))
      assert.truthy(msg:find(c[2], 1, true), msg)
    end
  end)

  -- Issue 15 item 12 (audit M7): the vendor's team notes' limits warn, never refuse.
  local function codes(warnings)
    local out = {}
    for i, w in ipairs(warnings) do out[i] = w.code end
    return out
  end

  it("returns an empty warnings list for a schema within every limit", function()
    local ok, warnings = S.check_output_schema(nested(5))
    assert.is_true(ok)
    assert.same({}, warnings)
  end)

  it("warns beyond 5 nesting levels, once, naming the first field too deep", function()
    local ok, warnings = S.check_output_schema(nested(7))  -- l1...l7
    assert.is_true(ok)
    assert.same({ "schema_depth" }, codes(warnings))
    assert.equal("warning", warnings[1].severity)
    assert.equal("l1.l2.l3.l4.l5.l6", warnings[1].path)
    assert.truthy(warnings[1].message:find("l1.l2.l3.l4.l5.l6: nested more than 5 levels", 1,
      true), warnings[1].message)
  end)

  it("warns beyond 50 properties in all", function()
    local fields = {}
    for i = 1, 40 do fields["f" .. i] = S.string() end
    local inner = {}
    for i = 1, 9 do inner["g" .. i] = S.string() end
    fields.nested = S.object(inner) -- 40 + 1 + 9 = 50
    local ok, warnings = S.check_output_schema(S.object(fields))
    assert.is_true(ok)
    assert.same({}, warnings)
    inner.g10 = S.string()
    fields.nested = S.object(inner)
    ok, warnings = S.check_output_schema(S.object(fields))
    assert.is_true(ok)
    assert.same({ "schema_properties" }, codes(warnings))
    assert.truthy(warnings[1].message:find("51 properties in all, more than 50", 1, true))
  end)

  it("warns on a node without a type, and an array without items", function()
    local ok, warnings = S.check_output_schema { type = "object", properties = {
      notes = { description = "free text" }, tags = { type = "array" },
      pick = { enum = { "a" } }, any = { anyOf = { { type = "string" } } } } }
    assert.is_true(ok)
    assert.same({ "schema_no_type", "schema_no_items" }, codes(warnings))
    assert.equal("notes", warnings[1].path)
    assert.truthy(warnings[1].message:find("notes: no type", 1, true))
    assert.equal("tags", warnings[2].path)
  end)

  it("as lint findings: one error when refused, else the warnings", function()
    assert.same({ { code = "schema_invalid", severity = "error",
      message = 'output_schema: the root must have type "object"' } },
      S.lint_output_schema { type = "array" })
    assert.same({ "schema_depth" }, codes(S.lint_output_schema(nested(6))))
    assert.same({}, S.lint_output_schema(nested(2)))
  end)
end)

describe("schema.validate", function()
  local schema = S.object {
    summary = S.string { min_length = 1 },
    angles = S.array(S.string(), { min_items = 1, max_items = 3 }),
    risks = S.array(S.string()),
    score = S.optional(S.integer { minimum = 0, maximum = 10 }),
    stage = S.optional(S.enum { "seed", "series_a" }),
    company = S.object {
      name = S.string(),
      hq = S.optional(S.object { city = S.string { max_length = 3 } }),
    },
  }

  local good = { summary = "Fine.", angles = { "a" }, risks = {}, company = { name = "Acme" } }

  it("returns true for a valid value, including empty arrays", function()
    assert.is_true(S.validate(schema, good))
    assert.is_true(schema:validate(good))
    assert.is_true(S.validate(schema:to_table(), good))
    assert.is_true(S.validate(schema, { summary = "x", angles = { "a", "b" }, risks = json.array(),
      score = 3.0, stage = "seed", company = { name = "n", hq = { city = "Rom" } } }))
  end)

  it("reports wrong item types with 1-based paths", function()
    local ok, list = S.validate(
      schema, { summary = "x", angles = { "a", 2 }, risks = {}, company = { name = "n" } })
    assert.is_false(ok)
    assert.equal(1, #list)
    assert.equal("angles[2]", list[1].path)
    assert.equal("angles[2]: expected string, got number", list[1].message)
    assert.equal("angles[2]: expected string, got number", tostring(list[1]))
  end)

  it("reports missing required fields at every level", function()
    local ok, list = S.validate(schema, { angles = { "a" }, risks = {}, company = { hq = {} } })
    assert.is_false(ok)
    assert.same({ "company.hq.city: missing required field", "company.name: missing required field",
      "summary: missing required field" }, (function()
        local m = messages(list)
        table.sort(m)
        return m
      end)())
  end)

  it("checks lengths in characters, numbers, integers, enums and item counts", function()
    local ok, list = S.validate(schema, {
      summary = "", angles = {}, risks = { true }, score = 11.5, stage = "ipo",
      company = { name = 1, hq = { city = "K\195\182ln" } },
    })
    assert.is_false(ok)
    local m = messages(list)
    table.sort(m)
    assert.same({
      "angles: expected at least 1 item, got 0",
      "company.hq.city: expected at most 3 characters, got 4",
      "company.name: expected string, got number",
      "risks[1]: expected string, got boolean",
      "score: expected integer, got number",
      'stage: expected one of "seed", "series_a", got "ipo"',
      "summary: expected at least 1 character, got 0",
    }, m)
    local _, l2 = S.validate(schema, { summary = "x", angles = { "a", "b", "c", "d" }, risks = {},
      score = -1, company = { name = "n" } })
    assert.same({
      "angles: expected at most 3 items, got 4", "score: expected a number >= 0, got -1" },
      messages(l2))
  end)

  it("uses $ for the root", function()
    local _, list = S.validate(schema, "text")
    assert.same({ "$: expected object, got string" }, messages(list))
    local _, l2 = S.validate(S.array(S.number()), { 1, "2" })
    assert.same({ "$[2]: expected number, got string" }, messages(l2))
    local _, l3 = S.validate(schema, { "a", "b" })
    assert.same({ "$: expected object, got array" }, messages(l3))
  end)

  it("rejects unexpected fields when additionalProperties is false", function()
    local strict = S.object({ a = S.string() }, { additional_properties = false })
    assert.is_true(S.validate(strict, { a = "x" }))
    local ok, list = S.validate(strict, { a = "x", b = 1, c = 2 })
    assert.is_false(ok)
    assert.same({ "b: unexpected field", "c: unexpected field" }, messages(list))
  end)

  it("accepts plain tables with type lists and null", function()
    local plain = { type = "object", required = { "a", "b" }, properties = {
      a = { type = { "string", "null" } }, b = { type = "null" },
      c = { type = "number", exclusiveMaximum = 1 },
    } }
    -- The client turns JSON null into an absent key; a nullable required field may be absent.
    assert.is_true(S.validate(plain, {}))
    assert.is_true(S.validate(plain, { a = json.null, b = json.null, c = 0.5 }))
    local _, list = S.validate(plain, { a = 1, c = 1 })
    assert.same({ "a: expected string or null, got number", "c: expected a number < 1, got 1" },
      messages(list))
  end)

  it("accepts cjson's null where null is allowed", function()
    local ok, cjson = pcall(require, "cjson")
    if not ok then return end
    assert.is_true(S.validate({ type = "null" }, cjson.null))
    local _, list = S.validate({ type = "string" }, cjson.null)
    assert.same({ "$: expected string, got null" }, messages(list))
  end)

  it("ignores pattern and description, and accepts an empty table as an empty array or " ..
    "object", function()
    assert.is_true(S.validate(S.string { pattern = "^[0-9]+$", description = "digits" }, "abc"))
    assert.is_true(S.validate(S.array(S.string()), {}))
    assert.is_true(S.validate(S.object {}, {}))
  end)

  it("flags duplicate items when uniqueItems is set", function()
    local _, list = S.validate(S.array(S.string(), { unique_items = true }), { "a", "b", "a" })
    assert.same({ "$[3]: duplicate of item 1" }, messages(list))
  end)

  it("raises without a schema table", function()
    assert.has_error(function() S.validate(nil, {}) end)
  end)
end)

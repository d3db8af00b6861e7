-- The simulator's Deep Research reports (CONTRACT A.2.4, C.2 E11, E12): citations resolve,
-- degradation reasons, schema reports that validate against their schema.
local sim = require "support.sim"

local s

local function api(method, path, body)
  return assert(
    s:http(method, path, { headers = { Authorization = "Bearer test-token" }, body = body }))
end

local function create(body) return api("POST", "/v1/deep_research_tasks", body) end
local function get(id) return api("GET", "/v1/deep_research_tasks/" .. id) end

local function run_to_end(id, step)
  for _ = 1, 400 do
    local t = get(id).json
    if t.status == "done" or t.status == "failed" then return t end
    s:advance(step)
  end
  error("task never finished")
end

-- A small JSON-Schema check for the subset the simulator generates against.
local function validates(schema, v, path)
  path = path or "$"
  if schema.enum then
    for _, e in ipairs(schema.enum) do if e == v then return true end end
    return false, path .. " not in enum"
  end
  local t = schema.type
  if t == "object" then
    if type(v) ~= "table" then return false, path .. " not an object" end
    for _, k in ipairs(schema.required or {}) do
      if v[k] == nil then return false, path .. "." .. k .. " missing" end
    end
    for k, sub in pairs(schema.properties or {}) do
      if v[k] ~= nil then
        local ok, err = validates(sub, v[k], path .. "." .. k)
        if not ok then return ok, err end
      end
    end
  elseif t == "array" then
    if type(v) ~= "table" then return false, path .. " not an array" end
    if schema.minItems and #v < schema.minItems then return false, path .. " too short" end
    for i, x in ipairs(v) do
      local ok, err = validates(schema.items, x, path .. "[" .. i .. "]")
      if not ok then return ok, err end
    end
  elseif t == "string" then
    if type(v) ~= "string" then return false, path .. " not a string" end
  elseif t == "integer" then
    if type(v) ~= "number" or v % 1 ~= 0 then return false, path .. " not an integer" end
    if schema.minimum and v < schema.minimum or schema.maximum and v > schema.maximum then
      return false, path .. " out of range"
    end
  elseif t == "number" then
    if type(v) ~= "number" then return false, path .. " not a number" end
  elseif t == "boolean" then
    if type(v) ~= "boolean" then return false, path .. " not a boolean" end
  end
  return true
end

describe("simulator: Deep Research reports (E11, E12)", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  it("writes markdown whose every citation resolves to a source", function()
    s:config({ extruct = { full_budget_share = 1 } })
    local t = run_to_end(create({ brief = "Research Acme Corp", depth = "xhigh" }).json.id, 30)
    local rep = t.report
    assert.equals("markdown", rep.kind)
    local ids = {}
    for i, src in ipairs(rep.sources) do
      assert.equals(i, src.id)
      assert.matches("^https://source%-" .. i .. "%.example/", src.url)
      ids[src.id] = true
    end
    local cited, forms = 0, {}
    for group in rep.markdown:gmatch("%[([%d, ]+)%]") do
      for n in group:gmatch("%d+") do
        cited = cited + 1
        assert.is_true(ids[tonumber(n)], "citation " .. n)
      end
      forms[group:find(",") and "list" or "single"] = true
    end
    assert.is_true(cited >= 10)
    assert.is_true(forms.single and forms.list)
    assert.matches("%]%[", rep.markdown)
    assert.equals(75, t.agents)
    assert.equals(1, #rep.degradation_reasons)
  end)

  it("sends [] degradation reasons normally and null when configured", function()
    s:config({ extruct = { full_budget_share = 0, budgets = { medium = 1000 } } })
    local id = create({ brief = "Research Acme" }).json.id
    run_to_end(id, 60)
    assert.matches('"degradation_reasons":%[%]', get(id).body)
    s:config({ extruct = { null_degradation = true } })
    assert.matches('"degradation_reasons":null', get(id).body)
  end)

  it("fills a schema report that validates against the task's schema", function()
    local schema = {
      type = "object", required = { "name", "tier", "employees", "products", "hq" }, properties = {
      name = { type = "string" }, tier = { type = "string", enum = { "smb", "mid", "enterprise" } },
      employees = { type = "integer", minimum = 1, maximum = 500 }, public = { type = "boolean" },
      score = { type = "number" },
      products = { type = "array", minItems = 2, items = { type = "object", required = { "title" },
        properties = { title = { type = "string" }, launched = { type = "integer" } } } },
      hq = {
        type = "object",
        properties = { city = { type = "string" }, country = { type = "string" } } },
    } }
    local r = create({ brief = "Research Acme Corp", output_schema = schema })
    assert.same(schema, r.json.output_schema)
    local t = run_to_end(r.json.id, 30)
    local rep = t.report
    assert.equals("schema", rep.kind)
    assert.is_true(validates(schema, rep.fields))
    assert.matches("Acme", rep.fields.name)
    local ids = {}
    for _, src in ipairs(rep.sources) do ids[src.id] = true end
    for key, basis in pairs(rep.basis) do
      assert.is_not_nil(rep.fields[key])
      for _, n in ipairs(basis) do assert.is_true(ids[n]) end
    end
  end)
end)


-- The simulated Valyu DeepResearch API (sim/simulator/valyu.lua), contract C.4 V1-V13.
-- Most cases drive the module through a small in-process app (same interface as the engine's,
-- handlers called directly, virtual clock moved by hand); the last block goes through the real
-- server over HTTP when spec/support/sim.lua is present.
local cjson = require("cjson")
local valyu = require("simulator.valyu")

local EPOCH = 1767225600

local function fake_app(seed)
  local app = {
    routes = {}, config = {}, null = cjson.null, t = 0, counters = {}, resets = {}, exposed = {} }
  local state = seed or 1
  local function rnd()
    state = (state * 48271) % 2147483647
    return state
  end
  function app.route(self, method, pattern, handler)
    local segs = {}
    for s in pattern:gmatch("[^/]+") do segs[#segs + 1] = s end
    self.routes[#self.routes + 1] = { method = method, segs = segs, handler = handler }
  end
  function app.now(self) return self.t end
  function app.iso(_, t, ms)
    local whole = math.floor(t)
    local s = os.date("!%Y-%m-%dT%H:%M:%S", EPOCH + whole)
    if ms then return string.format("%s.%03dZ", s, math.floor((t - whole) * 1000 + 0.5)) end
    return s .. "Z"
  end
  function app.random(_, m, n) return m + rnd() % (n - m + 1) end
  function app.uuid(self)
    local h = {}
    for i = 1, 32 do h[i] = string.format("%x", self:random(0, 15)) end
    h = table.concat(h)
    return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-4" .. h:sub(14, 16) .. "-a" .. h:sub(18, 20) ..
      "-" .. h:sub(21)
  end
  function app.on_reset(self, fn) self.resets[#self.resets + 1] = fn end
  function app.expose(self, name, fn) self.exposed[name] = fn end
  function app.count(self, name, n) self.counters[name] = (self.counters[name] or 0) + (n or 1) end
  function app.reset(self)
    self.t, self.counters = 0, {}
    for _, fn in ipairs(self.resets) do fn(self) end
  end
  function app.advance(self, seconds) self.t = self.t + seconds end
  function app.state(self) return self.exposed.valyu() end
  valyu.install(app)
  return app
end

-- One request through the app's routes. opts: key (false = none), body (table), raw (string),
-- headers.
-- Returns status, decoded body (nil when empty), headers, raw body text.
local function call(app, method, target, opts)
  opts = opts or {}
  local path, q = target:match("^([^?]*)%??(.*)$")
  local query = {}
  for k, v in q:gmatch("([^&=]+)=?([^&]*)") do query[k] = v end
  local headers = { host = "sim.test" }
  local key = opts.key
  if key == nil then key = "valyu-key" end
  if key then headers["x-api-key"] = key end
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  local body = opts.raw or (opts.body and cjson.encode(opts.body)) or ""
  local req = {
    method = method, path = path, raw_path = target, query = query, headers = headers, body = body,
    now = app.t, app = app, params = {} }
  if body ~= "" then
    local ok, v = pcall(cjson.decode, body)
    if ok then req.json = v else req.json_error = v end
  end
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  for _, r in ipairs(app.routes) do
    if r.method == method and #r.segs == #segs then
      local params = {}
      for i, s in ipairs(r.segs) do
        if s:sub(
          1,
          1) == ":" then params[s:sub(2)] = segs[i] elseif s ~= segs[i] then params = nil break end
      end
      if params then
        req.params = params
        local status, resp, rh = r.handler(req)
        if type(resp) == "table" then resp = cjson.encode(resp) end
        local decoded = nil
        if resp ~= "" and (rh or {})["Content-Type"] == "application/json" then
          decoded = cjson.decode(resp)
        end
        return status, decoded, rh or {}, resp
      end
    end
  end
  return 404, nil, {}, ""
end

local function create(app, body, key)
  return call(app, "POST", "/v1/deepresearch/tasks", { body = body, key = key })
end

local function status(app, id, opts)
  return call(app, "GET", "/v1/deepresearch/tasks/" .. id .. "/status", opts)
end

local function created_id(app, body, key)
  local code, b = create(app, body, key)
  assert.are.equal(200, code)
  return b.deepresearch_id, b
end

local function balance(app, org)
  return app:state().balances[org or "val_org1"].balance
end

local function near(a, b)
  return math.abs(a - b) < 1e-9
end

local function rep(s, n)
  return string.rep(s, n)
end

-- A JSON-schema validator for the subset the structured-output tests use.
local function is_seq(v)
  if type(v) ~= "table" then return false end
  local n = 0
  for k in pairs(v) do
    if type(k) ~= "number" then return false end
    n = n + 1
  end
  return n == #v
end

local function validate(value, schema, root, path, errs)
  root = root or schema
  path = path or "$"
  errs = errs or {}
  local function bad(msg) errs[#errs + 1] = path .. ": " .. msg end
  if schema["$ref"] then
    local node = root
    for part in schema["$ref"]:gsub("^#/", ""):gmatch("[^/]+") do node = node[part] end
    return validate(value, node, root, path, errs)
  end
  if schema.allOf then for _, s in ipairs(schema.allOf) do validate(
    value, s, root, path, errs) end end
  if schema.anyOf or schema.oneOf then
    local ok = false
    for _, s in ipairs(schema.anyOf or schema.oneOf) do
      if #validate(value, s, root, path, {}) == 0 then ok = true end
    end
    if not ok then bad("matches no alternative") end
  end
  if schema.const ~= nil and value ~= schema.const then bad("not the const") end
  if schema.enum then
    local ok = false
    for _, e in ipairs(schema.enum) do if e == value then ok = true end end
    if not ok then bad("not in enum") end
  end
  local t = schema.type
  if t then
    local types = type(t) == "table" and t or { t }
    local ok = false
    for _, ty in ipairs(types) do
      if (ty == "object" and type(value) == "table" and (not is_seq(value) or next(value) == nil))
          or (ty == "array" and is_seq(value))
          or (ty == "string" and type(value) == "string")
          or (ty == "number" and type(value) == "number")
          or (ty == "integer" and type(value) == "number" and value % 1 == 0)
          or (ty == "boolean" and type(value) == "boolean")
          or (ty == "null" and value == cjson.null) then
        ok = true
      end
    end
    if not ok then bad("wrong type, want " .. table.concat(types, "|")) return errs end
  end
  if type(value) == "string" then
    local _, len = value:gsub("[^\128-\191]", "")
    if schema.minLength and len < schema.minLength then bad("too short") end
    if schema.maxLength and len > schema.maxLength then bad("too long") end
    if schema.format == "date" and not value:match("^%d%d%d%d%-%d%d%-%d%d$") then
      bad("not a date")
    end
    if schema.format == "uri" and not value:match("^https?://") then bad("not a uri") end
    if schema.format == "email" and not value:match("^[^@]+@[^@]+$") then bad("not an email") end
  elseif type(value) == "number" then
    if schema.minimum and value < schema.minimum then bad("below minimum") end
    if schema.maximum and value > schema.maximum then bad("above maximum") end
    if schema.exclusiveMinimum and value <= schema.exclusiveMinimum then
      bad("not above exclusiveMinimum")
    end
    if schema.exclusiveMaximum and value >= schema.exclusiveMaximum then
      bad("not below exclusiveMaximum")
    end
  elseif type(value) == "table" then
    if schema.type == "array" or schema.items then
      if schema.minItems and #value < schema.minItems then bad("too few items") end
      if schema.maxItems and #value > schema.maxItems then bad("too many items") end
      for i, v in ipairs(value) do
        if schema.items then validate(v, schema.items, root, path .. "[" .. i .. "]", errs) end
      end
    else
      for _, r in ipairs(schema.required or {}) do
        if value[r] == nil then bad("missing required " .. r) end
      end
      for k, v in pairs(value) do
        local ps = schema.properties and schema.properties[k]
        if ps then validate(v, ps, root, path .. "." .. k, errs)
        elseif schema.additionalProperties == false then bad("unexpected property " .. k) end
      end
    end
  end
  return errs
end

describe("simulated Valyu DeepResearch", function()
  local app

  before_each(function()
    app = fake_app(7)
  end)

  describe("auth (V1)", function()
    it("answers 401 with the documented body when the key is missing or unknown", function()
      for _, key in ipairs({ false, "nope" }) do
        local code, b = create(app, { query = "q" }, key)
        assert.are.equal(401, code)
        assert.are.same({ success = false, error = "Invalid API key" }, b)
        code, b = call(app, "GET", "/v1/deepresearch/list", { key = key })
        assert.are.equal(401, code)
        assert.are.equal("Invalid API key", b.error)
      end
    end)

    it("answers 403 for a key without inference permission", function()
      local code, b = create(app, { query = "q" }, "valyu-noperm")
      assert.are.equal(403, code)
      assert.are.same({ success = false, error = "API key does not have inference permission" }, b)
    end)

    it("accepts keys added through config, with their own organisation and balance", function()
      app.config.valyu.keys["my-key"] = { org = "val_mine", balance = 1 }
      local id = created_id(app, { query = "q", mode = "fast" }, "my-key")
      assert.is_true(near(0.9, balance(app, "val_mine")))
      assert.are.equal(404, (status(app, id)))            -- another organisation's task
      assert.are.equal(200, (status(app, id, { key = "my-key" })))
    end)

    it("never exposes API keys in the state", function()
      created_id(app, { query = "q" })
      local text = cjson.encode(app:state())
      assert.is_nil(text:find("valyu-key", 1, true))
      assert.is_nil(text:find("valyu-poor", 1, true))
    end)
  end)

  describe("create validation (V2)", function()
    local function rejects(body, message)
      local code, b = create(app, body)
      assert.are.equal(400, code)
      assert.is_false(b.success)
      if message then assert.are.equal(message, b.error) else assert.is_string(b.error) end
      return b
    end

    after_each(function()
      -- Nothing is created or reserved by a rejected request.
      local st = app:state()
      if st.task_count == 0 then assert.is_true(near(100, st.balances.val_org1.balance)) end
    end)

    it("rejects a missing, empty or blank query", function()
      rejects({ mode = "fast" })
      rejects({ query = "" })
      rejects({ query = "   \n\t" })
      rejects({ query = 42 })
      assert.are.equal(0, app:state().task_count)
      assert.is_nil(app.counters["valyu.tasks_created"])
    end)

    it("counts the query in UTF-8 characters, up to 25 000", function()
      rejects({ query = rep("a", 25001) })
      rejects({ query = rep("é", 25001) })
      created_id(app, { query = rep("é", 25000) }) -- 50 000 bytes, 25 000 characters
      created_id(app, { query = rep("a", 25000) })
    end)

    it("caps research_strategy (or strategy) + report_format at 15 000 with the server's " ..
      "text", function()
      rejects({ query = "q", research_strategy = rep("s", 10000), report_format = rep("f", 5001) },
        "research_strategy and report_format combined length (15001) exceeds 15,000 character " ..
        "limit")
      rejects({ query = "q", strategy = rep("s", 15000), report_format = "ab" },
        "research_strategy and report_format combined length (15002) exceeds 15,000 character " ..
        "limit")
      created_id(
        app, { query = "q", research_strategy = rep("s", 10000), report_format = rep("f", 5000) })
    end)

    it("limits urls, files, deliverables (10), mcp_servers (5) and previous_reports (3)", function()
      local function list(n, item)
        local t = {}
        for i = 1, n do t[i] = type(item) == "function" and item(i) or item end
        return t
      end
      local url = function(i) return "https://example.com/" .. i end
      local file = {
        data = "data:text/plain;base64,aGk=", filename = "a.txt", mediaType = "text/plain" }
      local mcp = { url = "https://mcp.example.com" }
      rejects({ query = "q", urls = list(11, url) })
      rejects({ query = "q", files = list(11, file) })
      rejects({ query = "q", deliverables = list(11, "a csv of the companies") })
      rejects({ query = "q", mcp_servers = list(6, mcp) })
      rejects({ query = "q", previous_reports = list(4, "id") })
      created_id(app, { query = "q", urls = list(10, url), files = list(10, file),
        deliverables = list(10, "a csv of the companies"), mcp_servers = list(5, mcp),
        previous_reports = list(3, "id") })
    end)

    it("limits a file's context to 10 000 characters", function()
      local file = {
        data = "data:text/plain;base64,aGk=", filename = "a.txt", mediaType = "text/plain" }
      file.context = rep("c", 10001)
      rejects({ query = "q", files = { file } })
      file.context = rep("c", 10000)
      created_id(app, { query = "q", files = { file } })
    end)

    it("requires an https webhook_url", function()
      rejects({ query = "q", webhook_url = "http://hooks.example.com/x" })
      rejects({ query = "q", webhook_url = "ftp://x" })
    end)

    it("rejects a JSON schema mixed with markdown or pdf, and unknown formats", function()
      local schema = { type = "object", properties = { a = { type = "string" } } }
      rejects({ query = "q", output_formats = { "markdown", schema } })
      rejects({ query = "q", output_formats = { schema, "pdf" } })
      rejects({ query = "q", output_formats = { "docx" } })
      rejects({ query = "q", output_formats = { "toon" } }) -- toon needs a schema
    end)

    it("rejects an unknown mode", function()
      rejects({ query = "q", mode = "turbo" })
      rejects({ query = "q", model = "lightning" })
    end)

    it("rejects workflow_id with freeform fields by code, and unknown workflows with " ..
      "404", function()
      rejects({ workflow_id = "competitor-scan", query = "q" },
        "workflow_and_freeform_mutually_exclusive")
      rejects({ workflow_id = "competitor-scan", input = "q" },
        "workflow_and_freeform_mutually_exclusive")
      rejects({ workflow_id = "competitor-scan", report_format = "short" },
        "workflow_and_freeform_mutually_exclusive")
      local code, b = create(app, { workflow_id = "competitor-scan" })
      assert.are.equal(404, code)
      assert.are.same({ error = "workflow_not_found" }, b)
    end)

    it("rejects a body that is not JSON or not an object", function()
      local code, b = call(app, "POST", "/v1/deepresearch/tasks", { raw = "{not json" })
      assert.are.equal(400, code)
      assert.are.same({ success = false, error = "Invalid request parameters" }, b)
      code = call(app, "POST", "/v1/deepresearch/tasks", { raw = "[1,2]" })
      assert.are.equal(400, code)
      code = call(
        app, "POST", "/v1/deepresearch/tasks", { body = { query = "q", metadata = { 1, 2 } } })
      assert.are.equal(400, code)
    end)

    it("offers the validation_failed shape listing every error", function()
      app.config.valyu.error_shape = "validation"
      local code, b = create(app, { query = "", mode = "turbo",
        research_strategy = rep("s", 15001) })
      assert.are.equal(400, code)
      assert.are.equal("validation_failed", b.error)
      assert.are.equal("3 validation errors", b.message)
      assert.are.equal(3, #b.errors)
      local keys, messages = {}, {}
      for _, e in ipairs(b.errors) do
        assert.is_string(e.code)
        keys[e.key], messages[#messages + 1] = true, e.message
      end
      assert.is_true(keys.query and keys.mode and keys.research_strategy)
      assert.is_truthy(table.concat(messages, "|"):find(
        "research_strategy and report_format combined length (15001) exceeds 15,000 character " ..
        "limit", 1, true))
      code, b = create(app, { workflow_id = "w", query = "q" })
      assert.are.equal(400, code)
      assert.are.equal("1 validation error", b.message)
      assert.are.equal("workflow_and_freeform_mutually_exclusive", b.errors[1].code)
    end)
  end)

  describe("billing (V3)", function()
    it("reserves the mode price at create and keeps it on completion", function()
      for mode, price in pairs({ instant = 0.05, fast = 0.10, standard = 0.50, heavy = 2.50,
        max = 15.00 }) do
        local a = fake_app(1)
        created_id(a, { query = "q", mode = mode })
        assert.is_true(near(100 - price, balance(a)), mode)
        a:advance(10800)
        assert.are.equal(1, #a:state().tasks)
        assert.are.equal("completed", a:state().tasks[1].status)
        assert.is_true(near(100 - price, balance(a)), mode)
        assert.is_true(near(price, a:state().balances.val_org1.charged))
      end
    end)

    it("answers 402 when the balance cannot cover the price, creating nothing", function()
      created_id(app, { query = "q", mode = "fast" }, "valyu-poor")          -- 0.20 -> 0.10
      local code, b = create(app, { query = "q", mode = "standard" }, "valyu-poor")
      assert.are.equal(402, code)
      assert.are.same({ success = false, error = "Insufficient credits" }, b)
      created_id(app, { query = "q", mode = "fast" }, "valyu-poor")          -- 0.10 -> 0
      code = create(app, { query = "q", mode = "fast" }, "valyu-poor")
      assert.are.equal(402, code)
      assert.are.equal(2, app.counters["valyu.tasks_created"])
      assert.are.equal(2, app:state().task_count)
      assert.is_true(near(0, balance(app, "val_org_poor")))
    end)

    it("answers 503 when billing is unavailable, creating nothing", function()
      app.config.valyu.billing_unavailable = true
      local code, b = create(app, { query = "q" })
      assert.are.equal(503, code)
      assert.is_false(b.success)
      assert.is_string(b.error)
      assert.are.equal(0, app:state().task_count)
      assert.is_true(near(100, balance(app)))
      app.config.valyu.billing_unavailable = false
      assert.are.equal(200, (create(app, { query = "q" })))
    end)

    it("refunds a failed task, and a cancelled one per refund_on_cancel", function()
      created_id(app, { query = "this will [fail]" })
      app:advance(900)
      assert.are.equal("failed", app:state().tasks[1].status)
      assert.is_true(near(100, balance(app)))

      local id = created_id(app, { query = "q" })
      call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/cancel")
      assert.is_true(near(100, balance(app)))                         -- "full" (default)

      app.config.valyu.refund_on_cancel = "none"
      id = created_id(app, { query = "q" })
      call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/cancel")
      assert.is_true(near(99.5, balance(app)))

      app.config.valyu.refund_on_cancel = "unused"
      id = created_id(app, { query = "q" })
      app:advance(450)                                                -- half the work done
      call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/cancel")
      assert.is_true(near(99.25, balance(app)))
      local _, b = status(app, id)
      assert.is_true(near(0.25, b.cost))
    end)
  end)

  describe("create response (V4)", function()
    it("has the documented fields", function()
      local code, b, headers, raw = create(app, { query = "CRISPR trials", mode = "fast" })
      assert.are.equal(200, code)
      assert.are.equal("application/json", headers["Content-Type"])
      assert.matches(
        "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$",
        b.deepresearch_id)
      assert.are.equal("running", b.status)
      assert.are.equal("fast", b.mode)
      assert.are.equal("2026-01-01T00:00:00.000Z", b.created_at)
      assert.is_false(b.public)
      assert.is_truthy(raw:find('"metadata":{}', 1, true))
      assert.is_nil(b.webhook_secret)
      assert.is_nil(b.message)
      assert.are.equal(1, app.counters["valyu.tasks_created"])
    end)

    it("echoes metadata and returns a webhook_secret only with webhook_url", function()
      local meta = { team = "growth", n = 3, flag = true }
      local _, b = create(
        app, { query = "q", metadata = meta, webhook_url = "https://hooks.example.com/v" })
      assert.are.same(meta, b.metadata)
      assert.matches("^" .. rep("%x", 64) .. "$", b.webhook_secret)
      assert.is_nil(select(2, status(app, b.deepresearch_id)).metadata)
      app.config.valyu.status_metadata = true                 -- opt-in echo on status
      assert.are.same(meta, select(2, status(app, b.deepresearch_id)).metadata)
    end)

    it("queues tasks beyond the organisation's concurrency and starts them as slots " ..
      "free", function()
      for i = 1, 3 do created_id(app, { query = "q" .. i }) end
      app:advance(60)
      local id4, b = created_id(app, { query = "q4" })
      assert.are.equal("queued", b.status)
      assert.is_string(b.message)
      -- other organisations are not affected
      created_id(app, { query = "other org" }, "valyu-other")
      local _, s = status(app, id4)
      assert.are.equal("queued", s.status)
      assert.is_nil(s.progress)
      assert.is_nil(s.messages)
      app:advance(840)                                        -- the first three finish at 900
      _, s = status(app, id4)
      assert.are.equal("running", s.status)
      assert.are.equal(1, s.progress.current_step)
      app:advance(900)
      _, s = status(app, id4)
      assert.are.equal("completed", s.status)
      assert.are.equal("2026-01-01T00:30:00.000Z", s.completed_at) -- started at 900, ran 900
    end)

    it("honours config.valyu.concurrency", function()
      app.config.valyu.concurrency = 1
      created_id(app, { query = "a" })
      local _, b = create(app, { query = "b" })
      assert.are.equal("queued", b.status)
    end)
  end)

  describe("running (V5)", function()
    it("reports progress 1..total_steps, never decreasing, and append-only messages", function()
      local id = created_id(app, { query = "fast one", mode = "fast" })
      local last_step, last_messages = 0, {}
      local seen_total
      for _ = 1, 18 do                                     -- t = 0, 10, ..., 170
        local _, b = status(app, id)
        assert.are.equal("running", b.status)
        assert.are.equal(10, b.progress.total_steps)
        assert.is_true(b.progress.current_step >= last_step and b.progress.current_step <= 10)
        assert.is_true(#b.messages >= #last_messages)
        for i, m in ipairs(last_messages) do assert.are.same(m, b.messages[i]) end
        last_step, last_messages, seen_total = b.progress.current_step, b.messages,
          b.progress.current_step
        app:advance(10)
      end
      assert.are.equal(10, seen_total)                     -- t = 180 now
      local _, b = status(app, id)
      assert.are.equal("completed", b.status)
      assert.is_nil(b.progress)
      for i, m in ipairs(last_messages) do assert.are.same(m, b.messages[i]) end
    end)

    it("uses 15/15/25 steps for standard/heavy/max and the configured durations", function()
      for mode, steps in pairs({ standard = 15, heavy = 15, max = 25 }) do
        local _, b = status(app, created_id(app, { query = "q", mode = mode }))
        assert.are.equal(steps, b.progress.total_steps)
      end
      app.config.valyu.duration.fast = 30
      app.config.valyu.time_scale = 2 -- 60 s
      local id = created_id(app, { query = "q", mode = "fast" }, "valyu-other")
      app:advance(59)
      assert.are.equal("running", select(2, status(app, id, { key = "valyu-other" })).status)
      app:advance(1)
      assert.are.equal("completed", select(2, status(app, id, { key = "valyu-other" })).status)
    end)
  end)

  describe("instant mode", function()
    it("is accepted, takes 20 virtual seconds in 3 steps with 3 sources", function()
      local id, b = created_id(app, { query = "quick answer", mode = "instant" })
      assert.are.equal("instant", b.mode)
      local _, s = status(app, id)
      assert.are.equal(3, s.progress.total_steps)
      app:advance(19)
      assert.are.equal("running", select(2, status(app, id)).status)
      app:advance(1)
      _, s = status(app, id)
      assert.are.equal("completed", s.status)
      assert.are.equal(3, #s.sources)
      assert.is_true(near(0.05, s.cost))
    end)

    it("runs max tasks for 180 minutes by default", function()
      local id = created_id(app, { query = "deep", mode = "max" })
      app:advance(10799)
      assert.are.equal("running", select(2, status(app, id)).status)
      app:advance(1)
      assert.are.equal("completed", select(2, status(app, id)).status)
    end)
  end)

  describe("completed (V6)", function()
    it("carries a cited markdown report, sources, cost and an empty images array", function()
      local id = created_id(
        app, { query = "Comprehensive analysis of CRISPR gene therapy clinical trials" })
      app:advance(900)
      local code, b, _, raw = status(app, id)
      assert.are.equal(200, code)
      assert.are.equal("completed", b.status)
      assert.are.equal("markdown", b.output_type)
      assert.are.equal("standard", b.mode)
      assert.are.same({ "markdown" }, b.output_formats)
      assert.is_true(#b.sources >= 1)
      for _, s in ipairs(b.sources) do
        assert.is_string(s.title)
        assert.matches("^https://", s.url)
        assert.is_string(s.snippet)
      end
      local cited = 0
      for n in b.output:gmatch("%[(%d+)%]") do
        n = tonumber(n)
        assert.is_true(n >= 1 and n <= #b.sources)
        cited = cited + 1
      end
      assert.is_true(cited >= #b.sources)
      assert.are.equal(0.5, b.cost)
      assert.are.same({ task = 0.5 }, b.cost_breakdown)
      assert.are.equal("2026-01-01T00:15:00.000Z", b.completed_at)
      assert.are.equal("2026-01-01T00:00:00.000Z", b.created_at)
      assert.is_truthy(raw:find('"images":[]', 1, true))
      assert.is_nil(b.pdf_url)
      assert.is_nil(b.deliverables)
      assert.is_nil(b.error)
      assert.is_false(b.public)
    end)

    it("adds pdf_url iff pdf was requested, and deliverables iff requested", function()
      local id = created_id(app, { query = "q", output_formats = { "markdown", "pdf" },
        deliverables = {
          "A csv of the vendors", { type = "xlsx", description = "pricing table" }, "a poem" } })
      app:advance(900)
      local _, b = status(app, id)
      assert.matches(
        "^http://sim%.test/v1/deepresearch/tasks/" .. id:gsub("%-", "%%-") .. "/assets/", b.pdf_url)
      assert.are.equal(3, #b.deliverables)
      assert.are.equal("csv", b.deliverables[1].type)
      assert.are.equal("completed", b.deliverables[1].status)
      assert.matches("token=", b.deliverables[1].url)
      assert.are.equal("xlsx", b.deliverables[2].type)
      assert.are.equal("failed", b.deliverables[3].status)
      assert.is_string(b.deliverables[3].error)
      -- the signed URLs serve the assets
      local path = b.pdf_url:gsub("^http://sim%.test", "")
      local code, _, headers, body = call(app, "GET", path, { key = false })
      assert.are.equal(200, code)
      assert.are.equal("application/pdf", headers["Content-Type"])
      assert.matches("^%%PDF", body)
      code = call(app, "GET", (path:gsub("token=%x+", "token=bad")), { key = false })
      assert.are.equal(401, code)
    end)

    it("returns an object valid against the given JSON schema", function()
      local schema = {
        type = "object",
        ["$defs"] = { company = { type = "object", required = { "name", "founded" },
          properties = {
            name = { type = "string", minLength = 3 }, founded = { type = "integer", minimum = 1900,
            maximum = 2025 }, website = { type = "string", format = "uri" } },
            additionalProperties = false } },
        required = { "title", "companies", "score", "status" },
        properties = {
          title = { type = "string", maxLength = 12 },
          companies = {
            type = "array", minItems = 3, maxItems = 5, items = { ["$ref"] = "#/$defs/company" } },
          score = { type = "number", exclusiveMinimum = 0, maximum = 1 },
          status = { type = "string", enum = { "draft", "final" } },
          tags = { type = "array", items = { type = "string" }, maxItems = 0 },
          as_of = { type = "string", format = "date" },
          contact = { type = "string", format = "email" },
          note = { anyOf = { { type = "null" }, { type = "string" } } },
          flags = { type = "object", properties = { verified = { type = "boolean" } } },
          empty = { type = "object" },
        },
        additionalProperties = false,
      }
      local id = created_id(app, { query = "Top EU battery makers", output_formats = { schema } })
      app:advance(900)
      local _, b, _, raw = status(app, id)
      assert.are.equal("completed", b.status)
      assert.are.equal("json", b.output_type)
      assert.are.equal("table", type(b.output))
      assert.are.same({}, validate(b.output, schema))
      assert.are.equal(3, #b.output.companies)
      assert.is_truthy(raw:find('"tags":[]', 1, true))
      assert.is_truthy(raw:find('"empty":{}', 1, true))
      assert.is_truthy(raw:find('"required":["title","companies","score","status"]', 1, true))
    end)

    it("returns TOON text when toon is requested with a schema", function()
      local schema = { type = "object", properties = { name = { type = "string" },
        items = { type = "array", items = { type = "integer" } } } }
      local id = created_id(
        app, { query = "q", mode = "fast", output_formats = { "toon", schema } })
      app:advance(180)
      local _, b = status(app, id)
      assert.are.equal("toon", b.output_type)
      assert.is_string(b.output)
      assert.matches("items%[2%]: ", b.output)
      assert.matches("name: ", b.output)
    end)
  end)

  describe("failed (V7)", function()
    it("fails a query matching fail_pattern midway with an error and sources", function()
      local id = created_id(app, { query = "please [fail] this" })
      app:advance(449)
      assert.are.equal("running", select(2, status(app, id)).status)
      app:advance(1)
      local _, b = status(app, id)
      assert.are.equal("failed", b.status)
      assert.is_string(b.error)
      assert.is_true(#b.sources >= 1)
      assert.is_nil(b.progress)
      assert.is_nil(b.completed_at)
      assert.is_true(#b.messages >= 1)
    end)

    it("follows config.valyu.fail_pattern", function()
      app.config.valyu.fail_pattern = "BOOM"
      local a = created_id(app, { query = "q [fail]", mode = "fast" })
      local c = created_id(app, { query = "q BOOM", mode = "fast" })
      app:advance(180)
      assert.are.equal("completed", select(2, status(app, a)).status)
      assert.are.equal("failed", select(2, status(app, c)).status)
    end)
  end)

  describe("cancel (V8)", function()
    local function cancel(id, key)
      return call(
        app, "POST", "/v1/deepresearch/tasks/" .. id .. "/cancel", { body = {}, key = key })
    end

    it("cancels a running task at once, with partial output and sources", function()
      local id = created_id(app, { query = "q" })
      app:advance(300)
      local code, b = cancel(id)
      assert.are.equal(200, code)
      assert.are.same({
        success = true, message = "Task cancelled successfully", deepresearch_id = id }, b)
      local _, s = status(app, id)
      assert.are.equal("cancelled", s.status)
      assert.is_true(#s.sources >= 1)
      assert.is_string(s.output)
      assert.is_nil(s.progress)
      app:advance(900)
      assert.are.equal("cancelled", select(2, status(app, id)).status)
    end)

    it("cancels a queued task and lets the next one start", function()
      app.config.valyu.concurrency = 1
      local a = created_id(app, { query = "a" })
      local b = created_id(app, { query = "b" })
      assert.are.equal(200, (cancel(a)))
      assert.are.equal("running", select(2, status(app, b)).status)
      local c = created_id(app, { query = "c" })
      assert.are.equal(200, (cancel(c)))
      assert.are.equal("cancelled", select(2, status(app, c)).status)
    end)

    it("answers 400 for terminal tasks and 404 for unknown or foreign ones", function()
      local id = created_id(app, { query = "q", mode = "fast" })
      app:advance(180)
      local code, b = cancel(id)
      assert.are.equal(400, code)
      assert.is_false(b.success)
      local other = created_id(app, { query = "q" })
      cancel(other)
      assert.are.equal(400, (cancel(other)))
      code, b = cancel("00000000-0000-4000-8000-000000000000")
      assert.are.equal(404, code)
      assert.are.same({ success = false, error = "Task not found" }, b)
      local mine = created_id(app, { query = "q" })
      assert.are.equal(404, (cancel(mine, "valyu-other")))
      assert.are.equal("running", select(2, status(app, mine)).status)
    end)
  end)

  describe("delete (V9)", function()
    local function delete(id)
      return call(app, "DELETE", "/v1/deepresearch/tasks/" .. id .. "/delete")
    end

    it("deletes terminal tasks only; afterwards status is 404 and the list omits them", function()
      local id = created_id(app, { query = "q" })
      local code, b = delete(id)
      assert.are.equal(400, code)
      assert.is_false(b.success)
      app.config.valyu.concurrency = 1
      local queued = created_id(app, { query = "queued" })
      assert.are.equal(400, (delete(queued)))
      app:advance(900)
      code, b = delete(id)
      assert.are.equal(200, code)
      assert.are.same({
        success = true, message = "Task deleted successfully", deepresearch_id = id }, b)
      code, b = status(app, id)
      assert.are.equal(404, code)
      assert.are.equal("Task not found", b.error)
      local _, list = call(app, "GET", "/v1/deepresearch/list")
      for _, item in ipairs(list) do assert.are_not.equal(id, item.deepresearch_id) end
      assert.are.equal(404, (delete(id)))
    end)
  end)

  describe("update (V10)", function()
    local function update(id, instruction)
      return call(
        app, "POST", "/v1/deepresearch/tasks/" .. id ..
        "/update", { body = { instruction = instruction } })
    end

    it("accepts an instruction while running before the writing phase", function()
      local id = created_id(app, { query = "q" })
      local code, b = update(id, "Focus on European trials")
      assert.are.equal(200, code)
      assert.are.same({ success = true, message = "Instruction added", deepresearch_id = id }, b)
      local _, s = status(app, id)
      assert.are.equal("Focus on European trials", s.messages[#s.messages].content)
      app:advance(720)                                     -- step 13 of 15
      assert.are.equal(13, select(2, status(app, id)).progress.current_step)
      assert.are.equal(200, (update(id, "Add a table")))
      app:advance(60)                                      -- step 14 = total - 1: writing
      code, b = update(id, "Too late")
      assert.are.equal(400, code)
      assert.is_false(b.success)
      app:advance(120)
      _, s = status(app, id)
      assert.are.equal("completed", s.status)
      assert.is_truthy(s.output:find("Focus on European trials", 1, true))
      assert.are.equal(400, (update(id, "after the end")))
    end)

    it("rejects an empty instruction and tasks that are not running", function()
      local id = created_id(app, { query = "q" })
      assert.are.equal(400, (update(id, "")))
      assert.are.equal(400, (update(id, "   ")))
      assert.are.equal(
        400, (call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/update", { body = {} })))
      app.config.valyu.concurrency = 1
      local queued = created_id(app, { query = "q2" })
      assert.are.equal(400, (update(queued, "x")))
      assert.are.equal(404, (update("nope", "x")))
    end)
  end)

  describe("list (V11)", function()
    local function list(q, key)
      return call(app, "GET", "/v1/deepresearch/list" .. (q or ""), { key = key })
    end

    it("validates limit 1..100", function()
      for _, bad in ipairs({ "0", "101", "abc", "1.5", "-3", "" }) do
        local code, b = list("?limit=" .. bad)
        assert.are.equal(400, code, bad)
        assert.is_false(b.success)
      end
      assert.are.equal(200, (list("?limit=1")))
      assert.are.equal(200, (list("?limit=100")))
    end)

    it("returns a bare array, newest first, default 10, own organisation only", function()
      local _, empty, _, raw = list()
      assert.are.equal("[]", raw)
      assert.are.same({}, empty)
      local ids = {}
      for i = 1, 12 do
        ids[i] = created_id(app, { query = "q" .. i, mode = "fast" })
        app:advance(1)
      end
      created_id(app, { query = "theirs" }, "valyu-other")
      local code, b = list()
      assert.are.equal(200, code)
      assert.are.equal(10, #b)
      assert.are.equal(ids[12], b[1].deepresearch_id)
      assert.are.equal(ids[3], b[10].deepresearch_id)
      local item = b[1]
      assert.are.same({ "created_at", "deepresearch_id", "public", "query", "status" }, (function()
        local keys = {}
        for k in pairs(item) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
      assert.are.equal("q12", item.query)
      assert.are.equal("2026-01-01T00:00:11.000Z", item.created_at)
      assert.are.equal(12, #select(2, list("?limit=100&api_key_id=ignored")))
      assert.are.equal(3, #select(2, list("?limit=3")))
      assert.are.equal(1, #select(2, list(nil, "valyu-other")))
    end)

    it("wraps the list in {data: [...]} with list_envelope = \"data\"", function()
      app.config.valyu.list_envelope = "data"
      local _, _, _, raw = list()
      assert.are.equal('{"data":[]}', raw)
      local id = created_id(app, { query = "q" })
      local code, b = list()
      assert.are.equal(200, code)
      assert.are.equal(id, b.data[1].deepresearch_id)
    end)
  end)

  describe("conditional polling (V12)", function()
    it("sends a weak ETag that changes with the body and answers 304 to If-None-Match", function()
      local id = created_id(app, { query = "q" })
      local code, _, h1, raw1 = status(app, id)
      assert.are.equal(200, code)
      assert.matches('^W/"%x+"$', h1.ETag)
      local _, _, h2, raw2 = status(app, id)
      assert.are.equal(h1.ETag, h2.ETag)
      assert.are.equal(raw1, raw2)
      local c304, b304, h304, raw304 = status(
        app, id, { headers = { ["If-None-Match"] = h1.ETag } })
      assert.are.equal(304, c304)
      assert.is_nil(b304)
      assert.are.equal("", raw304)
      assert.are.equal(h1.ETag, h304.ETag)
      app:advance(60)                                      -- next step: body and ETag change
      code, _, h2 = status(app, id, { headers = { ["If-None-Match"] = h1.ETag } })
      assert.are.equal(200, code)
      assert.are_not.equal(h1.ETag, h2.ETag)
      assert.are.equal(
        304, (status(app, id, { headers = { ["If-None-Match"] = '"x", ' .. h2.ETag } })))
    end)

    it("can be switched off, and adds Retry-After when configured", function()
      local id = created_id(app, { query = "q" })
      local _, _, h = status(app, id)
      app.config.valyu.retry_after = 7
      local code, _, h7 = status(app, id)
      assert.are.equal(200, code)
      assert.are.equal("7", h7["Retry-After"])
      code, _, h7 = status(app, id, { headers = { ["If-None-Match"] = h.ETag } })
      assert.are.equal(304, code)
      assert.are.equal("7", h7["Retry-After"])
      app.config.valyu.etag = false
      code, _, h = status(app, id, { headers = { ["If-None-Match"] = h.ETag } })
      assert.are.equal(200, code)
      assert.is_nil(h.ETag)
    end)
  end)

  describe("human in the loop (V13)", function()
    local function respond(id, interaction_id, response)
      return call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/respond",
        { body = { interaction_id = interaction_id, response = response } })
    end

    it("stops in awaiting_input with a plan_review interaction and resumes on respond", function()
      local id, created = created_id(
        app, { query = "q", mode = "fast", hitl = { plan_review = true } })
      assert.are.equal("running", created.status)
      local _, b = status(app, id)
      assert.are.equal("awaiting_input", b.status)
      assert.is_nil(b.progress)
      local i = b.interaction
      assert.are.equal("plan_review", i.type)
      assert.is_string(i.interaction_id)
      assert.is_string(i.data.plan)
      assert.are.equal(EPOCH * 1000, i.created_at)
      assert.are.equal(300000, i.timeout_ms)
      assert.are.same({ plan_review = true }, b.hitl_config)
      app:advance(100)
      -- no progress while waiting
      assert.are.equal("awaiting_input", select(2, status(app, id)).status)
      assert.are.equal(400, (respond(id, "wrong-id", { approved = true })))
      assert.are.equal(400, (call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/update",
        { body = { instruction = "x" } })))
      local code, r = respond(id, i.interaction_id, { approved = true })
      assert.are.equal(200, code)
      assert.are.same({ success = true, status = "running", deepresearch_id = id }, r)
      assert.are.equal(400, (respond(id, i.interaction_id, { approved = true })))
      _, b = status(app, id)
      assert.are.equal("running", b.status)
      assert.are.equal(1, b.progress.current_step)
      app:advance(180)
      _, b = status(app, id)
      assert.are.equal("completed", b.status)
      assert.is_false(b.hitl_history[1].auto_continued)
      assert.are.equal("2026-01-01T00:04:40.000Z", b.completed_at)
    end)

    it("pauses an unanswered checkpoint after 300 s, freeing its slot; respond re-enqueues " ..
      "it and it finishes the remaining work", function()
      app.config.valyu.concurrency = 1
      local id = created_id(app, { query = "q", mode = "fast", hitl = { source_review = true } })
      local other = created_id(app, { query = "waiting", mode = "fast" })
      app:advance(72)                                       -- 0.4 of 180 s
      local _, b = status(app, id)
      assert.are.equal("awaiting_input", b.status)
      assert.are.equal(300000, b.interaction.timeout_ms)
      assert.are.equal("queued", select(2, status(app, other)).status) -- the slot is held
      app:advance(299)
      assert.are.equal("awaiting_input", select(2, status(app, id)).status)
      app:advance(1)
      _, b = status(app, id)
      assert.are.equal("paused", b.status)
      assert.are.equal("source_review", b.interaction.type)  -- still answerable
      assert.is_nil(b.progress)
      assert.are.equal("running", select(2, status(app, other)).status) -- slot freed at 372
      app:advance(3600)                                      -- no auto-continue, ever
      assert.are.equal("paused", select(2, status(app, id)).status)
      local code, r = respond(id, b.interaction.interaction_id,
        { included_domains = {}, excluded_domains = { "example.com" } })
      assert.are.equal(200, code)
      assert.are.same({ success = true, status = "queued", deepresearch_id = id }, r)
      _, b = status(app, id)
      assert.are.equal("queued", b.status)
      assert.is_nil(b.interaction)
      local h = b.hitl_history[1]
      assert.is_false(h.auto_continued)
      assert.are.equal((EPOCH + 3972) * 1000, h.responded_at)
      assert.are.same({ "example.com" }, h.response.excluded_domains)
      app:advance(5)                                         -- requeue_delay
      _, b = status(app, id)
      assert.are.equal("running", b.status)
      assert.is_true(b.progress.current_step >= 4)           -- the work done so far is kept
      app:advance(107)
      assert.are.equal("running", select(2, status(app, id)).status)
      app:advance(1)                                         -- 108 s were left
      assert.are.equal("completed", select(2, status(app, id)).status)
    end)

    it("waits in queue after respond when no slot is free", function()
      app.config.valyu.concurrency = 1
      local id = created_id(app, { query = "q", mode = "fast", hitl = { plan_review = true } })
      local _, b = status(app, id)
      app:advance(300)
      assert.are.equal("paused", select(2, status(app, id)).status)
      local other = created_id(app, { query = "takes the slot", mode = "fast" })
      assert.are.equal("running", select(2, status(app, other)).status)
      assert.are.equal(200, (respond(id, b.interaction.interaction_id, { approved = true })))
      app:advance(100)
      assert.are.equal("queued", select(2, status(app, id)).status)
      app:advance(80)                                        -- the other one ends at 480
      assert.are.equal("running", select(2, status(app, id)).status)
    end)

    it("keeps the old auto-continue only behind hitl_auto_continue", function()
      app.config.valyu.hitl_auto_continue = true
      app.config.valyu.hitl_pause_after = 60
      local id = created_id(app, { query = "q", mode = "fast", hitl = { source_review = true } })
      app:advance(72)
      assert.are.equal("awaiting_input", select(2, status(app, id)).status)
      app:advance(60)
      local _, b = status(app, id)
      assert.are.equal("running", b.status)
      assert.is_true(b.hitl_history[1].auto_continued)
      app:advance(108)
      assert.are.equal("completed", select(2, status(app, id)).status)
    end)

    it("sends every checkpoint in the real payload shapes", function()
      local id = created_id(app, { query = "solar panels in Kenya", mode = "fast", hitl = {
        planning_questions = true, plan_review = true, source_review = true,
        outline_review = true } })
      local seen = {}
      for _ = 1, 4 do
        local _, b = status(app, id)
        assert.are.equal("awaiting_input", b.status)
        local i = b.interaction
        seen[#seen + 1] = i.type
        local response
        if i.type == "planning_questions" then
          assert.is_true(#i.data.questions >= 1)
          for _, q in ipairs(i.data.questions) do assert.is_string(q.question) end
          response = { answers = { { question = i.data.questions[1].question, answer = "2024" } } }
        elseif i.type == "plan_review" then
          assert.is_string(i.data.plan)
          assert.is_true(#i.data.research_areas >= 1)
          assert.are.equal(10, i.data.estimated_steps)
          response = { approved = true, modifications = "focus on prices" }
        elseif i.type == "source_review" then
          assert.is_true(#i.data.domains >= 1)
          for _, d in ipairs(i.data.domains) do
            assert.is_string(d.domain)
            assert.is_true(d.source_count >= 1)
            assert.is_true(d.avg_relevance_score >= 0 and d.avg_relevance_score <= 1)
            assert.is_truthy(d.ai_recommendation == "include" or d.ai_recommendation == "exclude")
          end
          response = { included_domains = { i.data.domains[1].domain }, excluded_domains = {} }
        else
          assert.is_string(i.data.outline)
          assert.are.same({ "Summary", "Findings", "Sources" }, i.data.sections)
          response = { approved = false }
        end
        assert.are.equal(200, (respond(id, i.interaction_id, response)))
        app:advance(72)
      end
      assert.are.same({ "planning_questions", "plan_review", "source_review", "outline_review" },
        seen)
    end)

    it("refuses answers of the wrong shape for the checkpoint's type", function()
      local id = created_id(app, { query = "q", mode = "fast", hitl = {
        planning_questions = true, source_review = true } })
      local _, b = status(app, id)
      local iid = b.interaction.interaction_id
      for _, bad in ipairs({ {}, { answers = "x" }, { answers = { { question = "q" } } },
        { approved = true } }) do
        assert.are.equal(400, (respond(id, iid, bad)))
      end
      assert.are.equal(200, (respond(id, iid, { answers = {} })))
      app:advance(72)
      iid = select(2, status(app, id)).interaction.interaction_id
      for _, bad in ipairs({ { approved = true },
        { included_domains = { 1 }, excluded_domains = {} }, { included_domains = {} } }) do
        assert.are.equal(400, (respond(id, iid, bad)))
      end
      local id2 = created_id(app, { query = "q", mode = "fast", hitl = { plan_review = true } })
      local iid2 = select(2, status(app, id2)).interaction.interaction_id
      assert.are.equal(400, (respond(id2, iid2, { approved = "yes" })))
      assert.are.equal(400, (respond(id2, iid2, { approved = true, modifications = 3 })))
      assert.are.equal(400, (respond(id2, "other-id", { approved = true })))
      assert.are.equal(200, (respond(id2, iid2, { approved = true, modifications = "more" })))
    end)

    it("cancels a task awaiting input or paused", function()
      local a = created_id(app, { query = "q", mode = "fast", hitl = { plan_review = true } })
      local p = created_id(app, { query = "q", mode = "fast", hitl = { plan_review = true } })
      app:advance(300)
      assert.are.equal("paused", select(2, status(app, p)).status)
      local c = created_id(app, { query = "q", mode = "fast", hitl = { plan_review = true } })
      for _, id in ipairs({ a, c }) do
        assert.are.equal(200, (call(app, "POST", "/v1/deepresearch/tasks/" .. id .. "/cancel")))
        assert.are.equal("cancelled", select(2, status(app, id)).status)
      end
      assert.are.equal(200, (call(app, "POST", "/v1/deepresearch/tasks/" .. p .. "/cancel")))
      local _, b = status(app, p)
      assert.are.equal("cancelled", b.status)
      assert.is_nil(b.interaction)
    end)
  end)

  describe("aliases and determinism", function()
    it("accepts input, model, strategy and camelCase keys; reports lite as standard", function()
      local _, b = create(app, { input = "old style", model = "lite", strategy = "be brief" })
      assert.are.equal("standard", b.mode)
      assert.is_true(near(99.5, balance(app)))
      local _, s = status(app, b.deepresearch_id)
      assert.are.equal("old style", s.query)
      assert.are.equal("standard", s.mode)
      local schema = { type = "object", properties = { a = { type = "string" } } }
      _, b = create(app, { query = "camel", mode = "fast", outputFormats = { schema },
        webhookUrl = "https://h.example.com" })
      assert.is_string(b.webhook_secret)
      app:advance(180)
      assert.are.equal("json", select(2, status(app, b.deepresearch_id)).output_type)
      assert.are.equal(400, (create(app, { query = "q", webhookUrl = "http://h" })))
    end)

    it("gives the same ids and bodies for the same seed and requests", function()
      local function run(seed)
        local a = fake_app(seed)
        local id = created_id(
          a, { query = "determinism", mode = "fast", webhook_url = "https://h.example.com" })
        a:advance(180)
        local _, _, _, raw = status(a, id)
        return raw
      end
      assert.are.equal(run(3), run(3))
      assert.are_not.equal(run(3), run(4))
    end)

    it("rebuilds its state on reset", function()
      created_id(app, { query = "q" })
      app:reset()
      assert.are.equal(0, app:state().task_count)
      assert.is_true(near(100, balance(app)))
    end)
  end)
end)

-- The same module behind the real engine, over HTTP (spec/support/sim.lua).
describe("simulated Valyu over HTTP", function()
  local support_ok, support = pcall(require, "support.sim")
  if not support_ok then
    pending("spec/support/sim.lua is not available")
    return
  end
  local s

  setup(function()
    s = support.shared()
  end)

  before_each(function()
    s:reset()
  end)

  local function req(method, path, body, headers)
    headers = headers or {}
    if headers["X-API-Key"] == nil and headers["x-api-key"] == nil and not headers.none then
      headers["X-API-Key"] = "valyu-key"
    end
    headers.none = nil
    return assert(s:http(method, path, { body = body, headers = headers }))
  end

  local function valyu_state()
    return s:state().valyu
  end

  it("runs a task end to end with the header in any case", function()
    local r = req("POST", "/v1/deepresearch/tasks", { query = "EU battery makers" })
    assert.are.equal(200, r.status)
    assert.matches("^application/json", r.headers["content-type"])
    assert.is_truthy(r.body:find('"metadata":{}', 1, true))
    local id = r.json.deepresearch_id
    assert.are.equal("running", r.json.status)
    local path = "/v1/deepresearch/tasks/" .. id .. "/status"

    r = req("GET", path, nil, { ["x-api-key"] = "valyu-key" })
    assert.are.equal(200, r.status)
    assert.are.equal(1, r.json.progress.current_step)
    local etag = r.headers.etag
    assert.matches('^W/"%x+"$', etag)
    r = req("GET", path, nil, { ["If-None-Match"] = etag })
    assert.are.equal(304, r.status)
    assert.are.equal("", r.body)

    s:advance(900)
    r = req("GET", path, nil, { ["If-None-Match"] = etag })
    assert.are.equal(200, r.status)
    assert.are.equal("completed", r.json.status)
    assert.is_truthy(r.body:find('"images":[]', 1, true))
    assert.are.equal("2026-01-01T00:15:00.000Z", r.json.completed_at)

    local st = valyu_state()
    assert.are.equal(1, st.task_count)
    assert.are.equal("completed", st.tasks[1].status)
    assert.is_true(near(99.5, st.balances.val_org1.balance))
    assert.are.equal(1, s:counter("valyu.tasks_created"))
  end)

  it("answers 401 without a key and keeps keys out of the control channel", function()
    local r = req("POST", "/v1/deepresearch/tasks", { query = "q" }, { none = true })
    assert.are.equal(401, r.status)
    assert.are.same({ success = false, error = "Invalid API key" }, r.json)
    s:config({ valyu = { keys = { ["secret-key-123"] = { org = "val_x" } } } })
    assert.are.equal(200, req("POST", "/v1/deepresearch/tasks", { query = "q", mode = "fast" },
      { ["X-API-Key"] = "secret-key-123" }).status)
    local cfg = assert(s:http("GET", "/_sim/config")).body
    local mine = cjson.encode(valyu_state()) -- the engine's request log is its own business
    assert.is_nil(cfg:find("secret-key-123", 1, true))
    assert.is_nil(mine:find("secret-key-123", 1, true))
    assert.is_nil(mine:find("valyu-key", 1, true))
  end)

  it("takes config through /_sim/config and restores the defaults on reset", function()
    s:config({ valyu = { error_shape = "validation", retry_after = 3 } })
    local r = req("POST", "/v1/deepresearch/tasks", { query = "" })
    assert.are.equal(400, r.status)
    assert.are.equal("validation_failed", r.json.error)
    r = req("POST", "/v1/deepresearch/tasks", { query = "q" })
    r = req("GET", "/v1/deepresearch/tasks/" .. r.json.deepresearch_id .. "/status")
    assert.are.equal("3", r.headers["retry-after"])
    s:reset()
    r = req("POST", "/v1/deepresearch/tasks", { query = "" })
    assert.are.same({ success = false, error = "query cannot be empty" }, r.json)
  end)

  it("creates nothing when the engine forces a 503 on create", function()
    s:fault({ method = "POST", path = "/v1/deepresearch/tasks", status = 503 })
    local r = req("POST", "/v1/deepresearch/tasks", { query = "q" })
    assert.are.equal(503, r.status)
    assert.are.equal(0, valyu_state().task_count)
    assert.are.equal(0, s:counter("valyu.tasks_created"))
    assert.are.equal(200, req("POST", "/v1/deepresearch/tasks", { query = "q" }).status)
  end)

  it("encodes empty lists as [] (list and state)", function()
    local r = req("GET", "/v1/deepresearch/list?limit=5")
    assert.are.equal(200, r.status)
    assert.are.equal("[]", r.body)
    local state = assert(s:http("GET", "/_sim/state")).body
    assert.is_truthy(state:find('"tasks":[]', 1, true))
  end)

  it("gives identical bodies for the same seed", function()
    local function run()
      s:reset({ seed = 5 })
      local r = req("POST", "/v1/deepresearch/tasks", { query = "determinism", mode = "fast" })
      s:advance(180)
      return r.json.deepresearch_id,
        req("GET", "/v1/deepresearch/tasks/" .. r.json.deepresearch_id .. "/status").body
    end
    local id1, body1 = run()
    local id2, body2 = run()
    assert.are.equal(id1, id2)
    assert.are.equal(body1, body2)
  end)
end)

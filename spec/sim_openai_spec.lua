-- The simulated OpenAI Responses API in background mode (sim/simulator/openai.lua; openai.md
-- PART C O1-O13), over raw HTTP, driven by the virtual clock (frozen: speed 0).
local sim = require "support.sim"

local s
local KEY = { Authorization = "Bearer openai-key" }
local MODEL = "gpt-5.5-pro"

local function post(path, body, headers)
  return assert(s:http("POST", path, { headers = headers or KEY, body = body }))
end

local function get(path, headers)
  return assert(s:http("GET", path, { headers = headers or KEY }))
end

local function create(extra)
  local body = { model = MODEL, input = "Research the Acme Robotics market", background = true,
    tools = { { type = "web_search_preview" } } }
  for k, v in pairs(extra or {}) do body[k] = v end
  return post("/v1/responses", body)
end

local function created()
  return s:counter("openai.tasks_created")
end

-- Code points of a UTF-8 string (no utf8 library on Lua 5.1/LuaJIT).
local function chars(str)
  return select(2, str:gsub("[^\128-\191]", ""))
end

-- The characters [i, j) (0-based, j exclusive) of a UTF-8 string.
local function char_sub(str, i, j)
  local out, n = {}, 0
  for ch in str:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
    if n >= i and n < j then out[#out + 1] = ch end
    n = n + 1
  end
  return table.concat(out)
end

local function last_message(body)
  local item = body.output[#body.output]
  return item and item.type == "message" and item or nil
end

describe("OpenAI simulator", function()
  setup(function() s = sim.shared() end)
  before_each(function() s:reset() end)

  describe("auth (O2)", function()
    it("refuses a missing or unknown key with 401 invalid_api_key and creates nothing", function()
      local r = post("/v1/responses", { model = MODEL, input = "x" }, {})
      assert.equal(401, r.status)
      assert.equal("invalid_api_key", r.json.error.code)
      r = post("/v1/responses", { model = MODEL, input = "x" },
        { Authorization = "Bearer sk-proj-secret-9876" })
      assert.equal(401, r.status)
      assert.equal("invalid_request_error", r.json.error.type)
      assert.truthy(r.json.error.message:find("Incorrect API key provided", 1, true))
      assert.falsy(r.body:find("secret", 1, true))
      assert.equal(0, created())
    end)

    it("answers 429 insufficient_quota without retry-after when the switch is on", function()
      s:config({ openai = { insufficient_quota = true } })
      local r = create()
      assert.equal(429, r.status)
      assert.equal("insufficient_quota", r.json.error.code)
      assert.is_nil(r.headers["retry-after"])
      assert.equal(0, created())
    end)
  end)

  describe("validation (O3)", function()
    it("names the field and creates nothing", function()
      local r = post("/v1/responses", { input = "x" })
      assert.equal(400, r.status)
      assert.equal("model", r.json.error.param)
      r = create({ max_output_tokens = 5 })
      assert.equal("integer_below_min_value", r.json.error.code)
      r = create({ max_output_tokens = "many" })
      assert.equal("invalid_type", r.json.error.code)
      assert.equal("max_output_tokens", r.json.error.param)
      r = create({ brief = "x" })
      assert.equal("unknown_parameter", r.json.error.code)
      assert.equal(0, created())
    end)

    it("answers a shut-down deep-research model as an unknown model (404 model_not_found)",
      function()
        local r = create({ model = "o3-deep-research" })
        assert.equal(404, r.status)
        assert.equal("model_not_found", r.json.error.code)
        assert.truthy(r.json.error.message:find("o3-deep-research", 1, true))
        assert.equal(0, created())
      end)

    it("requires a data-source tool for a live deep-research model", function()
      s:config({ openai = { today = "2026-07-01" } })
      local r = post("/v1/responses", { model = "o4-mini-deep-research", input = "x",
        background = true })
      assert.equal(400, r.status)
      assert.equal("tools", r.json.error.param)
      r = create({ model = "o4-mini-deep-research" })
      assert.equal(200, r.status)
      assert.equal("o4-mini-deep-research-2025-06-26", r.json.model)
    end)
  end)

  describe("create and lifecycle (O4-O7)", function()
    it("answers queued at once with the echoes a client reads", function()
      local r = create({ metadata = { deepresearch_nonce = "n-42" } })
      assert.equal(200, r.status)
      local b = r.json
      assert.truthy(b.id:match("^resp_" .. string.rep("%x", 50) .. "$"))
      assert.equal("response", b.object)
      assert.equal("queued", b.status)
      assert.is_true(b.background)
      assert.is_true(b.store)
      assert.equal("auto", b.service_tier)
      assert.equal("n-42", b.metadata.deepresearch_nonce)
      assert.equal(0, #b.output)
      assert.truthy(r.body:find('"usage":null', 1, true))
      assert.truthy(r.body:find('"completed_at":null', 1, true))
      assert.truthy(r.headers["x-ratelimit-remaining-requests"])
      assert.truthy(r.headers["openai-processing-ms"])
      assert.equal(1, created())
    end)

    it("runs queued -> in_progress -> completed, output growing, terminal frozen", function()
      local id = create().json.id
      s:advance(40)
      local mid = get("/v1/responses/" .. id).json
      assert.equal("in_progress", mid.status)
      assert.is_nil(last_message(mid))
      s:advance(300)
      local later = get("/v1/responses/" .. id).json
      assert.is_true(#later.output >= #mid.output)
      for i, item in ipairs(mid.output) do assert.equal(item.id, later.output[i].id) end
      s:advance(2000)
      local done = get("/v1/responses/" .. id)
      local b = done.json
      assert.equal("completed", b.status)
      assert.equal("number", type(b.completed_at))
      assert.truthy(last_message(b))
      local u = b.usage
      assert.equal(u.input_tokens + u.output_tokens, u.total_tokens)
      assert.is_true(u.output_tokens_details.reasoning_tokens <= u.output_tokens)
      assert.is_true(u.input_tokens_details.cached_tokens <= u.input_tokens)
      local searches = 0
      for _, item in ipairs(b.output) do
        if item.type == "web_search_call" and item.action.type == "search" then
          searches = searches + 1
        end
      end
      assert.equal(searches, b.tool_usage.web_search.num_requests)
      assert.is_nil(b.cost)
      s:advance(100)
      assert.equal(done.body, get("/v1/responses/" .. id).body)
      local st = s:state().openai.tasks[1]
      assert.equal("completed", st.status)
      assert.is_true(st.cost_usd > 0)
    end)
  end)

  describe("citations (O6)", function()
    local function finished(cfg)
      if cfg then s:config({ openai = cfg }) end
      local id = create().json.id
      s:advance(3000)
      return last_message(get("/v1/responses/" .. id).json).content[1]
    end

    it("covers exactly the inline link, in character offsets, non-ASCII before some", function()
      local part = finished()
      assert.is_true(#part.annotations > 0)
      local differs = false
      for _, a in ipairs(part.annotations) do
        assert.equal("url_citation", a.type)
        local span = char_sub(part.text, a.start_index, a.end_index)
        assert.equal("([", span:sub(1, 2))
        assert.truthy(span:find("](" .. a.url .. "))", 1, true))
        local before = char_sub(part.text, 0, a.start_index)
        if #before ~= chars(before) then differs = true end
      end
      assert.is_true(differs)
    end)

    it("switches: sentence ranges, empty annotations", function()
      local part = finished({ citations = "sentence" })
      local a = part.annotations[1]
      assert.is_true(chars(char_sub(part.text, a.start_index, a.end_index)) > 30)
      s:reset()
      assert.equal(0, #finished({ citations = "none" }).annotations)
    end)
  end)

  describe("rare endings (O8, O9)", function()
    it("ends incomplete when max_output_tokens is below the generated size", function()
      local id = create({ max_output_tokens = 7000 }).json.id
      s:advance(3000)
      local b = get("/v1/responses/" .. id).json
      assert.equal("incomplete", b.status)
      assert.equal("max_output_tokens", b.incomplete_details.reason)
      assert.truthy(get("/v1/responses/" .. id).body:find('"completed_at":null', 1, true))
      assert.equal(7000, b.usage.output_tokens)
      local msg = last_message(b)
      if msg then assert.equal("incomplete", msg.status) end
    end)

    it("ends with no message when all tokens go to reasoning", function()
      local id = create({ max_output_tokens = 100 }).json.id
      s:advance(3000)
      local b = get("/v1/responses/" .. id).json
      assert.equal("incomplete", b.status)
      assert.is_nil(last_message(b))
    end)

    it("fails on the marker with server_error, partial output and usage kept", function()
      local id = create({ input = "Research Acme [fail]" }).json.id
      s:advance(3000)
      local b = get("/v1/responses/" .. id).json
      assert.equal("failed", b.status)
      assert.equal("server_error", b.error.code)
      assert.is_nil(last_message(b))
      assert.equal("number", type(b.usage.total_tokens))
    end)
  end)

  describe("switches and optional items", function()
    it("shows reasoning summaries and a code interpreter call when asked", function()
      local id = create({ reasoning = { summary = "auto" },
        tools = { { type = "web_search_preview" }, { type = "code_interpreter",
          container = { type = "auto" } } } }).json.id
      s:advance(3000)
      local b = get("/v1/responses/" .. id).json
      local kinds, summary = {}, false
      for _, item in ipairs(b.output) do
        kinds[item.type] = true
        if item.type == "reasoning" and item.summary[1] then summary = true end
      end
      assert.is_true(kinds.code_interpreter_call)
      assert.is_true(summary)
    end)

    it("ends incomplete by content_filter and omits tool_usage by switch", function()
      s:config({ openai = { incomplete_reason = "content_filter", tool_usage = false } })
      local id = create({ input = "Research Acme [incomplete]" }).json.id
      s:advance(3000)
      local b = get("/v1/responses/" .. id).json
      assert.equal("content_filter", b.incomplete_details.reason)
      assert.is_nil(b.tool_usage)
    end)
  end)

  describe("cancel (O10)", function()
    it("cancels a running response at once and keeps answering it unchanged", function()
      local id = create().json.id
      s:advance(60)
      local r = post("/v1/responses/" .. id .. "/cancel", nil)
      assert.equal(200, r.status)
      assert.equal("cancelled", r.json.status)
      s:advance(3000)
      assert.equal("cancelled", get("/v1/responses/" .. id).json.status)
      local again = post("/v1/responses/" .. id .. "/cancel", nil)
      assert.equal(200, again.status)
      assert.equal("cancelled", again.json.status)
      assert.equal(1, s:counter("openai.cancels"))
    end)

    it("refuses a non-background response and 404s an unknown id", function()
      local r = create({ background = false })
      assert.equal("completed", r.json.status)
      local c = post("/v1/responses/" .. r.json.id .. "/cancel", nil)
      assert.equal(400, c.status)
      assert.equal(404, post("/v1/responses/resp_" .. string.rep("0", 50) .. "/cancel").status)
    end)

    it("switch late_completion: the cancelled run reads completed one poll later", function()
      s:config({ openai = { late_completion = true } })
      local id = create().json.id
      s:advance(60)
      assert.equal("cancelled", post("/v1/responses/" .. id .. "/cancel", nil).json.status)
      assert.equal("completed", get("/v1/responses/" .. id).json.status)
    end)
  end)

  describe("retention and delete (O11)", function()
    it("drops a store:false response 10 minutes after it ends; keeps a stored one", function()
      local gone = create({ store = false }).json.id
      local kept = create().json.id
      repeat s:advance(10) until get("/v1/responses/" .. gone).json.status == "completed"
      s:advance(590)
      assert.equal(200, get("/v1/responses/" .. gone).status)
      s:advance(20)
      local r = get("/v1/responses/" .. gone)
      assert.equal(404, r.status)
      assert.truthy(r.json.error.message:find(gone, 1, true))
      assert.equal(200, get("/v1/responses/" .. kept).status)
    end)

    it("deletes, then answers 404", function()
      local id = create().json.id
      local r = assert(s:http("DELETE", "/v1/responses/" .. id, { headers = KEY }))
      assert.equal(200, r.status)
      assert.is_true(r.json.deleted)
      assert.equal(404, get("/v1/responses/" .. id).status)
    end)

    it("has no list endpoint", function()
      assert.equal(404, get("/v1/responses").status)
    end)
  end)

  describe("webhooks (O14)", function()
    local socket = require "socket"
    local SECRET = "simulated-openai-webhook-secret"

    -- base64 HMAC-SHA256 by the openssl command line (not the simulator's code).
    local function openssl_sig(data)
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
      local hex = SECRET:gsub(".", function(c) return string.format("%02x", c:byte()) end)
      local p = assert(io.popen("openssl dgst -sha256 -mac HMAC -macopt hexkey:" .. hex
        .. " -binary " .. path .. " | openssl base64 -A 2>/dev/null"))
      local out = p:read("*a")
      p:close()
      os.remove(path)
      return out
    end

    -- Accepts one delivery on `server`, answers 200, returns its headers and body.
    local function receive(server)
      local c = assert(server:accept())
      c:settimeout(5)
      local headers = {}
      while true do
        local line = assert(c:receive("*l"))
        if line == "" then break end
        local k, v = line:match("^([^:]+):%s*(.*)$")
        if k then headers[k:lower()] = v end
      end
      local body = assert(c:receive(tonumber(headers["content-length"])))
      c:send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      c:close()
      return headers, body
    end

    local function listen()
      local server = assert(socket.bind("127.0.0.1", 0))
      server:settimeout(5)
      local _, port = server:getsockname()
      s:config({ openai = { webhook_url = "http://127.0.0.1:" .. port .. "/hook" } })
      return server
    end

    it("announces a run's end once, signed the Standard Webhooks way", function()
      local server = listen()
      local id = create().json.id
      s:advance(3000)
      assert.equal("completed", get("/v1/responses/" .. id).json.status)
      local h, body = receive(server)
      server:close()
      local event = require("cjson").decode(body)
      assert.equal("response.completed", event.type)
      assert.equal(id, event.data.id)
      assert.equal(h["webhook-id"], event.id)
      assert.equal("v1," .. openssl_sig(h["webhook-id"] .. "." .. h["webhook-timestamp"] .. "."
        .. body), h["webhook-signature"])
      get("/v1/responses/" .. id)
      local hooks = s:state().openai.webhooks
      assert.equal(1, #hooks)
      assert.equal("delivered", hooks[1].state)
    end)

    it("switches: a bad signature, a stale timestamp", function()
      local server = listen()
      s:config({ openai = { webhook_bad_signature = true, webhook_stale = true } })
      local id = create().json.id
      s:advance(60)
      post("/v1/responses/" .. id .. "/cancel", nil)
      local h, body = receive(server)
      server:close()
      assert.equal("response.cancelled", require("cjson").decode(body).type)
      assert.are_not.equal("v1," .. openssl_sig(h["webhook-id"] .. "."
        .. h["webhook-timestamp"] .. "." .. body), h["webhook-signature"])
      assert.equal(1767225600 + 60 - 400, tonumber(h["webhook-timestamp"]))
    end)
  end)

  describe("rate limits and no idempotency (O12, O13)", function()
    it("answers 429 rate_limit_exceeded with retry-after, nothing created", function()
      s:config({ openai = { creates_per_min = 2 } })
      assert.equal(200, create().status)
      s:advance(10)
      assert.equal(200, create().status)
      local r = create()
      assert.equal(429, r.status)
      assert.equal("rate_limit_exceeded", r.json.error.code)
      assert.equal("50", r.headers["retry-after"])
      assert.equal(2, created())
      s:advance(50)
      assert.equal(200, create().status)
    end)

    it("switches retry-after-ms and an oversized hint", function()
      s:config({ openai = { creates_per_min = 1, retry_after_ms = true, retry_after = 180 } })
      create()
      local r = create()
      assert.equal("180000", r.headers["retry-after-ms"])
      assert.is_nil(r.headers["retry-after"])
    end)

    it("starts a second run for a replayed create; a lost answer still created one", function()
      s:fault({ method = "POST", path = "/v1/responses", kind = "drop", after = true })
      assert.is_nil(s:http("POST", "/v1/responses", { headers = KEY,
        body = { model = MODEL, input = "x", background = true } }))
      assert.equal(1, created())
      create()
      assert.equal(2, created())
      assert.equal(2, #s:state().openai.tasks)
    end)
  end)
end)

-- Valyu modes, wait pacing and request limits (issue 15 items 2-5, 7, list envelope,
-- webhook_url), against the simulator's clock.
local dr = require "deepresearch"
local env = require "support.env"
local valyu = require "deepresearch.providers.valyu"
local descriptor = require "deepresearch.providers.descriptor.valyu"
local validate = require "deepresearch.base.validate"
local utf8 = require "deepresearch.base.utf8"

describe("issue 15: Valyu modes, pacing and limits", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client, clock = env.client(
      s, { provider = "valyu", api_key = "valyu-key", token = false, base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"

  local function polls()
    return env.count_requests(s, "^GET /v1/deepresearch/tasks/[^/]+/status$")
  end

  local function sent_body()
    local req = s:requests_to("POST", "/v1/deepresearch/tasks$")[1]
    return require("cjson").decode(req.body)
  end

  describe("item 7: modes are descriptor data", function()
    it("lists instant .. max with price, run time and steps; lite is standard", function()
      assert.same({ "instant", "fast", "standard", "heavy", "max" }, descriptor.mode_order)
      assert.same({ 0.10, 0.50, 2.50, 15.00 }, { descriptor.modes.fast.price,
        descriptor.modes.standard.price, descriptor.modes.heavy.price, descriptor.modes.max.price })
      assert.is_nil(descriptor.modes.instant.price) -- not published
      assert.equals(30, descriptor.modes.instant.runtime)
      assert.equals(180 * 60, descriptor.modes.max.runtime)
      assert.equals("standard", descriptor.mode_aliases.lite)
      for i, m in ipairs(descriptor.mode_order) do assert.equals(m, valyu.MODES[i]) end
      assert.truthy(#valyu.MODES == 6 and valyu.MODES[6] == "lite")
    end)

    it("an instant task is sent as instant and runs to completion", function()
      local done = dr.assert(client:run{ query = QUERY, mode = "instant" })
      assert.equals("completed", done.status)
      assert.equals("instant", done.mode)
      assert.equals("instant", sent_body().mode)
    end)

    it("lite is sent as standard", function()
      dr.assert(client:create{ query = QUERY, mode = "lite" })
      assert.equals("standard", sent_body().mode)
    end)

    it("an unknown mode is refused locally, naming instant among the choices", function()
      local _, err = client:create{ query = QUERY, mode = "turbo" }
      assert.equals("invalid_request", err.code)
      assert.matches("instant", err.message)
      assert.equals(0, #s:requests())
    end)
  end)

  describe("item 5: the default wait timeout comes from the mode", function()
    it("is at least 7200 s and 1.5 x the mode's upper run time", function()
      assert.equals(7200, valyu.default_timeout("instant"))
      assert.equals(7200, valyu.default_timeout("fast"))
      assert.equals(8100, valyu.default_timeout("heavy")) -- 1.5 x 90 minutes
    end)
  end)

  it("item 5: max waits 16200 s by default, and a max task past two hours completes", function()
    assert.equals(16200, valyu.default_timeout("max"))
    assert.equals(valyu.default_timeout("standard"), valyu.default_timeout(nil))
    local t = dr.assert(client:create{ query = QUERY, mode = "max" })
    local done = dr.assert(client:wait(t.deepresearch_id))
    assert.equals("completed", done.status)
    assert.truthy(clock.t > 7200, "ran " .. clock.t .. " virtual seconds")
  end)

  it("item 5: a caller's timeout still wins over the mode's", function()
    local t = dr.assert(client:create{ query = QUERY, mode = "max" })
    local _, err = client:wait(t.deepresearch_id, { timeout = 600 })
    assert.equals("timeout", err.code)
    assert.truthy(clock.t <= 600)
  end)

  describe("item 3: Retry-After on a status answer paces the polls", function()
    it("as a floor: no poll sooner than the server asks", function()
      s:config{ valyu = { retry_after = 20 } }
      local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
      dr.assert(client:wait(t.deepresearch_id))
      for i, d in ipairs(clock.sleeps) do
        assert.truthy(d >= 20 and d <= 30, "sleep " .. i .. " was " .. d)
      end
      -- 180 virtual seconds: ten polls at most, where 2 s x 1.5 takes twelve.
      assert.truthy(polls() <= 10, polls() .. " polls")
    end)

    it("capped by max_interval", function()
      s:config{ valyu = { retry_after = 60 } }
      local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
      dr.assert(client:wait(t.deepresearch_id, { max_interval = 10 }))
      for _, d in ipairs(clock.sleeps) do assert.truthy(d <= 10) end
    end)

    it("without one, the schedule starts at the interval", function()
      local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
      dr.assert(client:wait(t.deepresearch_id))
      assert.equals(2, clock.sleeps[1])
    end)
  end)

  describe("item 4: research_strategy + report_format count characters", function()
    local CJK = utf8.char(0x8abf) -- one character, three bytes

    it("accepts a 6,000-character CJK strategy (18,000 bytes)", function()
      local t = dr.assert(client:create{ query = QUERY, mode = "fast",
        research_strategy = CJK:rep(6000), report_format = CJK:rep(9000) })
      assert.is_string(t.deepresearch_id)
    end)

    it("refuses 15,001 characters with the server's text, before sending", function()
      local _, err = client:create{ query = QUERY, research_strategy = CJK:rep(15000),
        report_format = "x" }
      assert.equals("invalid_request", err.code)
      assert.equals("research_strategy and report_format combined length (15001) exceeds " ..
        "15,000 character limit", err.message)
      assert.equals(0, #s:requests())
    end)

    it("the legacy strategy alias counts the same way", function()
      local _, err = client:create{ query = QUERY, strategy = CJK:rep(15001) }
      assert.matches("%(15001%)", err.message)
    end)

    it("refuses a strategy that is not UTF-8", function()
      local _, err = client:create{ query = QUERY, report_format = "ok\255" }
      assert.equals("report_format", err.field)
    end)

    it("the query's 25,000 limit counts characters too", function()
      local t = dr.assert(client:create{ query = CJK:rep(25000), mode = "fast" })
      assert.is_string(t.deepresearch_id)
      local _, err = client:create{ query = CJK:rep(25001) }
      assert.equals("invalid_request", err.code)
      assert.matches("25001 characters", err.message)
    end)
  end)

  describe("list answers", function()
    it("a bare array or {data: [...]}", function()
      dr.assert(client:create{ query = QUERY, mode = "fast" })
      local bare = dr.assert(client:list{ limit = 5 })
      assert.equals(1, #bare)
      s:config{ valyu = { list_envelope = "data" } }
      local wrapped = dr.assert(client:list{ limit = 5 })
      assert.equals(1, #wrapped)
      assert.equals(bare[1].deepresearch_id, wrapped[1].deepresearch_id)
    end)

    it("a lost create is reconciled through a {data: [...]} list", function()
      s:config{ valyu = { list_envelope = "data" } }
      s:fault{ method = "POST", path = "/v1/deepresearch/tasks", kind = "drop", after = true }
      local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
      assert.is_true(t.reconciled)
    end)
  end)

  describe("webhook_url", function()
    it("https anywhere; plain http only for loopback hosts", function()
      for _, u in ipairs({ "https://hooks.example.com/x", "http://127.0.0.1:8080/hook",
        "http://localhost/hook", "http://[::1]:9000/", "HTTP://LOCALHOST:1/" }) do
        assert.is_true(validate.webhook_url("webhook_url", u), u)
      end
      for _, u in ipairs({ "http://hooks.example.com/x", "http://localhost.evil.com/",
        "http://127.0.0.1@evil.com/", "ftp://127.0.0.1/", "127.0.0.1:80", "https:///x" }) do
        local ok, err = validate.webhook_url("webhook_url", u)
        assert.is_nil(ok, u)
        assert.equals("webhook_url", err.field)
      end
    end)

    it("create sends a loopback http webhook and refuses a remote one unsent", function()
      local t = dr.assert(client:create{ query = QUERY, mode = "fast",
        webhook_url = "http://127.0.0.1:9/hook" })
      assert.is_string(t.deepresearch_id)
      s:clear_requests()
      local _, err = client:create{ query = QUERY, webhook_url = "http://hooks.example.com/x" }
      assert.equals("invalid_request", err.code)
      assert.equals(0, #s:requests())
    end)
  end)
end)

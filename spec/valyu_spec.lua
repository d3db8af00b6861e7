-- The Valyu DeepResearch client against the simulator.
local dr = require "deepresearch"
local env = require "support.env"

describe("valyu", function()
  local s, client, clock
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client, clock = env.client(
      s, { provider = "valyu", api_key = "valyu-key", token = false, base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"

  it("is configured from api_key, X-API-Key and the Valyu base URL", function()
    assert.matches("valyu", tostring(client))
    local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
    local req = s:requests()[#s:requests()]
    assert.equals("valyu-key", req.headers["x-api-key"])
    assert.is_nil(req.headers.authorization)
    assert.is_string(t.deepresearch_id)
    assert.equals("fast", t.mode)
  end)

  it("reads VALYU_API_KEY when no key is given", function()
    local c = dr.client{ provider = "valyu", base_url = s.url }
    local _, err = c:get("x")
    if not os.getenv("VALYU_API_KEY") then
      assert.equals("unauthorized", err.code)
      assert.matches("VALYU_API_KEY", err.message)
    end
    c:close()
  end)

  it("creates, waits and returns the completed task with markdown output and sources", function()
    local t = dr.assert(
      client:create{ query = QUERY, mode = "fast", output_formats = { "markdown", "pdf" } })
    local seen = 0
    local done = dr.assert(
      client:wait(t.deepresearch_id, { on_progress = function() seen = seen + 1 end }))
    assert.equals("completed", done.status)
    assert.equals("markdown", done.output_type)
    assert.is_string(done.output)
    assert.truthy(#done.sources >= 1)
    assert.is_string(done.pdf_url)
    assert.truthy(seen >= 2)
    assert.equals("done", dr.state(done))
  end)

  it("returns JSON output for a schema", function()
    local schema = {
      type = "object", required = { "summary" }, properties = { summary = { type = "string" } } }
    local done = dr.assert(client:run{ query = QUERY, mode = "fast", output_formats = { schema } })
    assert.equals("json", done.output_type)
    assert.is_string(done.output.summary)
  end)

  it("ends with task_failed for a failed task", function()
    local t = dr.assert(client:create{ query = QUERY .. " [fail]", mode = "fast" })
    local _, err = client:wait(t.deepresearch_id)
    assert.equals("task_failed", err.code)
    assert.is_string(err.reason)
    assert.equals("failed", dr.state(err.task))
  end)

  it("cancel ends a wait with the cancelled code", function()
    local t = dr.assert(client:create{ query = QUERY, mode = "heavy" })
    local ack = dr.assert(client:cancel(t.deepresearch_id))
    assert.is_true(ack.success)
    local _, err = client:wait(t.deepresearch_id)
    assert.equals("cancelled", err.code)
    assert.equals("cancelled", dr.state(err.task))
    local _, again = client:cancel(t.deepresearch_id)
    assert.equals("invalid_request", again.code)
    assert.equals(400, again.status)
  end)

  it("deletes only finished tasks", function()
    local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
    local _, err = client:delete(t.deepresearch_id)
    assert.equals(400, err.status)
    dr.assert(client:wait(t.deepresearch_id))
    assert.truthy(client:delete(t.deepresearch_id))
    local _, gone = client:get(t.deepresearch_id)
    assert.equals("not_found", gone.code)
  end)

  it("updates a running task and refuses an empty instruction", function()
    local t = dr.assert(client:create{ query = QUERY, mode = "standard" })
    s:advance(60)
    assert.truthy(client:update(t.deepresearch_id, "Focus on Europe"))
    local _, err = client:update(t.deepresearch_id, "  ")
    assert.equals("invalid_request", err.code)
  end)

  it("lists newest first and validates limit", function()
    local a = dr.assert(client:create{ query = QUERY .. " a", mode = "fast" })
    s:advance(1)
    local b = dr.assert(client:create{ query = QUERY .. " b", mode = "fast" })
    local list = dr.assert(client:list{ limit = 10 })
    assert.equals(b.deepresearch_id, list[1].deepresearch_id)
    assert.equals(a.deepresearch_id, list[2].deepresearch_id)
    local _, err = client:list{ limit = 101 }
    assert.equals("invalid_request", err.code)
  end)

  it("validates create locally with the server's rules", function()
    local before = #s:requests()
    local long = string.rep("x", 7501)
    local cases = {
      { query = "" }, { query = string.rep("a", 25001) }, { query = QUERY, mode = "turbo" },
      { query = QUERY, research_strategy = long, report_format = long },
      { query = QUERY,
      urls = { "https://a", "https://b", "https://c", "https://d", "https://e", "https://f",
        "https://g", "https://h", "https://i", "https://j", "https://k" } },
      { query = QUERY, webhook_url = "http://insecure.example" },
      { query = QUERY, output_formats = { "markdown", { type = "object" } } },
      { query = QUERY, workflow_id = "wf" },
    }
    for i, p in ipairs(cases) do
      local _, err = client:create(p)
      assert.equals("invalid_request", err and err.code, "case " .. i)
    end
    local _, err = client:create{ query = QUERY, research_strategy = long, report_format = long }
    assert.matches("combined length %(15002%) exceeds 15,000 character limit", err.message)
    assert.equals(before, #s:requests())
  end)

  it("maps 401, 403, 402 and 503 bodies", function()
    local function with_key(key)
      local c = env.client(
        s, { provider = "valyu", api_key = key, base_delay = 0.01, max_retries = 0 })
      local _, err = c:create{ query = QUERY, mode = "standard" }
      c:close()
      return err
    end
    assert.equals("unauthorized", with_key("nope").code)
    local e403 = with_key("valyu-noperm")
    assert.equals("forbidden", e403.code)
    assert.matches("permission", e403.message)
    local e402 = with_key("valyu-poor")
    assert.equals("insufficient_credits", e402.code)
    s:config{ valyu = { billing_unavailable = true } }
    local e503 = with_key("valyu-key")
    assert.equals("unavailable", e503.code)
    assert.equals(0, s:counter("valyu.tasks_created"))
  end)

  it("reads the validation_failed error shape", function()
    s:config{ valyu = { error_shape = "validation" } }
    local _, server = client:create{
      query = QUERY, mode = "fast", previous_reports = { "not-a-task-id" },
      search = { search_type = "nonsense" } }
    if server then assert.equals("invalid_request", server.code) end
    s:fault{ method = "POST", path = "/v1/deepresearch/tasks", status = 400,
      body = '{"error":"validation_failed","message":"2 validation ' ..
        'errors","errors":[{"code":"unknown_param","key":"company","message":"Unknown parameter ' ..
        '\\"company\\""},{"code":"missing_param","key":"target","message":"Required parameter ' ..
        '\\"target\\" is missing"}]}' }
    local _, e = client:create{ query = QUERY, mode = "fast" }
    assert.equals("invalid_request", e.code)
    assert.matches("2 validation errors", e.message)
    assert.matches("company", e.message)
    assert.equals("target", e.fields[2].field)
  end)

  it("polls with If-None-Match and reuses the task on 304", function()
    local t = dr.assert(client:create{ query = QUERY, mode = "fast" })
    dr.assert(client:wait(t.deepresearch_id, { interval = 1, max_interval = 1 }))
    local conditional, not_modified = 0, 0
    for _, r in ipairs(s:requests()) do
      if r.headers["if-none-match"] then conditional = conditional + 1 end
      if r.status == 304 then not_modified = not_modified + 1 end
    end
    assert.truthy(conditional > 0)
    assert.truthy(not_modified > 0)
    assert.truthy(#clock.sleeps > 0)
  end)

  it("stamps a nonce in metadata and reconciles a lost create by it", function()
    s:config{ valyu = { status_metadata = true } }
    s:fault{ method = "POST", path = "/v1/deepresearch/tasks", kind = "drop", after = true }
    local t = dr.assert(client:create{ query = QUERY, mode = "fast", metadata = { team = "gtm" } })
    assert.is_true(t.reconciled)
    assert.equals(1, s:counter("valyu.tasks_created"))
    assert.equals("gtm", t.metadata.team)
    assert.is_string(t.metadata.deepresearch_nonce)
  end)

  it("reports ambiguous when a lost create cannot be found", function()
    s:fault{ method = "POST", path = "/v1/deepresearch/tasks", kind = "drop" }
    local _, err = client:create{ query = QUERY, mode = "fast" }
    assert.equals("ambiguous", err.code)
    assert.equals(0, s:counter("valyu.tasks_created"))
  end)

  it("dr.state normalises every provider's statuses", function()
    assert.equals("queued", dr.state{ id = "x", status = "created" })
    assert.equals("running", dr.state{ id = "x", status = "in_progress" })
    assert.equals("done", dr.state{ deepresearch_id = "x", status = "completed" })
    assert.equals("cancelled", dr.state{ deepresearch_id = "x", status = "cancelled" })
    assert.equals("queued", dr.state{ deepresearch_id = "x", status = "queued" })
    assert.is_nil(dr.state{ id = "x", status = "weird" })
  end)
end)

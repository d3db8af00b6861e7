-- dr.fallback (issue 19 part 2): the next provider only after a create refused with nothing
-- made; never after ambiguous, never once a task exists. Counted: the simulator's tasks per
-- provider (never two paid tasks) and the creates sent.
local dr = require "deepresearch"
local env = require "support.env"

describe("fallback", function()
  local s, clients
  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    s:config{ perplexity = { time_scale = 0.1 }, openai = { time_scale = 0.1 } }
    clients = {
      perplexity = env.client(s, { provider = "perplexity", api_key = "pplx-key", token = false,
        base_delay = 0.01 }),
      openai = env.client(s, { provider = "openai", api_key = "openai-key", token = false,
        base_delay = 0.01 }),
      extruct = env.client(s, { base_delay = 0.01 }),
    }
  end)
  after_each(function() for _, c in pairs(clients) do c:close() end end)

  local ORDER = { "perplexity", "openai", "extruct" }
  local function created(name) return s:counter(name .. ".tasks_created") end
  local function total()
    return created("perplexity") + created("openai") + created("extruct")
  end
  local function posts(path) return #s:requests_to("POST", "^" .. path .. "$") end
  local function run(o)
    o.brief = o.brief or env.BRIEF
    o.providers = o.providers or ORDER
    o.clients = clients
    return dr.fallback(o)
  end

  it("runs the first provider that takes the brief; nothing skipped", function()
    local task, info = run{}
    assert.equals("perplexity", info.provider)
    assert.same({}, info.skipped)
    assert.is_string(task.id)
    assert.equals(1, total())
  end)

  it("moves on after 402 and 401, says why, and makes exactly one task", function()
    s:fault{ method = "POST", path = "/v1/agent", status = 402,
      body = '{"error":{"message":"Insufficient credits","type":"insufficient_quota"}}' }
    clients.openai:close()
    clients.openai = env.client(s, { provider = "openai", api_key = "wrong", token = false })
    local task, info = run{}
    assert.equals("extruct", info.provider)
    assert.equals(2, #info.skipped)
    assert.equals("perplexity", info.skipped[1].provider)
    assert.equals("openai", info.skipped[2].provider)
    assert.equals("unauthorized", info.skipped[2].code)
    assert.equals(1, total())
    assert.equals(1, created("extruct"))
    assert.equals(task.id, s:tasks()[1].id)
  end)

  it("moves on after a retired model (perplexity's 400 invalid_model)", function()
    local _, info = run{ providers = { "openai", "extruct" } }
    assert.equals("openai", info.provider) -- the default model
    _, info = dr.fallback{ brief = env.BRIEF, clients = clients,
      providers = { "perplexity", "extruct" }, rate_retries = 0 }
    assert.equals("perplexity", info.provider)
    local task
    task, info = run{ providers = { perplexity = { model = "sonar-deep-research" } } }
    assert.is_nil(task)
    assert.equals("retired", info.skipped[1].code)
  end)

  it("moves on after a budget it cannot meet, checked before sending", function()
    local _, info = run{ providers = { "openai", "extruct" }, budget = { credits = 25 } }
    assert.equals("extruct", info.provider)
    assert.equals("budget_unbounded", info.skipped[1].code)
    local task, err = run{ providers = { "extruct", "perplexity" }, budget = { credits = 10 } }
    assert.is_nil(task)
    assert.equals("budget_exceeded", err.skipped[1].code)
    assert.equals(0, posts("/v1/responses"))
    assert.equals(0, posts("/v1/agent"))
    assert.equals(1, total())
  end)

  it("moves on after a 429 only once its retries are spent", function()
    s:fault{ method = "POST", path = "/v1/agent", status = 429, count = 3, retry_after = 1,
      body = '{"error":{"message":"rate limited","type":"rate_limit_exceeded"}}' }
    local _, info = run{ rate_retries = 2 }
    assert.equals(3, posts("/v1/agent"))
    assert.equals("openai", info.provider)
    assert.equals("rate_limited", info.skipped[1].code)
    assert.equals(1, total())
  end)

  it("a 429 that lifts within the retries runs there", function()
    s:fault{ method = "POST", path = "/v1/agent", status = 429, count = 1,
      body = '{"error":{"message":"rate limited","type":"rate_limit_exceeded"}}' }
    local _, info = run{}
    assert.equals("perplexity", info.provider)
    assert.equals(2, posts("/v1/agent"))
    assert.equals(1, total())
  end)

  it("moves on after the API's own 503", function()
    s:fault{ method = "POST", path = "/v1/deep_research_tasks", status = 503,
      body = '{"detail":"Service temporarily unavailable"}', count = 10 }
    local _, info = run{ providers = { "extruct", "perplexity" } }
    assert.equals("perplexity", info.provider)
    assert.equals("unavailable", info.skipped[1].code)
    assert.equals(1, total())
  end)

  it("never moves on after an ambiguous create", function()
    s:fault{ method = "POST", path = "/v1/agent", kind = "drop", after = true }
    local task, err = run{}
    assert.is_nil(task)
    assert.equals("ambiguous", err.code)
    assert.equals("perplexity", err.provider)
    assert.same({}, err.skipped)
    assert.equals(1, posts("/v1/agent"))
    assert.equals(0, posts("/v1/responses"))
    assert.equals(0, posts("/v1/deep_research_tasks"))
    assert.equals(1, total()) -- the one the lost answer made; never a second
  end)

  it("never moves on after a 5xx page that is not the API's", function()
    s:fault{ method = "POST", path = "/v1/agent", kind = "html502" }
    local _, err = run{}
    assert.equals("ambiguous", err.code)
    assert.equals(0, posts("/v1/responses"))
  end)

  it("waits when asked (wait = true) and returns the finished task", function()
    local task, info = run{ providers = { "extruct", "perplexity" }, wait = true,
      interval = 1, max_interval = 1 }
    assert.equals("extruct", info.provider)
    assert.equals("done", task.status)
    assert.equals(0, posts("/v1/agent"))
  end)

  it("never moves on once a task exists, even when it fails", function()
    local task, err = run{ providers = { "extruct", "perplexity" }, wait = true,
      brief = env.BRIEF .. " [fail]", interval = 1, max_interval = 1 }
    assert.is_nil(task)
    assert.equals("task_failed", err.code)
    assert.equals("extruct", err.provider)
    assert.equals(0, posts("/v1/agent"))
    assert.equals(1, total())
  end)

  it("stops on a caller's mistake (invalid_request) without trying the next", function()
    local _, err = run{ providers = { "perplexity", "extruct" }, brief = "" }
    assert.equals("invalid_request", err.code)
    assert.equals(0, total())
  end)

  it("when every provider refuses: an error listing each", function()
    for _, p in ipairs({ "/v1/agent", "/v1/responses", "/v1/deep_research_tasks" }) do
      s:fault{ method = "POST", path = p, status = 402, count = 5,
        body = '{"detail":{"error":"insufficient_credits","required_credits":25,' ..
          '"available_credits":0},"error":{"message":"no credit","type":"insufficient_quota"}}' }
    end
    local task, err = run{}
    assert.is_nil(task)
    assert.equals(3, #err.skipped)
    assert.matches("perplexity", err.message)
    assert.equals(0, total())
  end)
end)

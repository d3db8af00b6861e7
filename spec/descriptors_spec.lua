-- Issue 14 part 2: one descriptor per provider. dr.state reads any provider's task; every
-- descriptor holds every field; a third provider registered here drives the command and the
-- worker without a code change; nothing outside providers/ compares against a provider's name.
local providers = require "deepresearch.providers"

local function buffer()
  local b = { text = "" }
  function b:write(...)
    for i = 1, select("#", ...) do self.text = self.text .. tostring((select(i, ...))) end
    return self
  end
  function b:flush() return self end
  function b.setvbuf() return true end
  return b
end

-- A provider nobody has written code for: only its descriptor.
local function acme()
  return {
    name = "acme",
    base_url = "http://127.0.0.1:1",
    base_env = "ACME_BASE_URL",
    token_env = "ACME_API_KEY",
    token_option = "api_key",
    auth_header = "X-Acme-Key",
    auth_prefix = "",
    parse_error = function(body) return { message = type(body) == "table" and body.msg or nil } end,
    kinds = {
      research = {
        path = "/v2/jobs", id_field = "ref", label = "job", failure_field = "why",
        states = { pending = "queued", working = "running", finished = "done", broken = "failed" },
        progress = { "status", "pct" },
      },
    },
    module = "deepresearch.providers.acme",
    limits = { brief = 777 },
    operations = {},
    recovery = "none",
    list_paging = "limit",
    report = { text = "answer", citations = "links", citation_kind = "list" },
    cost = { source = "returned", field = "price" },
    cli = {
      name = "Acme",
      flags = { depth = "Acme tasks take --depth quick|deep" },
      no_offset = "Acme lists have no offset",
      describe = function(task)
        return { id = task.ref, state = tostring(task.status), done = task.pct or 0, total = 100,
          parts = { "pct " .. tostring(task.pct) } }
      end,
      columns = { { "REF", "ref" }, { "STATE", "status" }, { "MADE", "made", "when" },
        { "TOPIC", "meta.topic", "words" } },
      create = function(client, text, opts)
        return client:create{ topic = text, depth = opts.depth }
      end,
      list = function(client, opts) return client:list{ limit = opts.limit } end,
      summary = function(task, fmt)
        return { { "ref", task.ref }, { "made", fmt.when(task.made) } }
      end,
    },
    worker = {
      id_field = "ref",
      params = function(j) return { topic = j.brief, depth = j.depth, tag = j.id } end,
      validate = function(p) return p end,
      matches = function(task, j) return task.tag == j.id end,
      progress = function(task) return { task_status = task.status, agents = task.pct } end,
    },
  }
end

describe("issue 14 part 2: descriptors", function()
  describe("item 2: dr.state reads a task of any provider", function()
    local state = require("deepresearch").state

    it("a bare status is read by the first provider that knows the word", function()
      assert.are.equal("running", state({ status = "in_progress" }))
      assert.are.equal("queued", state({ status = "created" }))
      assert.are.equal("done", state({ status = "completed" }))
      assert.are.equal("cancelled", state({ status = "cancelled" }))
      assert.are.equal("input_required", state({ status = "awaiting_input" }))
    end)

    it("an id field says whose task it is; a name narrows it", function()
      assert.are.equal("done", state({ id = "t1", status = "done" }))
      assert.are.equal("failed", state({ deepresearch_id = "v1", status = "failed" }))
      assert.are.equal("done", state({ deepresearch_id = "v1", status = "completed" }, "valyu"))
      assert.is_nil(state({ status = "done" }, "valyu"))
      assert.are.equal("done", state({ status = "done" }, "extruct"))
    end)

    it("unknown statuses, names and non-tables give nil", function()
      assert.is_nil(state({ status = "exploded" }))
      assert.is_nil(state({ id = "t1" }))
      assert.is_nil(state({ status = "done" }, "no-such-provider"))
      assert.is_nil(state("done"))
      assert.is_nil(state(nil))
    end)
  end)

  it("item 2: every registered descriptor holds every required field", function()
    local names = providers.names()
    assert.is_true(#names >= 2)
    assert.are.equal(names[1], providers.DEFAULT)
    for _, name in ipairs(names) do
      local d = providers.get(name)
      assert.are.equal(name, d.name)
      -- Required fields (list ones only with a list: has_list = false), optional ones' types.
      assert.same({}, providers.missing(d), name)
      assert.is_table(d.kinds.research, name .. " has a research kind")
      assert.is_string(d.worker.id_field, name .. ".worker.id_field")
      for _, f in ipairs(providers.REQUIRED_WORKER) do
        if f ~= "id_field" and d.worker[f] ~= nil then
          assert.is_function(d.worker[f], name .. ".worker." .. f)
        end
      end
      assert.is_true(providers.RECOVERY[d.recovery], name .. ".recovery")
      if providers.has_list(d) then
        assert.is_true(d.list_paging == "offset" or d.list_paging == "limit",
          name .. ".list_paging")
      else
        -- Without a list a lost create cannot be found by listing.
        assert.are_not.equal("list_match", d.recovery, name .. ".recovery without a list")
      end
      for _, suffix in ipairs(d.base_suffixes or {}) do
        assert.matches("^/[%w%.]+$", suffix, 1, false, name .. ".base_suffixes")
      end
      assert.is_number(d.limits.brief)
      assert.is_string(d.report.text)
      assert.is_string(d.cost.source)
      -- The create options it accepts are its operations module's accepts tables.
      local has_core, mod = pcall(require, d.module)
      if has_core then assert.is_table(mod.accepts.create, name .. " accepts.create") end
    end
  end)

  describe("item 2: a third provider is one registered descriptor", function()
    local adapters = require "deepresearch.cli.task"
    local cli = require "deepresearch.cli"
    local jobs = require "deepresearch.worker.job"

    before_each(function() providers.register(acme()) end)
    after_each(function() providers.unregister("acme") end)

    local function main(argv)
      local out, err = buffer(), buffer()
      local code = cli.main(argv, { out = out, err = err, stdin = buffer() })
      return code, out.text, err.text
    end

    it("the command's adapter: id, failure, list columns and rows, progress, summary, " ..
      "limit", function()
      local ad = adapters.acme
      assert.are.equal("acme", ad.name)
      assert.are.equal(777, ad.max_brief)
      assert.are.equal("job", ad.label)
      local task = {
        ref = "r1", status = "working", why = "nope", pct = 40, made = "2026-12-07T10:11:12Z",
        meta = { topic = "ports of the north sea" } }
      assert.are.equal("r1", ad.id(task))
      assert.are.equal("nope", ad.failure(task))
      assert.same({ "REF", "STATE", "MADE", "TOPIC" }, ad.list_headers)
      assert.same({ "r1", "working", "2026-12-07 10:11", "ports of the north sea" },
        ad.list_row(task))
      assert.same({ "pct 40" }, ad.describe(task).parts)
      assert.same({ { "ref", "r1" }, { "made", "2026-12-07 10:11" } }, ad.summary(task))
      assert.are.equal("running", require("deepresearch").state(task, "acme"))
      assert.is_nil(adapters.for_provider("nobody"))
    end)

    it("the command accepts --provider acme and reads its flags and list rules", function()
      local code, _, err = main({ "--provider", "acme", "list", "--offset", "3" })
      assert.are.equal(2, code)
      assert.matches("Acme lists have no offset", err, 1, true)
      code, _, err = main({ "--provider", "acme", "create", "--mode", "fast", "a brief" })
      assert.are.equal(2, code)
      assert.matches(
        "--mode is for --provider valyu; Acme tasks take --depth quick|deep", err, 1, true)
      code, _, err = main({ "--provider", "acme", "cancel", "r1" })
      assert.are.equal(2, code)
      assert.matches("'cancel' is not available for --provider acme", err, 1, true)
      code, _, err = main({ "--provider", "acme", "discover", "get", "r1" })
      assert.are.equal(2, code)
      assert.matches("not available for --provider acme", err, 1, true)
      code, _, err = main({ "--provider", "nobody", "list" })
      assert.are.equal(2, code)
      local names = providers.names()
      assert.matches("--provider must be " .. table.concat(names, ", ", 1, #names - 1) ..
        " or acme, got 'nobody'", err, 1, true)
    end)

    it("the worker turns a job into acme's create parameters and reads its id field", function()
      local job = assert(jobs.parse('{"id":"j1","brief":"north sea ports","depth":"deep"}', "acme"))
      assert.same({ topic = "north sea ports", depth = "deep", tag = "j1" }, job.params)
      assert.are.equal("ref", jobs.providers.acme.id_field)
      assert.is_true(jobs.providers.acme.matches({ tag = "j1" }, job))
      assert.same({ task_status = "working", agents = 5 },
        jobs.providers.acme.progress({ status = "working", pct = 5 }))
    end)
  end)

  it("item 2: no file outside providers/ compares against a provider's name", function()
    local known = {} -- none left: the client and the poller read the descriptor's module
    local p = assert(io.popen("find lua bin -type f \\( -name '*.lua' -o -path 'bin/*' \\) | sort"))
    local bad = {}
    for path in p:lines() do
      if not path:find("^lua/deepresearch/providers/") and not known[path] then
        local f = assert(io.open(path, "rb"))
        local text = f:read("*a")
        f:close()
        for _, name in ipairs(providers.names()) do
          for _, pat in ipairs({
            "[=~]=%s*[\"']" .. name .. "[\"']", "[\"']" .. name .. "[\"']%s*[=~]=" }) do
            if text:find(pat) then bad[#bad + 1] = path .. ": " .. name end
          end
        end
      end
    end
    p:close()
    assert.same({}, bad)
  end)
end)

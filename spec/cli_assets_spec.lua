-- `deepresearch --provider valyu report ID --pdf FILE`, `download ID ASSET -o FILE` and
-- `public ID on|off` as a user runs them: bin/deepresearch in a subprocess against the simulator.
local dr = require "deepresearch"
local env = require "support.env"

local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

local tmpfiles = {}
local function tmp()
  local path = os.tmpname()
  tmpfiles[#tmpfiles + 1] = path
  tmpfiles[#tmpfiles + 1] = path .. ".out"
  return path
end

describe("deepresearch asset commands", function()
  local s, client

  -- Runs bin/deepresearch --provider valyu with argv: exit code, stdout, stderr.
  local function cli(argv, o)
    o = o or {}
    local parts = { "env", "-u LD_PRELOAD", "-u ASAN_OPTIONS", "-u LSAN_OPTIONS",
      "-u UBSAN_OPTIONS", "-u DEEPRESEARCH_DEBUG", "DEEPRESEARCH_TTY=0", "LANG=C",
      "EXTRUCT_BASE_URL=" .. q(s.url), "EXTRUCT_API_TOKEN=test-token",
      "VALYU_BASE_URL=" .. q(s.url), "VALYU_API_KEY=valyu-key", "lua5.4 bin/deepresearch",
      "--provider", o.provider or "valyu" }
    for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
    local errf = tmp()
    local p = assert(io.popen(table.concat(parts, " ") .. " </dev/null 2>" .. errf ..
      "; echo \"__rc=$?\""))
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__rc=(%d+)\n?$"))
    return code, (out:gsub("__rc=%d+\n?$", "")), slurp(errf) or ""
  end

  local function finished(formats)
    return dr.assert(client:run{ query = QUERY, mode = "fast",
      output_formats = formats or { "markdown", "pdf" } })
  end

  setup(function() s = env.sim() end)
  before_each(function()
    s:reset()
    client = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false })
  end)
  after_each(function() client:close() end)
  teardown(function()
    for _, p in ipairs(tmpfiles) do os.remove(p) end
  end)

  it("report ID --pdf FILE saves the PDF and prints FILE", function()
    local t = finished()
    local file = tmp() .. ".out"
    local code, out, err = cli({ "report", t.deepresearch_id, "--pdf", file })
    assert.equals(0, code, err)
    assert.equals(file .. "\n", out)
    assert.matches("4096 bytes, application/pdf", err, 1, true)
    local bytes = slurp(file)
    assert.equals(4096, #bytes)
    assert.equals("%PDF-1.7", bytes:sub(1, 8))
  end)

  it("download ID ASSET -o FILE saves a deliverable; a missing one exits 4, no file", function()
    local t = dr.assert(client:run{ query = QUERY, mode = "fast",
      deliverables = { { type = "csv", description = "Revenue by year" } } })
    local d = t.deliverables[1]
    local file = tmp() .. ".out"
    local code, out, err = cli({ "download", t.deepresearch_id, d.id, "-o", file })
    assert.equals(0, code, err)
    assert.equals(file .. "\n", out)
    assert.truthy(#slurp(file) > 0)
    os.remove(file)
    code, out, err = cli({ "download", t.deepresearch_id, "dlv_nope", "-o", file })
    assert.equals(4, code)
    assert.equals("", out)
    assert.matches("not_found", err)
    assert.is_nil(slurp(file))
    assert.is_nil(slurp(file .. ".part"))
  end)

  it("a task without a PDF exits 4 saying so", function()
    local t = finished({ "markdown" })
    local file = tmp() .. ".out"
    local code, _, err = cli({ "report", t.deepresearch_id, "--pdf", file })
    assert.equals(4, code)
    assert.matches("no PDF", err)
    assert.is_nil(slurp(file))
  end)

  it("usage errors exit 2; a provider without assets says so", function()
    local code, _, err = cli({ "download", "ID", "pdf" })
    assert.equals(2, code)
    assert.matches("%-o FILE", err)
    code = cli({ "download", "ID" })
    assert.equals(2, code)
    code, _, err = cli({ "download", "ID", "pdf", "-o", "x" }, { provider = "extruct" })
    assert.equals(2, code)
    assert.matches("'download' is not available for %-%-provider extruct", err)
    code, _, err = cli({ "report", "ID", "--pdf", "x" }, { provider = "extruct" })
    assert.equals(2, code)
    assert.matches("not available", err)
    code = cli({ "public", "ID", "maybe" })
    assert.equals(2, code)
  end)

  it("public ID on|off toggles the report's visibility", function()
    local t = finished()
    local code, out, err = cli({ "public", t.deepresearch_id, "on" })
    assert.equals(0, code, err)
    assert.equals(t.deepresearch_id .. " is public\n", out)
    code, out = cli({ "public", t.deepresearch_id, "off" })
    assert.equals(0, code)
    assert.equals(t.deepresearch_id .. " is private\n", out)
  end)

  it("lists the commands in the overview", function()
    local code, out = cli({ "--help" })
    assert.equals(0, code)
    assert.matches("\n  download%s+save a task's asset", out)
    assert.matches("\n  public%s+make a task's report public", out)
    code, out = cli({ "help", "download" })
    assert.equals(0, code)
    assert.matches("download ID ASSET -o FILE", out, 1, true)
    code, out = cli({ "help", "report" })
    assert.equals(0, code)
    assert.matches("--pdf FILE", out, 1, true)
  end)
end)

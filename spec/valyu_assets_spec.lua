-- client:download and client:set_public against the simulator: assets streamed to a file by
-- the core (memory stays flat), exact bytes, and no file left behind on any failure.
local dr = require "deepresearch"
local env = require "support.env"

local QUERY = "Compare Acme Robotics and Globex on warehouse automation revenue since 2023"
local ASSET_ROUTE = "/v1/deepresearch/tasks/[^/]+/assets/.+"

-- docs/simulator_valyu.md "Assets": filler byte k is string.char(k % 256).
local function filler(n)
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  local all = table.concat(t)
  if n <= 0 then return "" end
  return string.rep(all, math.floor(n / 256)) .. all:sub(1, n % 256)
end

local function pdf_bytes(id, size)
  local head = "%PDF-1.7\n%\226\227\207\211\n% simulated Valyu report " .. id .. "\n"
  local tail = "\n%%EOF\n"
  return head .. filler(size - #head - #tail) .. tail
end

local read = require("support.host").read

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local dir
local function tmp(name) return dir .. "/" .. name end

describe("valyu assets", function()
  local s, client
  setup(function()
    s = env.sim()
    dir = require("support.host").tmpdir()
  end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)
  before_each(function()
    s:reset()
    client = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false,
      base_delay = 0.01 })
  end)
  after_each(function() client:close() end)

  local function finished(c, extra)
    local p = { query = QUERY, mode = "fast", output_formats = { "markdown", "pdf" } }
    for k, v in pairs(extra or {}) do p[k] = v end
    return dr.assert((c or client):run(p))
  end

  local function asset_requests() return env.count_requests(s, "^GET .*/assets/") end

  it("downloads the PDF report (task.pdf_url) and its bytes are exact", function()
    local t = finished()
    local out = tmp("report.pdf")
    local r = dr.assert(client:download(t.deepresearch_id, "pdf", out))
    assert.equals(out, r.path)
    assert.equals("application/pdf", r.content_type)
    assert.equals(4096, r.bytes)
    assert.equals(pdf_bytes(t.deepresearch_id, 4096), read(out))
    assert.is_false(exists(out .. ".part"))
  end)

  it("streams a 5 MB asset to the file: bytes exact, the Lua heap does not grow by it",
    function()
      local size = 5 * 1024 * 1024
      s:config{ valyu = { asset_size = size } }
      local t = finished()
      local out = tmp("big.pdf")
      collectgarbage()
      collectgarbage()
      local before = collectgarbage("count")
      local r = dr.assert(client:download(t.deepresearch_id, "pdf", out))
      local grown = collectgarbage("count") - before
      assert.equals(size, r.bytes)
      assert.is_true(grown < 1024, "the Lua heap grew by " .. grown .. " KB")
      local got = read(out)
      assert.equals(size, #got)
      assert.equals(pdf_bytes(t.deepresearch_id, size), got)
    end)

  it("downloads an asset by id (a deliverable) and by its full URL on the API host", function()
    local t = finished(nil,
      { deliverables = { { type = "pdf", description = "A one-page brief" } } })
    local d = t.deliverables[1]
    assert.equals("completed", d.status)
    local r = dr.assert(client:download(t.deepresearch_id, d.id, tmp("d1.pdf")))
    assert.truthy(r.bytes > 0)
    local r2 = dr.assert(client:download(t.deepresearch_id, d.url, tmp("d2.pdf")))
    assert.equals(r.bytes, r2.bytes)
    assert.equals(read(tmp("d1.pdf")), read(tmp("d2.pdf")))
    local r3 = dr.assert(client:download(t.deepresearch_id, t.pdf_url, tmp("d3.pdf")))
    assert.equals(4096, r3.bytes)
  end)

  it("a 401 leaves no file, keeps an existing one untouched, and is not retried", function()
    local t = finished()
    local bad = env.client(s, { provider = "valyu", api_key = "wrong-key", token = false })
    local out = tmp("kept.pdf")
    write(out, "old contents")
    s:clear_requests()
    local r, err = bad:download(t.deepresearch_id, t.pdf_url:gsub("%?.*$", ""), out)
    assert.is_nil(r)
    assert.equals("unauthorized", err.code)
    assert.equals(401, err.status)
    assert.equals(1, asset_requests())
    assert.equals("old contents", read(out))
    assert.is_false(exists(out .. ".part"))
    bad:close()
  end)

  it("an unknown asset is not_found and leaves no file", function()
    local t = finished()
    local out = tmp("missing.bin")
    local r, err = client:download(t.deepresearch_id, "img_nope", out)
    assert.is_nil(r)
    assert.equals("not_found", err.code)
    assert.is_false(exists(out))
    assert.is_false(exists(out .. ".part"))
  end)

  it("a connection cut mid-body removes the partial file (and a retry completes it)", function()
    local t = finished()
    local id = t.deepresearch_id
    s:config{ valyu = { asset_size = 256 * 1024 } }
    local once = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false,
      max_retries = 0 })
    s:fault({ path = ASSET_ROUTE, kind = "truncate", after = true, count = -1 })
    local out = tmp("cut.pdf")
    local r, err = once:download(id, "pdf", out)
    assert.is_nil(r)
    assert.equals("network", err.code)
    assert.is_false(exists(out))
    assert.is_false(exists(out .. ".part"))
    once:close()
    s:clear_faults()
    s:fault({ path = ASSET_ROUTE, kind = "truncate", after = true, count = 1 })
    s:clear_requests()
    dr.assert(client:download(id, "pdf", out))
    assert.equals(2, asset_requests())
    assert.equals(pdf_bytes(id, 256 * 1024), read(out))
  end)

  it("an interrupt (Ctrl-C) mid-download cancels it at once and removes the part", function()
    local t = finished()
    s:config{ valyu = { asset_size = 3000 } }
    s:fault({ path = ASSET_ROUTE, kind = "drip", interval_ms = 2, count = -1 })
    local out = tmp("interrupted.pdf")
    local core = require "deepresearch.core"
    local last, seen = -1, nil
    -- Raises, as lua.c's hook does on Ctrl-C, 50 ms after the part file appeared (its bytes
    -- may still sit in stdio's buffer: the body drips one byte every 2 ms, 6 s in all).
    debug.sethook(function()
      local now = core.now()
      if now - last < 0.005 then return end
      last = now
      if not seen and exists(out .. ".part") then seen = now end
      if seen and now - seen > 0.05 then
        debug.sethook()
        error("interrupted!", 0)
      end
    end, "", 1)
    local ok, err = pcall(client.download, client, t.deepresearch_id, t.pdf_url, out)
    debug.sethook()
    assert.is_false(ok)
    assert.equals("interrupted!", err)
    assert.is_false(exists(out .. ".part"))
    assert.is_false(exists(out))
    s:clear_faults()
    dr.assert(client:download(t.deepresearch_id, t.pdf_url, out))
    assert.equals(pdf_bytes(t.deepresearch_id, 3000), read(out))
  end)

  it("a 5xx answer is never written as the asset", function()
    local t = finished()
    local once = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false,
      max_retries = 0 })
    s:fault({ path = ASSET_ROUTE, status = 500, count = -1 })
    local out = tmp("err.pdf")
    local _, err = once:download(t.deepresearch_id, "pdf", out)
    assert.equals("server_error", err.code)
    assert.is_false(exists(out))
    assert.is_false(exists(out .. ".part"))
    once:close()
  end)

  it("an asset larger than max_response_size is refused and removed", function()
    local t = finished()
    s:config{ valyu = { asset_size = 200000 } }
    local small = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false,
      max_response_size = 100000 })
    local out = tmp("toobig.pdf")
    local _, err = small:download(t.deepresearch_id, "pdf", out)
    assert.equals("invalid_response", err.code)
    assert.matches("max_response_size", err.message)
    assert.is_false(exists(out))
    assert.is_false(exists(out .. ".part"))
    small:close()
  end)

  it("a path that cannot be written is an io error and nothing is requested", function()
    local t = finished()
    s:clear_requests()
    local out = tmp("no/such/dir/x.pdf")
    local _, err = client:download(t.deepresearch_id, t.pdf_url, out)
    assert.equals("io", err.code)
    assert.matches("x%.pdf%.part", err.message)
    assert.equals(0, asset_requests())
  end)

  it("a task without a PDF is not_found before any asset request", function()
    local t = dr.assert(client:run{ query = QUERY, mode = "fast" })
    s:clear_requests()
    local _, err = client:download(t.deepresearch_id, "pdf", tmp("none.pdf"))
    assert.equals("not_found", err.code)
    assert.matches("no PDF", err.message)
    assert.equals(0, asset_requests())
  end)

  it("never sends the API key to another host", function()
    local t = finished()
    s:clear_requests()
    local other = t.pdf_url:gsub("^http://127%.0%.0%.1", "http://localhost")
    local _, err = client:download(t.deepresearch_id, other, tmp("x.pdf"))
    assert.equals("invalid_request", err.code)
    assert.matches("API's own host", err.message)
    assert.not_matches("token=", err.message)
    assert.equals(0, #s:requests())
    _, err = client:download(t.deepresearch_id, "ftp://example.com/a?b", tmp("x.pdf"))
    assert.equals("invalid_request", err.code)
  end)

  it("a signed https URL on another host goes without the key; the API's host gets it",
    function()
      local http = require "deepresearch.runtime.http"
      local state = http.state(client)
      local function has_key(spec)
        for _, h in ipairs(spec.headers) do
          if h:lower():find("^x%-api%-key:") then return true end
        end
        return false
      end
      local spec = assert(http.prepare(state, { method = "GET", anonymous = true,
        url = "https://storage.example/r.pdf?token=t", accept = "*/*", file = tmp("a") }))
      assert.is_false(has_key(spec))
      assert.equals(tmp("a"), spec.file)
      assert.truthy(table.concat(spec.headers, "\n"):find("Accept: */*", 1, true))
      spec = assert(http.prepare(state, { method = "GET", path = "/v1/x", accept = "*/*" }))
      assert.is_true(has_key(spec))
    end)

  it("the task's own pdf_url on another https host is fetched (without the key)", function()
    local once = env.client(s, { provider = "valyu", api_key = "valyu-key", token = false,
      max_retries = 0 })
    s:fault({ path = "/v1/deepresearch/tasks/[^/]+/status", status = 200,
      body = '{"deepresearch_id":"t1","status":"completed",' ..
        '"pdf_url":"https://127.0.0.1:1/reports/t1.pdf"}' })
    local out = tmp("elsewhere.pdf")
    local _, err = once:download("t1", "pdf", out)
    assert.equals("network", err.code) -- port 1 refuses: it was tried, not refused locally
    assert.is_false(exists(out))
    assert.is_false(exists(out .. ".part"))
    once:close()
  end)

  it("debug logs show a signed URL's token as ***", function()
    local http = require "deepresearch.runtime.http"
    assert.equals("https://s.example/a.pdf?token=***&x=1",
      http.redact_url("https://s.example/a.pdf?token=abc123&x=1"))
    assert.equals("http://u:***@h/p?a=1&Token=***", http.redact_url("http://u:pw@h/p?a=1&Token=z"))
  end)

  it("checks its arguments", function()
    assert.has_error(function() client:download("id", nil, "x") end)
    assert.has_error(function() client:download("id", "pdf") end)
    assert.has_error(function() client:download(nil, "pdf", "x") end)
    local _, err = client:download("id", "", tmp("x"))
    assert.equals("invalid_request", err.code)
    _, err = client:download("id", "pdf", "")
    assert.equals("invalid_request", err.code)
  end)

  it("set_public toggles the task's visibility", function()
    local t = finished()
    local ack = dr.assert(client:set_public(t.deepresearch_id, true))
    assert.is_true(ack.success)
    assert.is_true(ack.public)
    assert.equals(t.deepresearch_id, ack.deepresearch_id)
    local req = s:requests()[#s:requests()]
    assert.equals("POST", req.method)
    assert.matches("/public$", req.path)
    ack = dr.assert(client:set_public(t.deepresearch_id, false))
    assert.is_false(ack.public)
    assert.has_error(function() client:set_public(t.deepresearch_id, "yes") end,
      "bad argument #2 to 'set_public' (boolean expected, got string)")
    local _, err = client:set_public("no-such-task", true)
    assert.equals("not_found", err.code)
  end)
end)

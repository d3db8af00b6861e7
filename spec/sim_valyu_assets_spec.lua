-- Simulated Valyu assets over HTTP (issue 15 item 10, sim half): report.pdf, chart images and
-- deliverables, served with their content type and length; the bytes follow the documented rule
-- in sim/simulator/valyu_assets.lua, rebuilt here independently so a spec can check every byte.
local support = require("support.sim")

local function filler(n)
  local t = {}
  for k = 0, n - 1 do t[#t + 1] = string.char(k % 256) end
  return table.concat(t)
end

local function expected_pdf(id, size)
  local head = "%PDF-1.7\n%\226\227\207\211\n% simulated Valyu report " .. id .. "\n"
  local tail = "\n%%EOF\n"
  return head .. filler(size - #head - #tail) .. tail
end

describe("simulated Valyu assets", function()
  local s

  setup(function() s = support.shared() end)
  before_each(function() s:reset() end)

  local function req(method, path, body, key)
    local headers = {}
    if key ~= false then headers["X-API-Key"] = key or "valyu-key" end
    return assert(s:http(method, path, { body = body, headers = headers }))
  end

  local function completed(body)
    local r = req("POST", "/v1/deepresearch/tasks", body)
    assert.are.equal(200, r.status)
    local id = r.json.deepresearch_id
    s:advance(900)
    local st = req("GET", "/v1/deepresearch/tasks/" .. id .. "/status")
    assert.are.equal("completed", st.json.status)
    return id, st.json
  end

  local function path_of(url)
    return (url:gsub("^http://[^/]+", ""))
  end

  it("serves report.pdf at pdf_url: exact bytes, content type and length", function()
    local id, b = completed({ query = "q", output_formats = { "markdown", "pdf" } })
    assert.matches("/v1/deepresearch/tasks/" .. id:gsub("%-", "%%-") ..
      "/assets/report%.pdf%?token=%x+$", b.pdf_url)
    local r = req("GET", path_of(b.pdf_url), nil, false)        -- the signed URL alone
    assert.are.equal(200, r.status)
    assert.are.equal("application/pdf", r.headers["content-type"])
    assert.are.equal("4096", r.headers["content-length"])
    assert.are.equal(expected_pdf(id, 4096), r.body)
    assert.is_truthy(r.body:find("\0", 1, true))
    -- the owner's key works without the token; another organisation's does not
    local bare = "/v1/deepresearch/tasks/" .. id .. "/assets/report.pdf"
    assert.are.equal(200, req("GET", bare).status)
    assert.are.equal(404, req("GET", bare, nil, "valyu-other").status)
    assert.are.equal(401, req("GET", bare .. "?token=bad", nil, false).status)
    local st = s:state().valyu.tasks[1]
    assert.are.same({ bytes = 4096, content_type = "application/pdf" }, st.assets["report.pdf"])
  end)

  it("makes the PDF as big as asset_size asks (5 MB)", function()
    s:config({ valyu = { asset_size = 5 * 1024 * 1024 } })
    local id = completed({ query = "q", output_formats = { "pdf" } })
    local r = req("GET", "/v1/deepresearch/tasks/" .. id .. "/assets/report.pdf")
    assert.are.equal(5 * 1024 * 1024, #r.body)
    assert.are.equal(tostring(5 * 1024 * 1024), r.headers["content-length"])
    assert.are.equal(expected_pdf(id, 5 * 1024 * 1024), r.body)
    assert.are.equal(5 * 1024 * 1024, s:state().valyu.tasks[1].assets["report.pdf"].bytes)
  end)

  it("has no PDF unless pdf was requested, and nothing before completion", function()
    local id = completed({ query = "q" })
    assert.are.equal(404, req("GET", "/v1/deepresearch/tasks/" .. id ..
      "/assets/report.pdf").status)
    local r = req("POST", "/v1/deepresearch/tasks", { query = "q", output_formats = { "pdf" } })
    assert.are.equal(404, req("GET", "/v1/deepresearch/tasks/" .. r.json.deepresearch_id ..
      "/assets/report.pdf").status)
  end)

  it("lists chart images (config images) served as PNG bytes at image_url", function()
    s:config({ valyu = { images = 2 } })
    local _, b = completed({ query = "q" })
    assert.are.equal(2, #b.images)
    local img = b.images[1]
    assert.are.equal("chart", img.image_type)
    assert.is_string(img.title)
    assert.is_number(img.created_at)
    local r = req("GET", path_of(img.image_url), nil, false)
    assert.are.equal(200, r.status)
    assert.are.equal("image/png", r.headers["content-type"])
    assert.are.equal(1024, #r.body)
    local head = "\137PNG\r\n\26\nsimulated Valyu image " .. img.image_id .. "\n"
    assert.are.equal(head .. filler(1024 - #head), r.body)
  end)

  it("serves completed deliverables by id", function()
    local _, b = completed({ query = "q", deliverables = { "A csv of the vendors" } })
    local d = b.deliverables[1]
    local r = req("GET", path_of(d.url), nil, false)
    assert.are.equal(200, r.status)
    assert.are.equal("text/csv", r.headers["content-type"])
    assert.matches("^source,url\n", r.body)
  end)

  it("toggles public with {public: bool} (B.8)", function()
    local id = completed({ query = "q" })
    local r = req("POST", "/v1/deepresearch/tasks/" .. id .. "/public", { public = true })
    assert.are.equal(200, r.status)
    assert.is_true(r.json.success)
    assert.is_true(r.json.public)
    assert.are.equal(id, r.json.deepresearch_id)
    assert.is_string(r.json.message)
    assert.is_true(req("GET", "/v1/deepresearch/tasks/" .. id .. "/status").json.public)
    assert.are.equal(400, req("POST", "/v1/deepresearch/tasks/" .. id .. "/public",
      { public = "yes" }).status)
  end)
end)

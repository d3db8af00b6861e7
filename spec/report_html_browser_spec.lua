-- report.html in a real browser (issue 19 part 6): Debian's chromium, headless, prints the page
-- to PNG and PDF and dumps the DOM it built. Every citation anchor must resolve to a source
-- entry in that DOM, no <script> may exist there, and the page must make no network request:
-- chromium runs with every request sent to a proxy on a loopback socket this spec holds, and
-- any request the page makes lands there (a control page with an <img src=http://...> shows
-- that it would be caught). Chromium's own background calls to its Google services (component
-- updates, sign-in) go through the proxy too; they are told apart by host and not counted.
-- Skipped with a message when chromium is not installed (.ci/run installs it: scripts/deps ci).
local socket = require "socket"
local dr = require "deepresearch"
local env = require "support.env"
local tasks = require "support.report_tasks"

local function have_chromium()
  local p = io.popen("command -v chromium 2>/dev/null")
  local path = p:read("*l")
  p:close()
  return path ~= nil and path ~= ""
end

local QUIET = table.concat({ "--headless", "--no-sandbox", "--disable-gpu",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-pings",
  "--disable-domain-reliability", "--disable-client-side-phishing-detection",
  "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate",
  "--disable-breakpad", "--no-default-browser-check" }, " ")

-- Chromium's own services: its background calls are not the page's.
local function browser_own(line)
  local host = line:match("^CONNECT ([^:%s]+)") or line:match("^%u+ https?://([^/:%s]+)")
  return host ~= nil and (host:find("google%.com$") or host:find("googleapis%.com$") or
    host:find("gstatic%.com$")) ~= nil
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local read_all = require("support.host").read

-- Runs chromium on page with `what` (--screenshot=F, --print-to-pdf=F or --dump-dom) through a
-- counting proxy. Returns the page's requests (list of request lines) and chromium's stdout.
local function chromium(dir, page, what)
  local proxy = assert(socket.bind("127.0.0.1", 0))
  local _, port = proxy:getsockname()
  proxy:settimeout(0.05)
  local rc_file, out_file = dir .. "/rc", dir .. "/stdout"
  os.remove(rc_file)
  os.execute(string.format("(timeout 90 chromium %s --user-data-dir=%s " ..
    "--proxy-server=http://127.0.0.1:%d --proxy-bypass-list='<-loopback>' %s file://%s " ..
    "> %s 2> %s; echo $? > %s) &", QUIET, q(dir .. "/profile"), port, what, q(page),
    q(out_file), q(dir .. "/stderr"), q(rc_file)))
  local requests, started = {}, socket.gettime()
  local rc
  while socket.gettime() - started < 100 do
    local c = proxy:accept()
    if c then
      c:settimeout(1)
      local line = c:receive("*l") or "?"
      c:close()
      if not browser_own(line) then requests[#requests + 1] = line end
    end
    local done = read_all(rc_file)
    if done and done:find("%d") then
      rc = tonumber(done:match("%d+"))
      break
    end
  end
  proxy:close()
  assert.equals(0, rc, "chromium ran: " .. tostring(read_all(dir .. "/stderr")):sub(-600))
  return requests, read_all(out_file) or ""
end

local function anchors_resolve(dom)
  local ids, n = {}, 0
  for id in dom:gmatch('id="(src%-%d+)"') do ids[id] = true end
  for id in dom:gmatch('href="#(src%-%d+)"') do
    n = n + 1
    assert.truthy(ids[id], "anchor #" .. id .. " resolves in the browser's DOM")
  end
  return n
end

describe("report.html in headless Chromium", function()
  if not have_chromium() then
    pending("chromium is not installed (apt-get install chromium; scripts/deps ci has it): " ..
      "the browser checks are skipped")
    return
  end

  local s, dir
  setup(function()
    s = env.sim()
    dir = require("support.host").tmpdir()
  end)
  teardown(function() if dir then os.execute("rm -rf " .. q(dir)) end end)

  local function write(name, html)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "wb"))
    f:write(html)
    f:close()
    return path
  end

  it("catches a page that fetches (the control: the proxy sees its request)", function()
    local page = write("control.html", '<!DOCTYPE html><html><body><p>x</p>' ..
      '<img src="http://fetch-probe.test/x.png"></body></html>')
    local requests = chromium(dir, page, "--dump-dom")
    assert.truthy(#requests >= 1, "the control page's request was seen")
    assert.truthy(requests[1]:find("fetch-probe.test", 1, true), requests[1])
  end)

  it("prints an Extruct report with checked links to PNG and PDF, fetching nothing", function()
    local task = tasks.finished(s, "extruct", { pages = true, mix = { "ok", "404", "redirect/1" } })
    local checked = dr.assert(dr.report.check_links(task, { timeout = 2 }))
    local page = write("extruct.html", dr.assert(dr.report.html(task, { links = checked })))
    local png, pdf = dir .. "/report.png", dir .. "/report.pdf"
    local requests = chromium(dir, page, "--window-size=1000,1400 --screenshot=" .. q(png))
    assert.same({}, requests)
    local image = assert(read_all(png), "a PNG was written")
    assert.equals("\137PNG", image:sub(1, 4))
    assert.truthy(#image > 10000, "a page was drawn: " .. #image .. " bytes")
    requests = chromium(dir, page, "--no-pdf-header-footer --print-to-pdf=" .. q(pdf))
    assert.same({}, requests)
    local doc = assert(read_all(pdf), "a PDF was written")
    assert.equals("%PDF", doc:sub(1, 4))
    assert.truthy(#doc > 5000)
  end)

  for _, kind in ipairs(tasks.KINDS) do
    it("opens a " .. kind .. " page: every citation resolves, no script, no request", function()
      local task = tasks.finished(s, kind, { pages = true, mix = { "ok", "404", "redirect/1" } })
      local checked = dr.assert(dr.report.check_links(task, { timeout = 2 }))
      local html = dr.assert(dr.report.html(task, { links = checked }))
      anchors_resolve(html)
      local requests, dom = chromium(dir, write(kind .. ".html", html), "--dump-dom")
      assert.same({}, requests)
      assert.truthy(dom:find("<body", 1, true), "the browser dumped its DOM")
      assert.truthy(anchors_resolve(dom) > 0, "citations in the DOM")
      assert.falsy(dom:find("<script", 1, true))
    end)
  end

  it("keeps a hostile report inert in the browser", function()
    local evil = "<script>document.title='pwned'</script><img src=http://evil.test/x>"
    local task = { id = "t-evil", status = "done", report = { kind = "markdown",
      markdown = "# Report " .. evil .. "\n\nClaim [1] " .. evil,
      sources = { { id = 1, url = "http://evil.test/\"><img src=http://evil.test/y>",
        title = evil } } } }
    local requests, dom = chromium(dir, write("evil.html", dr.assert(dr.report.html(task))),
      "--dump-dom")
    assert.same({}, requests)
    assert.falsy(dom:find("<script", 1, true))
    assert.falsy(dom:find("<img", 1, true))
    assert.falsy(dom:find("pwned</title>", 1, true))
  end)
end)

-- luacheck: std lua54
-- Third-party pages on the simulator itself, so that link checks run offline (issue 19 part 5).
-- Off until config.pages.base is set (the simulator's own http://127.0.0.1:PORT): then every
-- provider's content module passes its source URLs through M.map, which turns each into a page
-- here, /_sim/pages/<kind>/<slug>. The kind is in the path, so a page behaves the same on every
-- request and a spec reads what to expect from the URL alone:
--   ok                 200 (206 with one byte for "Range: bytes=0-0")
--   404, 410, 500      that status
--   redirect/N/<slug>  302 to redirect/N-1/<slug>; redirect/0 is an ok page (N > 5: too many)
--   nohead             405 to HEAD (Allow: GET), ok to GET
--   forbidhead         403 to HEAD, ok to GET
--   slow/MS            ok after MS real milliseconds
--   big                200 with a 1 MiB body whatever the Range
-- Which kind a URL gets: config.pages.mix, picked by a hash of the URL (no RNG draw, so content
-- stays what it was with pages off). Every page reply is held config.pages.delay_ms real ms, so
-- concurrent requests overlap; state.pages counts requests and the most in flight at once.
local socket = require "socket"

local M = {}

local DEFAULTS = {
  delay_ms = 20,
  mix = { "ok", "404", "redirect/2", "ok", "410", "nohead", "ok", "redirect/7", "slow/3000",
    "forbidhead" },
}

local app -- the installed app (one per simulator process)

local function cfg() return app and app.config.pages end

local function hash(s)
  local h = 5381
  for i = 1, #s do h = (h * 33 + s:byte(i)) % 2147483647 end
  return h
end

local function slug(url)
  local s = url:gsub("^%a+://", ""):gsub("[^%w%-]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  -- The hash keeps two long URLs that share their first 48 characters apart.
  return s:sub(1, 48) .. string.format("-%x", hash(url))
end

--- The page a source URL becomes when pages are on; the URL itself when they are off.
function M.map(url)
  local c = cfg()
  if type(url) ~= "string" or not c or type(c.base) ~= "string" or c.base == "" then
    return url
  end
  local mix = type(c.mix) == "table" and #c.mix > 0 and c.mix or DEFAULTS.mix
  local kind = mix[hash(url) % #mix + 1]
  return c.base:gsub("/+$", "") .. "/_sim/pages/" .. kind .. "/" .. slug(url)
end

local function page(title)
  return "<!DOCTYPE html><html><head><title>" .. title .. "</title></head><body><p>" .. title
    .. "</p></body></html>"
end

-- status, body, headers for an ok page, honouring a one-byte range.
local function ok_page(req, title)
  local body = page(title)
  local range = req.headers.range
  if range and range:match("^bytes=0%-0$") then
    return 206, body:sub(1, 1), { { "Content-Range", "bytes 0-0/" .. #body } }
  end
  return 200, body, {}
end

local function reply(req, segs)
  local kind, rest = segs[1], #segs
  local head = req.method == "HEAD"
  if kind == "ok" then return ok_page(req, "ok") end
  if kind == "404" or kind == "410" or kind == "500" then
    return tonumber(kind), page(kind), {}
  end
  if kind == "redirect" and rest >= 3 then
    local n = math.tointeger(tonumber(segs[2]))
    if not n or n < 0 then return 404, page("bad redirect"), {} end
    if n == 0 then return ok_page(req, "redirected here") end
    local to = "/_sim/pages/redirect/" .. (n - 1) .. "/" .. table.concat(segs, "/", 3)
    return 302, "", { { "Location", "http://" .. (req.headers.host or "127.0.0.1") .. to } }
  end
  if kind == "nohead" then
    if head then return 405, "", { { "Allow", "GET" } } end
    return ok_page(req, "no HEAD")
  end
  if kind == "forbidhead" then
    if head then return 403, "", {} end
    return ok_page(req, "no HEAD (403)")
  end
  if kind == "slow" then return ok_page(req, "slow") end
  if kind == "big" then return 200, string.rep("x", 1024 * 1024), {} end
  return 404, page("no such page kind"), {}
end

local state

local function reset()
  state = { requests = {}, in_flight = 0, max_in_flight = 0, count = 0 }
end

local function serve(raw, conn)
  local path = raw.target:match("^[^?]*")
  local segs = {}
  for seg in path:sub(#"/_sim/pages/" + 1):gmatch("[^/]+") do segs[#segs + 1] = seg end
  local h = raw.headers or {}
  state.count = state.count + 1
  state.in_flight = state.in_flight + 1
  if state.in_flight > state.max_in_flight then state.max_in_flight = state.in_flight end
  state.requests[#state.requests + 1] = { method = raw.method, path = path, range = h.range,
    authorization = h.authorization ~= nil, cookie = h.cookie ~= nil,
    user_agent = h["user-agent"] }
  local status, body, headers
  if raw.method ~= "GET" and raw.method ~= "HEAD" then
    status, body, headers = 405, "", { { "Allow", "GET, HEAD" } }
  else
    status, body, headers = reply(raw, segs)
  end
  headers[#headers + 1] = { "Content-Type", "text/html; charset=utf-8" }
  if raw.method == "HEAD" then body = "" end
  local delay = (tonumber(cfg().delay_ms) or 0) / 1000
  if segs[1] == "slow" then delay = delay + (tonumber(segs[2]) or 3000) / 1000 end
  -- Out of flight when the reply leaves, or as soon as the client gives up and closes the
  -- connection (the engine then drops the reply): watched every 10 ms while it is held.
  local st, out = state, false -- a reset meanwhile starts a new count
  local function done()
    if not out then out, st.in_flight = true, st.in_flight - 1 end
  end
  local server = app.server
  if delay > 0 and server then
    local due = socket.gettime() + delay
    local function watch()
      if out then return end
      if conn.closed then done() elseif socket.gettime() < due then server:timer(0.01, watch) end
    end
    server:timer(0.01, watch)
  end
  return { status = status, headers = headers, body = body, delay = delay,
    compute = function()
      done()
      return { status = status, headers = headers, body = body }
    end }
end

function M.install(a)
  app = a
  app.config.pages = { delay_ms = DEFAULTS.delay_ms }
  reset()
  app:on_reset(reset)
  app:expose("pages", function()
    return { count = state.count, in_flight = state.in_flight,
      max_in_flight = state.max_in_flight, requests = app:array(state.requests) }
  end)
  -- Pages are not API calls: they bypass the router, the request log and the faults (the
  -- /_sim/ prefix keeps their connections out of the API's accounting too).
  local handle = app.handle
  app.handle = function(self, raw, conn)
    if raw.target:sub(1, 12) == "/_sim/pages/" then return serve(raw, conn) end
    return handle(self, raw, conn)
  end
  app:route("DELETE", "/_sim/pages", function()
    reset()
    return 200, { ok = true }
  end)
end

return M

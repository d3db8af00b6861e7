-- luacheck: std lua54
-- The simulator app: router, JSON, virtual clock, seeded RNG, config, reset, request log,
-- fault dispatch and the /_sim control channel. Providers (extruct, discovery, valyu) are
-- modules with install(app) written against the interface documented in docs/simulator.md.
local cjson = require "cjson"
local clock_mod = require "simulator.clock"
local faults_mod = require "simulator.faults"
local content = require "simulator.content"

local M = {}

local App = {}
App.__index = App

local json = cjson.new()
json.encode_sparse_array(true)
json.encode_max_depth(200)
json.decode_max_depth(200)

-- Debian's lua-cjson 2.1.0 encodes every empty table as {}. Providers put this sentinel where
-- an empty JSON array is needed (app.empty_array / app.array(t)); encode() rewrites it to [].
local EMPTY = "@@sim:[]@@"
local EMPTY_QUOTED = '"' .. EMPTY .. '"'

local function encode(value)
  local text = json.encode(value)
  if text:find(EMPTY, 1, true) then text = text:gsub((EMPTY_QUOTED:gsub("%p", "%%%0")), "[]") end
  return text
end
M.encode = encode
M.decode = json.decode

local function url_decode(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q)
  local query = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    query[url_decode(k)] = url_decode(v)
  end
  return query
end

local function split(path)
  local segs = {}
  for seg in path:gmatch("[^/]+") do segs[#segs + 1] = seg end
  return segs
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return out
end

local function is_array(t)
  return type(t) == "table" and (t[1] ~= nil or next(t) == nil)
end

-- Objects merge key by key; arrays and scalars replace; JSON null removes the key.
local function merge(dst, src)
  for k, v in pairs(src) do
    if v == json.null then
      dst[k] = nil
    elseif type(v) == "table" and not is_array(v) and type(dst[k]) == "table"
      and not is_array(dst[k]) then
      merge(dst[k], v)
    else
      dst[k] = deep_copy(v)
    end
  end
end
M.merge = merge

function M.new(opts)
  opts = opts or {}
  local app = setmetatable({
    null = json.null, empty_array = EMPTY, routes = {}, resets = {}, exposed = {},
    expose_order = {}, config = { auth_missing_status = 401, log_limit = 100000 },
    initial = { seed = opts.seed or 1, speed = opts.speed or 1 },
    clock = clock_mod.new(opts.speed or 1), faults = faults_mod.new(), quiet = opts.quiet,
  }, App)
  app.seed = app.initial.seed
  M.install_control(app)
  return app
end

--- pattern like "/v1/deep_research_tasks/:id"; `:name` matches one percent-decoded segment.
function App:route(method, pattern, handler)
  self.routes[#self.routes + 1] = { method = method:upper(), segs = split(pattern),
    handler = handler }
end

function App:on_reset(fn) self.resets[#self.resets + 1] = fn end

function App:expose(name, fn)
  if not self.exposed[name] then self.expose_order[#self.expose_order + 1] = name end
  self.exposed[name] = fn
end

function App:count(name, n)
  self.counters[name] = (self.counters[name] or 0) + (n or 1)
end

function App:now() return self.clock:now() end
function App.iso(_, t, ms) return clock_mod.iso(t, ms) end
function App:uuid() return self.rng:uuid() end
function App:random(m, n) return self.rng:random(m, n) end
--- An independent generator (same seed ⇒ same stream), for lazily generated content.
function App.rng_for(_, seed) return content.rng(seed) end
--- t, or the empty-array sentinel when t is empty, so it encodes as [].
--- app.array(t) or app:array(t).
function App.array(a, b)
  local t = getmetatable(a) == App and b or a
  return (t == nil or next(t) == nil) and EMPTY or t
end
function App.encode(_, v) return encode(v) end
function App.decode(_, s) return json.decode(s) end

--- A pydantic-v2 style 422 item (FastAPI's validation error shape, CONTRACT A.2.1).
function App.error_item(kind, loc, msg, input, ctx)
  return { type = kind, loc = loc, msg = msg, input = input == nil and json.null or input,
    ctx = ctx }
end
local item = App.error_item

--- The request's JSON object body, or nil and the 422 detail list FastAPI would answer.
function App.json_body(_, req)
  if req.body == "" then return nil, { item("missing", { "body" }, "Field required", nil) } end
  if req.json_error then
    local pos = tonumber(req.json_error:match("character (%d+)")) or 1
    return nil, { item("json_invalid", { "body", pos - 1 }, "JSON decode error", {},
      { error = "Expecting value" }) }
  end
  if type(req.json) ~= "table" then
    return nil, { item("model_attributes_type", { "body" },
      "Input should be a valid dictionary or object to extract fields from", req.json) }
  end
  return req.json
end

--- An integer query parameter (FastAPI `int | None`, >= min): the value, or nil and a 422 item.
function App.query_int(_, req, name, default, min)
  local raw = req.query[name]
  if raw == nil then return default end
  local v = raw:match("^[+-]?%d+$") and math.tointeger(tonumber(raw))
  if not v then
    return nil, item("int_parsing", { "query", name },
      "Input should be a valid integer, unable to parse string as an integer", raw)
  end
  if min and v < min then
    return nil, item("greater_than_equal", { "query", name },
      "Input should be greater than or equal to " .. min, raw, { ge = min })
  end
  return v
end

--- Installs a provider module; an optional one (valyu) is skipped when its file is absent.
function App:use(name, optional)
  if optional and not package.searchpath(name, package.path) then return false end
  local ok, mod = pcall(require, name)
  if not ok then
    if not optional then error(mod, 0) end
    io.stderr:write("simulator: cannot load ", name, ": ", tostring(mod), "\n")
    return false
  end
  mod.install(self)
  return true
end

--- Freezes the configuration the providers installed as the defaults, then resets.
function App:start()
  self.defaults = deep_copy(self.config)
  self:reset({})
end

function App:reset(opts)
  for k in pairs(self.config) do
    if self.defaults[k] == nil then self.config[k] = nil end
  end
  for k, v in pairs(self.defaults) do
    local cur = self.config[k]
    if type(v) == "table" and type(cur) == "table" then
      for key in pairs(cur) do cur[key] = nil end
      merge(cur, v)
    else
      self.config[k] = deep_copy(v)
    end
  end
  if type(opts.config) == "table" then merge(self.config, opts.config) end
  self.seed = math.tointeger(opts.seed) or self.initial.seed
  self.clock:reset(tonumber(opts.speed) or self.initial.speed)
  self.rng = content.rng(self.seed)
  self.faults:clear()
  self.log, self.counters, self.request_n, self.control_n = {}, {}, 0, 0
  if self.server then self.server:reset_accounting() end
  for _, fn in ipairs(self.resets) do fn(self) end
end

function App:match(method, path)
  local segs = split(path)
  local allowed = false
  for _, r in ipairs(self.routes) do
    if #r.segs == #segs then
      local params = {}
      for i, seg in ipairs(r.segs) do
        if seg:sub(1, 1) == ":" then
          params[seg:sub(2)] = url_decode(segs[i])
        elseif seg ~= segs[i] then
          params = nil
          break
        end
      end
      if params then
        if r.method == method then return r.handler, params end
        allowed = true
      end
    end
  end
  return nil, allowed
end

local function normalise(status, body, headers)
  local list, has_type = {}, false
  for k, v in pairs(headers or {}) do
    if type(k) == "number" then list[#list + 1] = v else list[#list + 1] = { k, tostring(v) } end
    if (type(k) == "number" and v[1] or k):lower() == "content-type" then has_type = true end
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  if not has_type then table.insert(list, 1, { "Content-Type", "application/json" }) end
  local data = type(body) == "table" and body or nil
  if data then body = encode(body) elseif body == EMPTY then body = "[]" end
  return { status = math.tointeger(status) or 500, headers = list, body = body or "", data = data }
end

--- Runs the route handler for a request: the real, fault-free reply.
function App:produce(req)
  req.now = self:now()
  local handler, params = self:match(req.method, req.path)
  if not handler then
    if params then return normalise(405, { detail = "Method Not Allowed" }) end
    return normalise(404, { detail = "Not Found" })
  end
  req.params = params
  local result = table.pack(xpcall(handler, debug.traceback, req))
  if not result[1] then
    io.stderr:write("simulator: ", req.method, " ", req.path, ": ", tostring(result[2]), "\n")
    return normalise(500, { detail = "Internal Server Error" })
  end
  return normalise(result[2], result[3], result[4])
end

local function build_request(app, raw)
  local path, q = raw.target:match("^([^?]*)%??(.*)$")
  local req = { method = raw.method, path = path, raw_path = raw.target, query = parse_query(q),
    headers = raw.headers, body = raw.body, params = {}, app = app }
  if raw.body ~= "" then
    local ok, value = pcall(json.decode, raw.body)
    if ok then req.json = value else req.json_error = tostring(value) end
  end
  return req
end

--- The engine's handler: one raw request in, one reply descriptor out.
function App:handle(raw, conn)
  local req = build_request(self, raw)
  if req.path:sub(1, 6) == "/_sim/" then
    self.control_n = self.control_n + 1
    local resp = self:produce(req)
    resp.headers[#resp.headers + 1] = { "X-Request-Id", "req_sim_" .. self.control_n }
    return resp
  end
  self.request_n = self.request_n + 1
  local n = self.request_n
  local fault = self.faults:match(req.method, req.path)
  local function finish(resp)
    local id = "req_" .. n
    resp.headers = resp.headers or {}
    resp.headers[#resp.headers + 1] = { "X-Request-Id", id }
    -- The server's own clock, as real APIs send it: clients reconcile against it.
    resp.headers[#resp.headers + 1] = { "Date",
      os.date("!%a, %d %b %Y %H:%M:%S GMT", clock_mod.EPOCH + math.floor(self:now())) }
    if resp.dup_request_id then resp.headers[#resp.headers + 1] = { "X-Request-Id", id } end
    self.log[#self.log + 1] = { i = n, id = id, method = req.method, path = req.raw_path,
      status = resp.status or 0, conn = conn.serial, t = self:now(), bytes = #(resp.body or ""),
      fault = resp.fault, route = req.path, headers = req.headers,
      body = (req.body or ""):sub(1, 8192) }
    local limit = math.tointeger(self.config.log_limit) or 100000
    if #self.log > limit then -- drop the oldest half
      local keep = limit // 2
      self.log = table.move(self.log, #self.log - keep + 1, #self.log, 1, {})
    end
    if not self.quiet then
      io.stderr:write(string.format("%s %s %s -> %s\n", id, req.method, req.raw_path,
        tostring(resp.status)))
    end
    return resp
  end
  if not fault then return finish(self:produce(req)) end
  local resp = faults_mod.shape(fault, req, function() return self:produce(req) end, encode)
  if resp.compute then
    local compute = resp.compute
    resp.compute = function() return finish(compute()) end
    return resp
  end
  return finish(resp)
end

function App:state()
  local stats = self.server and self.server.stats or { accepted = 0, open = 0, max_open = 0 }
  local state = { now = self:now(), speed = self.clock.speed, seed = self.seed,
    counters = self.counters,
    connections = { accepted = stats.accepted, open = stats.open, max_open = stats.max_open },
    requests = App.array(self.log) }
  for _, name in ipairs(self.expose_order) do state[name] = self.exposed[name]() end
  return state
end

-- Secrets never leave through the control channel.
local function redact(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if k ~= "tokens" and k ~= "keys" and k ~= "api_keys" then out[k] = redact(x) end
  end
  return out
end

local function control_body(req)
  if req.json_error then return nil, { detail = "invalid JSON: " .. req.json_error } end
  if req.json ~= nil and type(req.json) ~= "table" then
    return nil, { detail = "body must be a JSON object" }
  end
  return req.json or {}
end

--- The /_sim control channel (never used by the client library; no auth).
function M.install_control(app)
  local function with_body(fn)
    return function(req)
      local body, err = control_body(req)
      if not body then return 400, err end
      return fn(body, req)
    end
  end
  app:route("GET", "/_sim/state", function() return 200, app:state() end)
  app:route("GET", "/_sim/requests", function() return 200, App.array(app.log) end)
  app:route("DELETE", "/_sim/requests", function()
    app.log = {}
    if app.server then app.server:reset_accounting() end
    return 200, { ok = true }
  end)
  app:route("POST", "/_sim/reset", with_body(function(body)
    app:reset(body)
    return 200, { ok = true, now = app:now(), speed = app.clock.speed, seed = app.seed }
  end))
  app:route("GET", "/_sim/clock", function()
    return 200, { now = app:now(), speed = app.clock.speed }
  end)
  app:route("POST", "/_sim/clock", with_body(function(body)
    local ok, err = true, nil
    if body.speed ~= nil then ok, err = app.clock:set_speed(body.speed) end
    if ok and body.set ~= nil then ok, err = app.clock:set(body.set) end
    if ok and body.advance ~= nil then ok, err = app.clock:advance(body.advance) end
    if not ok then return 400, { detail = err } end
    return 200, { now = app:now(), speed = app.clock.speed }
  end))
  app:route("GET", "/_sim/config", function() return 200, redact(app.config) end)
  app:route("POST", "/_sim/config", with_body(function(body)
    merge(app.config, body)
    return 200, redact(app.config)
  end))
  app:route("GET", "/_sim/faults", function() return 200, App.array(app.faults:all()) end)
  app:route("POST", "/_sim/faults", with_body(function(body)
    local id, err = app.faults:add(body)
    if not id then return 400, { detail = err } end
    return 200, { id = id }
  end))
  app:route("DELETE", "/_sim/faults", function()
    app.faults:clear()
    return 200, { ok = true }
  end)
  app:route("POST", "/_sim/shutdown", function()
    if app.server then app.server:timer(0, function() app.server:stop() end) end
    return 200, { ok = true }
  end)
end

M.App = App
return M

-- luacheck: std lua54
-- Fault switches (CONTRACT G4): per route and per call index, force a status, delay, drop,
-- truncate or corrupt a reply. A registry matches requests; shape() turns a matched fault plus
-- the real handler into an engine reply descriptor (see http.lua).
local M = {}

local Registry = {}
Registry.__index = Registry

-- Kinds that only change how the real reply is sent: the handler always runs for them.
local TRANSFORMS = { control_chars = true, drip = true, gzip = true, dup_headers = true }
local KINDS = {
  drop = true, reset = true, truncate = true, html502 = true, empty = true, no_body = true,
  invalid_json = true, invalid_utf8 = true, wrong_shape = true, big = true,
  control_chars = true, drip = true, gzip = true, dup_headers = true,
}
M.KINDS = KINDS

local HTML_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
  .. "<center><h1>502 Bad "
  .. "Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

function M.new()
  return setmetatable({ list = {}, next_id = 0 }, Registry)
end

--- Validates and stores a fault; returns its id or nil, message.
function Registry:add(f)
  if type(f) ~= "table" then return nil, "a fault is a JSON object" end
  if f.kind ~= nil and not KINDS[f.kind] then
    return nil, "unknown fault kind: " .. tostring(f.kind)
  end
  local status = f.status ~= nil and math.tointeger(f.status)
  if f.status ~= nil and (not status or status < 100 or status > 599) then
    return nil, "status must be an integer 100..599"
  end
  if f.path ~= nil and type(f.path) ~= "string" then return nil, "path must be a string" end
  if f.path and not f.prefix and not pcall(string.find, "", "^" .. f.path .. "$") then
    return nil, "path is not a valid Lua pattern"
  end
  if f.status == nil and f.kind == nil and f.delay_ms == nil and f.retry_after == nil then
    return nil, "a fault needs one of status, kind, delay_ms, retry_after"
  end
  self.next_id = self.next_id + 1
  local fault = {}
  for k, v in pairs(f) do fault[k] = v end
  fault.id, fault.seen, fault.fired, fault.status = self.next_id, 0, 0, status or nil
  fault.skip = math.tointeger(f.skip) or 0
  fault.count = math.tointeger(f.count) or 1
  fault.method = f.method and f.method:upper() or nil
  self.list[#self.list + 1] = fault
  return fault.id
end

function Registry:clear()
  self.list = {}
end

function Registry:all()
  return self.list
end

local function path_matches(f, path)
  if not f.path then return true end
  if f.prefix then return path:sub(1, #f.path) == f.path end
  return path == f.path or path:find("^" .. f.path .. "$") ~= nil
end

--- The fault to fire for this request, if any. Every matching fault counts the request
-- (its call index); the first one past its `skip` with firings left fires.
function Registry:match(method, path)
  local chosen
  for _, f in ipairs(self.list) do
    if (not f.method or f.method == method) and path_matches(f, path) then
      f.seen = f.seen + 1
      if not chosen and f.seen > f.skip and (f.count < 0 or f.fired < f.count) then
        f.fired = f.fired + 1
        chosen = f
      end
    end
  end
  return chosen
end

-- Finds the JSON string value of "key" in encoded text: returns its start and end (quotes).
local function string_value(text, key)
  local _, e = text:find('"' .. key .. '":%s*"')
  if not e then return nil end
  local i = e + 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\\" then i = i + 2 elseif c == '"' then return e, i else i = i + 1 end
  end
end

-- The vendor's bug [obs C2]: newlines and tabs inside the echoed brief sent raw.
local function raw_controls(body)
  for _, key in ipairs({ "brief", "query" }) do
    local s, e = string_value(body, key)
    if s then
      local inner = body:sub(s + 1, e - 1)
      local raw, n = inner:gsub("\\(.)", function(c)
        if c == "n" then return "\n" elseif c == "t" then return "\t" end
      end)
      if n == 0 or not raw:find("[\n\t]") then raw = raw .. "\n\t" end
      return body:sub(1, s) .. raw .. body:sub(e)
    end
  end
  return body
end

local function gzip(data)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(data)
  f:close()
  local p = assert(io.popen("gzip -c -n < '" .. name .. "'", "r"))
  local out = p:read("a")
  p:close()
  os.remove(name)
  return out
end

local function set_header(headers, name, value)
  local lname = name:lower()
  for _, h in ipairs(headers) do
    if h[1]:lower() == lname then h[2] = value; return end
  end
  headers[#headers + 1] = { name, value }
end

-- A JSON task body padded to exactly `size` bytes (the "big" kind).
local function big_body(real, size, encode)
  local task = type(real and real.data) == "table" and real.data.id and real.data or {
    id = "00000000-0000-4000-8000-000000000000", status = "done", brief = "big", depth = "medium",
    iterations = 1, agents = 1, sources = 1 }
  local copy = {}
  for k, v in pairs(task) do copy[k] = v end
  copy.status = "done"
  copy.report = { kind = "markdown", markdown = "",
    sources = { { id = 1, url = "https://source-1.example/big" } },
    degradation_reasons = { "Padded by the simulator's big fault." } }
  local base = encode(copy)
  copy.report.markdown = string.rep("x", math.max(0, (size or 1048576) - #base))
  return encode(copy)
end

-- Applies the action to the real reply (or to nothing when the handler did not run).
local function apply(f, req, real, encode)
  local kind = f.kind
  local resp = real or { status = 200, headers = { { "Content-Type", "application/json" } },
    body = '{"detail":"simulated fault","id":"sim-fault"}' }
  resp.headers = resp.headers or {}
  if f.status then
    resp = { status = f.status, headers = { { "Content-Type", "application/json" } },
      body = f.body or encode({ detail = "Simulated " .. f.status .. " (fault " .. f.id .. ")" }) }
  end
  if f.retry_after ~= nil then set_header(resp.headers, "Retry-After", tostring(f.retry_after)) end
  if kind == "drop" then
    return { drop = true, status = 0 }
  elseif kind == "reset" or kind == "truncate" or kind == "no_body" then
    resp.cut = kind == "no_body" and 0 or math.floor(#resp.body / 2)
    resp.rst = kind == "reset"
  elseif kind == "html502" then
    resp = { status = 502, headers = { { "Content-Type", "text/html" } }, body = HTML_502 }
  elseif kind == "empty" then
    resp = { status = 200, headers = { { "Content-Type", "application/json" } }, body = "" }
  elseif kind == "invalid_json" then
    resp = { status = 200, headers = { { "Content-Type", "application/json" } },
      body = '{"id": "abc", ' }
  elseif kind == "invalid_utf8" then
    local body = real and real.body or '{"id":"sim-fault","status":"in_progress","brief":"x"}'
    local s = string_value(body, "brief") or string_value(body, "query")
      or string_value(body, "detail")
      or string_value(body, "id")
    body = s and (body:sub(1, s) .. "\xff\xfe" .. body:sub(s + 1))
      or '{"detail":"bad \xff\xfe bytes"}'
    resp = { status = 200, headers = { { "Content-Type", "application/json" } }, body = body }
  elseif kind == "wrong_shape" then
    resp = { status = 200, headers = { { "Content-Type", "application/json" } },
      body = '"just a string"' }
  elseif kind == "big" then
    resp = { status = 200, headers = { { "Content-Type", "application/json" } },
      body = big_body(real, f.size, encode) }
  elseif kind == "control_chars" then
    resp.body = raw_controls(resp.body)
  elseif kind == "drip" then
    resp.drip = (f.interval_ms or 200) / 1000
  elseif kind == "gzip" then
    if (req.headers["accept-encoding"] or ""):lower():find("gzip", 1, true) then
      resp.body = gzip(resp.body)
      resp.headers[#resp.headers + 1] = { "Content-Encoding", "gzip" }
      resp.headers[#resp.headers + 1] = { "Vary", "Accept-Encoding" }
    end
  elseif kind == "dup_headers" then
    local ctype = "application/json"
    for _, h in ipairs(resp.headers) do if h[1]:lower() == "content-type" then ctype = h[2] end end
    resp.headers[#resp.headers + 1] = { "Content-Type", ctype }
    resp.dup_request_id = true
  end
  return resp
end

--- The reply descriptor for a request that fired fault f.
-- produce() runs the real handler and returns { status, headers, body, data }.
function M.shape(f, req, produce, encode)
  local replacing = f.status ~= nil or (f.kind ~= nil and not TRANSFORMS[f.kind])
  local function build()
    local real = (f.after or not replacing) and produce() or nil
    local resp = apply(f, req, real, encode)
    resp.fault = f.id
    return resp
  end
  if f.delay_ms then
    local delay = f.delay_ms / 1000
    if f.after then
      local resp = build()
      resp.delay = delay
      return resp
    end
    return { delay = delay, compute = build }
  end
  return build()
end

return M

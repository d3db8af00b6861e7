-- Webhook signatures: dr.webhooks.verify checks that a webhook came from the provider, with the
-- provider's recipe from its descriptor (`webhook`); dr.webhooks.sign makes the same signature
-- (a test's own deliveries). HMAC-SHA256 and the comparison come from libcrypto via the core:
-- no hash of our own, and the comparison takes the same time wherever the strings differ.
local core = require "deepresearch.core"
local errors = require "deepresearch.base.errors"
local options = require "deepresearch.base.options"
local providers = require "deepresearch.providers"

local M = {}

M.DEFAULT_TOLERANCE = 300 -- seconds between the signed timestamp and now, either way

local VERIFY = { provider = "string", secret = "string", body = "string",
  signature = "string|table", timestamp = "string|number|table", headers = "table",
  tolerance = "number",
  now = "number" }
local SIGN = { provider = "string", secret = "string", body = "string",
  timestamp = "string|number" }

local function hex(raw)
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The provider's recipe; raises for a provider that is not registered or sends no webhooks.
local function recipe(fname, name)
  local d = providers.get(name)
  if not d then
    error(string.format("bad option 'provider' to '%s' (unknown provider %q)", fname,
      tostring(name)), 3)
  end
  if type(d.webhook) ~= "table" then
    error(string.format("bad option 'provider' to '%s' (%s sends no signed webhooks)", fname,
      name), 3)
  end
  return d.webhook
end

local function need_string(fname, opts, k)
  if type(opts[k]) ~= "string" then
    error(string.format("bad option '%s' to '%s' (string expected, got %s)", k, fname,
      opts[k] == nil and "no value" or type(opts[k])), 3)
  end
end

-- A timestamp as the header carries it: whole Unix seconds, as text.
local function stamp_text(ts)
  if type(ts) == "number" then return string.format("%d", ts) end
  return ts
end

-- What the provider signs: "timestamp.body" (Valyu) or the body alone.
local function signed_text(r, ts, body)
  if r.signed == "timestamp.body" then return ts .. "." .. body end
  return body
end

local function signature_of(r, secret, ts, body)
  -- The secret is used as given (the hex text's bytes), as the providers' own SDKs do.
  return (r.prefix or "") .. hex(core.hmac_sha256(secret, signed_text(r, ts, body)))
end

--- dr.webhooks.sign{ provider, secret, body, timestamp }: the signature header's value.
function M.sign(opts)
  options.table_arg("sign", 1, opts, false, 2)
  options.check("sign", opts, SIGN, 2)
  local r = recipe("sign", opts.provider)
  need_string("sign", opts, "secret")
  need_string("sign", opts, "body")
  if opts.timestamp == nil then error("bad option 'timestamp' to 'sign' (no value)", 2) end
  return signature_of(r, opts.secret, stamp_text(opts.timestamp), opts.body)
end

-- A header's value from a table of headers, whatever the case of its name.
local function header(headers, name)
  if not headers or not name then return nil end
  local v = headers[name]
  if v ~= nil then return v end
  local lower = name:lower()
  for k, value in pairs(headers) do
    if type(k) == "string" and k:lower() == lower then return value end
  end
  return nil
end

local function refuse(code, message, fields) return nil, errors.new(code, message, fields) end

-- The strings of a header value: a string, or a repeated header's list (other entries and
-- types are dropped: what is left must verify on its own).
local function strings_of(v)
  if type(v) == "string" then return { v } end
  local out = {}
  if type(v) == "table" then
    for _, x in ipairs(v) do
      if type(x) == "string" and x ~= "" then out[#out + 1] = x end
    end
  end
  return out
end

-- The one timestamp: a repeated header must repeat the same value (two differing ones leave
-- it unknown which was signed).
local function one_stamp(v)
  if type(v) == "number" then return stamp_text(v) end
  local list = strings_of(v)
  for i = 2, #list do
    if list[i] ~= list[1] then return nil end
  end
  return list[1]
end

-- Whether any of the signatures matches. Each is compared in constant time, and all of them
-- are, so the time does not tell which one (or how many) came close.
local function any_matches(expected, sigs)
  local ok = false
  for _, sig in ipairs(sigs) do
    if core.equal_constant_time(expected, sig) then ok = true end
  end
  return ok
end

--- dr.webhooks.verify{ provider, secret, body, signature, timestamp [, headers] [, tolerance]
-- [, now] }: true, or nil, err with code "invalid_signature" (missing, malformed or wrong) or
-- "stale_webhook" (signed more than tolerance seconds from now). signature and timestamp may
-- come from headers (the request's header table, any case of names). A repeated header (a list
-- of strings) verifies when any signature in it matches; its timestamps must all be the same.
-- Caller mistakes raise.
function M.verify(opts)
  options.table_arg("verify", 1, opts, false, 2)
  options.check("verify", opts, VERIFY, 2)
  local r = recipe("verify", opts.provider)
  need_string("verify", opts, "secret")
  need_string("verify", opts, "body")
  if opts.secret == "" then error("bad option 'secret' to 'verify' (empty)", 2) end
  local tolerance = opts.tolerance or M.DEFAULT_TOLERANCE
  if tolerance ~= tolerance or tolerance < 0 then
    error("bad option 'tolerance' to 'verify' (a number >= 0 expected)", 2)
  end
  local sigs = strings_of(opts.signature or header(opts.headers, r.header))
  local ts = one_stamp(opts.timestamp or header(opts.headers, r.timestamp_header))
  if #sigs == 0 then
    return refuse("invalid_signature", "no " .. tostring(r.header) .. " signature")
  end
  if type(ts) ~= "string" or not ts:find("^%d+$") then
    return refuse("invalid_signature", "no " .. tostring(r.timestamp_header) ..
      " in Unix seconds (or repeated with different values)")
  end
  if not any_matches(signature_of(r, opts.secret, ts, opts.body), sigs) then
    return refuse("invalid_signature", "the signature does not match the body")
  end
  local now = opts.now or os.time()
  local age = now - tonumber(ts)
  if age > tolerance or -age > tolerance then
    return refuse("stale_webhook", string.format("signed %d s %s; at most %d s are accepted",
      math.floor(math.abs(age)), age >= 0 and "ago" or "in the future", tolerance),
      { age = age })
  end
  return true
end

return M

-- Decode cost alone: this module's conversion (dr.core.decode: cjson through the Lua API,
-- then nulls stripped and integral floats made integers) against cjson.decode on the same bytes.
-- usage: lua bench/decode.lua DOCROOT N_SMALL N_BIG N_LIST [dr-first | cjson | dr]
-- prints "<decoder> <payload> <n> <cpu s> <bytes>" for cjson and dr (or only the one named) on
-- each payload; each timed loop follows max(3, n / 10) untimed decodes.
package.path = "bench/?.lua;" .. package.path
local common = require "common"
common.use_checkout()
local dr = require "deepresearch"
local cjson = require "cjson"

local root = assert(arg[1], "usage: decode.lua DOCROOT N_SMALL N_BIG N_LIST [dr-first]")
local counts = { small = tonumber(arg[2]), big = tonumber(arg[3]), list = tonumber(arg[4]) }
local only = (arg[5] == "cjson" or arg[5] == "dr") and arg[5]
local dr_first = arg[5] == "dr-first"

local function read(name)
  local f = assert(io.open(root .. "/" .. name .. ".json", "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local decoders = { cjson = cjson.decode, dr = dr.core.decode }
local order = only and { only } or dr_first and { "dr", "cjson" } or { "cjson", "dr" }

-- The module's conversion must really strip nulls, or the comparison is unfair to it.
local small = read("small")
assert(cjson.decode(small).report == cjson.null and dr.core.decode(small).report == nil)

for _, payload in ipairs({ "small", "big", "list" }) do
  local text, n = read(payload), counts[payload]
  for _, name in ipairs(n > 0 and order or {}) do
    local decode = decoders[name]
    for _ = 1, math.max(3, math.floor(n / 10)) do decode(text) end
    collectgarbage()
    local c0 = common.cpu()
    for _ = 1, n do decode(text) end
    io.write(string.format("%s %s %d %.9f %d\n", name, payload, n, common.cpu() - c0, #text))
    io.stdout:flush()
  end
end

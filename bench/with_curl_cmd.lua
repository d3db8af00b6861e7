-- Contender: the curl command spawned per request through io.popen + lua-cjson,
-- as many editor plugins do. Its CPU time includes the children's (the shell and curl).
package.path = "bench/?.lua;" .. package.path
local common = require "common"
local cjson = require "cjson"

local o = common.args()
local urls = common.urls(o)

local function get(url)
  local p = assert(io.popen(
    "curl -sSf -H 'Authorization: Bearer t' -H 'Accept: application/json' '" .. url .. "'", "r"))
  local body = p:read("*a")
  local ok = p:close()
  if not ok then error("curl failed for " .. url) end
  return cjson.decode(body)
end

common.run(o, {
  small = function() return get(urls.small) end,
  big = function() return get(urls.big) end,
  list = function() return get(urls.list) end,
}, common.children_cpu)

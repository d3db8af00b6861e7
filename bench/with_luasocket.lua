-- Contender: LuaSocket's socket.http (a new connection per request) + lua-cjson.
package.path = "bench/?.lua;" .. package.path
local common = require "common"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local o = common.args()
local urls = common.urls(o)
local headers = { authorization = "Bearer t", accept = "application/json" }

local function get(url)
  local t = {}
  local ok, code = http.request { url = url, headers = headers, sink = ltn12.sink.table(t) }
  if not ok or code ~= 200 then error("socket.http: " .. tostring(code)) end
  return cjson.decode(table.concat(t))
end

common.run(o, {
  small = function() return get(urls.small) end,
  big = function() return get(urls.big) end,
  list = function() return get(urls.list) end,
})

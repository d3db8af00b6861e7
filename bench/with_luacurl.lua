-- Contender: Debian's lua-curl (luacurl 0.3, Lua 5.1/LuaJIT) + lua-cjson, one reused handle.
package.path = "bench/?.lua;" .. package.path
local common = require "common"
local curl = require "curl"
local cjson = require "cjson"

local o = common.args()
local urls = common.urls(o)
local h = curl.easy_init()
local chunks, n = {}, 0
h:setopt(curl.OPT_HTTPHEADER, { "Authorization: Bearer t", "Accept: application/json" })
h:setopt(curl.OPT_NOSIGNAL, 1)
-- luacurl 0.3 calls the writer with (chunk, length).
h:setopt(curl.OPT_WRITEFUNCTION, function(s, len)
  n = n + 1
  chunks[n] = s
  return len
end)

local function get(url)
  n = 0
  h:setopt(curl.OPT_URL, url)
  -- perform returns the CURLcode (0 on success) and a message; there is no getinfo.
  local code, err = h:perform()
  if code ~= 0 then error("luacurl: " .. tostring(err)) end
  return cjson.decode(table.concat(chunks, "", 1, n))
end

common.run(o, {
  small = function() return get(urls.small) end,
  big = function() return get(urls.big) end,
  list = function() return get(urls.list) end,
})

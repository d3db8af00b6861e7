-- Contender: this module, as users call it (client:get, client:list).
package.path = "bench/?.lua;" .. package.path
local common = require "common"
common.use_checkout()
local dr = require "deepresearch"

local o = common.args()
local c = dr.client { base_url = o.base, token = "t" }

local function must(v, err)
  if v == nil then error(tostring(err), 2) end
  return v
end

common.run(o, {
  small = function() return must(c:get(o.small_id)) end,
  big = function() return must(c:get(o.big_id)) end,
  list = function() return must(c:list { limit = 50 }) end,
})
c:close()

-- Peak memory: a fresh process GETs the ~5 MB list page (limit=75) with this module and
-- holds the decoded table while it reads VmHWM.
-- usage: lua bench/rss.lua BASE_URL
-- prints "rss <body bytes (unknown here: 0)> <VmRSS before kB> <VmHWM kB> <VmRSS after kB> <check>"
package.path = "bench/?.lua;" .. package.path
local common = require "common"
common.use_checkout()
local dr = require "deepresearch"

local c = dr.client { base_url = assert(arg[1], "usage: rss.lua BASE_URL"), token = "t" }
local before = common.status_kb("VmRSS")
local page = assert(c:list { limit = 75 })
io.write(string.format("rss 0 %d %d %d %d\n", before, common.status_kb("VmHWM"),
  common.status_kb("VmRSS"), #page))

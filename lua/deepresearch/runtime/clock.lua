-- The monotonic clock waits are measured with (the server's timestamps: base/dates.lua).
local core = require "deepresearch.core"

local M = {}

--- The default clock: monotonic seconds and a real sleep. Tests and event loops pass their own.
M.default = { now = core.now, sleep = core.sleep }

return M

-- When to try a request again, and how long to wait first.
local M = {}

M.defaults = {
  max_retries = 2,
  base_delay = 0.5,     -- first backoff, doubling ...
  max_delay = 8,        -- ... up to this cap
  max_retry_after = 120, -- a server's Retry-After is honoured up to this many seconds
}

-- Statuses worth another try for requests that change nothing on the server.
local READ_RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true,
  [504] = true }

--- Exponential backoff with jitter x[0.75, 1]: attempt 1 waits about base_delay, each
-- attempt doubles it, up to max_delay. The one backoff formula: the client's retries, the
-- worker's job steps and its Redis reconnects differ only in base_delay and max_delay.
function M.backoff(attempt, opts, random)
  opts = opts or M.defaults
  local base = opts.base_delay or M.defaults.base_delay
  local cap = opts.max_delay or M.defaults.max_delay
  local d = math.min(cap, base * 2 ^ (attempt - 1))
  return d * (0.75 + 0.25 * (random or math.random)())
end

-- Error codes, one set per use. They differ on purpose; each says why.
local function set(...)
  local s = {}
  for _, list in ipairs({ ... }) do
    for _, code in ipairs(list) do s[code] = true end
  end
  return s
end

local POLL = { "network", "timeout", "rate_limited", "unavailable", "server_error",
  "invalid_response" }
local CREDENTIALS = { "unauthorized", "forbidden" }

--- A wait's poll failed with one of these: poll again (a poll creates nothing, so any failure
-- of the server or the path to it is worth another poll). A refused credential or a missing
-- task is not: the wait cannot succeed without someone acting.
M.POLL_TRANSIENT = set(POLL)

--- The worker starts a failed wait again (later, with backoff) on these: the poll failures,
-- and a refused credential too, since a long-lived worker outlives a token being rotated and
-- the task it waits on is already paid for.
M.WAIT_AGAIN = set(POLL, CREDENTIALS)

--- Create answers that prove no task was made: the API itself refused the request (per the
-- contracts, its 429 and JSON 503 mean "nothing was created"). Only after one of these, or a
-- request that never left, may a create be sent again. A 5xx that is not the API's, a lost
-- answer, or a code not listed here may have made a task.
M.CREATE_NOTHING_MADE = set({ "invalid_request", "unauthorized", "forbidden", "not_found",
  "plan_required",
  "insufficient_credits", "payment_failed", "rate_limited", "unavailable" })

--- Of the failed creates that made nothing, those worth sending again after a while (the
-- others, a bad request or no credit, fail the job): the refusal may lift by itself, or a
-- credential be fixed. network/timeout/cancelled count only when the request never left.
M.CREATE_RESEND = set(CREDENTIALS, { "rate_limited", "unavailable", "network", "timeout",
  "cancelled" })

local dates = require "deepresearch.base.dates"

--- Parses Retry-After (delta seconds or an HTTP-date) into seconds from now; nil if absent or
--- unreadable.
function M.parse_retry_after(value, now_epoch)
  if type(value) ~= "string" then return nil end
  local secs = value:match("^%s*(%d+)%s*$")
  if secs then return tonumber(secs) end
  local at = dates.parse_http_date(value)
  if not at then return nil end
  return math.max(0, at - (now_epoch or os.time()))
end

--- Whether a failed request with this effect may be sent again.
-- effect "read": get, list, polls. effect "create": only where no task can exist: the API's own
-- JSON 503 ("nothing was created", per the contracts), or a request that never left. A 503
-- page from a proxy may come after it forwarded the create, so it is not retried.
function M.should_retry(effect, err)
  if effect == "create" or effect == "mutate" then
    if err.status == 503 then return err.api == true end
    return (err.code == "network" or err.code == "timeout") and err.sent == false
  end
  if err.status then return READ_RETRY_STATUS[err.status] or false end
  return err.code == "network" or err.code == "timeout"
end

--- Seconds to wait before attempt+1: the server's Retry-After if it sent one, else backoff.
function M.delay(attempt, err, opts)
  local ra = M.parse_retry_after(err.retry_after)
  if ra then
    return math.min(ra, opts.max_retry_after or M.defaults.max_retry_after)
  end
  return M.backoff(attempt, opts)
end

return M

-- The polling loop every provider and task kind shares.
local errors = require "deepresearch.errors"
local retry = require "deepresearch.retry"

local M = {}

M.defaults = {
  interval = 2,        -- first poll delay, seconds
  growth = 1.5,        -- each delay is the last one times this ...
  max_interval = 30,   -- ... up to this cap
  timeout = 7200,      -- deep research runs 10-90 minutes
  max_failures = 5,    -- transient failures in a row that end the wait
  not_found_grace = 30, -- seconds after wait starts during which 404 means "not visible yet"
}

--- The delays a wait sleeps between polls when nothing goes wrong.
function M.schedule(opts)
  opts = opts or {}
  local d = opts.interval or M.defaults.interval
  local growth = opts.growth or M.defaults.growth
  local cap = opts.max_interval or M.defaults.max_interval
  return function()
    local now = d
    d = math.min(cap, d * growth)
    return math.min(now, cap)
  end
end

local function field(task, path)
  if path:sub(1, 1) == "#" then
    local t = task[path:sub(2)]
    return type(t) == "table" and #t or 0
  end
  local v = task
  for part in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[part]
  end
  return v
end

-- A fingerprint of what on_progress reports, to call it only on change.
local function progress_key(task, kind)
  local parts = {}
  for i, path in ipairs(kind.progress) do parts[i] = tostring(field(task, path)) end
  return table.concat(parts, "\0")
end
M.progress_key = progress_key

local TRANSIENT = { network = true, timeout = true, rate_limited = true, unavailable = true,
                    server_error = true, invalid_response = true }

--- Polls get(id) until the task ends. kind: a provider kind descriptor.
-- ctx = { get = function(id) -> task | nil, err, clock = {now, sleep}, created = bool, terminal = fn? }
function M.run(ctx, kind, id, opts)
  opts = opts or {}
  local clock = ctx.clock
  local start = clock.now()
  local timeout = opts.timeout or M.defaults.timeout
  local next_delay = M.schedule(opts)
  local failures, last, last_key, polls = 0, opts.task, nil, 0
  local grace = opts.not_found_grace or M.defaults.not_found_grace
  while true do
    polls = polls + 1
    local task, err = ctx.get(id)
    local delay
    if task then
      failures = 0
      last = task
      local key = progress_key(task, kind)
      if key ~= last_key then
        last_key = key
        if opts.on_progress then opts.on_progress(task) end
      end
      local state = kind.states[task.status]
      local verdict = ctx.verdict(task, state, opts)
      if verdict == "done" then return task, nil, polls end
      if verdict then return nil, verdict, polls end
      delay = next_delay()
    else
      local early_404 = err.code == "not_found" and clock.now() - start < grace
      if not early_404 and not TRANSIENT[err.code] then return nil, err, polls end
      failures = failures + 1
      if failures >= (opts.max_failures or M.defaults.max_failures) then
        err.message = string.format("%s (%d polls in a row failed)", err.message, failures)
        return nil, err, polls
      end
      delay = math.max(retry.delay(failures, err, opts), next_delay())
    end
    local remaining = timeout - (clock.now() - start)
    if remaining <= 0 then
      return nil, errors.new("timeout", string.format(
        "%s %s did not finish within %gs; it keeps running on the server (wait again to resume)",
        kind.label, id, timeout), { task = last, retryable = true }), polls
    end
    clock.sleep(math.min(delay, remaining))
  end
end

return M

-- The harness's arithmetic and markdown, kept apart so a spec can check them.
local M = {}

--- Median of a list of numbers (the mean of the middle two for an even count).
function M.median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

--- (max - min) / median, as a fraction: how far apart the runs were.
function M.spread(xs)
  local m = M.median(xs)
  if not m or m == 0 then return 0 end
  local lo, hi = math.huge, -math.huge
  for _, x in ipairs(xs) do
    if x < lo then lo = x end
    if x > hi then hi = x end
  end
  return (hi - lo) / m
end

--- Microseconds with precision that suits their size.
function M.us(sec)
  if sec == nil then return "–" end
  local us = sec * 1e6
  if us >= 10000 then return string.format("%.0f", us) end
  if us >= 100 then return string.format("%.0f", us) end
  return string.format("%.1f", us)
end

function M.ratio(a, b)
  if a == nil or b == nil or b == 0 then return "–" end
  local r = a / b
  if r >= 10 then return string.format("%.0f×", r) end
  return string.format("%.2f×", r)
end

function M.mb(bytes)
  return string.format("%.1f MB", bytes / 1e6)
end

--- A markdown table: header is a list of strings, rows lists of cells.
function M.table(header, rows)
  local out = { "| " .. table.concat(header, " | ") .. " |" }
  local rule = {}
  for i = 1, #header do rule[i] = i == 1 and "---" or "---:" end
  out[#out + 1] = "| " .. table.concat(rule, " | ") .. " |"
  for _, r in ipairs(rows) do out[#out + 1] = "| " .. table.concat(r, " | ") .. " |" end
  return table.concat(out, "\n")
end

--- The polls a wait makes for a task that finishes `duration` seconds after the first poll,
-- on a schedule (a function returning successive delays), and how late it notices the end.
function M.polls_for(next_delay, duration)
  local t, polls = 0, 1
  while t < duration do
    t = t + next_delay()
    polls = polls + 1
  end
  return polls, t - duration
end

--- The worst case over finish times in [from, to] (step seconds): most polls, latest notice.
function M.schedule_worst(make_schedule, from, to, step)
  local max_polls, max_late = 0, 0
  local d = from
  while d <= to + 1e-9 do
    local polls, late = M.polls_for(make_schedule(), d)
    if polls > max_polls then max_polls = polls end
    if late > max_late then max_late = late end
    d = d + step
  end
  return max_polls, max_late
end

--- Replaces the generated part of a results file (between the markers), keeping the rest.
M.BEGIN = "<!-- bench/run: generated from here -->"
M.END = "<!-- bench/run: generated up to here -->"
function M.splice(old, generated)
  local block = M.BEGIN .. "\n" .. generated .. "\n" .. M.END
  if old then
    local a = old:find(M.BEGIN, 1, true)
    local b = select(2, old:find(M.END, 1, true))
    if a and b and b > a then return old:sub(1, a - 1) .. block .. old:sub(b + 1) end
  end
  return "# Benchmark results\n\n" .. block .. "\n"
end

return M

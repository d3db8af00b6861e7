-- luacheck: std lua54
-- A binary min-heap of events { t, seq, ... } ordered by (time, then seq: creation order), so
-- that events at the same virtual time settle in a fixed order and runs are deterministic.
local M = {}

local function before(x, y)
  return x.t < y.t or (x.t == y.t and x.seq < y.seq)
end

function M.push(heap, ev)
  heap[#heap + 1] = ev
  local i = #heap
  while i > 1 and before(heap[i], heap[i // 2]) do
    heap[i], heap[i // 2] = heap[i // 2], heap[i]
    i = i // 2
  end
end

--- Removes and returns the earliest event (nil when empty).
function M.pop(heap)
  local top, last = heap[1], table.remove(heap)
  if heap[1] == nil then return top end
  heap[1] = last
  local i, n = 1, #heap
  while true do
    local m = i
    if 2 * i <= n and before(heap[2 * i], heap[m]) then m = 2 * i end
    if 2 * i + 1 <= n and before(heap[2 * i + 1], heap[m]) then m = 2 * i + 1 end
    if m == i then return top end
    heap[i], heap[m] = heap[m], heap[i]
    i = m
  end
end

return M

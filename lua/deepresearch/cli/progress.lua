-- Progress on stderr while a task runs. Three modes:
--   "tty":   one status line redrawn in place (\r + clear to end of line), with a spinner,
--            elapsed time and a bar against the agent budget; ticks between polls;
--   "lines": one plain line per change (logs, pipes, CI);
--   "none":  nothing (--quiet).
local providers = require "deepresearch.providers"
local dates = require "deepresearch.base.dates"

local M = {}

local ASCII_SPIN = { "|", "/", "-", "\\" }
local UTF8_SPIN = { "⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏" }

local function utf8_locale()
  local lc = os.getenv("LC_ALL") or ""
  if lc == "" then lc = os.getenv("LC_CTYPE") or "" end
  if lc == "" then lc = os.getenv("LANG") or "" end
  return lc:lower():find("utf%-?8") ~= nil
end
M.utf8_locale = utf8_locale

--- "1:05" or "1:02:03" from seconds.
function M.clock_text(sec)
  sec = math.floor(sec + 0.5)
  local h, m, s = math.floor(sec / 3600), math.floor(sec / 60) % 60, sec % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s) end
  return string.format("%d:%02d", m, s)
end

local P = {}
P.__index = P

--- opts = { mode, stream, now (fn), width, describe (fn(task) -> fields), age (fn(task) ->
-- seconds or nil: how old the task is, so the clock shows its age, not this wait's) }
-- describe returns { state, parts = {"iterations 3", ...}, done = n, total = n }.
function M.new(opts)
  local fancy = utf8_locale()
  return setmetatable({
    mode = opts.mode or "lines", stream = opts.stream or io.stderr, now = opts.now,
    start = opts.now(), width = math.max(40, opts.width or 80), describe = opts.describe,
    age = opts.age,
    label = opts.label or "task", spin = fancy and UTF8_SPIN or ASCII_SPIN, frame = 0,
    fill = fancy and "█" or "#", empty = fancy and "░" or ".", drawn = false,
  }, P)
end

local function bar(self, done, total)
  local n = 16
  local k = math.max(0, math.min(n, math.floor(n * done / total + 0.5)))
  return "[" .. self.fill:rep(k) .. self.empty:rep(n - k) .. "]"
end

-- Characters on screen (UTF-8 continuation bytes take no column).
local function columns(s)
  local _, cont = s:gsub("[\128-\191]", "")
  return #s - cont
end

local function cut(s, width)
  if columns(s) <= width then return s end
  local out, n = {}, 0
  for ch in s:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
    if n >= width then break end
    out[#out + 1] = ch
    n = n + 1
  end
  return table.concat(out)
end

function P:line(fancy)
  local d = self.info
  if not d then return nil end
  local elapsed = M.clock_text(self.now() - self.start)
  local parts = { d.state, elapsed }
  for _, p in ipairs(d.parts) do parts[#parts + 1] = p end
  local text = table.concat(parts, "  ")
  if fancy then
    self.frame = self.frame % #self.spin + 1
    local spin = self.final and " " or self.spin[self.frame]
    text = spin .. " " .. text
    -- A finished task's bar is full: its counters against the budget (agents 15/25) say what
    -- it used, not how far it got.
    if self.done_state then
      text = text .. "  " .. bar(self, 1, 1)
    elseif d.total and d.total > 0 then
      text = text .. "  " .. bar(self, d.done or 0, d.total)
    end
  end
  return text
end

function P:draw()
  local text = self:line(true)
  if not text then return end
  self.stream:write("\r\27[K", cut(text, self.width - 1))
  self.stream:flush()
  self.drawn = true
end

--- The wait began: a terminal shows the task as created (first), or, before any poll has
-- answered, that it waits for one (a mistyped id or a slow server is not a blank screen).
function P:begin(first)
  if self.mode ~= "tty" or self.info then return end
  if first then return self:update(first) end
  self.info = { state = "waiting for first answer" .. (utf8_locale() and "…" or "..."),
    parts = {} }
  self:draw()
end

--- A poll saw a change.
function P:update(task)
  if self.mode == "none" then return end
  if self.age and not self.aged then
    -- Once: the clock then runs on from the task's age at its first answer.
    local ok, a = pcall(self.age, task)
    if ok and type(a) == "number" and a == a and a >= 0 and a < 1e9 then
      self.start, self.aged = self.now() - a, true
    end
  end
  self.info = self.describe(task)
  local state = providers.state(task)
  if state == "input_required" then
    local i = type(task.interaction) == "table" and task.interaction or {}
    self.info.state = "waiting for your input" .. (i.type ~= nil and (" (" .. tostring(i.type) ..
      ")") or "")
  end
  self.final = state == "done" or state == "failed" or state == "cancelled"
  self.done_state = state == "done"
  if self.mode == "tty" then
    self:draw()
  else
    self.stream:write(self.label, " ", tostring(self.info.id or ""), ": ", self:line(false), "\n")
    self.stream:flush()
  end
end

--- Time passes between polls: redraw the elapsed time and spinner (terminal only).
function P:tick()
  if self.mode == "tty" and self.info then self:draw() end
end

--- The wait ended: leave the last state on its own line so later output starts clean.
function P:finish()
  if self.mode == "tty" and self.drawn then
    self:draw()
    self.stream:write("\n")
    self.stream:flush()
    self.drawn = false
  end
end

--- Interrupted: clear the line, so the resume hint is not glued to it.
function P:abort()
  if self.mode == "tty" and self.drawn then
    self.stream:write("\r\27[K")
    self.stream:flush()
    self.drawn = false
  end
end

-- Server data never makes the display raise: a counter that is not a finite number shows as
-- "?" (a missing one as 0), and a fractional one as it is.
local function count(v)
  if type(v) == "number" and v == v and v > -2 ^ 53 and v < 2 ^ 53 then return v end
  return nil
end

local function shown(v)
  local n = count(v)
  if not n then return v == nil and "0" or "?" end
  if n % 1 == 0 then return string.format("%d", n) end
  return tostring(n)
end
M.shown = shown

local function state_of(task)
  return task.status == nil and "?" or tostring(task.status)
end

--- Fields shown for an Extruct Deep Research task.
function M.extruct_research(budgets)
  return function(task)
    local total = budgets[task.depth or "medium"] or 25
    return {
      id = task.id, state = state_of(task), done = count(task.agents) or 0, total = total,
      parts = { "iterations " .. shown(task.iterations), "agents " .. shown(task.agents) .. "/" ..
                total,
                "sources " .. shown(task.sources) },
    }
  end
end

--- Fields shown for a Valyu DeepResearch task.
function M.valyu_research(task)
  local p = type(task.progress) == "table" and task.progress or {}
  local cur, total = p.current_step, p.total_steps
  local parts = {}
  if cur ~= nil and total ~= nil then
    parts[#parts + 1] = "step " .. shown(cur) .. "/" .. shown(total)
  end
  parts[#parts + 1] = "messages " .. (type(task.messages) == "table" and #task.messages or 0)
  -- The mode, and what the task cost once the server says (terminal states carry cost).
  if type(task.mode) == "string" then parts[#parts + 1] = "mode " .. task.mode end
  if count(task.cost) then parts[#parts + 1] = string.format("cost $%.2f", task.cost) end
  return { id = task.deepresearch_id, state = state_of(task), parts = parts, done = count(cur) or 0,
    total = count(total) }
end

--- How old a task is, in seconds, from its created time: the first of paths (a path, a list,
-- or nil for created_at then created; false when the API gives no stable created time) that
-- holds an ISO 8601 string or Unix seconds, measured against server_now (epoch seconds: the
-- server's Date, else this machine's clock). nil when the task says nothing usable; never
-- below 0 (clocks differ).
function M.task_age(task, paths, server_now)
  if paths == false or type(task) ~= "table" then return nil end
  if paths == nil then
    paths = { "created_at", "created" }
  elseif type(paths) ~= "table" then
    paths = { paths }
  end
  for _, path in ipairs(paths) do
    local v, t = M.value_at(task, path), nil
    if type(v) == "number" and v == v and v > 0 and v < 1e11 then
      t = v
    elseif type(v) == "string" then
      t = dates.parse_iso(v)
    end
    if t then return math.max(0, server_now - t) end
  end
  return nil
end

--- The value at a dotted path ("usage.total_tokens") in a task, or nil.
function M.value_at(task, path)
  local v = task
  for key in path:gmatch("[^%.]+") do
    if type(v) ~= "table" then return nil end
    v = v[key]
  end
  return v
end

-- As value_at; "#name" is the length of the list at name.
local function at_path(task, path)
  if path:sub(1, 1) == "#" then
    local t = task[path:sub(2)]
    return type(t) == "table" and #t or nil
  end
  return M.value_at(task, path)
end

--- Fields shown for any provider's task from its kind's data alone (a descriptor without a
-- describer of its own): each counter its progress list names and the task reports
-- ("steps 4", "sources 12"), nothing when it reports none; the line's elapsed time stays.
function M.generic(kind)
  return function(task)
    local parts = {}
    for _, path in ipairs(kind.progress or {}) do
      local v = path ~= "status" and at_path(task, path) or nil
      if type(v) == "number" or type(v) == "string" or type(v) == "boolean" then
        local name = path:gsub("^#", ""):match("([^%.]+)$")
        parts[#parts + 1] = name:gsub("_", " ") .. " " ..
          (type(v) == "number" and shown(v) or tostring(v))
      end
    end
    return { id = task[kind.id_field], state = state_of(task), parts = parts }
  end
end

--- Fields shown for an Extruct Deep Search (discovery) task.
function M.discovery(task)
  local total = count(task.desired_num_results) or 0
  return {
    id = task.id, state = state_of(task), done = count(task.num_results) or 0, total = total,
    parts = { "discovered " .. shown(task.num_results_discovered), "enriched " ..
              shown(task.num_results_enriched),
              "evaluated " .. shown(task.num_results_evaluated),
              "high-fit " .. shown(task.num_results) .. "/" .. shown(total),
              task.is_exhausted == true and "exhausted" or nil },
  }
end

return M

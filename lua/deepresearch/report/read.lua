-- One reading of a finished task, whichever API it came from: its text with [n] citation
-- markers, numbered sources, structured fields, cost, failure. Pure: what differs between
-- providers arrives as descriptor DATA (`spec`: a descriptor's report, cost, prices, states),
-- and each citation format has one reader here, keyed by D.report.citation_kind — a format,
-- not a provider:
--   numbered           [n] markers already in the text, sources listed by id (n = id)
--   list               [n] markers already in the text, n = position in the source list
--   annotations_chars  url_citation annotations with CHARACTER ranges (Responses-shaped output)
--   annotations_bytes  url_citation annotations with UTF-8 BYTE ranges, end exclusive (steps)
--   search_results     [N] / [web:N] markers resolved against search_results[].results[].id
-- Server data never makes a reader raise: anything of the wrong type is read as absent.
local json = require "deepresearch.base.json"

local M = {}

local is_null = json.is_null

local function tbl(v)
  if type(v) == "table" and not is_null(v) then return v end
  return nil
end

local function items(v) return tbl(v) or {} end

local function str(v)
  if type(v) == "string" then return v end
  return nil
end

local function present(v) return v ~= nil and not is_null(v) end

-- A number a price or a count can be: finite, not negative.
local function amount(v)
  v = tonumber(v)
  if not v or v ~= v or v < 0 or v == math.huge then return nil end
  return v
end

local MAX_ID = 2 ^ 53

-- Offsets, ids and counts: whole, >= 0, small enough to stay exact.
local function whole(v)
  v = amount(v)
  if not v or v % 1 ~= 0 or v >= MAX_ID then return nil end
  return math.floor(v)
end

-- The value at a dotted path ("usage.cost.total_cost"), or nil.
local function at_path(t, path)
  if type(path) ~= "string" then return nil end
  for key in path:gmatch("[^%.]+") do
    t = tbl(t)
    if not t then return nil end
    t = t[key]
  end
  if is_null(t) then return nil end
  return t
end
M.at_path = at_path

----------------------------------------------------------------------------------------------
-- Code in markdown: a citation-looking [1] there is code, not a citation.

--- Byte ranges { first, last } of fenced code blocks and inline code spans in text.
function M.code_ranges(text)
  local ranges = {}
  local pos, fence_start, fence = 1, nil, nil
  local size = #text
  while pos <= size do
    local nl = text:find("\n", pos, true) or size + 1
    local line = text:sub(pos, nl - 1)
    local marker = line:match("^ ? ? ?(```+)") or line:match("^ ? ? ?(~~~+)")
    if fence then
      if marker and marker:sub(1, 1) == fence:sub(1, 1) and #marker >= #fence then
        ranges[#ranges + 1] = { fence_start, nl }
        fence = nil
      end
    elseif marker then
      fence, fence_start = marker, pos
    else
      local at = 1
      while true do
        local s, e = line:find("`+", at)
        if not s then break end
        local cs, ce = line:find(line:sub(s, e), e + 1, true)
        if not cs then break end
        ranges[#ranges + 1] = { pos + s - 1, pos + ce - 1 }
        at = ce + 1
      end
    end
    pos = nl + 1
  end
  if fence then ranges[#ranges + 1] = { fence_start, size } end
  return ranges
end

local function in_ranges(ranges, s)
  for _, r in ipairs(ranges) do
    if r[1] <= s and s <= r[2] then return true end
  end
  return false
end

----------------------------------------------------------------------------------------------
-- Offsets. A character range counts code points (invalid bytes count one each); a byte range
-- that ends inside a character moves to that character's end.

local function char_length(c)
  if c < 0xC0 then return 1 end
  if c < 0xE0 then return 2 end
  if c < 0xF0 then return 3 end
  return 4
end

-- Byte offset (0-based, after) of character offset n in text, or nil past the end. Ranges
-- mostly come in order: the walk resumes where the last call on the same text stopped.
local cursor = { text = nil, i = 1, count = 0 }
local function byte_of_char(text, n)
  local c = cursor
  if c.text ~= text or n < c.count then c.text, c.i, c.count = text, 1, 0 end
  local i, count, size = c.i, c.count, #text
  while count < n do
    if i > size then return nil end
    local len = char_length(text:byte(i))
    for k = 1, len - 1 do
      local b = text:byte(i + k)
      if not b or b < 0x80 or b > 0xBF then
        len = k
        break
      end
    end
    i, count = i + len, count + 1
  end
  c.i, c.count = i, count
  return i - 1
end

local function byte_boundary(text, n)
  if n > #text then return nil end
  while n < #text do
    local b = text:byte(n + 1)
    if b < 0x80 or b > 0xBF then break end
    n = n + 1
  end
  return n
end

----------------------------------------------------------------------------------------------
-- Sources: numbered from 1 in order of first citation, one number per URL.

local function new_sources()
  return { list = {}, by_url = {} }
end

local function source_n(srcs, url, title)
  url = str(url)
  local key = url or ("\0" .. #srcs.list)
  local n = srcs.by_url[key]
  if n then return n end
  n = #srcs.list + 1
  srcs.list[n] = { n = n, url = url, title = str(title) }
  srcs.by_url[key] = n
  return n
end

-- Inserts "[n]" at each { at = byte offset after which, n } point of text (grouped per point);
-- returns the new text and the marks { s, e, nums } (1-based byte positions in it).
local function insert_markers(text, points)
  table.sort(points, function(a, b)
    if a.at ~= b.at then return a.at < b.at end
    return a.seq < b.seq
  end)
  local out, marks, from, size = {}, {}, 0, 0
  local i = 1
  while i <= #points do
    local at, nums, seen = points[i].at, {}, {}
    while points[i] and points[i].at == at do
      if not seen[points[i].n] then
        seen[points[i].n] = true
        nums[#nums + 1] = points[i].n
      end
      i = i + 1
    end
    local piece = text:sub(from + 1, at)
    out[#out + 1] = piece
    size = size + #piece
    local group = {}
    for k, n in ipairs(nums) do group[k] = "[" .. string.format("%d", n) .. "]" end
    local g = table.concat(group)
    out[#out + 1] = g
    marks[#marks + 1] = { s = size + 1, e = size + #g, nums = nums }
    size = size + #g
    from = at
  end
  out[#out + 1] = text:sub(from + 1)
  return table.concat(out), marks
end

----------------------------------------------------------------------------------------------
-- Text parts. Each reader returns parts { text, annotations } and joins them itself.

local function typed(v, kind)
  v = tbl(v)
  return v and v.type == kind and v or nil
end

-- Responses-shaped output[]: the message items' output_text parts (all messages, or the last).
local function message_parts(task, last_only)
  local messages = {}
  for _, item in ipairs(items(task.output)) do
    if typed(item, "message") then messages[#messages + 1] = item end
  end
  if last_only and #messages > 1 then messages = { messages[#messages] } end
  local parts, refusal = {}, nil
  for m, msg in ipairs(messages) do
    for _, c in ipairs(items(msg.content)) do
      if typed(c, "output_text") and str(c.text) then
        parts[#parts + 1] = { text = c.text, annotations = c.annotations, msg_of = m }
      elseif typed(c, "refusal") and str(c.refusal) then
        refusal = c.refusal
      end
    end
  end
  return parts, refusal
end

-- Interaction-shaped steps[] (the last model_output step's text parts), legacy outputs[]
-- (the last text block).
local function step_parts(task)
  local last
  for _, step in ipairs(items(task.steps)) do
    if typed(step, "model_output") then last = step end
  end
  local parts = {}
  if last then
    for _, c in ipairs(items(last.content)) do
      if typed(c, "text") and str(c.text) then
        parts[#parts + 1] = { text = c.text, annotations = c.annotations }
      end
    end
    return parts, last
  end
  local block
  for _, b in ipairs(items(task.outputs)) do
    if typed(b, "text") and str(b.text) then block = b end
  end
  if block then parts[1] = { text = block.text, annotations = block.annotations } end
  return parts
end

-- Joins parts (messages apart by a blank line) and turns each part's url_citation ranges
-- into insertion points of the joined text. to_byte maps a part-relative end offset.
local function join_annotated(parts, to_byte, srcs)
  local texts, points, base, seq = {}, {}, 0, 0
  for k, part in ipairs(parts) do
    if k > 1 and parts[k - 1].msg_of ~= part.msg_of then
      texts[#texts + 1] = "\n\n"
      base = base + 2
    end
    texts[#texts + 1] = part.text
    for _, a in ipairs(items(part.annotations)) do
      local ann = typed(a, "url_citation")
      local e = ann and whole(ann.end_index)
      local s = ann and (whole(ann.start_index) or 0)
      local at = e and s <= e and to_byte(part.text, e)
      if at then
        seq = seq + 1
        points[#points + 1] = { at = base + at, n = source_n(srcs, ann.url, ann.title), seq = seq }
      elseif ann and str(ann.url) then
        source_n(srcs, ann.url, ann.title) -- a source without a usable range is still one
      end
    end
    base = base + #part.text
  end
  return table.concat(texts), points
end

local function plain_join(parts)
  local texts = {}
  for k, part in ipairs(parts) do
    if k > 1 and parts[k - 1].msg_of ~= part.msg_of then texts[#texts + 1] = "\n\n" end
    texts[#texts + 1] = part.text
  end
  return table.concat(texts)
end

----------------------------------------------------------------------------------------------
-- Readers by citation kind: each fills res.text, res.sources, res.marks (and fields, notes).

local function as_sources(list)
  local out = {}
  for _, s in ipairs(list) do out[#out + 1] = { n = s.n, url = s.url, title = s.title } end
  return out
end

local function json_fields(text)
  local v = json.decode(text)
  if tbl(v) and not json.is_array_marked(v) then return v end
  return nil
end

local readers = {}

readers.numbered = function(task, res)
  local r = tbl(task.report)
  if not r and (task.kind == "markdown" or task.kind == "schema") then r = task end
  if not r then return end
  for _, s in ipairs(items(r.sources)) do
    s = tbl(s)
    local n = s and whole(s.id)
    if n and n > 0 then
      res.sources[#res.sources + 1] = { n = n, url = str(s.url), title = str(s.title) }
    end
  end
  if tbl(r.fields) then res.fields = r.fields end
  res.text = str(r.markdown)
  for _, why in ipairs(items(r.degradation_reasons)) do
    if str(why) and why:find("%S") then res.notes[#res.notes + 1] = why end
  end
  if #res.notes > 0 then res.degraded = true end
end

readers.list = function(task, res)
  for i, s in ipairs(items(task.sources)) do
    s = tbl(s)
    if s then res.sources[#res.sources + 1] = { n = i, url = str(s.url), title = str(s.title) } end
  end
  local out = task.output
  if str(out) and task.output_type == "json" then out = json_fields(out) or out end
  if tbl(out) then
    res.fields = out
  elseif present(out) and type(out) ~= "table" then
    res.text = tostring(out)
  end
end

-- raw: the text as the API wrote it (markers inserted into JSON would break it).
local function with_fields(task, res, raw)
  -- Where a Responses-shaped task echoes the schema it was asked for.
  local format = tbl(at_path(task, "text.format")) or tbl(task.response_format)
  if raw and format and format.type == "json_schema" then
    res.fields = json_fields(raw)
  end
end

readers.annotations_chars = function(task, res)
  local parts, refusal = message_parts(task, true)
  local srcs = new_sources()
  local text, points = join_annotated(parts, byte_of_char, srcs)
  if #parts > 0 then res.text, res.marks = insert_markers(text, points) end
  res.sources = as_sources(srcs.list)
  if refusal then res.notes[#res.notes + 1] = "the model refused: " .. refusal end
  with_fields(task, res, #parts > 0 and text or nil)
end

readers.annotations_bytes = function(task, res)
  local parts, step = step_parts(task)
  local srcs = new_sources()
  local text, points = join_annotated(parts, byte_boundary, srcs)
  if #parts > 0 then res.text, res.marks = insert_markers(text, points) end
  res.sources = as_sources(srcs.list)
  local err = step and tbl(step.error)
  if err and str(err.message) then res.notes[#res.notes + 1] = err.message end
  with_fields(task, res, #parts > 0 and text or nil)
end

-- Every search result by id, across search_results and people_search_results items.
local function results_by_id(task)
  local by_id = {}
  for _, item in ipairs(items(task.output)) do
    item = tbl(item)
    if item and (item.type == "search_results" or item.type == "people_search_results") then
      for _, r in ipairs(items(item.results)) do
        r = tbl(r)
        local id = r and whole(r.id)
        if id and str(r.url) and not by_id[id] then by_id[id] = r end
      end
    end
  end
  return by_id
end

-- [N] and [web:N]; other source types ([page:3], [memory:1]) are not search results.
readers.search_results = function(task, res)
  local parts = message_parts(task, false)
  if #parts == 0 then return end
  local text = plain_join(parts)
  local by_id, srcs = results_by_id(task), new_sources()
  local code = M.code_ranges(text)
  local points, out, from, seq, unresolved = {}, {}, 1, 0, {}
  local at, size = 1, 0
  while true do
    local s, e, prefix, colon, digits = text:find("%[([%a_]*)(:?)(%d+)%]", at)
    if not s then break end
    at = e + 1
    local kind_ok = (prefix == "" and colon == "") or (prefix == "web" and colon == ":")
    if kind_ok and not in_ranges(code, s) then
      local r = by_id[whole(tonumber(digits)) or -1]
      if r then
        out[#out + 1] = text:sub(from, s - 1)
        size, seq = size + s - from, seq + 1
        points[#points + 1] = { at = size, n = source_n(srcs, r.url, r.title), seq = seq }
        from = e + 1
      else
        unresolved[#unresolved + 1] = text:sub(s, e)
        if prefix == "" then
          -- A bare [7] left as it is would read as the renumbered source 7: escaped, it shows
          -- as written in markdown and is no citation.
          out[#out + 1] = text:sub(from, s - 1) .. "\\"
          size, from = size + s - from + 1, s
        end
      end
    end
  end
  out[#out + 1] = text:sub(from)
  res.text, res.marks = insert_markers(table.concat(out), points)
  res.sources = as_sources(srcs.list)
  if #unresolved > 0 then
    res.notes[#res.notes + 1] = "citation" .. (#unresolved > 1 and "s " or " ") ..
      table.concat(unresolved, ", ") .. " match no search result; left as written"
  end
  with_fields(task, res, text)
end

----------------------------------------------------------------------------------------------
-- Cost, from D.cost: "credits" (a count at D.cost.field), "returned" (USD at D.cost.field, a
-- dotted path) or "computed" (usage x D.prices, estimated).

-- Where the usage counts are, per citation kind's task shape, unless D.cost names them
-- (model_field, input, cached, output: a path or a list of paths summed, searches,
-- search_items: the output item type that counts as one search call).
local USAGE = {
  annotations_chars = { input = "usage.input_tokens",
    cached = "usage.input_tokens_details.cached_tokens", output = "usage.output_tokens",
    searches = "tool_usage.web_search.num_requests", model_field = "model",
    search_items = "web_search_call" },
  annotations_bytes = { input = "usage.total_input_tokens", cached = "usage.total_cached_tokens",
    output = { "usage.total_output_tokens", "usage.total_thought_tokens" },
    model_field = "agent", search_types = { google_search = true } },
  search_results = { input = "usage.input_tokens",
    cached = "usage.input_tokens_details.cached_tokens", output = "usage.output_tokens",
    model_field = "model" },
}

-- Search calls when no counter holds them: output items of the search type that searched,
-- or grounding_tool_count entries of a search type.
local function count_searches(task, item_type, search_types)
  local n = 0
  for _, item in ipairs(items(task.output)) do
    local call = item_type and typed(item, item_type)
    local action = call and tbl(call.action)
    if call and (not action or action.type == "search" or action.type == nil) then n = n + 1 end
  end
  for _, g in ipairs(items(at_path(task, "usage.grounding_tool_count"))) do
    g = tbl(g)
    if g and search_types and search_types[g.type] then n = n + (whole(g.count) or 0) end
  end
  return n
end

-- The price entry whose key is the longest prefix of the model (snapshots add a date).
local function price_of(prices, model)
  if not tbl(prices) or not str(model) then return nil end
  local best, best_len = nil, -1
  for key, entry in pairs(prices) do
    if type(key) == "string" and tbl(entry) and model:sub(1, #key) == key and #key > best_len then
      best, best_len = entry, #key
    end
  end
  return best
end

local function sum(task, paths)
  if type(paths) ~= "table" then paths = { paths } end
  local total, any = 0, false
  for _, p in ipairs(paths) do
    local v = amount(at_path(task, p))
    if v then total, any = total + v, true end
  end
  return any and total or nil
end

local function computed(task, spec, kind, cost)
  local c, dflt = spec.cost, USAGE[kind] or {}
  local function field(k) if c[k] ~= nil then return c[k] end return dflt[k] end
  local model = str(at_path(task, field("model_field") or "model"))
  local price = price_of(spec.prices, model)
  if not price then return cost end
  cost.as_of = str(spec.prices.as_of)
  cost.model = model
  if amount(price.low) and amount(price.high) then cost.low, cost.high = price.low, price.high end
  -- No usage yet (or none on a cancelled run): the published band at most, no figure.
  if not tbl(task.usage) then return cost end
  local input, output = sum(task, field("input")), sum(task, field("output")) or 0
  local rate_in, rate_out = amount(price.input), amount(price.output)
  if input and rate_in and rate_out then
    local cached = math.min(sum(task, field("cached")) or 0, input)
    local rate_cached = amount(price.cached_input) or rate_in
    local searches = sum(task, field("searches")) or
      count_searches(task, field("search_items"), field("search_types"))
    cost.usd = ((input - cached) * rate_in + cached * rate_cached + output * rate_out) / 1e6 +
      searches * (amount(price.web_search) or 0)
    cost.searches = searches
  elseif amount(price.per_task) then
    cost.usd = amount(price.per_task)
  elseif cost.low then
    cost.usd = (cost.low + cost.high) / 2
  end
  return cost
end

local function cost_of(task, spec, kind, state)
  local c = tbl(spec.cost) or {}
  local cost = { estimated = false }
  if c.source == "credits" then
    cost.credits = state == "failed" and 0 or whole(at_path(task, c.field))
  elseif c.source == "returned" then
    cost.usd = amount(at_path(task, c.field))
  elseif c.source == "computed" then
    cost.estimated = true
    return computed(task, spec, kind, cost)
  end
  return cost
end

----------------------------------------------------------------------------------------------
-- State and failure.

local function failure_of(value)
  if str(value) then return { message = value } end
  local t = tbl(value)
  if not t then return nil end
  if str(t.message) or present(t.code) then
    return { code = present(t.code) and tostring(t.code) or nil,
      message = str(t.message) or tostring(t.code) }
  end
  local msgs, first = {}, nil
  for _, e in ipairs(t) do
    local f = failure_of(e)
    if f then
      first = first or f
      msgs[#msgs + 1] = f.message
    end
  end
  if first then return { code = first.code, message = table.concat(msgs, "; ") } end
  return nil
end

local function incomplete_reason(task)
  local d = tbl(task.incomplete_details)
  if d and str(d.reason) then return d.reason end
  local f = failure_of(task.errors)
  return f and f.message or nil
end

-- For a table read without a descriptor: the status words of PROVIDERS.md §3 that the
-- Responses and Interactions shapes use.
local SHAPE_STATES = { queued = "queued", in_progress = "running", completed = "done",
  incomplete = "done", failed = "failed", cancelled = "cancelled",
  requires_action = "input_required", budget_exceeded = "failed" }

local function settle(task, res, kind_spec)
  local status = present(task.status) and tostring(task.status) or nil
  res.status = status
  local states = tbl(kind_spec.states) or SHAPE_STATES
  res.state = status and states and str(states[status]) or nil
  local has_text = res.text ~= nil and res.text:find("%S") ~= nil
  if status == "incomplete" then
    local why = incomplete_reason(task) or "stopped early"
    if has_text or res.fields then
      res.state, res.degraded = "done", true
      res.notes[#res.notes + 1] = "the run stopped early (" .. why .. "); the report may be partial"
    else
      res.state = "failed"
      res.failure = { code = "incomplete", message = "the run stopped early: " .. why }
    end
  elseif res.state == "failed" or res.state == "cancelled" then
    -- The whole error object first: it has the code a failure_field path may leave out.
    res.failure = failure_of(tbl(task.error)) or
      failure_of(at_path(task, kind_spec.failure_field or "error")) or
      failure_of(task.errors) or { message = "the task " .. (status or res.state) }
    res.failure.code = res.failure.code or (res.state == "cancelled" and "cancelled") or status
    if has_text then
      res.degraded = true
      res.notes[#res.notes + 1] = "the task " .. res.state .. "; this output may be partial"
    end
  end
end

----------------------------------------------------------------------------------------------

local RESULT_MT = { __name = "deepresearch.result" }
M.RESULT_MT = RESULT_MT

-- The task each result was read from (weak: a result does not keep its task alive).
local origins = setmetatable({}, { __mode = "k" })

--- The task a result was read from, or nil.
function M.origin(res)
  return origins[res]
end

--- Whether v is a table read() returned.
function M.is_result(v)
  return type(v) == "table" and getmetatable(v) == RESULT_MT
end

--- The citation kind a bare task's shape suggests, or nil: for a table without a provider.
function M.guess(task)
  if type(task) ~= "table" then return nil end
  if tbl(task.report) or ((task.kind == "markdown" or task.kind == "schema") and
    (task.markdown ~= nil or task.fields ~= nil)) then
    return "numbered"
  end
  if task.object == "interaction" or tbl(task.steps) or tbl(task.outputs) then
    return "annotations_bytes"
  end
  local out = tbl(task.output)
  local first = out and tbl(out[1])
  if task.object == "response" or (first and str(first.type) and task.deepresearch_id == nil and
    task.output_type == nil) then
    for _, item in ipairs(items(task.output)) do
      if typed(item, "search_results") then return "search_results" end
    end
    return "annotations_chars"
  end
  if task.deepresearch_id ~= nil or task.output ~= nil then return "list" end
  return nil
end

--- Reads task with spec (a descriptor, or a table with its report, cost, prices, kinds, name
-- fields; nil: guess the format from the shape, no cost). Returns the result table:
-- { provider, id, status, state, text, fields, sources = { { n, url, title } }, marks,
--   cost = { usd, credits, estimated, as_of, model }, failure = { code, message }, degraded,
--   notes }. Never raises on what the server sent.
function M.read(task, spec)
  spec = tbl(spec) or {}
  local report = tbl(spec.report) or {}
  local kind = report.citation_kind
  if not readers[kind] then kind = M.guess(task) end
  local kind_spec = tbl(at_path(spec, "kinds.research")) or {}
  local res = setmetatable({ provider = str(spec.name), sources = {}, notes = {},
    degraded = false, citation_kind = kind }, RESULT_MT)
  local id = task[kind_spec.id_field or "id"]
  if id == nil then id = task.id end
  res.id = present(id) and (type(id) == "string" or type(id) == "number") and id or nil
  if readers[kind] then readers[kind](task, res) end
  settle(task, res, kind_spec)
  res.cost = cost_of(task, spec, kind, res.state)
  origins[res] = task
  return res
end

return M

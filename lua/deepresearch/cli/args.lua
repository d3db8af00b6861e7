-- Command-line parsing: options declared as data, parsed anywhere on the line.
-- A mistake is a usage error (nil, message): the caller prints it and exits 2.
local M = {}

-- Options every command accepts, wherever they appear.
-- (`deepresearch help options` lists them; --provider's doc names the registered providers.)
M.GLOBAL = {
  { "provider", value = "NAME", doc = "the API to use" },
  { "base-url", value = "URL", doc = "API base URL (default: the provider's *_BASE_URL " ..
    "variable, else its public URL)" },
  { "quiet", short = "q", doc = "no progress and no notes on stderr (errors are still printed)" },
  { "yes", short = "y", doc = "at a checkpoint, accept what the task proposes without asking" },
  { "verbose", short = "v", doc = "log every HTTP request on stderr (tokens redacted); " ..
    "tracebacks" },
  { "help", short = "h", doc = "help for the command (also: deepresearch help COMMAND)" },
  { "version", doc = "print the version" },
}

local function index(specs)
  local long, short = {}, {}
  for _, list in ipairs(specs) do
    for _, o in ipairs(list) do
      long[o[1]] = o
      if o.short then short[o.short] = o end
    end
  end
  return long, short
end

--- Edit distance (insertions, deletions, substitutions, swaps of neighbours) between a and b.
function M.distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and
         a:sub(i - 1, i - 1) == b:sub(j, j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

--- The candidate closest to word, when close enough to be a likely typo (at most 2 edits, and
-- fewer than half its letters), or a candidate that word begins; nil otherwise.
function M.closest(word, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = M.distance(word, c)
    if #word >= 3 and c:sub(1, #word) == word then d = math.min(d, 1) end
    if (not best_d or d < best_d) and d <= 2 and d < math.max(2, #c / 2) then
      best, best_d = c, d
    end
  end
  return best
end

--- " (did you mean X?)" for a mistyped word, or "".
function M.did_you_mean(word, candidates, prefix)
  local c = M.closest(word, candidates)
  return c and string.format("; did you mean '%s%s'?", prefix or "", c) or ""
end

-- An unknown option's message, with the closest known long option.
local function unknown(a, long)
  local names = {}
  for name in pairs(long) do names[#names + 1] = name end
  table.sort(names)
  local word = a:match("^%-%-?([^=]+)") or a
  return string.format("unknown option '%s'", a) .. M.did_you_mean(word, names, "--")
end

local function key_of(o)
  return (o.key or o[1]):gsub("%-", "_")
end

local function store(out, o, v)
  local k = key_of(o)
  if o.number then
    local n = tonumber(v)
    if o.min then
      -- One rule for every wrong value ("abc", "0", "1.5"): the range says what is right.
      if not n or n ~= n or n % 1 ~= 0 or n < o.min or (o.max and n > o.max) then
        return nil, M.range_rule(o[1], o.min, o.max, v)
      end
    else
      local bad = not n or n ~= n or n == math.huge or n < 0 or (o.positive and n <= 0)
      if bad or (o.integer and n % 1 ~= 0) then
        local want = o.integer and "whole number >= 0" or o.positive and "number of seconds > 0"
          or "number of seconds >= 0"
        return nil, string.format("--%s wants a %s, got '%s'", o[1], want, v)
      end
    end
    v = n
  end
  if o.choices then
    local ok = false
    for _, c in ipairs(o.choices) do ok = ok or c == v end
    if not ok then
      return nil, string.format("--%s must be one of %s, got '%s'", o[1], table.concat(o.choices,
        ", "), v)
    end
  end
  if o.multi then
    out[k] = out[k] or {}
    out[k][#out[k] + 1] = v
  elseif o.value then
    out[k] = v
  else
    out[k] = true
  end
  return true
end

--- Parses argv (from position `first`) against lists of option specs.
-- Returns opts (keys with '-' turned to '_') and the positional words, or nil, message.
-- `--` ends options; a lone `-` is a positional (stdin).
function M.parse(argv, first, specs)
  local long, short = index(specs)
  local opts, words = {}, {}
  local i = first or 1
  local only_words = false
  while i <= #argv do
    local a = argv[i]
    local o, value, name
    if only_words or a == "-" or a:sub(1, 1) ~= "-" then
      words[#words + 1] = a
    elseif a == "--" then
      only_words = true
    else
      if a:sub(1, 2) == "--" then
        name, value = a:match("^%-%-([^=]+)=(.*)$")
        name = name or a:sub(3)
        o = long[name]
      else
        name = a:sub(2)
        o = short[name]
      end
      if not o then return nil, unknown(a, long) end
      if o.value then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then
            return nil, string.format("option '%s' needs a value (%s)", a, o.value)
          end
        end
      elseif value ~= nil then
        return nil, string.format("option '--%s' takes no value", o[1])
      else
        value = true
      end
      local ok, err = store(opts, o, value)
      if not ok then return nil, err end
    end
    i = i + 1
  end
  return opts, words
end

--- Splits the words before the command: global options and the command path.
-- Returns globals, index of the command word (or nil), or nil, message.
function M.leading_globals(argv)
  local long, short = index({ M.GLOBAL })
  local opts = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a:sub(1, 1) ~= "-" or a == "-" or a == "--" then break end
    local name, value = a:match("^%-%-([^=]+)=(.*)$")
    name = name or a:match("^%-%-(.+)$")
    local o = name and long[name] or short[a:sub(2)]
    if not o then return nil, unknown(a, long) end
    if o.value and value == nil then
      i = i + 1
      value = argv[i]
      if value == nil then
        return nil, string.format("option '%s' needs a value (%s)", a, o.value)
      end
    end
    local ok, err = store(opts, o, value or true)
    if not ok then return nil, err end
    i = i + 1
  end
  if argv[i] == "--" then i = i + 1 end
  return opts, argv[i] and i or nil
end

--- The rule of a whole-number option with a range: "--limit must be a whole number from 1 to
-- 100, got 'abc'" (no upper bound: "1 or more").
function M.range_rule(flag, min, max, got)
  local range = max and string.format("from %d to %d", min, max) or
    string.format("%d or more", min)
  return string.format("--%s must be a whole number %s, got '%s'", flag, range, tostring(got))
end

--- A --limit option with list's one rule (range_rule): a whole number from 1 to max (no max:
-- 1 or more). Every command's --limit is declared through this, so `abc`, `0` and `1.5` get
-- the same message everywhere.
function M.limit_option(doc, max)
  return { "limit", value = "N", number = true, min = 1, max = max, doc = doc }
end

--- key=value pairs (--var) into a table; nil, message on a malformed one.
function M.pairs_of(list, flag)
  local out = {}
  for _, kv in ipairs(list or {}) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then return nil, string.format("--%s wants key=value, got '%s'", flag, kv) end
    out[k] = v
  end
  return out
end

return M

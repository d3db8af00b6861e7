-- Command-line parsing: options declared as data, parsed anywhere on the line.
-- A mistake is a usage error (nil, message): the caller prints it and exits 2.
local M = {}

-- Options every command accepts, wherever they appear.
M.GLOBAL = {
  { "base-url", value = "URL" },
  { "provider", value = "NAME" },
  { "quiet", short = "q" },
  { "yes", short = "y" },
  { "verbose", short = "v" },
  { "help", short = "h" },
  { "version" },
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

local function key_of(o)
  return (o.key or o[1]):gsub("%-", "_")
end

local function store(out, o, v)
  local k = key_of(o)
  if o.number then
    local n = tonumber(v)
    local bad = not n or n ~= n or n == math.huge or n < 0 or (o.positive and n <= 0)
    if bad or (o.integer and n % 1 ~= 0) then
      local want = o.integer and "whole number >= 0" or o.positive and "number of seconds > 0"
        or "number of seconds >= 0"
      return nil, string.format("--%s wants a %s, got '%s'", o[1], want, v)
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
      if not o then
        return nil, string.format("unknown option '%s'", a)
      end
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
    if not o then return nil, string.format("unknown option '%s'", a) end
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

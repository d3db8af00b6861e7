-- What the user hands the command: a brief (argument, file or stdin), lint findings, a schema.
local M = {}

-- Reads all of ctx.stdin; on a terminal, first says what it waits for (ctx:reading_stdin).
local function read_all(ctx)
  if ctx.reading_stdin then ctx:reading_stdin() end
  local text = ctx.stdin:read("a")
  return (text or ""):gsub("^\239\187\191", "")
end

--- The brief from BRIEF words, -f FILE or '-' (stdin).
-- Returns text, name (for messages) or nil, usage message.
function M.brief_text(ctx, opts, words)
  local file = opts.file
  if file and #words > 0 then
    return nil, "give the brief either as an argument or with -f FILE, not both"
  end
  if file == "-" or (not file and #words == 1 and words[1] == "-") then
    return read_all(ctx), "<stdin>"
  end
  if file then
    local text, err = require("deepresearch.brief").load(file)
    if not text then return nil, tostring(err.message or err) end
    return text, file
  end
  if #words == 0 then
    return nil, "no brief: give it as an argument, with -f FILE, or '-' to read stdin"
  end
  return table.concat(words, " "), "brief"
end

--- Reads a file for `brief render` / `brief lint` ('-' is stdin). text or nil, message.
function M.file_text(ctx, path)
  if path == nil or path == "-" then return read_all(ctx) end
  local text, err = require("deepresearch.brief").load(path)
  if not text then return nil, tostring(err.message or err) end
  return text
end

-- Line and column of a byte offset.
local function position(text, pos)
  local line, col = 1, 1
  local i = 1
  while i < pos and i <= #text do
    if text:sub(i, i) == "\n" then
      line, col = line + 1, 1
    elseif not text:sub(i, i):find("[\128-\191]") then
      col = col + 1
    end
    i = i + 1
  end
  return line, col
end

--- One finding as "name[:line:col]: severity: message [code]".
function M.finding_line(name, text, f)
  local where = name
  if f.pos then
    local line, col = position(text, f.pos)
    where = string.format("%s:%d:%d", name, line, col)
  end
  return string.format("%s: %s: %s [%s]", where, f.severity, f.message, f.code)
end

--- The lint advice that fits the chosen provider's briefs (descriptor.brief_advice; none when
-- it lists none).
function M.advice(ctx)
  local d = require("deepresearch.providers").get(ctx:provider())
  return d and d.brief_advice or {}
end

--- Lints text; writes findings to `stream`. Returns counts { error = n, warning = n, info = n }.
-- quiet leaves out the info findings.
function M.lint(stream, name, text, opts)
  local brief = require "deepresearch.brief"
  local findings = brief.lint(text, { max_length = opts.max_length,
    output_schema = opts.output_schema, advice = opts.advice })
  local counts = { error = 0, warning = 0, info = 0 }
  for _, f in ipairs(findings) do
    counts[f.severity] = (counts[f.severity] or 0) + 1
    if not (opts.quiet and f.severity == "info") then
      stream:write(M.finding_line(name, text, f), "\n")
    end
  end
  return counts, findings
end

--- Lints a brief before it is sent. Returns true, or nil, message (exit 2).
function M.check_brief(ctx, name, text, opts)
  local counts = M.lint(ctx.err, name, text, { max_length = opts.max_length, quiet = ctx.g.quiet,
    output_schema = opts.output_schema, advice = M.advice(ctx) })
  if counts.error > 0 then
    return nil, string.format("the brief has %d error%s (above); nothing was sent", counts.error,
      counts.error > 1 and "s" or "")
  end
  if opts.strict and counts.warning > 0 then
    return nil, string.format("--strict: the brief has %d warning%s (above); nothing was sent",
      counts.warning,
      counts.warning > 1 and "s" or "")
  end
  return true
end

--- A schema from a JSON Schema file or a Lua file returning a dr.schema value (or a table).
-- Returns the schema as a plain table, or nil, message.
function M.schema(path)
  local value
  if path:match("%.lua$") then
    local chunk, err = loadfile(path, "t")
    if not chunk then return nil, "cannot load schema: " .. tostring(err) end
    local ok, v = pcall(chunk)
    if not ok then return nil, "schema file " .. path .. " raised an error: " .. tostring(v) end
    value = v
  else
    local f, err = io.open(path, "rb")
    if not f then return nil, "cannot read schema: " .. tostring(err) end
    local text = f:read("a")
    f:close()
    local decoded, derr = require("deepresearch").core.decode(text)
    if decoded == nil then
      return nil, "schema file " .. path .. " is not valid JSON: " .. tostring(derr)
    end
    value = decoded
  end
  if type(value) == "table" and type(value.to_table) == "function" then value = value:to_table() end
  if type(value) ~= "table" then
    return nil, "schema file " .. path ..
      " must give a JSON object (a Lua file: return a table or a dr.schema value)"
  end
  if value.type ~= "object" then
    return nil, "schema file " .. path .. ": an output schema needs \"type\": \"object\" at the top"
  end
  return value
end

--- The brief (argument, file or stdin), its schema (--schema) and the lint, as run/create
-- and the fan-out read them: text, schema; or nil and the usage exit code. The schema is read
-- first: the lint warns about it too (nesting, fields without a type...). max_length: the
-- provider's brief limit (nil: none checked).
function M.read_brief(ctx, opts, words, max_length)
  local text, name = M.brief_text(ctx, opts, words)
  if not text then return nil, ctx:usage(name) end
  local schema, why
  if opts.schema then
    schema, why = M.schema(opts.schema)
    if not schema then return nil, ctx:usage(why) end
  end
  local ok
  ok, why = M.check_brief(ctx, name, text, { strict = opts.strict, max_length = max_length,
    output_schema = schema })
  if not ok then return nil, ctx:usage(why) end
  return text, schema
end

return M

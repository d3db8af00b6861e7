-- Brief commands: brief render TEMPLATE --var k=v ..., brief lint [FILE|-].
local args = require "deepresearch.cli.args"
local input = require "deepresearch.cli.input"
local providers = require "deepresearch.providers"

local M = {}

local function render(ctx, opts, words)
  if #words ~= 1 then
    return ctx:usage(#words == 0 and "missing TEMPLATE (a file, or '-' for stdin)"
      or "expected one TEMPLATE")
  end
  local vars, why = args.pairs_of(opts.var, "var")
  if not vars then return ctx:usage(why) end
  local template
  template, why = input.file_text(ctx, words[1])
  if not template then return ctx:usage(why) end
  local text, err = require("deepresearch.brief").render(template, vars)
  if not text then
    return ctx:usage(tostring(err.message or err) .. " (pass each with --var name=value)")
  end
  ctx.out:write(text, text:sub(-1) == "\n" and "" or "\n")
  if opts.lint then
    local name = words[1] == "-" and "<stdin>" or words[1]
    input.lint(ctx.err, name, text, { quiet = ctx.g.quiet, max_length = opts.max_length,
      advice = input.advice(ctx) })
  end
  return 0
end

local function lint(ctx, opts, words)
  if #words > 1 then return ctx:usage("expected one FILE (or '-' for stdin)") end
  local path = words[1] or "-"
  local text, why = input.file_text(ctx, path)
  if not text then return ctx:usage(why) end
  local name = path == "-" and "<stdin>" or path
  local max = opts.max_length or providers.get(ctx:provider()).limits.brief
  local counts = input.lint(ctx.out, name, text, { max_length = max, quiet = ctx.g.quiet,
    advice = input.advice(ctx) })
  local total = counts.error + counts.warning + counts.info
  if not ctx.g.quiet then
    if total == 0 then
      ctx.err:write(name, ": no findings\n")
    else
      ctx.err:write(string.format("%s: %d error%s, %d warning%s, %d note%s\n", name, counts.error,
        counts.error == 1 and "" or "s", counts.warning, counts.warning == 1 and "" or "s",
        counts.info,
        counts.info == 1 and "" or "s"))
    end
  end
  if counts.error > 0 or (opts.strict and counts.warning > 0) then return 1 end
  return 0
end

-- The --max-length help: the default limit and every provider whose limit differs.
local function max_doc()
  local default = providers.get(providers.DEFAULT).limits.brief
  local parts = { "default " .. default }
  for _, name in ipairs(providers.names()) do
    local n = providers.get(name).limits.brief
    if name ~= providers.DEFAULT and n ~= default then
      parts[#parts + 1] = n .. " with --provider " .. name
    end
  end
  return "length limit in characters (" .. table.concat(parts, "; ") .. ")"
end

local MAX = { "max-length", value = "N", number = true, integer = true, doc = max_doc() }

M.commands = {
  ["brief render"] = {
    usage = "brief render TEMPLATE --var key=value ... [--lint]", run = render,
    summary = "fill a template's {{placeholders}}; print the brief",
    description =
      "TEMPLATE is a file ('-' for stdin). Every {{name}} needs a --var name=value;\n" ..
      "a missing one is a usage error (exit 2) naming them all.",
    options = {
      { "var", value = "key=value", multi = true, doc = "a placeholder's value (repeat for more)" },
      { "lint", doc = "also lint the rendered brief (findings on stderr)" },
      MAX,
    },
    examples =
      "  deepresearch brief render account.tmpl --var company=Flexport --var " ..
      "domain=flexport.com \\\n" ..
      "    | deepresearch run -",
  },
  ["brief lint"] = {
    usage = "brief lint [FILE | -] [--strict]", run = lint,
    summary = "check a brief: target, context, decision, time window, placeholders, length",
    description =
      "Findings go to stdout, one per line: FILE[:LINE:COL]: severity: message [code].\n" ..
      "Exit 0 when there is no error (and, with --strict, no warning); 1 otherwise.",
    options = {
      { "strict", doc = "warnings fail too (exit 1)" },
      MAX,
    },
  },
}

return M

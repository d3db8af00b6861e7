-- `deepresearch run` across providers (issue 19): --provider a,b,c (one brief on each, the
-- comparison table), --fallback (the first provider that takes it), --budget (a total,
-- checked before anything is sent) and --dry-run (the estimate and the exact request, nothing
-- sent). research.lua's run hands over whenever one of these is asked for (M.wants).
-- --fallback itself is in cli/fallback.lua (it uses the helpers exported here).
local input = require "deepresearch.cli.input"
local output = require "deepresearch.cli.output"
local adapters = require "deepresearch.cli.task"
local providers = require "deepresearch.providers"
local budget = require "deepresearch.budget"

local M = {}

local EXIT = { ok = 0, failed = 1, usage = 2, api = 4 }
M.EXIT = EXIT

-- run's flags for this module (research.lua adds them to run's options).
M.OPTIONS = {
  { "fallback", doc = "with --provider a,b,c: try each in order; the next only when a create " ..
    "was refused with nothing made (402, 401/403, 404, unsupported, retired, 429 after " ..
    "retries, the API's own 503, a budget it cannot meet)" },
  { "budget", value = "AMOUNT", doc = "refuse (exit 2, nothing sent) when the worst case is " ..
    "over AMOUNT: 5usd, 100credits or both (5usd,100credits); a total across --provider a,b,c" },
  { "dry-run", doc = "print the worst-case estimate and the exact request (token redacted) " ..
    "for each provider; send nothing" },
  { "output", short = "o", value = "DIR", doc = "with --provider a,b,c: write each report to " ..
    "DIR/PROVIDER.md (default: the current directory)" },
  -- The caps a worst case is worked out from (budget.lua): without them OpenAI's and
  -- Perplexity's cost is unbounded and --budget refuses them.
  { "max-tool-calls", value = "N", number = true, integer = true, doc = "cap the tool calls " ..
    "(web searches) a task may make; bounds --budget; openai, perplexity" },
  { "max-output-tokens", value = "N", number = true, integer = true, doc = "cap the tokens a " ..
    "task may write; bounds --budget; openai, perplexity" },
  { "max-steps", value = "N", number = true, integer = true, doc = "cap the research steps " ..
    "(1 to 100); perplexity" },
}

-- Each cap flag and the descriptor's budget field that names its create option.
local CAPS = { { "max_tool_calls", "tools" }, { "max_output_tokens", "output" },
  { "max_steps", "steps" } }

-- A usage message when a cap flag was given and no provider of the run takes it, else nil (a
-- fan-out applies each cap to the providers that take it: Extruct's depth bounds it already).
local function caps_unsupported(opts, names)
  for _, cap in ipairs(CAPS) do
    if opts[cap[1]] ~= nil then
      local any = false
      for _, name in ipairs(names) do
        local b = providers.get(name).budget
        any = any or (type(b) == "table" and b[cap[2]] ~= nil)
      end
      if not any then
        return "--" .. cap[1]:gsub("_", "-") .. " is for a provider that takes the cap " ..
          "(openai, perplexity), not " .. table.concat(names, ", ")
      end
    end
  end
  return nil
end

--- Whether this run is one for this module.
function M.wants(g, opts)
  return (g.provider ~= nil and g.provider:find(",", 1, true) ~= nil) or opts.fallback or
    opts.dry_run or opts.budget ~= nil or opts.max_tool_calls ~= nil or
    opts.max_output_tokens ~= nil or opts.max_steps ~= nil
end

--- The provider names of --provider a,b,c (the default when none): list, or nil, message.
function M.names(g)
  local out, seen = {}, {}
  for name in (g.provider or providers.DEFAULT):gmatch("[^,%s]+") do
    if not providers.get(name) then
      return nil, "unknown provider '" .. name .. "' (registered: " ..
        table.concat(providers.names(), ", ") .. ")"
    end
    if seen[name] then return nil, "provider '" .. name .. "' given twice" end
    seen[name] = true
    out[#out + 1] = name
  end
  if #out == 0 then return nil, "--provider needs at least one name" end
  return out
end

-- The create options the command's flags make for a provider: its descriptor's cli.create,
-- handed a stand-in client that keeps them (the same mapping a one-provider run uses).
local function params_for(name, text, opts, schema)
  local kept
  local stand_in = { create = function(_, p) kept = p; return {} end }
  providers.get(name).cli.create(stand_in, text, opts, schema)
  kept = kept or { brief = text }
  local b = providers.get(name).budget
  for _, cap in ipairs(CAPS) do
    if opts[cap[1]] ~= nil and type(b) == "table" and b[cap[2]] then
      kept[b[cap[2]]] = opts[cap[1]]
    end
  end
  return kept
end
M.params_for = params_for

-- A client for each provider: its key from its usual variable (a missing one is that
-- provider's `unauthorized`), --base-url for all when given. dry: a stand-in key (never sent).
local function client_for(ctx, name, dry)
  local dr = require "deepresearch"
  local d = providers.get(name)
  local token = os.getenv(d.token_env)
  if dry and (token == nil or token == "") then token = "dry-run" end
  local o = { provider = name, base_url = ctx.g.base_url }
  o[d.token_option] = token
  if d.token_option ~= "token" then o.token = false end
  return dr.client(o)
end
M.client_for = client_for

local function cost_text(cost)
  if type(cost) ~= "table" then return "" end
  local parts = {}
  if cost.usd then parts[#parts + 1] = string.format("$%.4f", cost.usd) end
  if cost.credits then parts[#parts + 1] = string.format("%g credits", cost.credits) end
  return table.concat(parts, " + ") .. (cost.estimated and #parts > 0 and " (est.)" or "")
end
M.cost_text = cost_text

-- The finished task's real cost, from dr.result (a line on stderr, as run and wait end).
local function print_cost(ctx, name, task)
  local ok, res = pcall(require("deepresearch.result"), task, name)
  local text = ok and res and cost_text(res.cost) or ""
  ctx:note("deepresearch: %s cost: %s", name, text ~= "" and text or "not reported")
end
M.print_cost = print_cost

local function budget_of(ctx, opts)
  if not opts.budget then return true end
  local b, why = budget.parse(opts.budget)
  if not b then return nil, ctx:usage("--budget: " .. why) end
  return b
end

-- A budget refusal is the input's problem (nothing was sent): a usage exit.
local function refused(ctx, err)
  ctx.err:write(tostring(err), "\n")
  return EXIT.usage
end
M.refused = refused

---------------------------------------------------------------------------------------------
-- --dry-run

-- The request create would send, caught before it leaves: the provider's own create runs on
-- a runtime whose send keeps the request and answers "not sent".
local function capture(client, name, params)
  local http = require "deepresearch.runtime.http"
  local d = providers.get(name)
  local mod = require(d.module)
  local kept
  local rt = { now = function() return 0 end, sleep = function() end,
    send = function(spec)
      kept = kept or spec
      return { error = "cancelled", sent = false, message = "dry run: not sent" }
    end }
  local _, err = mod.ops.create(rt, client, params)
  if not kept then return nil, err end
  local headers = {}
  local auth = d.auth_header:lower() .. ":"
  for i, line in ipairs(kept.headers or {}) do
    headers[i] = line:lower():sub(1, #auth) == auth and (d.auth_header .. ": " ..
      d.auth_prefix .. "***") or line
  end
  return { method = kept.method, url = http.redact_url(kept.url), headers = headers,
    body = kept.body }
end

local function dry_run(ctx, opts, names, text, schema, b)
  local out, items = {}, {}
  for i, name in ipairs(names) do
    local params = params_for(name, text, opts, schema)
    items[i] = { name, params }
    local est, eerr = budget.estimate(name, params)
    local c = client_for(ctx, name, true)
    local req, rerr = capture(c, name, params)
    c:close()
    out[i] = { provider = name, estimate = est, unbounded = eerr and eerr.message or nil,
      request = req, error = rerr and tostring(rerr) or nil }
  end
  local total, terr
  if b ~= true then total, terr = budget.check_total(items, b) end
  if opts.json then
    ctx.out:write(output.json({ dry_run = true, sent = 0, providers = out,
      budget = b ~= true and b or nil, total = total, refused = terr and tostring(terr) or nil }),
      "\n")
  else
    for _, o in ipairs(out) do
      ctx.out:write("# ", o.provider, "\n")
      ctx.out:write("estimate: ", o.estimate and (budget.text(o.estimate) .. " worst case (" ..
        o.estimate.basis .. ")") or ("none: " .. tostring(o.unbounded)), "\n")
      if o.request then
        ctx.out:write(o.request.method, " ", o.request.url, "\n")
        for _, h in ipairs(o.request.headers) do ctx.out:write(h, "\n") end
        ctx.out:write("\n", o.request.body or "", "\n\n")
      else
        ctx.out:write("not sendable: ", tostring(o.error), "\n\n")
      end
    end
    if b ~= true then
      ctx.out:write("budget ", budget.text(b), ": ", total and ("within it (worst case " ..
        budget.text(total) .. ")") or tostring(terr), "\n")
    end
    ctx.out:write("dry run: nothing was sent\n")
  end
  return (b ~= true and not total) and EXIT.usage or EXIT.ok
end

---------------------------------------------------------------------------------------------
-- Progress: one line per provider (redrawn in place on a terminal).

local function progress_lines(ctx, names)
  local p = { lines = {}, drawn = false, tty = ctx:stderr_tty() and not ctx.g.quiet }
  for i, name in ipairs(names) do p.lines[i] = name .. ": creating" end
  local index = {}
  for i, name in ipairs(names) do index[name] = i end
  local last = {}
  function p.draw()
    if not p.tty then return end
    if p.drawn then ctx.err:write(string.format("\27[%dA", #names)) end
    for _, l in ipairs(p.lines) do ctx.err:write("\r\27[K", l, "\n") end
    ctx.err:flush()
    p.drawn = true
  end
  function p.update(name, task, note)
    local text
    if task then
      local d = adapters.for_provider(name).describe(task)
      local parts = {}
      for _, v in ipairs(d.parts or {}) do parts[#parts + 1] = tostring(v) end
      text = string.format("%s: %s %s%s", name, tostring(d.id or "?"), tostring(d.state or "?"),
        #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or "")
    else
      text = name .. ": " .. tostring(note)
    end
    p.lines[index[name]] = text
    if p.tty then return p.draw() end
    if last[name] ~= text and not ctx.g.quiet then ctx.err:write(text, "\n") end
    last[name] = text
  end
  p.draw()
  return p
end
M.progress_lines = progress_lines

---------------------------------------------------------------------------------------------
-- --provider a,b,c: fan out, write the reports, print the comparison.

local function report_path(dir, name)
  return (dir or ".") .. "/" .. name .. ".md"
end

local function write_report(path, task, style)
  local text, err = require("deepresearch.report").render(task, { style = style or "footnotes" })
  if not text then return nil, tostring(err and err.message or err) end
  local f, why = io.open(path, "wb")
  if not f then return nil, why end
  f:write(text, text:sub(-1) == "\n" and "" or "\n")
  f:close()
  return path
end

local function fan(ctx, opts, names, text, schema, b)
  local dr = require "deepresearch"
  local list, clients = {}, {}
  for _, name in ipairs(names) do
    list[name] = params_for(name, text, opts, schema)
    clients[name] = client_for(ctx, name, false)
  end
  local okh, history = pcall(require, "deepresearch.cli.history")
  local j = okh and history.journal(ctx) or nil
  local prog = progress_lines(ctx, names)
  local results, errs = dr.fanout{ brief = text, providers = list, clients = clients,
    budget = b ~= true and b or nil, journal = j or false, timeout = opts.timeout,
    interval = opts.interval, max_interval = opts.max_interval,
    on_progress = function(name, task) prog.update(name, task) end }
  for _, c in pairs(clients) do c:close() end
  -- A budget that refused the run before anything was sent: said once, not once per provider.
  for _, name in ipairs(names) do
    local e = errs[name]
    if e and (e.code == "budget_exceeded" or e.code == "budget_unbounded") and
      next(results) == nil then
      return refused(ctx, e)
    end
  end
  for _, name in ipairs(names) do
    if errs[name] then prog.update(name, nil, tostring(errs[name])) end
  end
  if #names == 1 and not opts.output then return M.single(ctx, opts, names[1], results, errs) end
  local written = {}
  for _, name in ipairs(names) do
    if results[name] then
      local path, why = write_report(report_path(opts.output, name), results[name], opts.style)
      written[name] = path
      if not path then ctx.err:write("deepresearch: ", name, ": report not written: ",
        tostring(why), "\n") end
      if j and path then
        local id = require("deepresearch.fanout").id_of(providers.get(name), results[name])
        -- absolute: the journal is read from any directory later (history, report ID)
        pcall(j.update, j, id, {
          report_path = require("deepresearch.cli.report_out").absolute(path) })
      end
    end
  end
  local cmp = dr.compare(results, errs)
  if opts.json then
    ctx.out:write(output.json({ comparison = cmp, results = results, reports = written,
      errors = (function()
        local t = {}
        for k, e in pairs(errs) do t[k] = { code = e.code, message = e.message } end
        return t
      end)() }), "\n")
  else
    local rows, unmarked = {}, false
    for _, name in ipairs(cmp.order) do
      local r = cmp.providers[name]
      rows[#rows + 1] = { name, r.state or "?", r.duration and string.format("%.1fs", r.duration)
        or "", cost_text(r.cost), r.report_length, r.source_count,
        -- "*": a report without citation markers; its whole source list stands in
        r.state and r.report_length > 0 and (r.cited .. (r.cited_from == "sources" and "*"
          or "")) or "",
        r.agreement and string.format("%.0f%%", r.agreement * 100) or "",
        written[name] or (r.error and r.error.code) or "" }
      unmarked = unmarked or r.cited_from == "sources"
    end
    output.table(ctx.out, { "PROVIDER", "STATE", "TIME", "COST", "LENGTH", "SOURCES", "CITED",
      "AGREE", "REPORT" }, rows)
    if unmarked then
      ctx.out:write("* no citation markers in the report: every source it lists counts as cited\n")
    end
    ctx.out:write(string.format("sources every provider cited: %d\n", #cmp.common))
    for _, u in ipairs(cmp.common) do ctx.out:write("  ", u, "\n") end
    for _, name in ipairs(cmp.order) do
      if cmp.unique[name] then
        ctx.out:write(string.format("only %s: %d\n", name, #cmp.unique[name]))
      end
    end
  end
  for _, name in ipairs(names) do
    if not results[name] then return EXIT.failed end
  end
  return EXIT.ok
end

--- One provider with --budget: the report (or the task's JSON) on stdout, its cost after.
function M.single(ctx, opts, name, results, errs)
  local task = results[name]
  if not task then return ctx:fail(errs[name]) end
  print_cost(ctx, name, task)
  if opts.json then
    ctx.out:write(output.json(task), "\n")
    return EXIT.ok
  end
  local text, err = require("deepresearch.report").render(task, { style = opts.style })
  if not text then return ctx:fail(err) end
  ctx.out:write(text, text:sub(-1) == "\n" and "" or "\n")
  return EXIT.ok
end

--- The run: one of dry run, fallback, fan-out (one provider or several).
function M.run(ctx, opts, words)
  local names, why = M.names(ctx.g)
  if not names then return ctx:usage(why) end
  if opts.fallback and #names < 2 then
    return ctx:usage("--fallback needs two providers or more: --provider a,b,c")
  end
  local unsupported = caps_unsupported(opts, names)
  if unsupported then return ctx:usage(unsupported) end
  local b, code = budget_of(ctx, opts)
  if not b then return code end
  local text, schema = input.read_brief(ctx, opts, words)
  if not text then return schema end
  if opts.dry_run then return dry_run(ctx, opts, names, text, schema, b) end
  if opts.fallback then
    return require("deepresearch.cli.fallback").run(ctx, opts, names, text, schema, b)
  end
  local result = fan(ctx, opts, names, text, schema, b)
  return result
end

return M

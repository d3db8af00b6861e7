-- `deepresearch run --provider a,b,c --fallback` (issue 19 part 2): dr.fallback with the
-- command's flags, the providers tried in the order given; each one skipped is noted on stderr,
-- then which one ran, its cost and its report. cli/multi.lua hands over here (its run reads
-- the brief, the budget and the names first) and lends its helpers: the create options a
-- provider's flags make, a client per provider, the progress line, the cost line.
local output = require "deepresearch.cli.output"
local multi = require "deepresearch.cli.multi"

local M = {}

local EXIT = multi.EXIT

--- The fallback run: an exit code. b is the parsed --budget, or true for none.
function M.run(ctx, opts, names, text, schema, b)
  local dr = require "deepresearch"
  local ordered, clients = {}, {}
  for i, name in ipairs(names) do
    -- in the order given: { name, options ... } (keyed entries would run by name)
    local entry = { name }
    for k, v in pairs(multi.params_for(name, text, opts, schema)) do entry[k] = v end
    ordered[i] = entry
    clients[name] = multi.client_for(ctx, name, false)
  end
  local okh, history = pcall(require, "deepresearch.cli.history")
  local j = okh and history.journal(ctx) or nil
  local prog
  local task, info = dr.fallback{ brief = text, providers = ordered, clients = clients,
    budget = b ~= true and b or nil, journal = j or false, wait = true, timeout = opts.timeout,
    interval = opts.interval, max_interval = opts.max_interval,
    on_progress = function(name, t)
      prog = prog or multi.progress_lines(ctx, { name })
      prog.update(name, t)
    end }
  for _, c in pairs(clients) do c:close() end
  local skipped = task and info.skipped or (info and info.skipped) or {}
  for _, s in ipairs(skipped) do
    ctx:note("deepresearch: skipped %s: %s (%s)", s.provider, tostring(s.code),
      tostring(s.message))
  end
  if not task then
    local err = info
    if err.code == "budget_exceeded" or err.code == "budget_unbounded" then
      return multi.refused(ctx, err)
    end
    return ctx:fail(err)
  end
  ctx:note("deepresearch: ran on %s", info.provider)
  multi.print_cost(ctx, info.provider, task)
  if opts.json then
    ctx.out:write(output.json({ provider = info.provider, skipped = skipped, task = task }), "\n")
    return EXIT.ok
  end
  local rendered, err = require("deepresearch.report").render(task, { style = opts.style })
  if not rendered then return ctx:fail(err) end
  ctx.out:write(rendered, rendered:sub(-1) == "\n" and "" or "\n")
  return EXIT.ok
end

return M

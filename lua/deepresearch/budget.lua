-- Budgets: the worst-case cost of a create, worked out from the provider's descriptor before
-- anything is sent, and a create refused locally when it could cost more than its budget.
--   dr.estimate("extruct", { depth = "high" })   --> { credits = 50, basis = "..." }
--   client:create{ brief = b, budget = { usd = 5 } } --> nil, err "budget_exceeded" (nothing sent)
-- What each provider's worst case is (README "Across providers", docs/budgets.md):
--   credits  Extruct: the depth's agent budget (D.cost.budgets), one credit per agent.
--   modes    Valyu: the mode's fixed price (D.modes); instant has none published.
--   turns    OpenAI: (max_tool_calls + 1) model turns x the model's context window x the input
--            price + max_output_tokens x the output price + max_tool_calls x the search price.
--   steps    Perplexity: steps (max_steps, else the preset's) x context x input price + output
--            cap (max_output_tokens, else the preset's) x output price + max_tool_calls x the
--            dearest tool call.
--   band     Gemini: its agents take no cap at all, so the contract (gemini.md A.6) says to
--            default to the agent's published estimate band: the band's upper end stands in
--            for the worst case ($3 standard, $7 max), marked bounded = false.
-- When nothing the request carries bounds the cost (OpenAI, Perplexity without their caps),
-- there is no worst case: the estimate is nil and the code `budget_unbounded` (err.missing
-- names the caps to send), and a create with a budget is refused, nothing sent.
-- Pure Lua; prices are data in the descriptors, dated (D.prices.as_of).
local providers = require "deepresearch.providers"
local errors = require "deepresearch.base.errors"
local options = require "deepresearch.base.options"

local M = {}

M.UNITS = { "usd", "credits" }
local BUDGET_FIELDS = { usd = "number", credits = "number" }

local function num(v) return type(v) == "number" and v == v and v >= 0 and v < math.huge end

local function money(v) return string.format("$%.2f", v) end

--- Raises unless b is nil or a budget table { usd = N } | { credits = N } (level: error()'s).
function M.check_arg(fname, b, level)
  level = (level or 2) + 1
  if b == nil then return end
  if type(b) ~= "table" then
    error(string.format("bad option 'budget' to '%s' (table expected, got %s)", fname, type(b)),
      level)
  end
  options.check(fname .. " budget", b, BUDGET_FIELDS, level)
  if b.usd == nil and b.credits == nil then
    error(string.format("bad option 'budget' to '%s' ({ usd = N } or { credits = N } " ..
      "expected)", fname), level)
  end
  for _, u in ipairs(M.UNITS) do
    if b[u] ~= nil and not num(b[u]) then
      error(string.format("bad option 'budget' to '%s' (%s: a non-negative number expected)",
        fname, u), level)
    end
  end
end

--- A budget from the command's text: "5usd", "$5", "5 usd", "100credits", "100 credits", or
-- both units at once, "5usd,100credits": a fan-out over Extruct (credits) and a provider billed
-- in dollars needs a total in each, as dr.fanout's { usd = 5, credits = 100 } takes.
-- Returns the table, or nil and a message.
function M.parse(text)
  if type(text) ~= "string" then return nil, "a budget like 5usd or 100credits expected" end
  local bad = "a budget like 5usd or 100credits (or both: 5usd,100credits) expected, got '" ..
    text .. "'"
  local out, any = {}, false
  for part in (text:lower():gsub("%s+", "") .. ","):gmatch("([^,]*),") do
    local n, unit = part:match("^%$(%d+%.?%d*)$"), "usd"
    if not n then n, unit = part:match("^(%d+%.?%d*)(%a+)$") end
    n = tonumber(n)
    if unit == "credit" then unit = "credits" end
    if unit == "dollars" or unit == "dollar" then unit = "usd" end
    if not n or (unit ~= "usd" and unit ~= "credits") or out[unit] then return nil, bad end
    out[unit], any = n, true
  end
  if not any then return nil, bad end
  return out
end

--- "$5.00" or "100 credits" for a budget or an estimate.
function M.text(t)
  if type(t) ~= "table" then return "?" end
  local parts = {}
  if t.usd then parts[#parts + 1] = money(t.usd) end
  if t.credits then parts[#parts + 1] = string.format("%g credits", t.credits) end
  return #parts > 0 and table.concat(parts, " + ") or "?"
end

local function unbounded(d, why, missing, extra)
  local label = d.cli and d.cli.name or d.name
  local fields = { provider = d.name, missing = missing, estimate = nil }
  for k, v in pairs(extra or {}) do fields[k] = v end
  local msg = label .. ": no worst-case cost before the create: " .. why
  if missing and #missing > 0 then
    msg = msg .. " (send " .. table.concat(missing, " and ") .. " to bound it)"
  end
  return nil, errors.new("budget_unbounded", msg, fields)
end

-- The price entry of a model: exact, else the longest key that prefixes it (dated snapshots).
local function price_of(prices, model)
  if type(prices) ~= "table" or type(model) ~= "string" then return nil end
  if type(prices[model]) == "table" then return prices[model], model end
  local best, key
  for k, v in pairs(prices) do
    if type(v) == "table" and model:sub(1, #k) == k and (not key or #k > #key) then
      best, key = v, k
    end
  end
  return best, key
end

local function tokens_usd(n, per_million) return n * per_million / 1e6 end

-- Extruct: the depth's agent budget, one credit per agent.
local function credits(d, p)
  local depth = p.depth or "medium"
  local n = d.cost.budgets and d.cost.budgets[depth]
  if not n then return unbounded(d, "unknown depth '" .. tostring(depth) .. "'") end
  return { credits = n, basis = string.format("%s depth %s: at most %d agents, 1 credit each",
    d.cli.name, depth, n) }
end

-- Valyu: the mode's fixed price, plus the surcharges the request commits to (D.budget).
local function modes(d, p)
  local m = p.mode or d.default_mode
  m = (d.mode_aliases or {})[m] or m
  local info = d.modes[m]
  if not info then return unbounded(d, "unknown mode '" .. tostring(m) .. "'") end
  if not info.price then
    return unbounded(d, "the " .. m .. " mode's price is not published; choose a mode with one")
  end
  local b = d.budget or {}
  for flag, why in pairs(b.unbounded_flags or {}) do
    if p[flag] == true then return unbounded(d, flag .. ": " .. why) end
  end
  local usd, basis = info.price, string.format("%s mode %s: fixed price %s", d.cli.name, m,
    money(info.price))
  local n = type(p.deliverables) == "table" and #p.deliverables or 0
  local extra = math.max(0, n - (b.free_deliverables or 0))
  if b.deliverable and extra > 0 then
    usd = usd + extra * b.deliverable
    basis = basis .. string.format(" + %d deliverables at %s", extra, money(b.deliverable))
  end
  return { usd = usd, basis = basis }
end

-- OpenAI: every tool call is one more model turn reading at most the context window.
local function turns(d, p)
  local b = d.budget
  local model = p.model or (d.defaults and d.defaults.model)
  local price, key = price_of(d.prices, model)
  if not (price and num(price.context) and num(price.input) and num(price.output)) then
    return unbounded(d, "no dated price (with a context window) for model " .. tostring(model))
  end
  local out, tools = p[b.output], p[b.tools]
  local missing = {}
  if not num(out) then missing[#missing + 1] = b.output end
  if not num(tools) then missing[#missing + 1] = b.tools end
  if #missing > 0 then return unbounded(d, "tokens and tool calls are not capped", missing) end
  local n = tools + 1
  local usd = tokens_usd(n * price.context, price.input) + tokens_usd(out, price.output) +
    tools * (price[b.tool_price] or 0)
  return { usd = usd, basis = string.format("%s %s (prices as of %s): %g turns x %g input " ..
    "tokens + %g output tokens + %g tool calls", d.cli.name, key, tostring(d.prices.as_of), n,
    price.context, out, tools) }
end

-- The preset a Perplexity request runs (an alias read as its preset), or nil for a bare model.
local function preset_of(d, p)
  local name = p.preset
  if name == nil and p.model == nil and p.models == nil then name = d.defaults.preset end
  if name == nil then return nil end
  return (d.preset_aliases or {})[name] or name
end

-- Perplexity: steps x context in, the output cap out, tool calls at the dearest tool.
local function steps(d, p)
  local b = d.budget
  local preset = preset_of(d, p)
  local limits = preset and b.presets[preset]
  if preset and not limits then
    return unbounded(d, "the " .. preset .. " preset's limits are not published",
      { b.steps, b.output, b.tools })
  end
  limits = limits or { steps = 1 } -- a model without a preset runs one step (A.3)
  local models = {}
  if type(p.models) == "table" then
    for _, m in ipairs(p.models) do models[#models + 1] = m end
  elseif p.model then
    models[1] = p.model
  else
    models[1] = limits.model
  end
  local n = p[b.steps] or limits.steps
  local out = p[b.output] or limits.output
  local tools = p[b.tools]
  local missing = {}
  if not num(out) then missing[#missing + 1] = b.output end
  if not num(tools) then missing[#missing + 1] = b.tools end
  if #missing > 0 then return unbounded(d, "tool calls are not capped", missing) end
  local per_call = limits.tool_call or b.tool_call
  -- A fallback list of models: the dearest one is the worst case.
  local usd, worst
  for _, m in ipairs(models) do
    local price = price_of(d.prices, m)
    if not (price and num(price.context) and num(price.input) and num(price.output)) then
      return unbounded(d, "no dated price for model " .. tostring(m))
    end
    local v = tokens_usd(n * price.context, price.input) + tokens_usd(out, price.output) +
      tools * per_call
    if not usd or v > usd then usd, worst = v, { name = m, context = price.context } end
  end
  return { usd = usd, basis = string.format("%s %s (prices as of %s): %g steps x %g input " ..
    "tokens + %g output tokens + %g tool calls at %s", d.cli.name, preset and ("preset " ..
    preset) or worst.name, tostring(d.prices.as_of), n, worst.context, out, tools,
    string.format("$%.4f", per_call)) }
end

-- Gemini: no cap can be sent, so the agent's published band's upper end (dated data in
-- D.prices) stands in for the worst case (gemini.md A.6: "default to the estimate band").
local function band(d, p)
  local agent = p.agent or d.default_agent
  local price, key = price_of(d.prices, agent)
  if not (price and num(price.high)) then
    return unbounded(d, "its API takes no cap on steps, tokens or searches, and agent " ..
      tostring(agent) .. " has no published estimate")
  end
  return { usd = price.high, bounded = false, basis = string.format("%s %s: the published " ..
    "typical upper bound, %s a task (band %s-%s, as of %s); its API takes no cap, so a task " ..
    "may cost more", d.cli and d.cli.name or d.name, key, money(price.high),
    money(price.low or 0), money(price.high), tostring(d.prices.as_of)) }
end

local RECIPES = { credits = credits, modes = modes, turns = turns, steps = steps, band = band }

local function recipe_of(d)
  if d.budget and d.budget.recipe then return d.budget.recipe end
  if d.cost and d.cost.source == "credits" and d.cost.budgets then return "credits" end
  if d.modes then return "modes" end
  if d.default_agent and d.prices then return "band" end
  return nil
end

--- The worst-case cost of a create: { usd = N } or { credits = N }, with basis (how it was
-- worked out) and bounded (false for a published typical upper bound, Gemini's). nil, err
-- (code budget_unbounded, err.missing) when nothing the request carries bounds it. Raises on
-- an unknown provider.
function M.estimate(provider, params)
  local d = type(provider) == "table" and provider or providers.get(provider)
  if not d then
    error(string.format("bad argument #1 to 'estimate' (unknown provider %q)",
      tostring(provider)), 2)
  end
  if params ~= nil and type(params) ~= "table" then
    error("bad argument #2 to 'estimate' (table expected, got " .. type(params) .. ")", 2)
  end
  params = params or {}
  local recipe = RECIPES[recipe_of(d)]
  local est, err
  if recipe then
    est, err = recipe(d, params)
  else
    est, err = unbounded(d, "its descriptor says nothing about its cost")
  end
  if est then
    est.provider = d.name
    if est.bounded == nil then est.bounded = true end
  end
  return est, err
end

-- The unit a budget is checked in against an estimate: one both carry, else nil.
local function common_unit(est, budget)
  for _, u in ipairs(M.UNITS) do
    if budget[u] ~= nil and est[u] ~= nil then return u end
  end
  return nil
end

local function exceeded(est, budget, unit, who)
  return errors.new("budget_exceeded", string.format("%s: the worst case %s is over the " ..
    "budget %s; nothing was sent (%s)", who, M.text({ [unit] = est[unit] }),
    M.text({ [unit] = budget[unit] }), tostring(est.basis)),
    { estimate = est, budget = budget, unit = unit, retryable = false })
end

local function mismatch(d, est, budget)
  local want = budget.usd and "usd" or "credits"
  return errors.new("budget_unbounded", string.format("%s: its worst case is in %s (%s), and " ..
    "the budget is in %s: give the budget in %s", d.cli and d.cli.name or d.name,
    est.usd and "usd" or "credits", M.text(est), want, est.usd and "usd" or "credits"),
    { provider = d.name, estimate = est, budget = budget, retryable = false })
end

--- Checks one create against its budget, before sending. Returns the estimate, or nil, err
-- (budget_exceeded with err.estimate and err.budget; budget_unbounded).
function M.check(provider, params, budget)
  local d = type(provider) == "table" and provider or providers.get(provider)
  local est, err = M.estimate(d, params)
  if not est then
    err.budget = budget
    return nil, err
  end
  local unit = common_unit(est, budget)
  if not unit then return nil, mismatch(d, est, budget) end
  if est[unit] > budget[unit] + 1e-9 then
    return nil, exceeded(est, budget, unit, d.cli and d.cli.name or d.name)
  end
  return est
end

--- Checks several creates against one total: items = { { provider, params } ... }. Returns
-- the summed estimate { usd, credits, parts = { est ... } }, or nil, err (the first item that
-- cannot be checked, or budget_exceeded for the total).
function M.check_total(items, budget)
  local total = { parts = {}, bounded = true }
  for i, item in ipairs(items) do
    local d = type(item[1]) == "table" and item[1] or providers.get(item[1])
    local est, err = M.estimate(d, item[2] or {})
    if not est then
      err.budget, err.index = budget, i
      return nil, err
    end
    if not common_unit(est, budget) then return nil, mismatch(d, est, budget) end
    total.parts[i] = est
    if est.bounded == false then total.bounded = false end
    for _, u in ipairs(M.UNITS) do
      if est[u] then total[u] = (total[u] or 0) + est[u] end
    end
  end
  local bases = {}
  for _, est in ipairs(total.parts) do bases[#bases + 1] = tostring(est.basis) end
  total.basis = table.concat(bases, "; ")
  for _, u in ipairs(M.UNITS) do
    if budget[u] and total[u] and total[u] > budget[u] + 1e-9 then
      return nil, exceeded(total, budget, u, #items .. " creates together")
    end
  end
  return total
end

--- A copy of params without its budget field, and that budget (checked: raises when malformed).
function M.split(fname, params, level)
  if type(params) ~= "table" or params.budget == nil then return params, nil end
  M.check_arg(fname, params.budget, (level or 2) + 1)
  local copy = {}
  for k, v in pairs(params) do
    if k ~= "budget" then copy[k] = v end
  end
  return copy, params.budget
end

--- Wraps a provider's method table's create so that it takes budget = { usd | credits }: the
-- worst case is checked first and the create refused locally (nothing sent) when over.
-- run (create, then wait) takes it too. The arguments are checked here, blaming the caller
-- (a wrapped method's own check would blame this file).
function M.wrap_create(t, d)
  local ok, mod = pcall(require, d.module)
  local accepts = ok and type(mod) == "table" and mod.accepts or {}
  for _, name in ipairs({ "create", "run" }) do
    local method = rawget(t, name)
    if type(method) == "function" then
      local sig = accepts[name]
      rawset(t, name, function(self, params, ...)
        local p, budget = M.split(name, params, 2)
        if sig then options.check_call(name, sig, 2, p, ...) end
        if budget then
          local est, err = M.check(d, p, budget)
          if not est then return nil, err end
        end
        return method(self, p, ...)
      end)
    end
  end
end

return M

-- dr.fallback: one brief, providers tried in order until one takes it.
--   local task, info = dr.fallback{ brief = b, providers = { "perplexity", "openai", "extruct" } }
--   -- info.provider: who runs it; info.skipped = { { provider, code, message } ... }
-- The next provider is tried only when a create was refused with nothing made: the codes in
-- M.NEXT (402s, 401/403, 404 such as an unknown model, unsupported, a retired surface, 429
-- after retries, the API's own 503, and a budget this provider cannot meet, checked before
-- sending). Never after `ambiguous` (the create may have made a task: paying twice is worse
-- than stopping) and never once a task exists: a task that fails is that provider's answer.
local errors = require "deepresearch.base.errors"
local policy = require "deepresearch.base.policy"
local providers = require "deepresearch.providers"
local budget = require "deepresearch.budget"
local fanout = require "deepresearch.fanout"

local M = {}

-- Refusals that prove nothing was made (the one list, policy.CREATE_NOTHING_MADE) and that
-- another provider may not share: not invalid_request (the caller's mistake, every provider
-- would refuse it), and also unsupported, retired and a budget, all refused before sending.
M.NEXT = {}
for code in pairs(policy.CREATE_NOTHING_MADE) do M.NEXT[code] = true end
M.NEXT.invalid_request = nil
for _, code in ipairs({ "unsupported", "retired", "budget_exceeded", "budget_unbounded" }) do
  M.NEXT[code] = true
end

-- How often a 429 is sent again (after its Retry-After or backoff) before moving on: a 429
-- made nothing, so sending again cannot pay twice.
M.RATE_RETRIES = 2

local OPTIONS = { brief = "string", providers = "table", budget = "table", clients = "table",
  client_options = "table", journal = "any", wait = "boolean", on_progress = "function",
  interval = "number", max_interval = "number", timeout = "number", rate_retries = "number" }

--- Whether err lets fallback try the next provider.
function M.next_allowed(err)
  if type(err) ~= "table" then return false end
  -- A 404 to a create is a model (or surface) this provider does not have: OpenAI's
  -- model_not_found arrives as invalid_request (its type) with status 404; nothing was made.
  if err.code == "invalid_request" and err.status == 404 then return true end
  if not M.NEXT[err.code] then return false end
  -- The API's own 503 only (a proxy's page may come after the create was forwarded).
  if err.code == "unavailable" and err.status == 503 and err.api == false then return false end
  return true
end

local jcall = fanout.jcall

-- One provider's create, its 429s sent again up to `retries` times.
local function create(client, params, retries)
  local attempt = 0
  while true do
    local task, err = client:create(params)
    if task or err.code ~= "rate_limited" or attempt >= retries then return task, err end
    attempt = attempt + 1
    local state = require("deepresearch.runtime.http").state(client)
    state.clock.sleep(policy.delay(attempt, err, state))
  end
end

--- dr.fallback(opts) -> task, { provider, skipped } or nil, err (err.skipped, err.provider).
function M.fallback(opts)
  fanout.check_opts("fallback", opts, OPTIONS, 2)
  local entries = fanout.normalise(opts.providers, opts.brief, "fallback")
  fanout.check_creates("fallback", entries, true, 2)
  local owned = {}
  local j = fanout.journal(opts.journal, "fallback")
  local skipped = {}
  local retries = opts.rate_retries or M.RATE_RETRIES
  local ok, task, info = pcall(function()
    for _, en in ipairs(entries) do
      local name = en.name
      local params, own = budget.split("fallback", en.params, 2)
      local b = own or opts.budget
      local est, err
      if b then est, err = budget.check(name, params, b) end
      local made
      if not b or est then
        local c = opts.clients and opts.clients[name]
        if not c then
          local o = { provider = name }
          for k, v in pairs(opts.client_options or {}) do o[k] = v end
          c = require("deepresearch").client(o)
          owned[#owned + 1] = c
        end
        local ref = jcall(j, "begin", { provider = name, brief = opts.brief, source = "fallback" })
        made, err = create(c, params, retries)
        if ref and made then jcall(j, "created", ref, made) end
        if not made then fanout.create_failed(j, ref, err) end
        if made then
          local result = { provider = name, skipped = skipped, estimate = est, client = c }
          if not opts.wait then return made, result end
          local on_progress = opts.on_progress
          local done, werr = c:wait(fanout.id_of(providers.get(name), made), {
            interval = opts.interval, max_interval = opts.max_interval, timeout = opts.timeout,
            task = made, on_progress = on_progress and function(t) on_progress(name, t) end })
          if ref then
            local last = done or (werr and werr.task)
            jcall(j, "update", ref, { state = last and providers.state(last, name) or nil,
              error = werr and werr.code or nil })
          end
          if not done then
            werr.provider, werr.skipped = name, skipped
            return nil, werr
          end
          return done, result
        end
      end
      skipped[#skipped + 1] = { provider = name, code = err.code, message = err.message }
      if not M.next_allowed(err) then
        err.provider, err.skipped = name, skipped
        table.remove(skipped) -- it was not skipped: it is the answer
        return nil, err
      end
    end
    return nil, errors.new(skipped[#skipped] and skipped[#skipped].code or "unavailable",
      "no provider took the brief: " .. M.summary(skipped), { skipped = skipped,
        retryable = false })
  end)
  -- Every client made here closes: the task is what the caller needs (a client's wait,
  -- dr.result).
  for _, c in ipairs(owned) do pcall(c.close, c) end
  if not ok then error(task, 0) end
  if info then info.client = nil end
  return task, info
end

--- "perplexity: plan_required; openai: unauthorized".
function M.summary(skipped)
  local parts = {}
  for _, s in ipairs(skipped or {}) do
    parts[#parts + 1] = s.provider .. ": " .. tostring(s.code)
  end
  return table.concat(parts, "; ")
end

return M

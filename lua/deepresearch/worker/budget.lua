-- A spending cap and request rates shared by every worker on one Redis (mixed into Worker):
-- --budget-usd-per-day N and --rate PROVIDER=N/min (docs/worker.md "Budget and rate").
--
-- Right before a create's request leaves (in its gate, before the job is marked "creating"),
-- one script (store_budget.lua) takes a token from the provider's bucket and reserves the job's
-- worst-case cost (dr.estimate) in the current UTC day's spend counter: both or neither, so
-- workers on several machines never cross the cap nor the rate together. A job that would cross
-- the cap waits (status waiting_budget) and is looked at again every second, so it goes as soon
-- as spend is released or the day rolls. When its task ends the reservation is settled to the
-- real cost (dr.result(task).cost; the reservation stands when the cost is unknown); a create
-- that made nothing releases it. A create that may have made a task keeps it.
local errors = require "deepresearch.base.errors"

local budget = {}

budget.RECHECK = 1 -- seconds between looks of a job waiting for budget
local MICRO = 1e6

local function usd(micro) return string.format("$%.2f", (micro or 0) / MICRO) end

-- The worst case of a create, from the library's estimate (deepresearch.budget).
local function estimate(provider, params)
  local ok, mod = pcall(require, "deepresearch.budget")
  if not ok or type(mod.estimate) ~= "function" then
    return nil, errors.new("budget_unbounded", "no estimate available (deepresearch.budget)")
  end
  local good, est, err = pcall(mod.estimate, provider, params)
  if not good then return nil, errors.new("budget_unbounded", tostring(est)) end
  return est, err
end

--- The job's limits (job.lim, worked out once), false when none applies, or nil, err when the
-- job can never pass them: budget_unbounded (no worst case in USD), budget_exceeded (its worst
-- case alone is over the cap).
function budget:limits_for(job)
  if job.lim ~= nil then return job.lim end
  local o = self.opts
  local provider = self:lane(job).name
  local rate = o.rate and o.rate[provider]
  if not rate and not o.budget_usd then
    job.lim = false
    return false
  end
  local lim = { provider = provider, rate = rate, burst = rate and math.max(1, rate) or nil,
    window = o.budget_window or 86400 }
  if o.budget_usd then
    local est, err = estimate(provider, job.params)
    if not est or type(est.usd) ~= "number" then
      local why = err and err.message or (est and est.credits and
        string.format("its worst case is %s credits, not dollars", tostring(est.credits)))
      return nil, errors.new("budget_unbounded", "--budget-usd-per-day cannot bound this job: " ..
        tostring(why or "no worst case"))
    end
    lim.estimate = math.ceil(est.usd * MICRO - 1e-6)
    lim.cap = math.floor(o.budget_usd * MICRO + 0.5)
    lim.basis = est.basis
    if lim.estimate > lim.cap then
      local e = errors.new("budget_exceeded", string.format("the job's worst case (%s: %s) is " ..
        "over the whole --budget-usd-per-day (%s)", usd(lim.estimate), tostring(est.basis),
        usd(lim.cap)))
      e.estimate, e.budget = est, { usd = o.budget_usd }
      return nil, e
    end
  end
  job.lim = lim
  return lim
end

--- At start, under --budget-usd-per-day: one line when the worker's own provider (the one jobs
-- without "provider" get) has no worst case in dollars (Extruct bills credits), since every such
-- job will be dead-lettered budget_unbounded (docs/worker.md "Extruct jobs and a dollar cap").
function budget:warn_unbounded()
  local o = self.opts
  if not o.budget_usd or not o.provider then return end
  -- Only a provider billed in another unit: OpenAI's jobs pass once they send their caps.
  local est = estimate(o.provider, {})
  if not est or type(est.usd) == "number" or not est.credits then return end
  self:log("--budget-usd-per-day cannot bound %s jobs (billed in credits): each job without " ..
    "another \"provider\" is dead-lettered budget_unbounded; run them on a worker without " ..
    "the cap", o.provider)
end

--- In the create gate, before the job is marked: "ok" (g.fresh when this call reserved), or
-- false with g.r = "budget" | "rate" | "error" and g.w = seconds to wait.
function budget:take_turn(job, g)
  local ok, r, v, w = pcall(self.store.reserve, self.store, job, job.lim)
  if not ok then
    g.r, g.v = "error", r
    return false
  end
  if r == "ok" then
    g.fresh = v
    return true
  end
  g.r, g.v, g.w = r or "redis", v, w
  return false
end

--- A create refused by the budget or the rate: tried again when it may pass.
function budget:wait_turn(job, g)
  job.attempts = math.max(0, job.attempts - 1)
  if g.r == "rate" then return self:later(job, math.max(0.01, g.w or 0.1), self.create) end
  if not job.budget_logged then
    job.budget_logged = true
    self:log("job %s: waiting for budget (%s of %s spent this window; its worst case %s)",
      job.id, usd(g.v), usd(job.lim.cap), usd(job.lim.estimate))
  end
  return self:later(job, math.min(budget.RECHECK, math.max(0.01, g.w or budget.RECHECK)),
    self.create)
end

--- A create that made nothing: its reservation goes back. true, or nil, err.
function budget:release_budget(job)
  if not self.opts.budget_usd then return true end
  local r, err = self.store:settle_budget(job, nil)
  if r == nil then return nil, err end
  return true
end

--- The task ended: its reservation becomes its real cost (kept whole when unknown).
function budget:settle(job, task)
  if not self.opts.budget_usd then return true end
  local real = "keep"
  local ok, res = pcall(require("deepresearch").result, task)
  local cost = ok and type(res) == "table" and res.cost or nil
  if type(cost) == "table" and type(cost.usd) == "number" and cost.usd >= 0 then
    real = math.ceil(cost.usd * MICRO - 1e-6)
  end
  local r, err = self.store:settle_budget(job, real)
  if r == nil then return nil, err end
  return true
end

return budget

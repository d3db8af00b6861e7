-- What the worker notes about a job as it takes it (mixed into Worker): a dead letter that
-- names the job, a copy of an ended job pushed again (logged once), the brief's lint findings.
local jobs = require "deepresearch.worker.job"
local store_mod = require "deepresearch.worker.store"
local is_interrupt = require("deepresearch.worker.redis").is_interrupt

local intake = {}

-- The first n characters of a text (UTF-8 sequences kept whole), "…" when cut.
local function head(text, n)
  local out, count = {}, 0
  for ch in text:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
    count = count + 1
    if count > n then return table.concat(out) .. "…" end
    out[count] = ch
  end
  return table.concat(out)
end

--- What names a job in a dead letter: its id when it had one, else the first 60 characters of
-- its brief (of the text pushed when even that is unreadable).
function intake.job_name(raw, job_id)
  if job_id then return job_id end
  local ok, v = pcall(jobs.decode, raw)
  local brief = ok and type(v) == "table" and type(v.brief) == "string" and v.brief or nil
  local text = (brief or tostring(raw)):gsub("%s+", " ")
  return head(text, 60)
end

function intake.dead_entry(self, raw, err, job_id)
  return jobs.encode({ job = raw, job_id = job_id, name = intake.job_name(raw, job_id),
    error = { code = err.code, message = err.message }, worker = self.wid,
    at = store_mod.timestamp() })
end

function intake:dead_letter(raw, err, job_id)
  self.stats.dead = self.stats.dead + 1
  self:log("dead letter (%s): %s", job_id and ("job " .. job_id) or
    string.format("%q", intake.job_name(raw)), err.message or tostring(err))
  local entry = intake.dead_entry(self, raw, err, job_id)
  return self:effect(function() return self.store:dead(raw, entry, job_id,
    jobs.error_json(err)) end)
end

--- A job the worker holds that can never run as it is (the API's validation, or a budget it
-- can never pass): into the dead-letter list with its error. true, or nil, err.
function intake:dead_job(job, err)
  local ok, e = self.store:dead(job.raw, intake.dead_entry(self, job.raw, err, job.id), job.id,
    jobs.error_json(err))
  if ok == nil then return nil, e end
  self.stats.dead = self.stats.dead + 1
  self:log("job %s: dead-lettered: %s", job.id, tostring(err.message))
  self:forget(job)
  return true
end

--- A copy of a job that has ended (a producer pushed its id again): dropped; the first such
-- copy of a job is logged, across all workers (counted in the hash's `duplicates`).
function intake:duplicate(job, status)
  local n, err = self.store:duplicate(job.id)
  if not n then return nil, err end
  if tonumber(n) == 1 then
    self:log("job %s: pushed again after it ended %s; the copy is dropped (copies after this " ..
      "one are dropped without a line)", job.id, status)
  else
    self:debug("job %s: already %s; dropping this copy", job.id, status)
  end
  return self:drop(job)
end

--- The brief's lint findings, stored on the job (`lint`: a JSON array of {code, severity,
-- message}) before its first create; they never refuse it (the API's validation does that).
function intake:lint(job)
  -- The advice that fits the job's provider (descriptor.brief_advice; none when it lists none):
  -- Extruct's "requester context" advice is noise on a Valyu question (issue 18 item 10).
  local d = job.provider and require("deepresearch.providers").get(job.provider)
  local ok, findings = pcall(require("deepresearch.brief").lint, job.brief or "",
    { output_schema = job.output_schema, advice = d and d.brief_advice or {} })
  if not ok then
    if is_interrupt(findings) then error(findings, 0) end
    findings = {}
  end
  local list = {}
  for _, f in ipairs(findings) do
    list[#list + 1] = { code = f.code, severity = f.severity, message = f.message }
  end
  if #list > 0 then self:debug("job %s: %d lint finding(s) stored", job.id, #list) end
  return self.store:lint(job.id, jobs.encode(require("deepresearch.base.json").array(list)))
end

return intake

-- :DeepResearchOpen [id] and :DeepResearchExport [id] [path]: a finished task's report opened
-- (in a tab when setup's open is "notify"), or written to a file as markdown, and as HTML too
-- when require("deepresearch.report").html exists.
local buffer = require "deepresearch.nvim.buffer"
local config = require "deepresearch.nvim.config"
local history = require "deepresearch.nvim.history"
local jobs = require "deepresearch.nvim.jobs"
local report = require "deepresearch.nvim.report"
local screen = require "deepresearch.nvim.screen"
local state = require "deepresearch.nvim.state"

local notify, levels = config.notify, config.levels
local M = {}

local function where()
  local w = config.values.open
  return w == "notify" and "tab" or w
end

-- The newest done job of this session (the one :DeepResearchOpen opens without an id).
local function latest_done()
  for i = #state.order, 1, -1 do
    local job = state.jobs[state.order[i]]
    if job.state == "done" and job.task then return job end
  end
  return nil
end

-- The done task of a typed id: cb(job) once it is known (waited on when this session has no
-- copy), or a notification naming the id.
local function with_done(typed, opts, cb)
  local job
  if typed == nil then
    job = latest_done()
    if not job then return notify("deepresearch: no finished report yet", levels.WARN) end
    return cb(job)
  end
  local id, err = history.resolve(typed, opts.provider)
  if not id then return notify(err, levels.ERROR) end
  job = history.job_of(id)
  if job and job.state == "done" and job.task then return cb(job) end
  if job and jobs.ACTIVE[job.state] then -- already waited on: opened when it ends
    job.after = cb
    return
  end
  job = jobs.wait(id, opts)
  if not job then return end
  job.after = cb
end

--- Opens the report of a done task (typed: an id or its prefix; nil: the newest done one).
function M.open(typed, opts)
  with_done(typed, opts or {}, function(job)
    screen.when_safe(function()
      local buf = buffer.find(job.id)
      if buf then return buffer.show(buf, where()) end
      report.open_report(job.task, job.provider, where(), job.brief)
    end)
  end)
end

local function write(path, text)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(text)
  f:close()
  return true
end

--- Writes the report of a done task to path (default ./deepresearch-<short id>.md) and, when
-- the library renders HTML, the same name with .html. Notifies what it wrote.
function M.export(typed, path, opts)
  with_done(typed, opts or {}, function(job)
    screen.later(function()
      local base = path or ("deepresearch-" .. history.short(job.id) .. ".md")
      local ok_r, rep = pcall(require, "deepresearch.report")
      local html = ok_r and type(rep.html) == "function"
      local md_path, html_path = base, nil
      if base:match("%.html?$") then
        md_path, html_path = base:gsub("%.html?$", ".md"), base
      elseif html then
        html_path = base:gsub("%.md$", "") .. ".html"
      end
      local done = {}
      local ok, err = write(md_path, report.render(job.task, job.provider) .. "\n")
      if not ok then return notify("deepresearch: cannot write " .. md_path .. ": " ..
        tostring(err), levels.ERROR) end
      done[#done + 1] = md_path
      if html_path and html then
        local okh, text = pcall(rep.html, job.task)
        if okh and type(text) == "string" and write(html_path, text) then
          done[#done + 1] = html_path
        end
      end
      notify("deepresearch " .. history.short(job.id) .. ": wrote " .. table.concat(done, ", "))
    end)
  end)
end

--- Whether a report buffer is open for id (for the list and the picker).
function M.is_open(id) return buffer.find(id) ~= nil end

return M

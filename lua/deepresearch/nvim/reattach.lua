-- After a restart (setup with reattach = true, the default): the journal's tasks created from
-- Neovim that had not finished are waited on again; those that finished unseen are announced
-- once (a done one's report is fetched: its wait ends at once), a failed one said once.
local config = require "deepresearch.nvim.config"
local history = require "deepresearch.nvim.history"
local jobs = require "deepresearch.nvim.jobs"
local providers = require "deepresearch.providers"

local notify, levels, short = config.notify, config.levels, history.short
local M = {}

local FINISHED = { done = true, failed = true, cancelled = true }

--- After a restart: waits again on the journal's unfinished tasks from Neovim, and announces
-- once those that finished unseen (a done one's report is fetched: its wait ends at once).
function M.reattach()
  for _, e in ipairs(history.entries({ source = "nvim" })) do
    if e.id and not history.job_of(e.id) and providers.get(e.provider or "") and
      (not FINISHED[e.state] or (e.state == "done" and not e.seen)) then
      jobs.wait(e.id, { provider = e.provider, brief = e.brief_head, ref = e.ref })
    elseif FINISHED[e.state] and e.state ~= "done" and not e.seen and e.id then
      history.update({ ref = e.ref, id = e.id }, { seen = true })
      notify(string.format("deepresearch %s: %s while Neovim was closed (%s)", short(e.id),
        e.state, tostring(e.error or e.brief_head or "")), levels.WARN)
    end
  end
end

return M

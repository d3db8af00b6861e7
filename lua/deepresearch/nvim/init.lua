-- Neovim front: :DeepResearch, :DeepResearchWait, :DeepResearchList, :DeepResearchRespond and a
-- statusline function. Every request runs on a poller (one per provider) that a vim.loop timer
-- steps with step(0), so the editor never waits on the network. What differs between providers
-- is read from their descriptors (docs/providers.md): nothing under nvim/ names a provider or
-- its fields. This file only gathers the API; each job has its file:
--   config.lua       setup's options, their checks, what they say about one provider, notify
--   library.lua      the plugin's root, its luajit build on package.cpath, require("deepresearch")
--   drivers.lua      the client and driver (poller) of each provider; descriptor calls replayed
--   descriptors.lua  a task's id, owner, progress line and list columns, read off descriptors
--   jobs.lua         research and wait jobs, the timer that steps the drivers, status, close
--   respond.lua      jobs stopped at a checkpoint: asked, approved or left for :DeepResearchRespond
--   checkpoint.lua   the checkpoint prompts (vim.ui.select / vim.ui.input)
--   list.lua         the provider's task list buffer (:DeepResearchList!)
--   picker.lua       the journal's tasks in vim.ui.select (:DeepResearchList)
--   history.lua      the journal, ids typed as prefixes, short ids
--   reattach.lua     after a restart: the journal's unfinished tasks waited on again
--   open.lua         :DeepResearchOpen and :DeepResearchExport
--   report.lua       a task's report rendered and opened; buffer.lua holds the buffers
--   screen.lua       screen updates at safe moments; one-line messages
--   events.lua       User autocmds DeepResearchCreated/Progress/Done/Failed/InputRequired
--   secrets.lua      api_key: "cmd:...", "env:NAME", a string or a function, read once
--   commands.lua     the user commands and their arguments
--   state.lua        the session's state, shared by the files above
local config = require "deepresearch.nvim.config"
local library = require "deepresearch.nvim.library"
local jobs = require "deepresearch.nvim.jobs"
local respond = require "deepresearch.nvim.respond"
local list = require "deepresearch.nvim.list"
local report = require "deepresearch.nvim.report"
local commands = require "deepresearch.nvim.commands"
local events = require "deepresearch.nvim.events"
local history = require "deepresearch.nvim.history"
local open = require "deepresearch.nvim.open"
local picker = require "deepresearch.nvim.picker"
local screen = require "deepresearch.nvim.screen"
local secrets = require "deepresearch.nvim.secrets"

local M = {}

M.config = config.values               -- the live options (setup refills this table)
M._state = require "deepresearch.nvim.state"
M._settings = config.settings          -- what setup says about one provider (:checkhealth)

M.root, M.add_cpath, M.library = library.root, library.add_cpath, library.library
M.provider = config.provider           -- setup's provider, else the registry's default
M.tick = jobs.tick                     -- one step of every driver (the timer schedules it)
M.render, M.open_report = report.render, report.open_report
M.research, M.wait = jobs.research, jobs.wait
M.respond = respond.respond
M.list, M.wait_at_cursor = list.list, list.wait_at_cursor -- the provider's list (a buffer)
M.pick = picker.list                   -- the journal's tasks in vim.ui.select
M.open, M.export = open.open, open.export
M.reattach = require("deepresearch.nvim.reattach").reattach
M.short, M.resolve_id, M.complete_ids = history.short, history.resolve, history.complete
M.report_buffer = report.buffer_of     -- the report buffer of a task id, if any
M.messages = screen.messages           -- the full text of recent messages (cut on screen)
M.secrets = secrets                    -- secrets.runs: how many key commands ran (specs)
M.status, M.jobs, M.close = jobs.status, jobs.jobs, jobs.close
M.command_research, M.create_commands = commands.command_research, commands.create_commands

--- Configures the plugin; see docs/neovim.md for every option. Closes the current clients.
-- With reattach (the default), the first setup of a session waits again on the journal's
-- unfinished tasks from Neovim and announces the finished ones not seen yet.
function M.setup(opts)
  vim.validate({ opts = { opts, "table", true } })
  opts = opts or {}
  config.check(opts)
  M.close()
  secrets.clear()
  config.apply(opts)
  if config.values.reattach and not M._state.reattached then
    M._state.reattached = true
    M.reattach()
  end
  return M
end

-- The last User event (Neovim 0.7 cannot pass `data` to autocmds): { event =, data = }.
setmetatable(M, { __index = function(_, k)
  if k == "last_event" then return events.last end
end })

return M

-- The editor session's state, one table the nvim/ modules share (require("deepresearch.nvim")
-- ._state). Read its fields through the table each time: close() replaces some of them.
return {
  jobs = {},      -- key -> job; a job is one brief or id being created and waited on
  order = {},     -- keys in start order
  seq = 0,
  clients = {},   -- provider name -> client
  drivers = {},   -- provider name -> driver (a poller by default)
  asks = {},      -- jobs whose checkpoint waits for a prompt, first in first out
  asking = nil,   -- the job whose prompt is open
  listing = nil,  -- the task list buffer's rows: { provider, ids = { [line] = id } }
  timer = nil,
  scheduled = false,
  stepping = false,      -- a step of the drivers is running (never re-entered)
  ask_scheduled = false, -- a checkpoint prompt waits for the main loop
  journal = nil,         -- the journal (nvim/history.lua); false: none
}

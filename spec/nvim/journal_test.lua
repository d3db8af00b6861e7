-- What keeps the editor's loop free on the curl transport (issue 17 items 2 and 9): the journal
-- without the C core makes its directory and file through vim.loop (os.execute forked the whole
-- editor), the journal's ids are read in the background a slice per turn of the loop, and the
-- curl helper (with the curl processes it starts) runs at a lower priority than the editor.
-- luacheck: globals vim
return function(t)
  local uv = vim.loop
  local dir = vim.fn.tempname()
  local path = dir .. "/a/b/journal.jsonl"

  -- The journal module as it loads without the core (the curl transport has no mkdir_private).
  local saved_core, saved_journal = package.loaded["deepresearch.core"],
    package.loaded["deepresearch.journal"]
  package.loaded["deepresearch.core"] = { transport = "curl" }
  package.loaded["deepresearch.journal"] = nil
  local journal = require "deepresearch.journal"
  local execute, forks = os.execute, 0
  os.execute = function(...) forks = forks + 1 return execute(...) end -- luacheck: ignore
  local ok, j = pcall(journal.open, { path = path })
  local wrote = ok and j and j:begin({ provider = "extruct", brief = "b", source = "nvim" })
  os.execute = execute -- luacheck: ignore
  package.loaded["deepresearch.core"], package.loaded["deepresearch.journal"] =
    saved_core, saved_journal
  local dmode = (uv.fs_stat(dir .. "/a/b") or {}).mode or 0
  local fmode = (uv.fs_stat(path) or {}).mode or 0
  t.ok(ok and j and wrote and forks == 0,
    "without the core, the journal makes its directory and file with no os.execute",
    vim.inspect({ ok = ok, wrote = wrote, forks = forks }))
  t.ok(dmode % 512 == 448 and fmode % 512 == 384,
    "its new directories are 0700 and its file 0600",
    string.format("%o %o", dmode % 512, fmode % 512))

  -- Background read of the journal's ids: nothing read in the calling turn, all of them later.
  local lines = {}
  for i = 1, 1000 do
    lines[#lines + 1] = string.format('{"ev":"begin","ref":"r%d","provider":"p%d","t":1}', i, i % 3)
    lines[#lines + 1] = string.format('{"ev":"created","ref":"r%d","id":"id-%06d","t":1}', i, i)
  end
  local f = io.open(path, "wb")
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local history = require "deepresearch.nvim.history"
  local state = require "deepresearch.nvim.state"
  local saved_ids = state.journal_ids
  state.journal_ids = nil
  history.prime(path)
  local in_turn = state.journal_ids == nil and state.priming == path
  local short_now = history.short("id-000001")
  local read = vim.wait(10000, function() return not state.priming end, 5)
  local ids = state.journal_ids or {}
  local n = 0
  for _ in pairs(ids) do n = n + 1 end
  t.ok(in_turn and short_now == "id-00000", "priming reads nothing in the calling turn; " ..
    "short ids do not wait for it", tostring(short_now))
  t.ok(read and n == 1000 and ids["id-000002"] == "p2",
    "then every id of the journal is known, with its provider", tostring(n))
  t.is(history.short("id-000001"), "id-000001", "short ids then stay unique over the journal")
  state.journal_ids = saved_ids

  -- The curl helper runs niced (its curl processes inherit it).
  local spawn = require "deepresearch.nvim.transport_spawn"
  local was_running = spawn.helper_pid() ~= nil
  spawn.warm()
  local pid = spawn.helper_pid()
  local prio = pid and vim.wait(5000, function()
    local p = uv.os_getpriority(pid)
    return p ~= nil and p >= 10
  end, 10)
  t.ok(prio, "the curl helper runs at nice 10 or more, below the editor (" ..
    tostring(pid and uv.os_getpriority(pid)) .. " vs " ..
    tostring(uv.os_getpriority(uv.os_getpid())) .. ")")
  if not was_running then spawn.stop() end
  vim.fn.delete(dir, "rf")
end

-- A provider nobody wrote editor code for (issue 14): registered as a descriptor only, it runs
-- through :DeepResearch provider=acme with its own flags, lists with its own columns, and its
-- checkpoint is asked and answered. A scripted driver (setup{ driver = fn }) stands for the
-- network, so every request the editor makes is seen here.
-- luacheck: globals vim
local function has(s, needle) return type(s) == "string" and s:find(needle, 1, true) ~= nil end

local function acme()
  return {
    name = "acme", base_url = "http://127.0.0.1:9", base_env = "ACME_BASE_URL",
    token_env = "ACME_API_KEY", token_option = "api_key", auth_header = "X-Acme-Key",
    auth_prefix = "", parse_error = function() return {} end,
    kinds = { research = {
      path = "/v2/jobs", id_field = "ref", label = "job", failure_field = "why",
      states = { pending = "queued", working = "running", asking = "input_required",
        finished = "done", broken = "failed" },
      progress = { "status", "pct" },
    } },
    module = "deepresearch.providers.acme_none", limits = { brief = 777 }, operations = {},
    recovery = "none", list_paging = "limit",
    report = { text = "answer", citations = "links", citation_kind = "list" },
    cost = { source = "returned", field = "price" },
    cli = {
      name = "Acme",
      flags = { tags = "Acme tasks take --tags a,b", speed = "Acme tasks take --speed slow|fast" },
      describe = function(task)
        return { id = task.ref, state = tostring(task.status), parts = { "pct " ..
          tostring(task.pct) } }
      end,
      columns = { { "REF", "ref" }, { "STATE", "status" }, { "TOPIC", "meta.topic", "words" } },
      create = function(client, text, opts)
        return client:create{ topic = text, tags = opts.tags, speed = opts.speed }
      end,
      list = function(client, opts) return client:list{ newest = opts.limit } end,
      summary = function() return {} end,
    },
    worker = {
      id_field = "ref", params = function() return {} end, validate = function() return "" end,
      matches = function() return false end,
      progress = function(task) return { task_status = task.status, agents = task.pct } end,
    },
  }
end

-- The network, scripted: a create answers a task; its first wait ends at a checkpoint, the
-- next one done (per task); respond acknowledges. Every call is recorded.
local function scripted_driver(log)
  return function(_, _, provider)
    log.provider = provider
    local made, waits = 0, {}
    return {
      create = function(_, params, cb)
        log.create = params
        made = made + 1
        cb({ ref = "acme-" .. made, status = "pending", meta = { topic = params.topic } })
      end,
      wait = function(_, id, opts, cb)
        waits[id] = (waits[id] or 0) + 1
        local task = { ref = id, status = "asking", pct = 50 }
        -- log.stale[id]: the poll after the answer still shows the answered checkpoint.
        if waits[id] == 1 or (waits[id] == 2 and log.stale[id]) then
          opts.on_progress(task)
          return cb(nil, { code = "input_required", task = task, message = "input needed",
            interaction = { interaction_id = "i-1", type = "plan_review",
              data = { plan = "1. Read\n2. Write" } } })
        end
        cb({ ref = id, status = "finished", pct = 100, answer = "Done." })
      end,
      list = function(_, query, cb)
        log.list = query
        cb({ { ref = "acme-1", status = "finished", meta = { topic = "ports of the north sea" } } })
      end,
      add = function(_, name, cb, ...)
        log.add = { name = name, n = select("#", ...), ... }
        cb({ success = true })
      end,
      step = function() return 0 end,
      pending = function() return 0 end,
      close = function() end,
    }
  end
end

return function(t)
  local providers = require "deepresearch.providers"
  local nv = require "deepresearch.nvim"
  providers.register(acme())
  local log, notes = { stale = {} }, {}
  local saved = vim.ui.select
  local asked, asks = nil, 0
  vim.ui.select = function(items, opts, cb)
    asked, asks = opts.prompt, asks + 1
    cb(items[1]) -- approve as proposed
  end
  local ok, err = pcall(function()
    nv.setup{ open = "tab", driver = scripted_driver(log),
      providers = { acme = { speed = "fast" } },
      interval = 0.05, tick_ms = 20,
      notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end }
    vim.cmd("DeepResearch provider=acme tags=ports tags=tides Research the ports of the north sea")
    local job = nv.jobs()[#nv.jobs()]
    vim.wait(5000, function() return job.announced or job.state == "failed" end, 10)
    t.ok(log.provider == "acme" and log.create and log.create.topic ==
      "Research the ports of the north sea" and log.create.speed == "fast" and
      vim.deep_equal(log.create.tags, { "ports", "tides" }),
      "a third provider: :DeepResearch provider=acme sends what its cli.create makes " ..
        "(a repeated flag a list, setup's per-provider flag)", vim.inspect(log.create))
    t.ok(has(asked, "review the research plan") and has(asked, "2. Write") and log.add and
      log.add.name == "respond" and log.add[1] == "acme-1" and log.add[3].approved == true,
      "its checkpoint (state input_required from its states table) is asked and answered",
      vim.inspect(log.add))
    t.ok(job.state == "done" and job.id == "acme-1" and (nv.report_buffer("acme-1") or -1) > 0,
      "then polled to done; the report buffer is named by its id field", vim.inspect(job))
    vim.cmd("tabonly")

    vim.cmd("DeepResearchList! provider=acme")
    local lines = vim.api.nvim_buf_get_lines(vim.fn.bufnr("deepresearch://tasks"), 0, -1, false)
    t.ok(log.list and log.list.newest == 50 and lines[1]:match("^REF%s+STATE%s+TOPIC$") and
      lines[2]:match("^acme%-1%s+finished%s+ports of the north sea"),
      "its list: the query its cli.list makes, its columns", table.concat(lines, "\n"))
    vim.cmd("tabonly")

    -- In Insert mode the prompt waits: it must not take keys meant for the text.
    asked = nil
    local real_mode = vim.fn.mode
    vim.fn.mode = function() return "i" end
    nv.research("Research the ports of the north sea", { provider = "acme" })
    local later = nv.jobs()[#nv.jobs()]
    -- (the create goes out once its journal line is written: wait for the checkpoint itself)
    vim.wait(5000, function() return later.state == "input_required" end, 10)
    vim.wait(300, function() return asked ~= nil end, 10)
    local waited = asked == nil and later.state == "input_required"
    vim.fn.mode = real_mode
    vim.wait(5000, function() return later.state == "done" end, 10)
    t.ok(waited and asked ~= nil and later.state == "done",
      "a checkpoint that arrives in Insert mode is asked once the editor is back in Normal mode",
      tostring(waited) .. " " .. later.state)
    vim.cmd("tabonly")

    -- A poll right after the answer may still show the answered checkpoint: polled again
    -- later, never asked twice.
    asks = 0
    log.stale["acme-3"] = true
    nv.research("Research the ports of the north sea", { provider = "acme" })
    local stale = nv.jobs()[#nv.jobs()]
    vim.wait(5000, function() return stale.state == "done" end, 10)
    t.ok(stale.id == "acme-3" and stale.state == "done" and asks == 1,
      "an answered checkpoint still shown by a poll is waited out, not asked again",
      tostring(stale.id) .. " " .. stale.state .. " asked " .. asks)
    vim.cmd("tabonly")

    notes = {}
    vim.cmd("DeepResearch provider=acme depth=high Research the ports of the north sea")
    local refused = nv.jobs()[#nv.jobs()]
    t.ok(refused.state == "failed" and notes[#notes] and has(notes[#notes].msg,
      "Acme tasks take no 'depth'"), "a flag it does not take is refused, with the hint of " ..
      "the provider that does", vim.inspect(notes))
  end)
  vim.ui.select = saved
  nv.close()
  providers.unregister("acme")
  if not ok then error(err, 0) end
end

-- Acceptance (issue 18 item 13; "server data never makes a helper raise"): deepresearch-worker
-- status reads what is in Redis, which any program may have written. A lease value that is not
-- JSON, or whose fields are objects, and a job hash without a status print a report; nothing
-- raises (a lease's "stopped" object raised "attempt to concatenate a table value").
local status = require "deepresearch.worker.status"

local function store(workers, jobs)
  return { status_report = function()
    return { queue = "q", queued = 0, jobs = jobs or {}, workers = workers, dead = 0, input = 0 }
  end }
end

describe("deepresearch-worker status with data of the wrong shape", function()
  it("leases that are not JSON or hold objects, a job without a status", function()
    local r = assert(status.collect(store({
      { worker = "evil", value = "not json {", ttl = 5, held = 0 },
      { worker = "ghost", value = '{"pid":"x","host":5,"started":[],"stopped":{}}', ttl = 5,
        held = 1 },
      { worker = "gone", ttl = nil, held = 0 },
    }, { [""] = 1, done = 2 })))
    local text = status.text(r)
    assert.truthy(text:find("  evil  lease 5.0s  holds 0\n", 1, true), text)
    assert.truthy(text:find("  ghost  lease 5.0s  holds 1\n", 1, true), text)
    assert.truthy(text:find("  gone  lease expired  holds 0\n", 1, true), text)
    assert.truthy(text:find("jobs: (no status) 1, done 2\n", 1, true), text)
    assert.is_nil(r.workers[2].stopped)
    assert.is_nil(r.workers[2].started)
    assert.are.equal("x", r.workers[2].pid)
  end)
end)

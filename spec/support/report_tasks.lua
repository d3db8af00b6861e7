-- Finished tasks of all six kinds (Extruct research and search, Valyu, OpenAI, Perplexity,
-- Gemini) made on the simulator, for the link-check and HTML report specs (issue 19 parts 5-6).
-- With pages = true the simulator serves every source itself (/_sim/pages/..., some dead).
local dr = require "deepresearch"
local env = require "support.env"

local M = {}

M.KINDS = { "extruct", "search", "valyu", "openai", "perplexity", "gemini" }

local KEYS = { extruct = "test-token", search = "test-token", valyu = "valyu-key",
  openai = "openai-key", perplexity = "pplx-key", gemini = "gemini-key" }

M.QUERY = "B2B logistics software vendors in Germany with 50-500 employees"
M.CRITERIA = {
  { key = "logistics", name = "Logistics focus",
    criterion = "Sells software to logistics companies" },
  { key = "germany", name = "German HQ", criterion = "Headquartered in Germany" },
}

--- Resets s (pages on when opts.pages) and returns a finished task of kind, and its client.
-- A search comes back as its results page: the task's fields plus .results (the rows).
-- opts.create: more create fields (output_schema, ...).
function M.finished(s, kind, opts)
  opts = opts or {}
  s:reset()
  if opts.pages then s:config{ pages = { base = s.url, mix = opts.mix } } end
  local provider = kind == "search" and "extruct" or kind
  local client = env.client(s, { provider = provider, token = KEYS[kind], base_delay = 0.01 })
  if kind == "search" then
    local t = dr.assert(client:discovery_create{ query = M.QUERY, desired_num_results = 6,
      criteria = M.CRITERIA })
    dr.assert(client:discovery_wait(t.id))
    return dr.assert(client:discovery_results(t.id, { offset = 0, limit = 100 })), client
  end
  local req = { brief = env.BRIEF }
  for k, v in pairs(opts.create or {}) do req[k] = v end
  local t = dr.assert(client:create(req))
  return dr.assert(client:wait(dr.result(t).id)), client
end

return M

-- Text limits of the providers' create requests, in characters (CONTRACT.md): the one place
-- they are written. Pure data, no core: the brief linter (deepresearch.brief), the CLI, the
-- worker and the provider modules all read it.
local M = {
  extruct = { brief = 20000 },
  discovery = { brief = 20000 }, -- Deep Search's query
  valyu = { brief = 25000, strategy_and_format = 15000 }, -- brief: the query
  -- Gemini documents no input limit; its agents' context (about 1M tokens) bounds it.
  gemini = { brief = 1000000 },
  -- OpenAI and Perplexity's Agent API document no input limit either (a model's context bounds
  -- it; Perplexity's body may reach 32 MiB): ours keeps a pasted file from being sent.
  openai = { brief = 200000 },
  perplexity = { brief = 200000 },
}

-- The provider a client talks to unless told otherwise: its limit is a brief's default.
M.DEFAULT = "extruct"

--- The longest brief a provider's create accepts (the default provider's when name is nil).
function M.brief(name)
  local t = M[name or M.DEFAULT]
  return type(t) == "table" and t.brief or M[M.DEFAULT].brief
end

return M

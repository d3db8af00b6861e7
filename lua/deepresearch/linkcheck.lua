-- report.check_links(task, opts) (issue 19 part 5): every source URL of a finished task checked
-- at once on the C core's multi engine. HEAD first; a ranged GET (Range: bytes=0-0, body capped)
-- when HEAD is refused (405, 501, or 403 to HEAD only). These are third-party pages, not the API:
-- redirects are followed here (at most 5), on an engine of their own, and nothing that could be a
-- credential is ever sent (no token, no auth header, no cookie, no netrc; a URL with user:pass@
-- is not requested at all). Each URL is requested once, however many markers cite it.
-- What a report cites and what an answer means is report/links.lua (pure); this module sends.
-- Loading it completes dr.report: report.check_links, and the provider and cost that
-- report.html reads through dr.result (report/ itself never reaches the core or the providers).
local core = require "deepresearch.core"
local options = require "deepresearch.base.options"
local links = require "deepresearch.report.links"
local report = require "deepresearch.report"

local M = {}

local FIELDS = { concurrency = "number", timeout = "number", user_agent = "string" }

local function check_opts(opts)
  options.table_arg("check_links", 2, opts, true, 3)
  opts = opts or {}
  options.check("check_links", opts, FIELDS, 3)
  local n, t = opts.concurrency or 16, opts.timeout or 10
  if n ~= n or n < 1 or n > 256 or n % 1 ~= 0 then
    error("bad option 'concurrency' to 'check_links' (an integer from 1 to 256 expected)", 3)
  end
  if not (t > 0 and t <= 600) then
    error("bad option 'timeout' to 'check_links' (seconds, more than 0 and at most 600)", 3)
  end
  if opts.user_agent and opts.user_agent:find("%c") then
    error("bad option 'user_agent' to 'check_links' (no control characters)", 3)
  end
  return math.floor(n), t, opts.user_agent or "deepresearch-linkcheck/" .. tostring(core.version)
end

--- Checks every source URL of task (any provider's finished task or dr.result, or a Deep
-- Search task with its rows as .results). opts: concurrency (16), timeout (10 s per request),
-- user_agent. Returns { links = { {url, n, cited, status, http_status, final_url, reason,
-- method} ... } (source order), by_url, missing = {n...}, uncited = {{n, url, title}...},
-- checked, requests, counts = {status = count} }; nil, err when the task has no report.
function M.check(task, opts)
  options.table_arg("check_links", 1, task, false, 2)
  local concurrency, timeout, ua = check_opts(opts)
  local list, missing, uncited = links.targets(task)
  if not list then return nil, missing end
  local out = { links = list, by_url = {}, missing = missing, uncited = uncited, checked = 0,
    requests = 0, counts = {} }
  local queue = {}
  for _, t in ipairs(list) do
    out.by_url[t.url] = t
    local why = links.refusal(t.url)
    if why then t.status, t.reason = "unreachable", why else queue[#queue + 1] = t end
  end
  if #queue > 0 then
    local client = core.new_client({ timeout = timeout, connect_timeout = math.min(timeout, 10),
      follow_redirects = links.MAX_REDIRECTS, truncate_body = true,
      max_response_size = links.BODY_CAP,
      max_connections = concurrency, user_agent = ua })
    local poller = core.new_poller(client, concurrency)
    local by_id, flying, next_i = {}, 0, 1
    local function send(t, method)
      t.method = method
      by_id[poller:add(links.request(t, method, timeout, ua))] = t
      flying, out.requests = flying + 1, out.requests + 1
    end
    local ok, err = pcall(function()
      while next_i <= #queue or flying > 0 do
        while flying < concurrency and next_i <= #queue do
          send(queue[next_i], "HEAD")
          next_i = next_i + 1
        end
        for _, res in ipairs(poller:step(100)) do
          local t = by_id[res.id]
          by_id[res.id], flying = nil, flying - 1
          if t and links.settle(t, res) then send(t, "GET") end
        end
      end
    end)
    poller:close()
    client:close()
    if not ok then error(err, 0) end
  end
  for _, t in ipairs(list) do
    if t.method then out.checked = out.checked + 1 end
    out.counts[t.status] = (out.counts[t.status] or 0) + 1
  end
  return out
end

report.check_links = M.check
require("deepresearch.report.html").result_of = require "deepresearch.result"

return M

-- Bytes of a completed Valyu task's assets (GET /v1/deepresearch/tasks/:id/assets/:asset_id):
-- the PDF report, chart images and deliverables. Every file follows a documented rule
-- (docs/simulator_valyu.md "Assets") so a spec can rebuild the exact bytes it should receive:
--   report.pdf  = "%PDF-1.7\n%\xE2\xE3\xCF\xD3\n% simulated Valyu report <task id>\n"
--                 .. filler .. "\n%%EOF\n", `asset_size` bytes in all (default 4096)
--   <image_id>  = "\x89PNG\r\n\x1a\n" .. "simulated Valyu image <image_id>\n" .. filler,
--                 `image_size` bytes in all (default 1024)
-- filler byte k (k = 0, 1, ...) is string.char(k % 256): binary, NUL bytes included, so a client
-- that treats the body as a C string or text is caught.
local json = require("simulator.valyu_json")

local M = {}

local ALL_BYTES
do
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  ALL_BYTES = table.concat(t)
end

--- n filler bytes: 0, 1, ..., 255, 0, 1, ...
function M.filler(n)
  if n <= 0 then return "" end
  return string.rep(ALL_BYTES, math.floor(n / 256)) .. ALL_BYTES:sub(1, n % 256)
end

local function sized(size, head, tail)
  size = math.floor(tonumber(size) or 0)
  return head .. M.filler(size - #head - #tail) .. tail
end

function M.pdf(task_id, size)
  return sized(size or 4096,
    "%PDF-1.7\n%\226\227\207\211\n% simulated Valyu report " .. task_id .. "\n", "\n%%EOF\n")
end

function M.png(image_id, size)
  return sized(size or 1024, "\137PNG\r\n\26\n" .. "simulated Valyu image " .. image_id .. "\n", "")
end

--- Chart image objects (contract B.3 Image) for a completed task; `n` of them.
function M.images(task, n, created_at)
  local out = json.array()
  local sources = task.sources or {}
  for i = 1, n do
    local id = "img_" .. task.rng:hex(16)
    local points = json.array()
    for k, s in ipairs(sources) do points[k] = { x = k, y = s.word_count or k } end
    out[i] = {
      image_id = id, image_type = "chart", chart_type = "bar",
      title = string.format("Chart %d: source length for %s", i, task.content.topic),
      description = "Words per cited source", x_axis_label = "Source", y_axis_label = "Words",
      data_series = json.array({ { name = "Words", data = points } }),
      image_url = string.format("%s/assets/%s?token=%s", task.url, id, task.asset_token),
      created_at = math.floor(created_at),
    }
  end
  return out
end

local function deliverable_bytes(task, d, cfg)
  if d.type == "csv" then
    local s = task.sources[1]
    return "source,url\n" .. s.title:gsub(",", " ") .. "," .. s.url .. "\n", "text/csv"
  elseif d.type == "pdf" then
    return M.pdf(d.id, cfg.asset_size), "application/pdf"
  end
  return "simulated " .. d.type .. " deliverable\n", "application/octet-stream"
end

--- bytes, content type of one asset of a completed task, or nil when it has no such asset.
function M.get(task, asset_id, cfg)
  if task.status ~= "completed" then return nil end
  if asset_id == "report.pdf" and task.pdf then
    return M.pdf(task.id, cfg.asset_size), "application/pdf"
  end
  for _, img in ipairs(task.images or {}) do
    if img.image_id == asset_id then return M.png(img.image_id, cfg.image_size), "image/png" end
  end
  for _, d in ipairs(task.deliverables or {}) do
    if d.id == asset_id and d.status == "completed" then return deliverable_bytes(task, d, cfg) end
  end
end

--- {asset_id = {bytes, content_type}} for /_sim/state (nil unless completed).
function M.list(task, cfg)
  if task.status ~= "completed" then return nil end
  local ids = {}
  if task.pdf then ids[#ids + 1] = "report.pdf" end
  for _, img in ipairs(task.images or {}) do ids[#ids + 1] = img.image_id end
  for _, d in ipairs(task.deliverables or {}) do
    if d.status == "completed" then ids[#ids + 1] = d.id end
  end
  local out = {}
  for _, id in ipairs(ids) do
    local bytes, ctype = M.get(task, id, cfg)
    out[id] = { bytes = #bytes, content_type = ctype }
  end
  return out
end

return M

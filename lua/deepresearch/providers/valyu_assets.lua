-- Valyu task assets and sharing: download (the PDF, images, deliverables) and set_public.
-- A download is streamed to a file by the core as it arrives (never held in memory), written
-- to path .. ".part" and renamed once complete, so that a failure leaves no file behind.
local errors = require "deepresearch.base.errors"
local http = require "deepresearch.runtime.http"
local json = require "deepresearch.base.json"
local validate = require "deepresearch.base.validate"
local extruct = require "deepresearch.providers.extruct"

local data = http.state
local M = { ops = {} }
local ops = M.ops

M.accepts = {
  download = { id = true, arg2 = "string" }, -- then the path (checked by the operation)
  set_public = { id = true, arg2 = "boolean" },
}

local function task_path(self, id)
  return data(self).provider.kinds.research.path .. "/" .. http.escape(id)
end

-- "scheme://host[:port]" in lower case, and the rest of the URL.
local function split_url(url)
  local origin, rest = url:match("^(%a[%w+.-]*://[^/?#]+)(.*)$")
  return origin and origin:lower(), rest
end

-- A URL fit for a message: no query (a signed URL's token is a credential).
local function shown(url)
  return http.redact_url((url:gsub("[?#].*$", "")))
end

-- How a full asset URL is fetched: with the API key on the client's own host only; elsewhere
-- without the key, over https, when the API itself gave the URL (from_api: the task's pdf_url,
-- which Valyu serves from its storage host) or when it is signed (its query is the credential).
local function url_request(state, url, from_api)
  local origin, rest = split_url(url)
  if origin == nil or url:find("%c") then
    return nil, errors.invalid("asset URL is not an http(s) URL: " .. shown(url),
      { field = "asset" })
  end
  if origin == split_url(state.base_url) then
    return { url = url, path = (rest:gsub("[?#].*$", "")) }
  end
  if origin:find("^https://") and (from_api or rest:find("?", 1, true)) then
    return { url = url, path = shown(url), anonymous = true }
  end
  return nil, errors.invalid("asset URL " .. shown(url) .. " is not on " ..
    http.redact_url(state.base_url) .. ": the API key is sent to the API's own host only, " ..
    "and another host needs a signed https URL", { field = "asset" })
end

-- The request that fetches asset of task id: "pdf" (the task's pdf_url), a full URL, or an
-- asset id (an image or a deliverable) under the task's assets route.
local function asset_request(runtime, self, id, asset)
  local state = data(self)
  if asset == "pdf" then
    local task, err = extruct.call(runtime, state, { method = "GET",
      path = task_path(self, id) .. state.provider.kinds.research.status_suffix,
      effect = "read", expect = "object" })
    if not task then return nil, err end
    if type(task.pdf_url) ~= "string" or task.pdf_url == "" then
      return nil, errors.new("not_found", "task " .. id .. " has no PDF (status " ..
        tostring(task.status) .. "; a PDF needs output_formats = { \"markdown\", \"pdf\" } " ..
        "and a completed task)", { task = task })
    end
    return url_request(state, task.pdf_url, true)
  end
  if asset:find("^%a[%w+.-]*://") then return url_request(state, asset) end
  return { path = task_path(self, id) .. "/assets/" .. http.escape(asset) }
end

-- Runs the download; an error raised while it is in flight (Ctrl-C) first cancels the
-- transfer, which removes its partial file, then goes on unwinding.
local function fetch(runtime, state, req)
  local ok, body, err, res = pcall(http.request, runtime, state, req)
  if not ok then
    http.abandon_interrupted(state)
    error(body, 0)
  end
  return body, err, res
end

--- client:download(id, asset, path): streams the asset to path. Returns { path, bytes,
-- content_type } or nil, err; on any failure path is left as it was and no partial file stays.
function ops.download(runtime, self, id, asset, path)
  validate.type("download", 3, path, "string")
  local err
  id, err = validate.id("download", id)
  if not id then return nil, err end
  if asset == "" or asset:find("%c") then
    return nil, errors.invalid("asset must be \"pdf\", an asset id or an asset URL",
      { field = "asset" })
  end
  if path == "" or path:find("%z") then
    return nil, errors.invalid("path must be a non-empty file name", { field = "path" })
  end
  local req
  req, err = asset_request(runtime, self, id, asset)
  if not req then return nil, err end
  req.method, req.effect, req.expect = "GET", "read", "any"
  req.accept, req.file = "*/*", path
  local _, res
  _, err, res = fetch(runtime, data(self), req)
  if err then return nil, err end
  if not res or not res.file then -- a 2xx always goes to the file; this is defensive
    return nil, errors.new("invalid_response", "the download's answer was not written to " .. path)
  end
  return { path = path, bytes = res.bytes, content_type = http.headers(res)["content-type"] }
end

--- client:set_public(id, public): makes the task's report public (a share link) or private.
function ops.set_public(runtime, self, id, public)
  local err
  id, err = validate.id("set_public", id)
  if not id then return nil, err end
  return extruct.call(runtime, data(self), { method = "POST",
    path = task_path(self, id) .. "/public", body = json.encode({ public = public }),
    effect = "mutate", expect = "object" })
end

M.methods = extruct.blocking_methods(ops, M.accepts)

return M

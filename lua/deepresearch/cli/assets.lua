-- Asset commands: download a task's asset to a file, make a report public or private; and the
-- `report ID --pdf FILE` path of the report command. For a provider whose client has them
-- (descriptor.operations.download, .set_public).
local M = {}

local DOWNLOAD = { operation = "download" }
local PUBLIC = { operation = "set_public" }

local function saved(ctx, r)
  ctx:note("deepresearch: wrote %s (%d bytes%s)", r.path, r.bytes or 0,
    r.content_type and (", " .. r.content_type) or "")
  ctx.out:write(r.path, "\n")
  return 0
end

local function need_operation(ctx, op)
  local d = require("deepresearch.providers").get(ctx:provider())
  if not (d and d.operations and d.operations[op]) then
    return ctx:usage(string.format("'%s' is not available for --provider %s",
      op == "download" and "--pdf" or op, ctx:provider()))
  end
  return nil
end

--- `report ID --pdf FILE`: the task's PDF report, saved to FILE (research.lua's report calls
-- this when --pdf is given).
function M.report_pdf(ctx, opts, words)
  local refused = need_operation(ctx, "download")
  if refused then return refused end
  local id, client = ctx:id_and_client(words)
  if not id then return client end
  local r, err = client:download(id, "pdf", opts.pdf)
  if not r then return ctx:fail(err) end
  return saved(ctx, r)
end

local function download(ctx, opts, words)
  if #words ~= 2 then
    return ctx:usage("download takes a task ID and an ASSET (pdf, an asset id or its URL)")
  end
  if not opts.output then return ctx:usage("download needs -o FILE") end
  local client, code = ctx:client()
  if not client then return code end
  local r, err = client:download(words[1], words[2], opts.output)
  if not r then return ctx:fail(err) end
  return saved(ctx, r)
end

local function set_public(ctx, _, words)
  local on = ({ on = true, ["true"] = true, off = false, ["false"] = false })[words[2] or ""]
  if #words ~= 2 or on == nil then return ctx:usage("public takes a task ID and on or off") end
  local client, code = ctx:client()
  if not client then return code end
  local ack, err = client:set_public(words[1], on)
  if not ack then return ctx:fail(err) end
  ctx.out:write(words[1], on and " is public\n" or " is private\n")
  return 0
end

M.commands = {
  download = {
    usage = "download ID ASSET -o FILE", run = download, requires = DOWNLOAD,
    summary = "save a task's asset (pdf, an image or deliverable id, or its URL) to FILE",
    options = { { "output", short = "o", value = "FILE",
      doc = "the file to write (written whole or not at all)" } },
    description =
      "ASSET is `pdf` (the report as PDF), an image_id or deliverable id of the task, or an\n" ..
      "asset URL the task holds. The file is streamed to FILE.part and renamed when complete;\n" ..
      "on any failure FILE is left as it was. Prints FILE on stdout.",
    examples = "  deepresearch --provider valyu download ID pdf -o report.pdf\n" ..
      "  deepresearch --provider valyu report ID --pdf report.pdf",
  },
  public = {
    usage = "public ID on|off", run = set_public, requires = PUBLIC,
    summary = "make a task's report public (shareable) or private again",
    options = {},
  },
}

return M

-- `deepresearch report ID` output (issue 19 parts 5 and 6): --format md|html|json, -o FILE,
-- --check-links (every cited URL checked; dead ones marked in the report, counts on stderr).
local output = require "deepresearch.cli.output"

local M = {}

M.OPTIONS = {
  { "format", value = "FORMAT", choices = { "md", "html", "json" },
    doc = "md (the default: markdown, --style applies), html (one self-contained page) or " ..
      "json (the task; with --check-links, {task, links})" },
  { "output", short = "o", value = "FILE", doc = "write the report to FILE instead of stdout" },
  { "check-links", doc = "check every cited URL (HEAD, redirects followed, no credentials " ..
    "sent) and mark dead links in the report; a summary goes to stderr" },
}

-- The check as JSON wants it: the list, not the by-URL index (the same entries twice).
local function links_json(checked)
  return { links = checked.links, missing = checked.missing, uncited = checked.uncited,
    checked = checked.checked, requests = checked.requests, counts = checked.counts }
end

local function summary(checked)
  local c, parts = checked.counts, {}
  for _, k in ipairs({ "ok", "redirected", "not_found", "gone", "unreachable", "timeout" }) do
    if c[k] then parts[#parts + 1] = string.format("%d %s", c[k], k:gsub("_", " ")) end
  end
  local line = string.format("deepresearch: links: %d checked%s", checked.checked,
    #parts > 0 and (": " .. table.concat(parts, ", ")) or "")
  if #checked.missing > 0 then
    line = line .. string.format("; %d marker(s) cite no source", #checked.missing)
  end
  return line
end

-- Writes text to path whole: a temporary file renamed over it, so a reader never sees half.
local function write_file(path, text)
  local tmp = path .. ".part"
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  f:close()
  if not ok then
    os.remove(tmp)
    return nil, werr
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- path made absolute against the working directory ($PWD): the journal outlives the cwd.
function M.absolute(path, cwd)
  if path:sub(1, 1) == "/" then return path end
  cwd = cwd or os.getenv("PWD")
  if not cwd or cwd == "" then return path end
  return (cwd:gsub("/+$", "")) .. "/" .. path:gsub("^%./", "")
end

--- Prints (or writes) a finished task's report as opts ask; plain md without any of the new
-- flags goes to fallback (the command's own printer). Returns the exit code.
function M.print(ctx, ad, task, opts, fallback)
  local fmt = opts.format
  if opts.json and fmt and fmt ~= "json" then
    return ctx:usage("--json and --format " .. fmt .. " ask for two outputs; pick one")
  end
  if opts.style and (fmt == "html" or fmt == "json" or opts.json) then
    return ctx:usage("--style is for --format md")
  end
  if opts.json then fmt = "json" end
  if not fmt and not opts.output and not opts.check_links then
    return fallback(ctx, ad, task, opts)
  end
  fmt = fmt or "md"
  local report = require("deepresearch").report
  local checked
  if opts.check_links then
    local err
    checked, err = report.check_links(task)
    if not checked then return ctx:fail(err) end
    ctx:note("%s", summary(checked))
  end
  local text, err
  if fmt == "json" then
    text = output.json(checked and { task = task, links = links_json(checked) } or task) .. "\n"
  elseif fmt == "html" then
    text, err = report.html(task, { links = checked })
  else
    text, err = report.render(task, { style = opts.style or "footnotes", links = checked })
  end
  if not text then return ctx:fail(err) end
  if text:sub(-1) ~= "\n" then text = text .. "\n" end
  if not opts.output or opts.output == "-" then
    ctx.out:write(text)
    return 0
  end
  local ok, why = write_file(opts.output, text)
  if not ok then
    ctx.err:write("deepresearch: cannot write ", opts.output, ": ", tostring(why), "\n")
    return 1
  end
  -- The journal's record says where the report went (`history` shows it), as run's -o does.
  require("deepresearch.cli.history").report_written(ctx, ad.id(task), M.absolute(opts.output))
  ctx:note("deepresearch: wrote %s (%s, %d bytes)", opts.output, fmt, #text)
  return 0
end

return M

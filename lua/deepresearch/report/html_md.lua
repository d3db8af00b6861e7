-- The markdown a report is written in, as HTML that cannot carry live markup: every byte of the
-- server's text is escaped before any tag of ours is added, links keep only http(s) and mailto
-- targets, and nothing here makes a browser fetch anything (no <img>, no <link>, no <script>).
-- Covers what the providers write: headings, paragraphs, lists, quotes, fenced code, pipe
-- tables, rules, **bold**, *italic*, `code`, [text](url). Citation groups arrive as placeholders
-- (CITE_OPEN k CITE_CLOSE, k the group's index) that `cite(k)` turns into markup afterwards.
local M = {}

M.CITE_OPEN, M.CITE_CLOSE = "\1", "\2"

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Text as HTML text or attribute value; control characters (but tab and newline) removed.
function M.escape(s)
  s = tostring(s == nil and "" or s)
  return (s:gsub("[%z\1-\8\11-\31\127]", ""):gsub("[&<>\"']", ESC))
end

-- The same, keeping the citation placeholders (\1 \2) the caller put in.
local function escape_keep(s)
  return (s:gsub("[%z\3-\8\11-\31\127]", ""):gsub("[&<>\"']", ESC))
end

--- Whether a URL may be a link target: http, https or mailto, and nothing that breaks out.
function M.safe_url(url)
  if type(url) ~= "string" or url:find("[%c%s<>\"'`]") then return false end
  local scheme = url:match("^(%a[%w+.%-]*):")
  scheme = scheme and scheme:lower()
  return scheme == "http" or scheme == "https" or scheme == "mailto"
end

-- Inline markdown on one block's text (already escaped). cite: k -> markup.
local function inline(text, cite)
  local codes = {}
  -- Code spans first: nothing inside them is markdown. Stashed as \3n\4 (no such byte survives
  -- escape()).
  text = text:gsub("`([^`\n]+)`", function(c)
    codes[#codes + 1] = "<code>" .. c .. "</code>"
    return "\3" .. #codes .. "\4"
  end)
  text = text:gsub("%[([^%]\n]+)%]%(([^%)%s]+)%)", function(label, url)
    -- The URL is escaped text now: undo the entity for the check, keep it escaped in the tag.
    local raw = url:gsub("&amp;", "&")
    if not M.safe_url(raw) then return label end
    return '<a href="' .. url .. '">' .. label .. "</a>"
  end)
  text = text:gsub("%*%*(.-)%*%*", "<strong>%1</strong>")
  text = text:gsub("__([^_\n]-)__", "<strong>%1</strong>")
  text = text:gsub("%*([^%*\n]+)%*", "<em>%1</em>")
  text = text:gsub("%f[%w_]_([^_\n]+)_%f[^%w_]", "<em>%1</em>")
  text = text:gsub("\3(%d+)\4", function(n) return codes[tonumber(n)] end)
  return (text:gsub(M.CITE_OPEN .. "(%d+)" .. M.CITE_CLOSE,
    function(k) return cite(tonumber(k)) end))
end

local function cells(line)
  local row = {}
  line = line:gsub("^%s*|", ""):gsub("|%s*$", "")
  for cell in (line .. "|"):gmatch("([^|]*)|") do
    row[#row + 1] = cell:gsub("^%s+", ""):gsub("%s+$", "")
  end
  return row
end

local function table_html(rows, cite)
  local out = { '<table class="md">' }
  for i, line in ipairs(rows) do
    if i ~= 2 then
      local tag = i == 1 and "th" or "td"
      local parts = {}
      for j, c in ipairs(cells(line)) do
        parts[j] = "<" .. tag .. ">" .. inline(escape_keep(c), cite) .. "</" .. tag .. ">"
      end
      out[#out + 1] = "<tr>" .. table.concat(parts) .. "</tr>"
    end
  end
  out[#out + 1] = "</table>"
  return table.concat(out, "\n")
end

--- Markdown text (with citation placeholders) to HTML. cite(k) gives group k's markup.
-- shift: added to heading levels (the page's own title is the <h1>).
function M.render(text, cite, shift)
  shift = shift or 0
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local out, para, list, i = {}, {}, nil, 1
  local function flush_para()
    if #para > 0 then
      out[#out + 1] = "<p>" .. inline(escape_keep(table.concat(para, "\n")), cite) .. "</p>"
      para = {}
    end
  end
  local function close_list()
    if list then out[#out + 1] = "</" .. list .. ">"; list = nil end
  end
  while i <= #lines do
    local line = lines[i]
    local fence = line:match("^%s*(```+)") or line:match("^%s*(~~~+)")
    if fence then
      flush_para(); close_list()
      local code = {}
      i = i + 1
      while i <= #lines and not lines[i]:match("^%s*" .. fence:gsub("%p", "%%%0")) do
        code[#code + 1] = lines[i]
        i = i + 1
      end
      -- Placeholders cannot be in code (no citation is read there); escape() drops stray ones.
      out[#out + 1] = "<pre><code>" .. M.escape(table.concat(code, "\n")) .. "</code></pre>"
    elseif line:match("^%s*$") then
      flush_para(); close_list()
    elseif line:match("^#+%s") and #line:match("^(#+)") <= 6 then
      flush_para(); close_list()
      local hashes, title = line:match("^(#+)%s+(.-)%s*#*%s*$")
      local level = math.min(6, #hashes + shift)
      out[#out + 1] = string.format("<h%d>%s</h%d>", level, inline(escape_keep(title), cite), level)
    elseif line:match("^%s*[-*_][-*_%s]*$") and select(2, line:gsub("[-*_]", "")) >= 3 then
      flush_para(); close_list()
      out[#out + 1] = "<hr>"
    elseif line:match("^%s*|") and lines[i + 1] and lines[i + 1]:match("^%s*|?%s*:?%-%-") then
      flush_para(); close_list()
      local rows = {}
      while i <= #lines and lines[i]:match("^%s*|") do
        rows[#rows + 1] = lines[i]
        i = i + 1
      end
      out[#out + 1] = table_html(rows, cite)
      i = i - 1
    elseif line:match("^%s*>") then
      flush_para(); close_list()
      local quote = {}
      while i <= #lines and lines[i]:match("^%s*>") do
        quote[#quote + 1] = lines[i]:gsub("^%s*>%s?", "")
        i = i + 1
      end
      i = i - 1
      out[#out + 1] = "<blockquote>" .. M.render(table.concat(quote, "\n"), cite, shift) ..
        "</blockquote>"
    elseif line:match("^%s*[-*+]%s+") or line:match("^%s*%d+[.)]%s+") then
      flush_para()
      local kind = line:match("^%s*[-*+]%s+") and "ul" or "ol"
      if list ~= kind then close_list(); out[#out + 1] = "<" .. kind .. ">"; list = kind end
      local item = line:gsub("^%s*[-*+]%s+", ""):gsub("^%s*%d+[.)]%s+", "")
      out[#out + 1] = "<li>" .. inline(escape_keep(item), cite) .. "</li>"
    elseif list and line:match("^%s%s+%S") then
      -- A continuation of the last list item.
      local more = " " .. inline(escape_keep((line:gsub("^%s+", ""))), cite) .. "</li>"
      out[#out] = out[#out]:gsub("</li>$", function() return more end)
    else
      close_list()
      para[#para + 1] = line
    end
    i = i + 1
  end
  flush_para(); close_list()
  return table.concat(out, "\n")
end

return M

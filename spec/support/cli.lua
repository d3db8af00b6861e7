-- bin/deepresearch as a user runs it, for specs: a subprocess against the simulator, with its
-- own environment and its stdout, stderr and exit code apart.
--   local cli = require "support.cli"
--   local code, out, err = cli.run(s.url, { "--provider", "valyu", "get", id }, { stdin = "y\n" })
--   teardown(cli.cleanup)                -- removes the temporary files tmp() made
local sim = require "support.sim"

local M = {}

local q = sim.shell_quote
M.q = q

-- Poll options for a command against a simulator at 2000x: a wait takes a fraction of a second.
M.FAST = { "--interval", "0.05", "--max-interval", "0.05" }

--- A file's whole content ("" when it cannot be read).
function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

local tmpfiles = {}

--- A new temporary file's path (holding text, when given); cleanup() removes it.
function M.tmp(text)
  local path = M.remember(os.tmpname())
  if text then
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
  end
  return path
end

--- Has cleanup() remove path too (a file a spec made itself); returns path.
function M.remember(path)
  tmpfiles[#tmpfiles + 1] = path
  return path
end

--- Removes every file tmp() made or remember() was given.
function M.cleanup()
  for _, p in ipairs(tmpfiles) do os.remove(p) end
  tmpfiles = {}
end

--- The lists given, one after the other, as a new list.
function M.concat(...)
  local out = {}
  for _, list in ipairs({ ... }) do
    for _, v in ipairs(list) do out[#out + 1] = v end
  end
  return out
end

--- The `env ...` words that give the command the simulator at url: both providers' base URLs
-- and tokens, LANG=C, no terminal; env (name -> value, false unsets) overrides them. The
-- sanitizer and debug settings of the spec run are not the command's.
function M.env_prefix(url, env)
  local all = { EXTRUCT_BASE_URL = url, EXTRUCT_API_TOKEN = "test-token", VALYU_BASE_URL = url,
    VALYU_API_KEY = "valyu-key", DEEPRESEARCH_TTY = false, LANG = "C",
    -- No spec writes the user's own journal: the journal's specs name a temp file instead.
    DEEPRESEARCH_JOURNAL = "off" }
  for k, v in pairs(env or {}) do all[k] = v end
  local parts = { "env", "-u LD_PRELOAD", "-u ASAN_OPTIONS", "-u LSAN_OPTIONS",
    "-u UBSAN_OPTIONS", "-u DEEPRESEARCH_DEBUG", "-u COLUMNS" }
  local names = {}
  for k in pairs(all) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if all[k] == false then parts[#parts + 1] = "-u " .. k end
  end
  for _, k in ipairs(names) do
    if all[k] then parts[#parts + 1] = k .. "=" .. q(all[k]) end
  end
  return table.concat(parts, " ")
end

--- Runs a shell command line "deepresearch ..." or "bin/deepresearch ..." (as the command
-- prints it when run from the source tree: it names itself as invoked) from bin/ against
-- the simulator at url; returns exit code, stdout, stderr. o.env: see env_prefix; o.stdin is
-- fed on standard input (none: /dev/null).
function M.shell(url, line, o)
  o = o or {}
  local errf = M.tmp()
  local inf = o.stdin and M.tmp(o.stdin) or "/dev/null"
  local cmd = line:match("^bin/") and line or ("bin/" .. line)
  local p = assert(io.popen(M.env_prefix(url, o.env) .. " lua5.4 " .. cmd .. " <" .. inf ..
    " 2>" .. errf .. "; echo \"__rc=$?\""))
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__rc=(%d+)\n?$"))
  return code, (out:gsub("__rc=%d+\n?$", "")), M.slurp(errf)
end

--- Runs bin/deepresearch with argv (each word quoted); as shell.
function M.run(url, argv, o)
  local words = {}
  for i, a in ipairs(argv) do words[i] = q(a) end
  return M.shell(url, "deepresearch " .. table.concat(words, " "), o)
end


--- A brief about target that passes lint (requester, decision, time frame): the journal and
-- id specs create many tasks that must differ.
function M.brief(target)
  return "We sell freight-visibility software to mid-market logistics firms. Research " ..
    target .. ": their current tooling, leadership changes and public statements in the last " ..
    "12 months, so we can decide whether to pitch them this quarter."
end

--- The non-empty lines of s.
function M.lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

--- As run, with DEEPRESEARCH_JOURNAL the file journal (env adds to or overrides it).
function M.run_journalled(url, journal, argv, env)
  local e = { DEEPRESEARCH_JOURNAL = journal }
  for k, v in pairs(env or {}) do e[k] = v end
  return M.run(url, argv, { env = e })
end

return M

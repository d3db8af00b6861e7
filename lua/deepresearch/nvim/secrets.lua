-- API keys from setup{ api_key = ... }: "cmd:<shell command>" (its stdout), "env:NAME", a plain
-- string, or a function returning one. Each provider's key is resolved once per session and
-- cached: a command runs through vim.loop.spawn (never vim.fn.system, which freezes the
-- editor and may prompt on every call), its output never reaches argv, a message or a log.
-- resolve() answers through a callback, possibly from a libuv callback (a fast context).
local M = {}

local cache = {}   -- provider -> the key (a string)
local waiting = {} -- provider -> callbacks waiting on the one run in flight
M.runs = 0         -- commands and functions run this session (specs count them)

local function trim(s) return (tostring(s):gsub("^%s+", ""):gsub("%s+$", "")) end

-- Runs `sh -c cmd`; done(stdout) or done(nil, message). Only the command (which the user
-- wrote, not the secret) is on argv.
local function run_command(cmd, done)
  local uv = vim.loop
  local out, errout = uv.new_pipe(false), uv.new_pipe(false)
  local chunks, errs = {}, {}
  local handle
  local closed = 0
  local code
  local function finish()
    closed = closed + 1
    if closed < 3 then return end -- the exit and both pipes' ends
    local key = trim(table.concat(chunks))
    if code == 0 and key ~= "" then return done(key) end
    local first = trim(table.concat(errs)):match("^[^\n]*") or ""
    done(nil, string.format("exited with status %s%s", tostring(code),
      first ~= "" and (": " .. first:sub(1, 120)) or (code == 0 and ", printing nothing" or "")))
  end
  local ok, spawned = pcall(uv.spawn, "sh",
    { args = { "-c", cmd }, stdio = { nil, out, errout } },
    function(c)
      code = c
      if handle and not handle:is_closing() then handle:close() end
      finish()
    end)
  handle = ok and spawned or nil
  if not handle then
    out:close()
    errout:close()
    return done(nil, "could not start sh")
  end
  local function reader(into, pipe)
    pipe:read_start(function(err, data)
      if data then into[#into + 1] = data return end
      if err then into[#into + 1] = "" end
      pipe:read_stop()
      if not pipe:is_closing() then pipe:close() end
      finish()
    end)
  end
  reader(chunks, out)
  reader(errs, errout)
end

--- The key a spec names, through done(key) or done(nil, message); nil spec: done(nil) (the
-- client then reads the provider's environment variable). Concurrent asks share one run.
function M.resolve(name, spec, done)
  if spec == nil or spec == false then return done(nil) end
  if cache[name] then return done(cache[name]) end
  if waiting[name] then
    table.insert(waiting[name], done)
    return
  end
  local function answer(key, err)
    if key then cache[name] = key end
    local cbs = waiting[name] or { done }
    waiting[name] = nil
    for _, cb in ipairs(cbs) do cb(key, err) end
  end
  if type(spec) == "function" then
    M.runs = M.runs + 1
    local ok, key = pcall(spec, name)
    if ok and type(key) == "string" and trim(key) ~= "" then return answer(trim(key)) end
    return answer(nil, ok and "the api_key function returned no key" or
      ("the api_key function failed: " .. tostring(key):match("^[^\n]*")))
  end
  if type(spec) ~= "string" then return answer(nil, "api_key must be a string or a function") end
  local var = spec:match("^env:(.+)$")
  if var then
    local v = os.getenv(var)
    if v and v ~= "" then return answer(v) end
    return answer(nil, "the environment variable " .. var .. " is not set")
  end
  local cmd = spec:match("^cmd:(.+)$")
  if not cmd then return answer(spec) end
  waiting[name] = { done }
  M.runs = M.runs + 1
  run_command(cmd, function(key, err)
    answer(key, err and ("the api_key command (" .. cmd .. ") " .. err) or nil)
  end)
end

--- The key now if it can be had without running a command (cached, a string, "env:NAME", a
-- function: which then counts as its one run); nil, "command" for a command not run yet;
-- nil, message on failure. (:checkhealth, which must not wait.)
function M.peek(name, spec)
  if type(spec) == "string" and spec:match("^cmd:") and not cache[name] then
    return nil, "command"
  end
  local got, key, err = false, nil, nil
  M.resolve(name, spec, function(k, e) got, key, err = true, k, e end)
  if not got then return nil, "command" end
  return key, err
end

--- Forgets every cached key (setup calls this: its options may name other keys).
function M.clear()
  cache, waiting = {}, {}
end

return M

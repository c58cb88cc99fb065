-- kosmo sandbox bootstrap. Runs once in every fresh Lua state, in the real
-- globals, before the script. It captures what it needs as locals, builds the
-- sandbox's safe library copies, and returns the `run` function the host calls.
-- The script never sees the real globals, `debug`, `python`, or any Python object:
-- every host callable is wrapped in a Lua closure here.
--
-- Host protocol: host functions return `true, value` on success, `false, err`
-- (a table describing a structured error) on failure, or `"limit", name` when a
-- run limit was hit. `trip` makes a limit sticky: every later instruction raises
-- again, and the pcall/xpcall/coroutine wrappers re-raise it, so the script
-- cannot swallow it.

local host = ...

local debug_sethook, debug_traceback, debug_getinfo, debug_getmetatable =
  debug.sethook, debug.traceback, debug.getinfo, debug.getmetatable
local co_create, co_resume, co_status, co_close =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.close
local co_running = coroutine.running
local error, pcall, xpcall, select, type, tostring, rawget, rawequal, next, pairs, ipairs, load,
      setmetatable, getmetatable =
  error, pcall, xpcall, select, type, tostring, rawget, rawequal, next, pairs, ipairs, load,
  setmetatable, getmetatable
local pack, unpack, concat = table.pack, table.unpack, table.concat
local str_find, str_gmatch, str_byte, str_format = string.find, string.gmatch, string.byte, string.format

python = nil
package.loaded.python = nil

local PERIOD = host.period
local TIME_EVERY = 16                 -- check the wall clock every TIME_EVERY hooks
local max_steps = host.max_instructions
local deadline = host.deadline
local now = host.now
local steps, ticks = 0, 0
local tripped = nil                   -- the limit sentinel, once a limit is hit

local LIMIT_MT = {
  __tostring = function(self) return "run limit exceeded: " .. self.limit end,
  __metatable = "locked",
}
-- Made now: tripping the memory limit must not need to allocate.
local LIMIT = setmetatable({limit = "instructions"}, LIMIT_MT)

local hook
local function trip(kind)
  if not tripped then
    host.limit(kind)
    LIMIT.limit = kind
    tripped = LIMIT
  end
  debug_sethook(co_running(), hook, "", 1)
  error(tripped, 0)
end

hook = function()
  if tripped then error(tripped, 0) end
  steps = steps + PERIOD
  if steps > max_steps then trip("instructions") end
  ticks = ticks + 1
  if ticks >= TIME_EVERY then
    ticks = 0
    if now() > deadline then trip("wall_time") end
  end
end

local function arm(co)
  debug_sethook(co, hook, "", PERIOD)
  return co
end

-- Re-raise a limit after anything that could have caught it.
local function guard(...)
  if tripped then error(tripped, 0) end
  local ok, err = ...
  if ok == false and err == "not enough memory" then trip("memory") end
  return ...
end

---------------------------------------------------------------------------
-- Structured errors
---------------------------------------------------------------------------

local ERROR_MT = {
  __tostring = function(e)
    if e.script and e.line then return e.script .. ":" .. e.line .. ": " .. tostring(e.message) end
    return tostring(e.message)
  end,
  __name = "kosmo.error",
  __metatable = "kosmo.error",
}

-- The script's file and line nearest the top of the stack (skips bootstrap and C frames).
local function script_location()
  local level = 3
  while true do
    local info = debug_getinfo(level, "Sl")
    if not info then return nil end
    if info.what ~= "C" and info.source ~= "=[kosmo]" and info.source ~= "=?" then
      return info.short_src, info.currentline
    end
    level = level + 1
  end
end

-- Raise a structured error described by `data`, located at the script's current line.
local function raise(data)
  local script, line = script_location()
  if line and line > 0 then data.script, data.line = script, line end
  error(setmetatable(data, ERROR_MT), 0)
end

-- The memory cap is lifted from just before a host function is entered until its
-- results are on the Lua stack (see Sandbox._host): a Lua memory error must never
-- unwind through Python frames. `settle` restores the cap and says whether the
-- state is over it.
local lift, settle = host.lift, host.settle

-- Unwrap a host result.
local function checked(status, value, ...)
  if status == true then return value, ... end
  if status == "limit" then trip(value) end
  raise(value)
end

local function unwrap(ok, ...)
  if settle() then trip("memory") end
  if ok then return checked(...) end
  if tripped then error(tripped, 0) end
  local err = ...
  if err == "not enough memory" then trip("memory") end
  -- lupa itself refused the call (an argument it cannot decode): never hand its
  -- Python exception object to the script.
  raise({type = "InvalidArgument", code = "invalid_argument", retryable = false,
         message = "a value passed to the runtime cannot be used (strings must be valid UTF-8 text)",
         hint = "pass UTF-8 text, numbers, booleans and plain tables"})
end

-- Call a host function: its errors become structured Lua errors, never Python objects.
local function call(fn, ...)
  lift()
  return unwrap(pcall(fn, ...))
end

local function usage(message, hint, where)
  local data = {type = "InvalidArgument", code = "invalid_argument", message = message, hint = hint,
                retryable = false}
  if where then data.integration, data["function"] = where[1], where[2] end
  raise(data)
end

---------------------------------------------------------------------------
-- Values shared with the host
---------------------------------------------------------------------------

local NULL = setmetatable({}, {
  __tostring = function() return "null" end,
  __name = "json.null",
  __newindex = function() error("json.null cannot be modified", 2) end,
  __metatable = "locked",
})
local ARRAY_MT = {__name = "json.array", __metatable = "json.array"}

local function mark_array(t) return setmetatable(t, ARRAY_MT) end

-- What the host needs to convert a table: its identity, whether it is a marked
-- array, whether it is json.null, and whether it is a structured error.
local function inspect(t)
  local mt = debug_getmetatable(t)
  return str_format("%p", t), rawequal(mt, ARRAY_MT), rawequal(t, NULL), rawequal(mt, ERROR_MT)
end

---------------------------------------------------------------------------
-- Safe libraries
---------------------------------------------------------------------------

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The string and table libraries, with the pattern-cost guard and Lua's own error
-- messages, live in _strlib.lua.
local safe_string, safe_table = host.strlib({
  usage = usage, trip = trip, now = now,
  remaining = function() return deadline - now() end,
  tripped = function() return tripped end,
  calibrate = function() return call(host.calibrate) end,
  wall_time = host.wall_time, memory = host.memory,
})

-- os.time() and os.date(format) read the Runtime's clock (the demo's simulated date in
-- demo mode) instead of the host's; with an explicit time they are standard Lua.
local os_time, os_date = os.time, os.date
local function clock_seconds() return call(host.epoch) end
local safe_os = {clock = os.clock, difftime = os.difftime}
function safe_os.time(t)
  if t == nil then return clock_seconds() end
  return os_time(t)
end
function safe_os.date(format, t)
  if t == nil then t = clock_seconds() end
  return os_date(format, t)
end

-- The string metatable is hidden; its methods are the run's `string` table (make_env).
local string_mt = debug_getmetatable("")
string_mt.__metatable = false

local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    usage("setmetatable: __gc finalizers are not allowed in the sandbox", "use a to-be-closed variable (local x <close>) instead")
  end
  return setmetatable(t, mt)
end

local function safe_pcall(f, ...)
  return guard(pcall(f, ...))
end

local function safe_xpcall(f, handler, ...)
  return guard(xpcall(f, function(e)
    if tripped then return e end
    return handler(e)
  end, ...))
end

local safe_coroutine = copy(coroutine)
function safe_coroutine.create(f)
  return arm(co_create(f))
end
function safe_coroutine.resume(co, ...)
  return guard(co_resume(co, ...))
end
local function wrap_result(co, ok, ...)
  if tripped then error(tripped, 0) end
  if ok then return ... end
  local err = ...
  if err == "not enough memory" then trip("memory") end
  co_close(co)
  error(err, 0)
end
function safe_coroutine.close(co)
  return guard(co_close(co))
end
function safe_coroutine.wrap(f)
  local co = safe_coroutine.create(f)
  return function(...) return wrap_result(co, co_resume(co, ...)) end
end

local function safe_load_for(env)
  return function(chunk, chunkname, mode, chunk_env)
    if type(chunk) ~= "string" then
      return nil, "load: only source text (a string) can be loaded in the sandbox"
    end
    if str_byte(chunk, 1) == 27 then
      return nil, "load: binary (precompiled) chunks are not allowed in the sandbox"
    end
    local name = chunkname ~= nil and ("=" .. tostring(chunkname)) or "=(load)"
    if chunk_env == nil then chunk_env = env end
    local fn, err = load(chunk, name, "t", chunk_env)
    if err == "not enough memory" then trip("memory") end
    return fn, err
  end
end

---------------------------------------------------------------------------
-- print and json
---------------------------------------------------------------------------

local function print_(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    local mt = type(v) == "table" and debug_getmetatable(v)
    if type(v) == "table" and not (mt and rawget(mt, "__tostring")) then
      parts[i] = v
    else
      parts[i] = tostring(v)
    end
  end
  call(host.print, parts, n)
end

local json = {
  null = NULL,
  encode = function(value, options) return call(host.json_encode, value, options) end,
  decode = function(text) return call(host.json_decode, text) end,
  array = function(t)
    if t == nil then t = {} end
    if type(t) ~= "table" then usage("json.array expects a table or nothing") end
    return mark_array(t)
  end,
}

---------------------------------------------------------------------------
-- The environment of one run
---------------------------------------------------------------------------

local function readonly(t, label)
  return setmetatable({}, {
    __index = t,
    __newindex = function(_, k) error(label .. " is read-only (cannot set '" .. tostring(k) .. "')", 2) end,
    -- an iterator closure, never `next, t`: the table itself must stay out of reach
    __pairs = function()
      local key
      return function()
        local value
        key, value = next(t, key)
        return key, value
      end
    end,
    __len = function() return #t end,
    __metatable = "locked",
  })
end

local BASE = {
  "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring", "type",
  "rawequal", "rawlen", "rawget", "getmetatable",
}

local extras = {}  -- name -> value added to every env by later layers (app, docs functions)
local lazy = {}    -- name -> true for globals a not-yet-loaded layer will define

local function make_env()
  local env = {}
  for _, name in ipairs(BASE) do env[name] = _G[name] end
  env._VERSION = _VERSION
  env.setmetatable = safe_setmetatable
  env.pcall = safe_pcall
  env.xpcall = safe_xpcall
  env.print = print_
  env.load = safe_load_for(env)
  -- Each run has its own Lua state, so most libraries need no per-run copies; the
  -- bootstrap keeps its own references to every function it relies on.
  env.string = copy(safe_string)  -- the run's own: what a script adds to it reaches methods
  string_mt.__index = env.string
  env.table = safe_table
  env.math = math
  env.utf8 = utf8
  env.coroutine = safe_coroutine
  env.os = copy(safe_os)
  env.json = readonly(json, "json")
  -- a lazy layer loaded ahead (a pooled sandbox) still shows up on first use, as when loaded then
  for name, value in pairs(extras) do if not lazy[name] then env[name] = value end end
  env._G = env
  -- Globals of layers not loaded yet (app, the docs functions): loaded on first use.
  setmetatable(env, {
    __index = function(t, name)
      if lazy[name] and not extras[name] then call(host.load_layers) end
      local value = extras[name]
      if value ~= nil then rawset(t, name, value) end
      return value
    end,
    __metatable = false,
  })
  return env
end

---------------------------------------------------------------------------
-- Running a script
---------------------------------------------------------------------------

local function strip_traceback(tb)
  local lines = {}
  for line in str_gmatch(tb, "[^\n]+") do
    if not str_find(line, "[C]: in ?", 1, true) and not str_find(line, "[kosmo]", 1, true)
       and not str_find(line, "[C]: in function 'error'", 1, true) and not str_find(line, "^%s*%?:") then
      lines[#lines + 1] = line
    end
  end
  return concat(lines, "\n")
end

-- Returns "ok", results | "syntax", message | "error", err, traceback | "limit", name
local session_env = nil  -- the env kept between chunks of a session (REPL)

local function run(source, chunkname, chunk_deadline, keep_env)
  if settle() then return "limit", "memory" end   -- the host lifted the cap to pass the source
  deadline = chunk_deadline or deadline
  steps, ticks = 0, 0
  local env = keep_env and session_env or make_env()
  if keep_env then session_env = env end
  local fn, err = load(source, "=" .. chunkname, "t", env)
  if not fn then
    if err == "not enough memory" then return "limit", "memory" end
    return "syntax", err
  end
  local co = arm(co_create(fn))
  local results = pack(co_resume(co))
  if tripped then return "limit", tripped.limit end
  if results[1] then
    if co_status(co) == "suspended" then
      return "error", "attempt to yield from outside a coroutine", strip_traceback(debug_traceback(co))
    end
    return "ok", results
  end
  err = results[2]
  if err == "not enough memory" then return "limit", "memory" end
  local message = err
  if type(err) == "table" and not rawequal(debug_getmetatable(err), ERROR_MT) then
    local mt = debug_getmetatable(err)
    message = nil
    if mt and rawget(mt, "__tostring") then
      local ok, text = pcall(tostring, err)   -- the script's own metamethod: hooked like the script
      if tripped then return "limit", tripped.limit end
      message = ok and text or nil
    end
  end
  return "error", err, strip_traceback(debug_traceback(co, type(message) == "string" and message or nil)), message
end

-- Host code that calls into Lua (conversions, metamethods of script values) runs on the
-- main thread: count it too, so no script code ever runs unhooked.
debug_sethook(hook, "", PERIOD)

return {
  run = run,
  call = call,
  extend = function(name, value) extras[name] = value end,
  provide_lazily = function(names) for _, name in ipairs(names) do lazy[name] = true end end,
  usage = usage,
  null = NULL,
  mark_array = mark_array,
  inspect = inspect,
  readonly = readonly,
  checked = checked,
  raise = raise,
  trip = trip,
  arm = arm,
  guard = guard,
}

-- kosmo sandbox bootstrap. Runs once in every fresh Lua state, in the real
-- globals, before the script: the count hook and the limits, the host protocol, the
-- values shared with the host, the app layer's loader and the `run` function the host
-- calls. What a run needs only when it fails or uses the standard library waits in
-- _kit.lua (locating and raising structured errors, the coroutines the runtime owns, the
-- standard library layer's loader), loaded into the state, as the runtime's own work, the
-- first time one of its parts is used. The standard library layer (_stdlib.lua: the safe
-- base functions, string, table, os, coroutine, load, print, json, the refused names) is
-- loaded the first time a run reads a global or calls a string method (a pooled state
-- loads both ahead), so a run that uses none pays for none of it. The script never sees
-- the real globals, `debug`, `python`, or any Python object: every host callable is
-- wrapped in a Lua closure.
--
-- Host protocol: host functions return `true, value` on success, `false, err`
-- (a table describing a structured error) on failure, or `"limit", name` when a
-- run limit was hit. `trip` makes a limit sticky: every later instruction raises
-- again, and the pcall/xpcall/coroutine wrappers re-raise it, so the script
-- cannot swallow it.

-- The host's values and functions, as arguments (cheaper to pass than a table), then the
-- globals that layers the host installs lazily will define. `later` hands over what _kit.lua
-- needs, when it loads.
local PERIOD, max_steps, deadline, now, host_limit, lift, settle, load_layers, later = ...
local LAZY_FROM = 10   -- the first lazy global's position among the arguments

local debug_sethook, debug_traceback, debug_getmetatable, debug_getinfo =
  debug.sethook, debug.traceback, debug.getmetatable, debug.getinfo
local co_running = coroutine.running
local error, pcall, xpcall, select, type, tostring, rawget, rawset, rawequal, next, pairs, load, setmetatable,
      collectgarbage =
  error, pcall, xpcall, select, type, tostring, rawget, rawset, rawequal, next, pairs, load, setmetatable,
  collectgarbage
local pack = table.pack
local str_format, str_rep, str_sub = string.format, string.rep, string.sub
local math_randomseed, HUGE = math.randomseed, math.huge

python = nil
package.loaded.python = nil

-- The run's wall_time and memory limits, which the library layer's guards read at each use (set
-- by `run`, for each chunk).
local LIMITS = {wall_time = 0, memory = 0}
local TIME_EVERY = 16                 -- check the wall clock every TIME_EVERY hooks
local steps, ticks = 0, 0
local tripped = nil                   -- the limit sentinel, once a limit is hit
-- A run whose stack was seen DEEP calls deep while it held over half its memory limit: if the memory
-- limit ends it, the error says so (a recursion without a base case reaches the memory limit before
-- Lua's own "stack overflow" when its frames are small). Looked at with the wall clock, and only
-- when memory is high: a deep stack costs the look a walk of DEEP frames.
local DEEP = 100000
local deep = false

local LIMIT_MT = {
  __tostring = function(self) return "run limit exceeded: " .. self.limit end,
  __metatable = "locked",
}
-- Made now: tripping the memory limit must not need to allocate.
local LIMIT = setmetatable({limit = "instructions"}, LIMIT_MT)

local hook
-- Make limit `kind` sticky without raising (for message handlers, which must return).
local function mark_tripped(kind)
  if not tripped then
    host_limit(kind)
    LIMIT.limit = kind
    tripped = LIMIT
  end
end
local function trip(kind)
  mark_tripped(kind)
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
    if not deep and collectgarbage("count") * 2048 > LIMITS.memory and debug_getinfo(DEEP, "l") then deep = true end
  end
end

-- Re-raise a limit after anything that could have caught it. Lua 5.4 raises any error whose
-- value is exactly "not enough memory" as a memory error, so the script's own
-- error("not enough memory", 0) is told apart by the sandbox's `error`, which notes it.
local MEMERR = "not enough memory"
local script_memerr = false
local function guard(...)
  if tripped then error(tripped, 0) end
  local ok, err = ...
  -- the note holds for the next protected boundary only: an error that replaced the script's own
  -- (a __close handler raising) must not leave it behind for a real memory error later
  local noted = script_memerr
  script_memerr = false
  if ok == false then
    if rawequal(err, MEMERR) and not noted then trip("memory") end
    -- a position in the runtime's stripped code (Lua's own error raised there) means nothing to the
    -- script: the error reads as Lua's C code raises it, with none
    if type(err) == "string" and str_sub(err, 1, 6) == "?:-1: " then return false, str_sub(err, 7) end
  end
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

-- The memory cap is lifted from just before a host function is entered until its
-- results are on the Lua stack (see Sandbox._host): a Lua memory error must never
-- unwind through Python frames. `settle` restores the cap and says whether the
-- state is over it. (Results whose push allocates nothing are the exception: see SETTLED.)

local raise   -- raise(data): a structured error at the script's line (_kit.lua's; a stand-in below)

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

-- A host function whose results Lua takes without allocating (booleans, numbers, tables it
-- made) restores the cap itself before it returns them, and says so with SETTLED in place of
-- `true` (Sandbox._host): no settle crossing after it.
local SETTLED = 1
local function settled(ok, status, ...)
  if ok and status == SETTLED then return ... end
  return unwrap(ok, status, ...)
end

-- Call a host function: its errors become structured Lua errors, never Python objects.
local function call(fn, ...)
  lift()
  return settled(pcall(fn, ...))
end

-- Call a host function named `*_flat`, which lifts the cap itself as it is entered (one host
-- crossing fewer): its arguments must be text, numbers and booleans only (the caller checks),
-- which cross into Python without Lua allocating, so the lift need not come before them.
local function call_flat(fn, ...)
  return settled(pcall(fn, ...))
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

local WEAK = {__mode = "k"}
local protected = setmetatable({}, WEAK)

---------------------------------------------------------------------------
-- The environment of one run
---------------------------------------------------------------------------

local function readonly(t, label)
  local proxy = setmetatable({}, {
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
  protected[proxy] = label
  return proxy
end
protected[NULL] = "json.null"
local extras = {}  -- name -> value added to every env by later layers (app, docs functions)
local lazy = {}    -- name -> true for globals a not-yet-loaded layer will define
for i = LAZY_FROM, select("#", ...) do lazy[select(i, ...)] = true end
local kit   -- what the host and the layers use (returned at the end)
-- Load the pending layers (the host hands each one's bytecode and host functions over, and
-- says whether more are pending), then look `name` up among what they defined.
local function load_lazy(name)
  if lazy[name] and not extras[name] then
    local more = true
    while more do
      local code, functions
      code, functions, more = call(load_layers)
      if code == nil then break end
      lift()   -- the layer's own memory is made with the cap lifted, as the host's values are
      local ok, err = pcall(load(code, "=[kosmo]", "b"), kit, functions)
      if settle() then trip("memory") end
      if not ok then error(err, 0) end
    end
  end
  return extras[name]
end

---------------------------------------------------------------------------
-- The standard library layer, loaded on first use
---------------------------------------------------------------------------

-- The string metatable is hidden; its methods are the run's `string` table, which the
-- library layer installs (until then, a string method call installs it first).
local string_mt = debug_getmetatable("")
string_mt.__metatable = false

-- Metatables the runtime sets on a run's globals (loading layers on first use):
-- getmetatable(_G) is nil for the script, and setmetatable(_G, mt) replaces it (after
-- defining the layers' globals, so they stay reachable).
local lazy_mts = setmetatable({}, WEAK)
local installed = setmetatable({}, WEAK)   -- env -> true once the layer is installed in it
local assigned_in = setmetatable({}, WEAK) -- env -> the names its script set before they were defined
local install = nil   -- _stdlib.lua's install(env, assigned), once the layer is loaded
local current_env = nil

local function note_memerr() script_memerr = true end
local function is_tripped() return tripped end
local function remaining() return deadline - now() end

-- Run `fn` as the runtime's own work (loading a layer): neither its instructions nor the
-- memory it keeps count against the run (the memory cap grows by that much). With `pay`, the
-- collector's debt for what the layer allocated is paid here, as the layer's own cost (a step
-- bounded by that amount), not by the script's next allocations.
local grow   -- the host's: the memory cap grows by what a layer keeps (from `later`)
local function quietly(fn, pay)
  local saved_steps, saved_ticks = steps, ticks
  lift()
  local before = collectgarbage("count")
  local value = fn()
  local grown = collectgarbage("count") - before
  grow(grown)
  if pay then collectgarbage("step", grown // 1) end
  if settle() then trip("memory") end
  steps, ticks = saved_steps, saved_ticks
  return value
end

-- _kit.lua's part, loaded now if the state has not loaded it yet (what it shares with this
-- chunk passed as arguments: no names to make in every fresh state)
local rest = nil
local install_into
-- What the layers keep between runs that one run could change (their caches, scratch space):
-- each layer registers a function that restores it, which `reset` calls.
local resetters = {}
local function on_reset(fn) resetters[#resetters + 1] = fn end
local function load_kit()
  local code, library
  code, library, grow = later()
  return load(code, "=[kosmo]", "b")(now, trip, guard, hook, PERIOD, quietly, MEMERR, string_mt, lazy, lazy_mts,
    installed, assigned_in, install_into, load_lazy, call, readonly, protected, NULL, ARRAY_MT, mark_array, ERROR_MT,
    library, is_tripped, remaining, note_memerr, on_reset, LIMITS)
end
local function need_kit()
  if not rest then rest = quietly(load_kit) end
  return rest
end

-- Stand-ins for _kit.lua's functions the host protocol and the layers name (called as statements,
-- not tail calls, so that no traceback shows them).
raise = function(data) need_kit().raise(data) end
local function usage(message, hint, where) need_kit().usage(message, hint, where) end

-- Define the standard globals in `env` (first use, or at once when the layer is loaded).
install_into = function(env)
  if not install then install = need_kit().load_stdlib() end
  installed[env] = true
  install(env, assigned_in[env] or {})
end

-- A string method called before the run's env has its library: install it, then look up.
local function string_index(s, key)
  if current_env and not installed[current_env] then install_into(current_env) end
  local index = string_mt.__index
  if index == string_index then return nil end
  return index[key]
end

-- A run's globals: empty until the script reads one, when the library layer fills them in
-- (a state that has the layer already installs it now). The script never sees this
-- metatable: getmetatable(_G) is nil, setmetatable(_G, mt) replaces it (after materialize).
local function make_env()
  string_mt.__index = string_index
  local env = install and install(nil) or {}   -- (the library layer loaded: the standard globals in one go)
  current_env = env
  -- a lazy layer loaded ahead (a pooled sandbox) still shows up on first use, as when loaded then
  for name, value in pairs(extras) do if not lazy[name] then env[name] = value end end
  local assigned = {}   -- names the script set before they were defined (lazy ones, or any before the layer)
  assigned_in[env] = assigned
  local mt = {
    -- A name read before the library layer is installed installs it (the layer defines every
    -- standard global; any other name is then simply absent); a lazy layer's name loads that layer.
    __index = function(t, name)
      if assigned[name] then return nil end
      if lazy[name] then
        local value = load_lazy(name)
        if value ~= nil then rawset(t, name, value) end
        return value
      end
      if installed[t] then return nil end
      install_into(t)
      return rawget(t, name)
    end,
    __newindex = function(t, name, value)
      if name == nil then error("table index is nil", 2) end
      if name ~= name then error("table index is NaN", 2) end
      if not installed[t] or lazy[name] then assigned[name] = true end
      rawset(t, name, value)
    end,
  }
  lazy_mts[mt] = true
  setmetatable(env, mt)
  if install then installed[env] = true end
  return env
end

-- A pooled state: the library layer loaded and the run's env made ahead (off the run's path).
local prepared_env = nil
local readied = false   -- prepare's once-per-state part done
local function prepare()
  if not install then install = need_kit().load_stdlib() end
  if not readied then
    readied = true
    for name, value in pairs(rest) do   -- the kit's parts the layers look up on first use, looked up now
      if rawget(kit, name) == nil then rawset(kit, name, value) end
    end
    -- Lua makes the metatable of its string buffers' boxes ("_UBOX*" in the registry) the first time a
    -- result outgrows a buffer: made now, so that no run is first (a reset state is as before any run).
    str_rep("x", 4096)
  end
  prepared_env = make_env()
end

---------------------------------------------------------------------------
-- Running a script
---------------------------------------------------------------------------

-- The run's message handler: the traceback is taken where the error was raised.
local run_traceback = nil
local function on_error(e)
  if tripped then return e end
  local ok, tb = pcall(debug_traceback, type(e) == "string" and e or nil, 3)
  run_traceback = ok and tb or nil
  return e
end

-- Returns "ok", results | "syntax", message | "error", err, traceback | "limit", name
local session_env = nil  -- the env kept between chunks of a session (REPL)

-- The main chunk runs on the main thread, as in Lua: coroutine.running() is the main
-- coroutine, coroutine.isyieldable() is false and a yield there is Lua's own error.
local function run(source, chunkname, chunk_deadline, chunk_steps, keep_env, wall_time, memory)
  if settle() then return "limit", "memory" end   -- the host lifted the cap to pass the source
  deadline, max_steps = chunk_deadline, chunk_steps
  LIMITS.wall_time, LIMITS.memory = wall_time, memory
  steps, ticks, deep = 0, 0, false
  local env = keep_env and session_env or prepared_env or make_env()
  prepared_env = nil
  if keep_env then session_env = env end
  local fn, err = load(source, "=" .. chunkname, "t", env)
  if not fn then
    if err == MEMERR then return "limit", "memory" end
    return "syntax", err
  end
  run_traceback = nil
  script_memerr = false
  local results = pack(xpcall(fn, on_error))
  if tripped then return "limit", tripped.limit end
  if results[1] then return "ok", results end
  err = results[2]
  if rawequal(err, MEMERR) then
    if not script_memerr then return "limit", "memory" end
    script_memerr = false
  end
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
  return "error", err, run_traceback, message   -- the host strips the runtime's own frames
end

-- Make the state what it was before its first run, for another run (the host calls this after
-- a run that hit no limit): every layer's caches restored, nothing of the run left reachable
-- (each run has its own env and its own copies of the libraries), the random generator seeded
-- afresh (from the host's `seed1`, `seed2`), the run's garbage collected (not even
-- collectgarbage("count") tells the next run how much the last one allocated), and the next env
-- made. False when the state must not be reused (a limit tripped, or it ran a session).
local function reset(seed1, seed2)
  if tripped or session_env then return false end
  deadline, max_steps = HUGE, HUGE
  script_memerr, run_traceback = false, nil
  for i = 1, #resetters do resetters[i]() end
  current_env, prepared_env = nil, nil
  math_randomseed(seed1, seed2)
  collectgarbage("collect")
  prepare()
  -- The hook's countdown starts afresh, then the counts (in that order: set first, a countdown ending
  -- between the two would leave the hook's own count behind), so what the reset ran is not counted.
  debug_sethook(hook, "", PERIOD)
  steps, ticks, deep = 0, 0, false
  return true
end

-- Host code that calls into Lua (conversions, metamethods of script values) runs on the
-- main thread: count it too, so no script code ever runs unhooked.
debug_sethook(hook, "", PERIOD)

kit = {
  run = run,
  call = call,
  call_flat = call_flat,
  settled = settled,
  SETTLED = SETTLED,
  extend = function(name, value) extras[name] = value end,
  provide_lazily = function(...) for i = 1, select("#", ...) do lazy[select(i, ...)] = true end end,
  usage = usage,
  null = NULL,
  mark_array = mark_array,
  inspect = inspect,
  readonly = readonly,
  checked = checked,
  raise = raise,
  trip = trip,
  guard = guard,
  protect = function(t, label) protected[t] = label end,
  prepare = prepare,
  reset = reset,
  on_reset = on_reset,
  was_deep = function() return deep end,
}
-- (and app.parallel's own, arm and release: _kit.lua's, loaded on first use)
setmetatable(kit, {__index = function(t, name)
  local value = need_kit()[name]
  rawset(t, name, value)
  return value
end})
-- and what the host uses on every run, as values (cheaper than indexing the kit from Python)
return kit, run, inspect, mark_array, NULL

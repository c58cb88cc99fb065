-- kosmo sandbox kit: the bootstrap's part that a run needs only when it fails or uses the
-- standard library, loaded into a state (as the runtime's own work: neither its
-- instructions nor its memory count against the run) the first time one of its parts is
-- used: locating and raising structured errors, the coroutines the runtime owns
-- (app.parallel's branches), and the standard library layer's loader. Runs with what the
-- bootstrap shares, as arguments; returns its functions by name.

local now, trip, guard, hook, PERIOD, quietly, MEMERR, string_mt, lazy, lazy_mts, installed, assigned_in,
      install_into, load_lazy, call, readonly, protected, NULL, ARRAY_MT, mark_array, ERROR_MT, library, is_tripped,
      remaining, note_memerr, on_reset, LIMITS = ...

local debug_sethook, debug_getinfo = debug.sethook, debug.getinfo
local error, load, pairs, rawget, rawset, setmetatable = error, load, pairs, rawget, rawset, setmetatable

---------------------------------------------------------------------------
-- Structured errors
---------------------------------------------------------------------------

-- The script's file and line nearest the top of the stack (skips the runtime's and C frames).
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

local function usage(message, hint, where)
  local data = {type = "InvalidArgument", code = "invalid_argument", message = message, hint = hint,
                retryable = false}
  if where then data.integration, data["function"] = where[1], where[2] end
  raise(data)
end

---------------------------------------------------------------------------
-- Coroutines the runtime drives
---------------------------------------------------------------------------

local function arm(co)
  debug_sethook(co, hook, "", PERIOD)
  return co
end

-- Coroutines the runtime drives (app.parallel's branches): the script's resume and close refuse them.
local owned = setmetatable({}, {__mode = "k"})

---------------------------------------------------------------------------
-- The standard library layer
---------------------------------------------------------------------------

local function materialize(env)
  if not installed[env] then install_into(env) end
  local assigned = assigned_in[env] or {}
  for name in pairs(lazy) do
    local value = load_lazy(name)
    if rawget(env, name) == nil and not assigned[name] then rawset(env, name, value) end
  end
end

-- Load _stdlib.lua into this state; returns its install(env, assigned).
local function load_stdlib()
  local core = {
    now = now, trip = trip, guard = guard, arm = arm, call = call, usage = usage, NULL = NULL,
    ARRAY_MT = ARRAY_MT, mark_array = mark_array, readonly = readonly, protected = protected, owned = owned,
    lazy_mts = lazy_mts, MEMERR = MEMERR, string_mt = string_mt,
    note_memerr = note_memerr, tripped = is_tripped, remaining = remaining, materialize = materialize,
    on_reset = on_reset, limits = LIMITS,
  }
  core.host = library()
  return load(core.host.stdlib, "=[kosmo]", "b")(core)
end

return {
  raise = raise,
  usage = usage,
  arm = arm,
  own = function(co, owner) owned[co] = owner end,
  release = function(co) owned[co] = nil end,
  load_stdlib = function() return quietly(load_stdlib, true) end,
}

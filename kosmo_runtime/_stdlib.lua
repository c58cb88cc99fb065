-- kosmo sandbox: the standard library layer a script sees (the safe base functions,
-- string and table through _strlib.lua, os, coroutine, load, print, json, require, and the
-- refused names). Loaded by the bootstrap into a state the first time a run reads a global
-- or calls a string method (a pooled state loads it ahead), in the real globals, with the
-- bootstrap's `core` table; returns `install(env, assigned)`, which defines these globals
-- in a run's env (except the names in `assigned`, which the script set first).

local core = ...
local host = core.host
local trip, guard, arm, call, usage = core.trip, core.guard, core.arm, core.call, core.usage
local NULL, ARRAY_MT, mark_array, readonly = core.NULL, core.ARRAY_MT, core.mark_array, core.readonly
local protected, owned, lazy_mts, materialize = core.protected, core.owned, core.lazy_mts, core.materialize
local MEMERR, string_mt, note_memerr = core.MEMERR, core.string_mt, core.note_memerr
local is_tripped, remaining = core.tripped, core.remaining

local debug_traceback, debug_getinfo, debug_getmetatable, debug_getupvalue =
  debug.traceback, debug.getinfo, debug.getmetatable, debug.getupvalue
local co_create, co_resume, co_status, co_close, co_wrap =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.close, coroutine.wrap
local error, pcall, xpcall, select, type, tostring, tonumber, rawget, rawset, rawequal, next, pairs, ipairs, load,
      setmetatable, getmetatable, collectgarbage =
  error, pcall, xpcall, select, type, tostring, tonumber, rawget, rawset, rawequal, next, pairs, ipairs, load,
  setmetatable, getmetatable, collectgarbage
local utf8_len = utf8.len
local str_sub, str_gsub, math_type = string.sub, string.gsub, math.type
local concat = table.concat
local str_find, str_match, str_gmatch, str_byte, str_format = string.find, string.match, string.gmatch, string.byte,
  string.format
---------------------------------------------------------------------------
-- Errors as Lua's own C functions word them
---------------------------------------------------------------------------

-- A wrapper must raise argument errors as the standard function it stands for would:
-- named as the caller named it ('create', or 'coroutine.create' when called from C), at
-- the caller's line, never naming the bootstrap. `qualified` is the library name. Call it
-- from the wrapper itself, as a statement (not `return argerror(...)`).
--
-- A wrapper called as a tail call (`return setmetatable(t, 1)`) has replaced its caller's
-- frame, so that position is lost: its errors then carry none (Lua's C function would name
-- the line of the `return`).
local function caller_level(wrapper)   -- `wrapper`: the wrapper's level as seen by the function asking
  local info = debug_getinfo(wrapper + 1, "t")
  if info and info.istailcall then return 0 end
  return wrapper + 1
end

local function argerror(qualified, arg, extramsg)
  local info = debug_getinfo(2, "n")   -- 1 this function, 2 the wrapper, as its caller named it
  local name = info and info.name
  local level = caller_level(2)
  if info and info.namewhat == "method" then
    arg = arg - 1
    if arg == 0 then error("calling '" .. name .. "' on bad self (" .. extramsg .. ")", level) end
  end
  if name == nil then name = qualified end
  error(str_format("bad argument #%d to '%s' (%s)", arg, name, extramsg), level)
end

local function typename(v)
  local mt = debug_getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  if type(name) == "string" then return name end
  return type(v)
end

-- luaL_typeerror's text; `present` false for a missing argument ("got no value").
local function expected(what, value, present)
  return what .. " expected, got " .. (present and typename(value) or "no value")
end

local function runtime_code(source) return source == "=[kosmo]" or source == "=?" end   -- "=?": stripped code

-- `error` as in Lua: `level` counts the script's frames (the sandbox's own wrappers, such as
-- pcall's, are skipped), and a "not enough memory" that reaches a pcall as that exact text
-- is noted as the script's own.
local function safe_error(...)
  local message, level = ...
  if level == nil then level = 1 end
  if type(level) ~= "number" then
    local n = tonumber(level)
    if n == nil then argerror("error", 2, expected("number", level, true)) end
    level = n
  end
  if math_type(level) == "float" then
    level = math.tointeger(level)
    if level == nil then argerror("error", 2, "number has no integer representation") end
  end
  if type(message) ~= "string" or level <= 0 then
    if rawequal(message, MEMERR) then note_memerr() end
    error(message, 0)
  end
  local l, k = 2, 0   -- debug_getinfo(2) is the script's level 1 (the caller of error)
  if debug_getinfo(1, "t").istailcall then k = 1 end   -- `return error(...)`: level 1 is gone
  if k == level then l = 0 end
  while l > 0 do
    local info = debug_getinfo(l, "S")
    if not info then break end
    if not runtime_code(info.source) then
      k = k + 1
      if k == level then break end
      -- C frames a wrapper of the runtime's called (the C function it stands for, and the xpcall
      -- around it) are the one frame of the function the script called: go past them and the wrapper
      if info.source == "=[C]" then
        local m = l + 1
        info = debug_getinfo(m, "S")
        while info and info.source == "=[C]" do m = m + 1 info = debug_getinfo(m, "S") end
        if info and runtime_code(info.source) then l = m end
      end
    end
    l = l + 1
  end
  if rawequal(message, MEMERR) then
    local info = l > 0 and debug_getinfo(l, "l")
    if not (info and info.currentline > 0) then note_memerr() end
  end
  error(message, l)
end

-- Whether Lua's C code would put the caller's position on error `e` raised in a C function:
-- luaL_error's do (an argument error, the library's own messages); Lua's own runtime errors
-- (ldebug.c's: a comparison in sort, a length in unpack, a C stack overflow) do not, as the
-- running function is not Lua code.
local UNPOSITIONED = {["C stack overflow"] = true, ["table index is nil"] = true, ["table index is NaN"] = true,
                      ["string length overflow"] = true, ["invalid key to 'next'"] = true,
                      ["'__index' chain too long; possible loop"] = true,
                      ["'__newindex' chain too long; possible loop"] = true}
local function positioned(e)
  return not (UNPOSITIONED[e] or str_find(e, "^attempt to ") or str_find(e, "^number has no integer representation"))
end

-- Relay error `e` of C function `qualified`, which a wrapper called through pcall, as if the
-- script had called it: named as the caller named it, at the caller's line when Lua's C code
-- would add a position (`with_position`, by default as `positioned` says). Call it from the
-- wrapper, as a statement.
local function relay(qualified, e, with_position)
  if type(e) ~= "string" then error(e, 0) end
  local info = debug_getinfo(2, "nt")
  local name = info and info.name
  if not name and info and info.istailcall then name = str_match(qualified, "[^.]*$") end   -- as Lua calls it
  local arg, detail = str_match(e, "^bad argument #(%d+) to '" .. str_gsub(qualified, "%.", "%%.") .. "' (.*)$")
  if name and arg then
    arg = tonumber(arg)
    if info.namewhat == "method" then arg = arg - 1 end   -- luaL_argerror's count, the object not counted
    if arg == 0 then e = "calling '" .. name .. "' on bad self " .. detail
    else e = "bad argument #" .. arg .. " to '" .. name .. "' " .. detail end
  end
  if with_position == nil then with_position = positioned(e) end
  error(e, with_position and caller_level(2) or 0)
end

-- A message handler for xpcall(cfn, ...) that notes whether `cfn` itself raised the error (then
-- `relay` words it as Lua would) or the script's code it called did (passed on untouched).
local raised_by_c = false
local function noting(cfn)
  return function(e)
    local info = debug_getinfo(2, "f")
    raised_by_c = info ~= nil and info.func == cfn
    return e
  end
end

-- luaL_where(1) of the wrapper calling this: the wrapper's caller's "script:line: ", or "".
local function where()
  local level = caller_level(2)
  local info = level > 0 and debug_getinfo(level, "Sl")
  if info and info.currentline > 0 then return info.short_src .. ":" .. info.currentline .. ": " end
  return ""
end

-- An error raised at the caller's position, for messages Lua's C code raises with luaL_error.
local function error_here(message)
  error(message, caller_level(2))
end

-- A deliberate refusal, naming what is missing and why (never "attempt to call a nil value").
local function refusal(name, reason)
  return "`" .. name .. "` is not available in the sandbox: " .. reason
end
local function refused_function(name, reason)
  local message = refusal(name, reason)
  return function() error(message, 2) end
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
local safe_string, safe_table = load(host.strlib, "=[kosmo]", "b")({
  usage = usage, trip = trip, now = core.now,
  remaining = remaining,
  tripped = is_tripped,
  calibrate = function() return call(host.calibrate) end,
  rate = host.rate,
  model = host.model,
  limits = core.limits,
  on_reset = core.on_reset,
  positioned = positioned,
})

-- string.dump makes bytecode, which load refuses: refused by name instead of leaking a dump.
safe_string.dump = refused_function("string.dump",
  "it makes bytecode, and load takes source text only; keep the code as text and load that")

-- os.time() and os.date(format) read the Runtime's clock (the demo's simulated date in
-- demo mode) instead of the host's; with an explicit time they are standard Lua.
local os_time, os_date = os.time, os.date
local function clock_seconds() return call(host.epoch) end
local safe_os = {clock = os.clock, difftime = os.difftime}
local time_errors, date_errors = noting(os_time), noting(os_date)
function safe_os.time(t)
  if t == nil then return clock_seconds() end
  local ok, value = xpcall(os_time, time_errors, t)
  if ok then return value end
  if not raised_by_c then error(value, 0) end   -- raised by the date table's own __index
  relay("os.time", value)
end
function safe_os.date(format, t)
  if t == nil then t = clock_seconds() end
  local ok, value = xpcall(os_date, date_errors, format, t)
  if ok then return value end
  if not raised_by_c then error(value, 0) end
  relay("os.date", value)
end


local function safe_getmetatable(...)
  if select("#", ...) == 0 then argerror("getmetatable", 1, "value expected") end
  local mt = getmetatable((...))
  if mt ~= nil and lazy_mts[mt] then return nil end
  return mt
end

local function safe_setmetatable(...)
  local t, mt = ...
  local n = select("#", ...)
  if type(t) ~= "table" then argerror("setmetatable", 1, expected("table", t, n > 0)) end
  if type(mt) ~= "table" and (mt ~= nil or n < 2) then argerror("setmetatable", 2, expected("nil or table", mt, n > 1)) end
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    usage("setmetatable: __gc finalizers are not allowed in the sandbox", "use a to-be-closed variable (local x <close>) instead")
  end
  local current = debug_getmetatable(t)
  if current ~= nil and lazy_mts[current] then
    materialize(t)
  elseif current ~= nil and rawget(current, "__metatable") ~= nil then
    error_here("cannot change a protected metatable")
  end
  return setmetatable(t, mt)
end

local function safe_pcall(...)
  if select("#", ...) == 0 then argerror("pcall", 1, "value expected") end
  return guard(pcall(...))
end

local function safe_xpcall(...)
  local f, handler = ...
  if type(handler) ~= "function" then argerror("xpcall", 2, expected("function", handler, select("#", ...) > 1)) end
  return guard(xpcall(f, function(e)
    if is_tripped() then return e end
    return handler(e)
  end, select(3, ...)))
end

local function refuse_owned(co)
  local owner = owned[co]
  if owner then
    usage(owner .. " runs this coroutine (a branch): it cannot be resumed or closed by the script",
          "return values from the branch instead; app.parallel hands them back in order")
  end
end
local safe_coroutine = copy(coroutine)
function safe_coroutine.create(...)
  local f = ...
  if type(f) ~= "function" then argerror("coroutine.create", 1, expected("function", f, select("#", ...) > 0)) end
  return arm(co_create(f))
end
function safe_coroutine.resume(...)
  local co = ...
  if type(co) ~= "thread" then argerror("coroutine.resume", 1, expected("thread", co, select("#", ...) > 0)) end
  if owned[co] then refuse_owned(co) end
  return guard(co_resume(...))
end
-- Lua's own wrap (its errors, its position prefix), with the coroutine hooked like any other.
function safe_coroutine.wrap(...)
  local f = ...
  if type(f) ~= "function" then argerror("coroutine.wrap", 1, expected("function", f, select("#", ...) > 0)) end
  local wrapped = co_wrap(f)
  arm(select(2, debug_getupvalue(wrapped, 1)))
  return wrapped
end
function safe_coroutine.close(...)
  local co = ...
  if type(co) ~= "thread" then argerror("coroutine.close", 1, expected("thread", co, select("#", ...) > 0)) end
  if owned[co] then refuse_owned(co) end
  local status = co_status(co)
  if status == "running" or status == "normal" then error_here("cannot close a " .. status .. " coroutine") end
  return guard(co_close(co))
end

-- load as in Lua (chunk names, modes, an explicit nil env), text only: a precompiled chunk
-- could break the VM, so binary chunks are refused whatever the mode.
local BINARY = "load: binary (precompiled) chunks are not allowed in the sandbox"
local function loaded(fn, err)
  if fn ~= nil then return fn end   -- (one value, as Lua's load returns)
  if rawequal(err, MEMERR) then trip("memory") end
  return nil, err
end
local function safe_load_for(env)
  return function(...)
    local chunk, chunkname, mode = ...
    local chunk_env = env
    if select("#", ...) > 3 then chunk_env = select(4, ...) end
    -- checked in Lua's order: mode, chunk name, then the chunk
    if mode ~= nil and type(mode) ~= "string" and type(mode) ~= "number" then
      argerror("load", 3, expected("string", mode, true))
    end
    if chunkname ~= nil and type(chunkname) ~= "string" and type(chunkname) ~= "number" then
      argerror("load", 2, expected("string", chunkname, true))
    end
    if type(chunk) == "number" then chunk = tostring(chunk) end
    if type(chunk) == "function" then
      -- Lua's load calls the reader (from C, as Lua does: it cannot yield); the first piece is
      -- looked at for a binary chunk, and a piece that is not text fails as Lua's would.
      local reader, first, at = chunk, true, where()
      local function read()
        local piece = reader()
        if piece ~= nil and type(piece) ~= "string" and type(piece) ~= "number" then
          error(at .. "reader function must return a string", 0)
        end
        if first and piece ~= nil and piece ~= "" then
          first = false
          if str_byte(piece, 1) == 27 and mode ~= "t" then error(BINARY, 0) end
        end
        return piece
      end
      local fn, err = load(read, chunkname, mode or "bt", chunk_env)
      -- a limit reached in the reader (an error load caught) still ends the run; a memory error
      -- too, unless it was the reader's own error("not enough memory")
      guard(fn ~= nil, err)
      if fn ~= nil then return fn end
      return nil, err
    elseif type(chunk) ~= "string" then
      argerror("load", 1, expected("function", chunk, select("#", ...) > 0))
    end
    if str_byte(chunk, 1) == 27 and mode ~= "t" then return nil, BINARY end
    if chunkname == nil then chunkname = chunk end
    return loaded(load(chunk, chunkname, mode or "bt", chunk_env))
  end
end

-- The runtime's read-only tables (json, app, namespaces, json.null): label by table.
local function safe_rawset(...)
  local t, k, v = ...
  if type(t) ~= "table" then argerror("rawset", 1, expected("table", t, select("#", ...) > 0)) end
  if select("#", ...) < 2 then argerror("rawset", 2, "value expected") end
  if select("#", ...) < 3 then argerror("rawset", 3, "value expected") end
  local label = protected[t]
  if label then error(label .. " is read-only (cannot set '" .. tostring(k) .. "')", 2) end
  if k == nil then error("table index is nil", 0) end
  if k ~= k then error("table index is NaN", 0) end
  return rawset(t, k, v)
end

-- collectgarbage: what cannot weaken the limits. A full collection is C work the count
-- hook never sees, so it checks the clock first.
local GC_ALLOWED = {count = true, collect = true, step = true, isrunning = true}
local GC_REFUSED = {stop = true, restart = true, incremental = true, generational = true,
                    setpause = true, setstepmul = true}
local function safe_collectgarbage(option, ...)
  if option == nil then option = "collect" end
  if type(option) ~= "string" and type(option) ~= "number" then
    argerror("collectgarbage", 1, expected("string", option, true))
  end
  option = tostring(option)
  if not GC_ALLOWED[option] and not GC_REFUSED[option] then
    argerror("collectgarbage", 1, "invalid option '" .. option .. "'")
  end
  if option == "step" and ... ~= nil and math_type(tonumber((...))) ~= "integer" then
    argerror("collectgarbage", 2, tonumber((...)) and "number has no integer representation" or expected("number", (...), true))
  end
  if GC_REFUSED[option] then
    error(refusal('collectgarbage("' .. option .. '")', "the runtime's limits rely on the collector running as "
      .. 'configured; "count", "collect", "step" and "isrunning" are available'), 2)
  end
  if option == "collect" or option == "step" then
    local tripped = is_tripped()
    if tripped then error(tripped, 0) end
    if remaining() < 0 then trip("wall_time") end
  end
  return collectgarbage(option, ...)
end

local NO_FILES = "scripts have no file access; return data instead (or print it)"
local REFUSED_OS = {
  execute = "scripts cannot run processes", exit = "a script ends by returning (or with error())",
  getenv = "the host's environment is not visible to scripts", remove = NO_FILES, rename = NO_FILES,
  tmpname = NO_FILES, setlocale = "the locale is fixed",
}

-- debug: only traceback (without the runtime's own frames); the rest could reach past the sandbox.
-- (The run's own traceback is stripped the same way by the host: Sandbox._strip_traceback.)
local function strip_traceback(tb)
  local lines = {}
  for line in str_gmatch(tb, "[^\n]+") do
    if not str_find(line, "[C]: in ?", 1, true) and not str_find(line, "[kosmo]", 1, true)
       and not str_find(line, "[C]: in function 'error'", 1, true) and not str_find(line, "^%s*%?:") then
      lines[#lines + 1] = line
    end
  end
  if lines[#lines] == "\t[C]: in function 'xpcall'" then lines[#lines] = nil end  -- the run's own boundary
  return concat(lines, "\n")
end

local function safe_traceback(...)
  local co = ...
  if type(co) == "thread" then
    local _, message, level = ...
    if message ~= nil and type(message) ~= "string" and type(message) ~= "number" then return message end
    return strip_traceback(debug_traceback(co, message, level or 0))
  end
  local message, level = ...
  if message ~= nil and type(message) ~= "string" and type(message) ~= "number" then return message end
  return strip_traceback(debug_traceback(message, (level or 1) + 1))
end

---------------------------------------------------------------------------
-- print and json
---------------------------------------------------------------------------

-- A string as text: bytes that are not UTF-8 become \xNN (as Python's "backslashreplace").
local function as_text(s)
  if utf8_len(s) then return s end
  local out, i = {}, 1
  while true do
    local ok, bad = utf8_len(s, i)
    if ok then out[#out + 1] = str_sub(s, i) break end
    out[#out + 1] = str_sub(s, i, bad - 1)
    out[#out + 1] = str_format("\\x%02x", str_byte(s, bad))
    i = bad + 1
  end
  return concat(out)
end

-- A copy of table `v` whose strings (keys and values) are text, for print.
local function printable(v, seen, depth)
  if type(v) == "string" then return as_text(v) end
  if type(v) ~= "table" or rawequal(v, NULL) then return v end
  if seen[v] then return seen[v] end
  if depth > 100 then return "{...}" end
  local c = {}
  seen[v] = c
  if rawequal(debug_getmetatable(v), ARRAY_MT) then setmetatable(c, ARRAY_MT) end
  for k, x in next, v do c[printable(k, seen, depth + 1)] = printable(x, seen, depth + 1) end
  return c
end

-- Write `parts[1..m]` to the output as they are (tables as their contents); a table holding
-- strings that are not UTF-8 is written from a copy with such bytes escaped.
local function write_parts(parts, m)
  if not call(host.print, parts, m, true) then
    local seen = {}
    for i = 1, m do parts[i] = printable(parts[i], seen, 0) end
    call(host.print, parts, m, true)
  end
end

-- As Lua's print writes each value as it goes, what precedes a value with a __tostring of the
-- script's is written before that runs (so its own prints, or its error, come after it).
local function print_(...)
  local n = select("#", ...)
  local parts, m = {}, 0
  for i = 1, n do
    local v = select(i, ...)
    local mt = type(v) == "table" and debug_getmetatable(v)
    local text
    if type(v) == "table" and not (mt and rawget(mt, "__tostring")) then
      text = v
    elseif type(v) == "string" then
      text = as_text(v)
    elseif mt then   -- the script's __tostring (or __name) decides
      if m > 0 then write_parts(parts, m) parts, m = {}, 0 end
      local ok, s = pcall(tostring, v)
      if not ok then relay("print", s, s == "'__tostring' must return a string") end
      text = as_text(s)
    else
      text = tostring(v)
    end
    if i > 1 then m = m + 1 parts[m] = "\t" end
    m = m + 1
    parts[m] = text
  end
  parts[m + 1] = "\n"
  write_parts(parts, m + 1)
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

local LIBRARIES = "string, table, math, utf8, coroutine, os"

local function require_for(libraries)
  return function(...)
    local name = ...
    if type(name) ~= "string" and type(name) ~= "number" then
      argerror("require", 1, expected("string", name, select("#", ...) > 0))
    end
    local lib = libraries[tostring(name)]
    if lib ~= nil then return lib end
    error("module '" .. tostring(name) .. "' not found: the sandbox loads no modules; require gives the standard "
      .. "libraries only (" .. LIBRARIES .. "); put the code in the script", 2)
  end
end

local function refused_library(name, reason, members)
  local library = setmetatable(members or {}, {
    __index = function(_, key) error(refusal(name .. "." .. tostring(key), reason), 2) end,
    __newindex = function(_, key) error(refusal(name .. "." .. tostring(key), reason), 2) end,
    __pairs = function() error(refusal(name, reason), 2) end,
    __metatable = "locked",
  })
  protected[library] = name
  return library
end

-- io.write and io.stdout:write write to the run's output, as print does but with no
-- separators and no newline (numbers as Lua's io.write formats them); the rest of io is refused.
local function output_parts(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    local kind = math_type(v)
    if kind == "integer" then parts[i] = str_format("%d", v)
    elseif kind == "float" then parts[i] = str_format("%.14g", v)
    elseif type(v) == "string" then parts[i] = as_text(v)
    else
      if i > 1 then call(host.print, parts, i - 1, true) end   -- as Lua's: what precedes it is written
      return nil, i, v
    end
  end
  if n > 0 then call(host.print, parts, n, true) end
  return true
end
local STDOUT
local function io_write(...)
  local ok, bad, v = output_parts(...)
  if not ok then argerror("io.write", bad, expected("string", v, true)) end
  return STDOUT
end
local function stdout_write(...)
  if not rawequal((...), STDOUT) then argerror("write", 1, expected("FILE*", (...), select("#", ...) > 0)) end
  local ok, bad, v = output_parts(select(2, ...))
  if not ok then argerror("write", bad + 1, expected("string", v, true)) end
  return STDOUT
end
-- Nothing is buffered: flush and setvbuf check their arguments as Lua's do and change nothing.
local function stdout_flush(...)
  if not rawequal((...), STDOUT) then argerror("?", 1, expected("FILE*", (...), select("#", ...) > 0)) end
  return true
end
local BUFFER_MODES = {no = true, full = true, line = true}
local function stdout_setvbuf(...)
  if not rawequal((...), STDOUT) then argerror("?", 1, expected("FILE*", (...), select("#", ...) > 0)) end
  local _, mode, size = ...
  if type(mode) == "number" then mode = tostring(mode) end   -- (a number is taken as its text, as in Lua)
  if type(mode) ~= "string" then argerror("?", 2, expected("string", mode, select("#", ...) > 1)) end
  if not BUFFER_MODES[mode] then argerror("?", 2, "invalid option '" .. mode .. "'") end
  if size ~= nil and math_type(size) ~= "integer" then
    local n = tonumber(size)
    if n == nil then argerror("?", 3, expected("number", size, true)) end
    if math.tointeger(n) == nil then argerror("?", 3, "number has no integer representation") end
  end
  return true
end
-- A handle, as Lua's FILE* userdata is: its methods are behind its metatable, and it cannot be changed.
local STDOUT_METHODS = {write = stdout_write, flush = stdout_flush, setvbuf = stdout_setvbuf}
local STDOUT_REASON = NO_FILES .. "; io.stdout:write writes to the output"
STDOUT = setmetatable({}, {
  __index = function(_, key)
    local method = STDOUT_METHODS[key]
    if method == nil then error(refusal("io.stdout:" .. tostring(key), STDOUT_REASON), 2) end
    return method
  end,
  __newindex = function(_, key) error("io.stdout is read-only (cannot set '" .. tostring(key) .. "')", 2) end,
  __tostring = function() return "file (stdout)" end,
  __name = "FILE*",
  __metatable = "locked",
})
protected[STDOUT] = "io.stdout"
local IO_REASON = NO_FILES .. "; io.write writes to the output"

-- The refused names, made once per state (before the run starts: pooled states are built ahead).
local REFUSED = {
  dofile = refused_function("dofile", NO_FILES .. "; load(text) runs code from a string"),
  loadfile = refused_function("loadfile", NO_FILES .. "; load(text) compiles code from a string"),
  warn = refused_function("warn", "use print"),
  package = refused_library("package", "scripts cannot load modules; require gives the standard libraries"),
}
local safe_os_full = copy(safe_os)
for name, reason in pairs(REFUSED_OS) do safe_os_full[name] = refused_function("os." .. name, reason) end

local DEBUG_REASON = "it reaches past the sandbox; debug.traceback is available"
local DEBUG = {traceback = safe_traceback}
-- io.output() is the output (io.stdout), as in Lua; setting another is refused (there are no files).
local function io_output(...)
  if select("#", ...) > 0 and not rawequal((...), STDOUT) and (...) ~= nil then
    error(refusal("io.output(file)", IO_REASON), 2)
  end
  return STDOUT
end
local function io_type(...)
  if select("#", ...) == 0 then argerror("io.type", 1, "value expected") end
  if rawequal((...), STDOUT) then return "file" end
  return nil
end
local IO = {write = io_write, stdout = STDOUT, flush = function() return true end, output = io_output, type = io_type}
local LIBRARY = {string = safe_string, table = safe_table, math = math, utf8 = utf8, coroutine = safe_coroutine,
                 os = safe_os_full, debug = DEBUG, io = IO}
local SIZE = {}
for name, template in pairs(LIBRARY) do
  local n = 0
  for _ in next, template do n = n + 1 end
  SIZE[name] = n
end

-- The library tables the last run got. A state serves one run after another (see reset in the
-- bootstrap), and each run gets its own copy of every table a script can change; one the last
-- run left exactly as it got it (same entries, no metatable of the script's) holds nothing of
-- that run, and is given to the next run instead of a new copy.
local given = {}
local function unchanged(t, name)
  -- (debug's and io's metatables are the runtime's, locked: a script cannot change them)
  if name ~= "debug" and name ~= "io" and debug_getmetatable(t) ~= nil then return false end
  local template, n = LIBRARY[name], 0
  for k, v in next, t do
    if rawget(template, k) ~= v then return false end
    n = n + 1
  end
  return n == SIZE[name]
end
local function library(name)
  local t = given[name]
  if t and unchanged(t, name) then return t end
  if name == "debug" then t = refused_library("debug", DEBUG_REASON, copy(DEBUG))
  elseif name == "io" then t = refused_library("io", IO_REASON, copy(IO))
  else t = copy(LIBRARY[name]) end
  given[name] = t
  return t
end

local json_proxy = readonly(json, "json")   -- read-only, so one serves every run

-- The run's own functions (load and require name its env): nothing else may hold them but the
-- env, and a script can make its env weak (setmetatable(_G, {__mode = "v"})).
local own
core.on_reset(function() own = nil end)

-- The standard globals in a run's env: the library tables as above; the functions are shared,
-- and this layer keeps its own references to every function it relies on. Names in `assigned`
-- (set by the script before the layer was installed) are left alone. With no `env`, a new table
-- holding them all is made and returned (made in one go: a prepared env).
local function install(env, assigned)
  local string = library("string")  -- what a script adds to it reaches methods
  string_mt.__index = string
  local table_, math_, utf8_, coroutine_, os, debug_, io = library("table"), library("math"), library("utf8"),
    library("coroutine"), library("os"), library("debug"), library("io")
  local globals = {
    _G = false, _VERSION = _VERSION, load = false, require = false,   -- (set below, naming the env)
    getmetatable = safe_getmetatable, setmetatable = safe_setmetatable, rawset = safe_rawset, error = safe_error,
    pcall = safe_pcall, xpcall = safe_xpcall, print = print_, collectgarbage = safe_collectgarbage,
    string = string, table = table_, math = math_, utf8 = utf8_, coroutine = coroutine_, os = os, json = json_proxy,
    debug = debug_, io = io, package = REFUSED.package, dofile = REFUSED.dofile,
    loadfile = REFUSED.loadfile, warn = REFUSED.warn,
    assert = assert, ipairs = ipairs, next = next, pairs = pairs, select = select, tonumber = tonumber,
    tostring = tostring, type = type, rawequal = rawequal, rawlen = rawlen, rawget = rawget,
  }
  local fresh = env == nil
  if fresh then env = globals end
  globals._G, globals.load = env, safe_load_for(env)
  globals.require = require_for({string = string, table = table_, math = math_, utf8 = utf8_, coroutine = coroutine_,
                                 os = os, io = io, debug = debug_, package = REFUSED.package, _G = env})
  own = {globals.load, globals.require}   -- held while the run lasts, as Lua's registry holds its functions
  if fresh then return env end
  for name, value in next, globals do
    if rawget(env, name) == nil and not assigned[name] then rawset(env, name, value) end
  end
end

return install

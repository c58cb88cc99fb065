-- kosmo sandbox: the string and table libraries a script sees, and the pattern-cost guard.
-- Run once per Lua state by the bootstrap, in the real globals, before any script; it gets
-- the bootstrap's kit and returns the safe `string` and `table` libraries.
--
-- Library functions run in C, where the count hook never runs. So:
-- * find/match/gmatch/gsub are estimated before they run: an upper bound on the matcher's
--   steps, from the pattern's shape and, when the shape alone is too pessimistic, from the
--   subject (its longest runs of the classes the pattern repeats). A call whose bound does
--   not fit the time the run has left (plus the documented overrun), or one second, is
--   refused before any work.
-- * calls on big strings and tables read the wall clock first; string.rep and table.move
--   are bounded by the same time rule.
-- * errors read as Lua's own: the name and position the script would see calling the C
--   function directly (luaL_argerror's rules), never a wrapper's.

local kit = ...
local usage, trip, now, remaining, is_tripped = kit.usage, kit.trip, kit.now, kit.remaining, kit.tripped
local calibrate = kit.calibrate
local positioned = kit.positioned   -- whether luaL_error would have put a position on an error
local LIMITS = kit.limits   -- the run's wall_time and memory (read at each use: the host sets them before the run)

local error, type, tostring, tonumber, select, xpcall, pcall, pairs, ipairs, rawlen, load =
  error, type, tostring, tonumber, select, xpcall, pcall, pairs, ipairs, rawlen, load
local collectgarbage = collectgarbage
local debug_getinfo = debug.getinfo
local str_find, str_match, str_gmatch, str_gsub, str_rep, str_sub, str_byte, str_format, str_upper, str_lower =
  string.find, string.match, string.gmatch, string.gsub, string.rep, string.sub, string.byte, string.format,
  string.upper, string.lower
local concat = table.concat
local math_type, math_min, math_max, tointeger = math.type, math.min, math.max, math.tointeger

---------------------------------------------------------------------------
-- Time: what one uninterruptible C call may take
---------------------------------------------------------------------------

local CAP_SECONDS = 1.0     -- no single C call runs longer than this, whatever the limit
local MARGIN = 0.05         -- of the documented overrun (0.2 × limit + 0.1 s), kept for the rest of the run
local MAX_RATE = 1e10       -- steps per second no machine reaches (refusals above it skip calibration)
local SMALL = 1e5           -- steps below which a call does not read the clock ...
local CLOCK_EVERY = 2e6     -- ... until this many such steps have accumulated
local BIG = 1 << 16         -- bytes or elements above which a library call reads the clock
local COPY_RATE = 1e9       -- bytes per second string.rep is assumed to copy (conservative) ...
local PIECE_RATE = 2e8      -- ... and pieces per second (one memcpy each)
local MOVE_RATE = 2e7       -- elements per second table.move is assumed to move (conservative)

local rate = kit.rate       -- matcher steps per second: the process's, or calibrated on first need
local pending = 0

local function check_clock()
  local t = is_tripped()
  if t then error(t, 0) end
  if remaining() <= 0 then trip("wall_time") end
end

-- Seconds one call may still take: the time the run has left plus the documented overrun,
-- at most CAP_SECONDS. Trips the wall-clock limit when the run has no time left.
local function allowed_seconds()
  check_clock()
  return math_min(CAP_SECONDS, remaining() + 0.2 * LIMITS.wall_time + 0.1 - MARGIN)
end

---------------------------------------------------------------------------
-- Lua's own errors through a wrapper
---------------------------------------------------------------------------

-- A message handler for xpcall(cfn, handler, ...) called by a wrapper: errors raised by
-- `cfn` itself get the name and position luaL_argerror / luaL_error would give without
-- the wrapper (stack: 1 handler, 2 cfn, 3 xpcall, 4 wrapper, 5 the wrapper's caller).
-- Errors from the script's own callbacks (gsub, sort, __index) pass through untouched.
local function lua_errors(cfn, qualified)
  return function(e)
    if type(e) ~= "string" then return e end
    local raiser = debug_getinfo(2, "fS")
    if raiser and raiser.source == "=?" and str_sub(e, 1, 6) == "?:-1: " then
      return str_sub(e, 7)   -- raised in the runtime's own Lua code (sort's comparator): as in C, no position
    end
    if not raiser or raiser.func ~= cfn then return e end
    local me = debug_getinfo(4, "nt")
    -- A wrapper reached by a tail call (`return s:find(x)`) has lost its caller's frame:
    -- Lua would name the function as called, usually its short name, at the caller's line.
    local tail = me and me.istailcall
    local arg, detail = str_match(e, "^bad argument #(%d+) to '[^']*' (.*)$")
    if arg then
      local name = me and me.name or (tail and str_match(qualified, "[^.]*$")) or qualified
      arg = tonumber(arg)
      if me and me.namewhat == "method" then
        arg = arg - 1
        if arg == 0 then e = "calling '" .. name .. "' on bad self " .. detail end
      end
      if arg > 0 then e = "bad argument #" .. arg .. " to '" .. name .. "' " .. detail end
    end
    local at = not tail and positioned(e) and debug_getinfo(5, "Sl")
    if at and at.currentline > 0 then e = at.short_src .. ":" .. at.currentline .. ": " .. e end
    return e
  end
end

local function relay(ok, ...)
  if ok then return ... end
  error((...), 0)
end

-- `cfn` behind `check(...)` (which may answer for it: `true, value`), with Lua's own errors.
local function wrapped(cfn, qualified, check)
  local handler = lua_errors(cfn, qualified)
  if check then
    return function(...)
      local done, value = check(...)
      if done then return value end
      return relay(xpcall(cfn, handler, ...))
    end
  end
  return function(...) return relay(xpcall(cfn, handler, ...)) end
end


---------------------------------------------------------------------------
-- The pattern cost model
---------------------------------------------------------------------------
-- Lua's matcher (lstrlib.c) is a backtracking search over the pattern's items; the
-- analysis of a pattern's shape (_patmodel.lua) says which items choose and how their
-- choices multiply. It is loaded into the state on first need, and each analysis is kept
-- per state. Below: the bound on a call's steps, from the analysis and the subject.

local SINGLE, ENDANCHOR, BALANCE, BACKREF = 1, 5, 6, 8   -- item kinds, as _patmodel.lua numbers them

local model_code = kit.model   -- _patmodel.lua's bytecode
local model_analyse, model_complement
local function load_model()
  local chunk, err = load(model_code, "=[kosmo]", "b")
  if not chunk then error(err, 0) end   -- only ever "not enough memory": the memory limit
  model_analyse, model_complement = chunk()
end

local analyses, cached = {}, 0
kit.on_reset(function()   -- a state serves one run after another: nothing of this run's stays
  pending, analyses, cached, model_analyse, model_complement, rate = 0, {}, 0, nil, nil, kit.rate
end)
local function analyse(p, anchored)
  local key = (anchored and "^" or " ") .. p
  local a = analyses[key]
  if a then return a end
  if not model_analyse then load_model() end
  a = model_analyse(p, anchored)
  if cached >= 256 then analyses, cached = {}, 0 end
  analyses[key], cached = a, cached + 1
  return a
end

local function complement(tok)
  if not model_complement then load_model() end
  return model_complement(tok)
end

-- Upper bound on the matcher's steps for subject length n. `q.run[class]` bounds the
-- longest run of a class (n if absent), `q.last` the run ending at the subject's end,
-- `q.lead` the number of positions where a mandatory first class matches.
local function steps(a, n, q)
  local items, runs = a.items, q.run
  local function bound(it)
    if it.full then return n end
    return math_min(n, runs[it.class] or n)
  end
  local start = a.anchored and 1 or 2   -- an unanchored search chooses its start: one more ordered choice
  local factor, j = {}, start
  for k, it in ipairs(items) do
    if it.mode == "multiply" and it.quant ~= "?" then
      local r, comb = bound(it), (n + j) / j
      if it.stops then
        local gap = 0
        for _, g in ipairs(it.stops) do
          -- a back reference to a character the subject lacks: no match captures it
          if not (it.stops.captured and q.absent and q.absent[g]) then gap = math_max(gap, math_min(n, runs[g] or n)) end
        end
        r = math_min(r, gap)
      end
      if r + 1 < comb then factor[k] = r + 1 else factor[k], j = comb, j + 1 end
    end
  end
  local cost = {[#items + 1] = 1}
  for k = #items, 1, -1 do
    local it, c = items[k], cost[k + 1]
    local kind = it.kind
    if kind == SINGLE then
      local quant = it.quant
      if quant == nil then c = 1 + c
      elseif quant == "?" then
        if it.mode == "free" then c = 1 + c elseif it.mode == "commit" then c = 2 + c else c = 1 + 2 * c end
      else
        local r = bound(it)
        if it.mode == "free" then c = (quant == "-" and 1 or r + 1) + c
        elseif it.mode == "commit" then c = 2 * r + 1 + c
        elseif quant == "-" then c = factor[k] * (2 + c)   -- each try: the tail, then one more character
        else c = r + factor[k] * (1 + c) end
      end
    elseif kind == ENDANCHOR then c = 1
    elseif kind == BALANCE then c = math_min(n, q.span and q.span[it.pair] or n) + c
    elseif kind == BACKREF then
      local len = n
      if it.from then
        len = 0
        for i = it.from.at + 1, it.from.close - 1 do
          local inner = items[i]
          if inner.kind == SINGLE then
            len = len + ((inner.quant == nil or inner.quant == "?") and 1 or bound(inner))
          elseif inner.kind == BALANCE or inner.kind == BACKREF then
            len = len + n
          end
        end
        len = math_min(len, n)
      end
      c = len + 1 + c
    else
      c = 1 + c
    end
    cost[k] = c
  end
  if a.anchored then return cost[1] end
  local starts = n + 1
  local kind = a.lead_kind
  if kind == "mandatory" then
    return 2 * starts + math_min(starts, q.lead or starts) * cost[a.lead]
  elseif kind == "free" then
    return starts * (2 + cost[a.lead + 1]) + n
  elseif kind == "last_run" then
    local last = math_min(n, q.last or n)
    return starts * (3 + cost[a.lead + 1]) + last * (2 * last + 1 + cost[a.lead + 1])
  end
  return starts * cost[1]
end

-- Whether s[from..] has a run of at least `t` characters of class `tok`; the longest
-- such run's length if so. Linear: the pattern `[^c]cc...c` (t, at most 2,048 times)
-- compares at most t characters after each character outside the class.
local SCAN_MAX = 2048
local function longest_run(s, from, tok, t)
  local n = #s - from + 1
  if t <= 0 then return true, n end
  local other = complement(tok)
  if not other then return n >= t, n end
  local body = str_rep(tok, math_min(t, SCAN_MAX))
  local longest, pos = nil, from
  local a = str_find(s, "^" .. body, pos) and pos - 1
  while true do
    if not a then
      a = str_find(s, other .. body, pos)
      if not a then break end
    end
    local b = str_find(s, other, a + 1) or #s + 1
    local len = b - a - 1
    if len >= t and (not longest or len > longest) then longest = len end
    pos, a = b, nil
  end
  return longest ~= nil, longest
end

-- The longest stretch %b<open><close> scans from any start in s[from..]: to the close that
-- balances it, or to the end for an open never balanced (1 when the subject has no open).
-- Linear: only the two characters are visited, each open matched with a stack.
local function balance_span(s, from, pair)
  local open, close = str_sub(pair, 1, 1), str_sub(pair, 2, 2)
  local function escaped(ch) return str_find(ch, "^%w") and ch or "%" .. ch end
  local set = "()([" .. escaped(open) .. escaped(close) .. "])"
  local ls, longest, stack, depth, last = #s, 1, {}, 0, nil
  for pos, ch in str_gmatch(s, set, from) do
    if open == close then   -- the next one closes (Lua's matcher looks for the close first)
      if last then longest = math_max(longest, pos - last + 1) end
      last = pos
    elseif ch == close then
      if depth > 0 then
        longest = math_max(longest, pos - stack[depth] + 1)
        stack[depth], depth = nil, depth - 1
      end
    else
      depth = depth + 1
      stack[depth] = pos
    end
  end
  if last then longest = math_max(longest, ls - last + 1) end
  if depth > 0 then longest = math_max(longest, ls - stack[1] + 1) end
  return longest
end

-- Steps a subject's runs cost to measure (a scan is linear, ~3 steps a byte).
local SCAN_STEPS = 3

local function refuse(fname, p, n, estimate, budget, per_second)
  usage(str_format("string.%s: pattern %q on a %d-byte subject could backtrack for too long "
      .. "(worst case ~%.0e steps, ~%.1f s of C work; one call may take at most %.1f s here)",
      fname, #p > 40 and str_sub(p, 1, 40) .. "..." or p, n, estimate, estimate / per_second, budget / per_second),
    "make the repeated item end where the next one starts (\"[^,]*,\" instead of \".-,\"), anchor the pattern "
    .. "with ^, use a plain find (string.find(s, text, 1, true)), split the text first, or json.decode for JSON")
end

-- Steps per second this machine's matcher runs, as the host measured it once per process
-- (_patterns.py: the slower of lazy and literal matching, halved for a loaded machine).
local function steps_per_second()
  if not rate then rate = calibrate() end
  return rate
end

local SPECIALS = "[%^%$%*%+%?%.%(%[%%%-]"

-- Refuse (before any work) a pattern call whose bound does not fit the time it may take.
local function check_pattern(fname, s, p, init, plain)
  local ts, tp = type(s), type(p)
  if ts == "number" then s = tostring(s) elseif ts ~= "string" then return end
  if tp == "number" then p = tostring(p) elseif tp ~= "string" then return end
  local ls, from = #s, 1
  if init ~= nil then
    init = tointeger(tonumber(init) or false)
    if not init then return end                 -- Lua raises its own error
    if init > 0 then from = init elseif init < -ls then from = 1 elseif init < 0 then from = ls + init + 1 end
    if from > ls + 1 then return end            -- nothing to search
  end
  local n = ls - from + 1
  local estimate, a
  if fname == "find" and (plain or not str_find(p, SPECIALS)) then
    estimate = n + n * #p / 16                  -- memchr and memcmp
  else
    a = analyse(p, fname ~= "gmatch" and str_byte(p, 1) == 94)
    estimate = steps(a, n, {run = {}})
  end
  if estimate <= SMALL then
    pending = pending + estimate
    if pending > CLOCK_EVERY then
      pending = 0
      check_clock()
    end
    return estimate
  end
  local refinable = a and (next(a.classes) ~= nil or a.lead_kind == "last_run" or a.lead_kind == "mandatory"
                           or a.balances ~= nil)
  if estimate > CAP_SECONDS * MAX_RATE and not refinable then   -- over any machine's budget: no need to calibrate
    return refuse(fname, p, n, estimate, CAP_SECONDS * MAX_RATE, MAX_RATE)
  end
  local per_second = steps_per_second()
  local budget = allowed_seconds() * per_second
  if estimate <= budget then return estimate end
  if not a then return refuse(fname, p, n, estimate, budget, per_second) end
  -- The shape alone is too pessimistic: bound the subject's runs, at one common threshold
  -- t chosen so that the bound fits the budget if every repeated class's runs are <= t.
  local names = {}
  for class in pairs(a.classes) do names[#names + 1] = class end
  local spans   -- how far each %bxy can scan in this subject
  for _, pair in ipairs(a.balances or {}) do
    spans = spans or {}
    spans[pair] = balance_span(s, from, pair)
  end
  local scans = #names + (a.lead_kind == "mandatory" and 1 or 0) + #(a.balances or {})   -- linear scans
  local spend = SCAN_STEPS * n * scans   -- (the last run's check is not a scan)
  if a.lead_kind == "last_run" then scans = scans + 1 end
  -- How many positions a mandatory first class matches: counted (for up to 1 MiB), not bounded;
  -- for a `+` first item (whose runs bound it anyway) only when the bound needs it (see below).
  local countable = a.lead_kind == "mandatory" and n <= (1 << 20)
  local function count_lead() return select(2, str_gsub(from > 1 and str_sub(s, from) or s, a.lead_class, "")) end
  local lead
  if countable and a.items[a.lead].quant == nil then lead = count_lead() end   -- (its scan is in `spend`)
  local function with(t)
    local q = {run = {}, last = t, lead = lead, span = spans}
    for _, class in ipairs(names) do q.run[class] = t end
    return steps(a, n, q)
  end
  if countable and lead == nil and spend + with(0) > budget then lead = count_lead() end
  if scans == 0 or spend + with(0) > budget then return refuse(fname, p, n, estimate, budget, per_second) end
  local low, high = 0, n
  while low < high do
    local mid = (low + high + 1) // 2
    if spend + with(mid) <= budget then low = mid else high = mid - 1 end
  end
  local q = {run = {}, lead = lead, absent = {}, span = spans}
  for _, class in ipairs(names) do
    local over, longest = longest_run(s, from, class, low + 1)
    q.run[class] = over and longest or low
    q.absent[class] = over and longest == n
  end
  if a.lead_kind == "last_run" then
    -- the last run is shorter than t + 1 if a character outside the class sits in the last t + 1 bytes
    q.last = str_find(s, complement(a.items[a.lead].class), math_max(from, ls - low)) and low or n
  end
  estimate = steps(a, n, q) + spend
  if estimate > budget and countable and lead == nil then
    q.lead = count_lead()
    estimate = steps(a, n, q) + spend
  end
  if estimate > budget then return refuse(fname, p, n, estimate, budget, per_second) end
  return estimate
end

---------------------------------------------------------------------------
-- string
---------------------------------------------------------------------------

local function clocked_string(s)
  if type(s) == "string" and #s > BIG then check_clock() end
end

local safe_string = {}
for name, fn in pairs(string) do safe_string[name] = fn end
for _, name in ipairs({"upper", "lower", "reverse", "sub", "byte", "format", "len", "pack", "unpack"}) do
  safe_string[name] = wrapped(string[name], "string." .. name, clocked_string)
end
safe_string.find = wrapped(str_find, "string.find", function(s, p, init, plain)
  check_pattern("find", s, p, init, plain)
end)
safe_string.match = wrapped(str_match, "string.match", function(s, p, init)
  check_pattern("match", s, p, init)
end)
safe_string.gmatch = wrapped(str_gmatch, "string.gmatch", function(s, p, init)
  check_pattern("gmatch", s, p, init)
end)
safe_string.gsub = wrapped(str_gsub, "string.gsub", function(s, p)
  check_pattern("gsub", s, p)
end)

local MAXSIZE = 0x7fffffff   -- lstrlib's limit: longer results are "resulting string too large"
safe_string.rep = wrapped(str_rep, "string.rep", function(s, n, sep)
  if type(s) == "number" then s = tostring(s) end
  if type(sep) == "number" then sep = tostring(sep) end
  local count = tointeger(tonumber(n) or false)
  if type(s) ~= "string" or not count or count <= 0 or (sep ~= nil and type(sep) ~= "string") then return end
  local unit = #s + (sep and #sep or 0)
  if unit == 0 then return true, "" end        -- Lua would loop n times copying nothing (n = 1e18: forever)
  if unit > MAXSIZE // count then return end   -- Lua's own "resulting string too large", before any work
  local total = unit * count
  -- Lua builds the result in a buffer and then copies it: twice its size at the peak. One GC
  -- step first, so the garbage of earlier work does not count against the memory limit.
  if total > BIG then collectgarbage("step") end
  -- more than the memory limit: the allocation fails at once (the memory limit); else the copy
  -- takes about a nanosecond a piece plus the bytes' time
  if total > BIG and total <= LIMITS.memory and count / PIECE_RATE + total / COPY_RATE > allowed_seconds() then
    usage(str_format("string.rep: a %d-byte result would take longer than the run has left", total),
      "build smaller strings, or raise the wall-clock limit")
  end
end)

---------------------------------------------------------------------------
-- table
---------------------------------------------------------------------------

local function clocked_table(t)
  if type(t) == "table" and rawlen(t) > BIG then check_clock() end
end

local safe_table = {}
for name, fn in pairs(table) do safe_table[name] = fn end
for _, name in ipairs({"insert", "remove", "concat", "unpack"}) do
  safe_table[name] = wrapped(table[name], "table." .. name, clocked_table)
end

local table_sort = table.sort
local sort_errors = lua_errors(table_sort, "table.sort")
function safe_table.sort(...)
  local t, comp = ...
  if type(t) == "table" and rawlen(t) > BIG then
    check_clock()
    -- compare through Lua, where the count hook runs
    if comp == nil then
      comp = function(x, y) return x < y end
    elseif type(comp) == "function" and debug_getinfo(comp, "S").what == "C" then
      local c = comp
      comp = function(x, y) return c(x, y) end
    end
    return relay(xpcall(table_sort, sort_errors, t, comp))
  end
  return relay(xpcall(table_sort, sort_errors, ...))
end

local MAXINTEGER = math.maxinteger
safe_table.move = wrapped(table.move, "table.move", function(a1, f, e, t)
  f, e, t = tointeger(tonumber(f) or false), tointeger(tonumber(e) or false), tointeger(tonumber(t) or false)
  if not (f and e and t) or e < f then return end
  if not (f > 0 or e < MAXINTEGER + f) then return end   -- Lua's "too many elements to move"
  local count = e - f + 1
  if not (t <= MAXINTEGER - count + 1) then return end   -- Lua's "destination wrap around"
  if count > BIG and count > allowed_seconds() * MOVE_RATE then
    usage(str_format("table.move: moving %d elements would take longer than the run has left", count),
      "move fewer elements at a time")
  end
end)

-- `cost(p, n)`: the bound on an unanchored find of `p` over n characters with no runs
-- measured (the host turns its calibration calls' timings into a rate with it).
local function cost(p, n) return steps(analyse(p, false), n, {run = {}}) end

return safe_string, safe_table, check_pattern, cost

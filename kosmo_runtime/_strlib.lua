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
local calibrate, WALL = kit.calibrate, kit.wall_time or 0

local error, type, tostring, tonumber, select, xpcall, pcall, pairs, ipairs, rawlen =
  error, type, tostring, tonumber, select, xpcall, pcall, pairs, ipairs, rawlen
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
local SAFETY = 2            -- the calibrated rate is halved: a loaded machine runs slower
local MAX_RATE = 1e10       -- steps per second no machine reaches (refusals above it skip calibration)
local SMALL = 1e5           -- steps below which a call does not read the clock ...
local CLOCK_EVERY = 2e6     -- ... until this many such steps have accumulated
local BIG = 1 << 16         -- bytes or elements above which a library call reads the clock
local COPY_RATE = 1e9       -- bytes per second string.rep is assumed to copy (conservative) ...
local PIECE_RATE = 2e8      -- ... and pieces per second (one memcpy each)
local MEMORY = kit.memory or math.huge
local MOVE_RATE = 2e7       -- elements per second table.move is assumed to move (conservative)

local rate = nil            -- matcher steps per second, calibrated on first need
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
  return math_min(CAP_SECONDS, remaining() + 0.2 * WALL + 0.1 - MARGIN)
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
    local raiser = debug_getinfo(2, "f")
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
    local at = not tail and debug_getinfo(5, "Sl")
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
-- Lua's matcher (lstrlib.c) is a backtracking search over the pattern's items. Only the
-- quantified single-character items choose: `*`/`+`/`-` try every length of the run of
-- their class, `?` tries two. An item's choices multiply the work of what follows it,
-- unless what follows cannot fail (the first choice wins) or begins with a mandatory
-- class that no character of the run can match (every choice but the run's end fails at
-- once). Unanchored calls (and gmatch/gsub, which go on after each match) start at every
-- position. The bound below is the matcher's work in "steps" (one item tried at one
-- position), an upper bound for every subject of length n, refined with the subject's
-- longest runs of each repeated class when the shape alone is too pessimistic.

local SINGLE, OPEN, CLOSE, POSCAP, ENDANCHOR, BALANCE, FRONTIER, BACKREF = 1, 2, 3, 4, 5, 6, 7, 8

local ALPHABET do
  local bytes = {}
  for c = 0, 255 do bytes[#bytes + 1] = string.char(c) end
  ALPHABET = concat(bytes)
end

-- The characters a class token does not match (a string), made in C: gsub removes its members.
local outside_of = {}
local function outside(tok)
  local o = outside_of[tok]
  if not o then
    local ok, rest = pcall(str_gsub, ALPHABET, tok, "")
    o = ok and rest or ""   -- a malformed class: assume it matches everything
    outside_of[tok] = o
  end
  return o
end

local function size(tok) return 256 - #outside(tok) end

-- Some character matches both classes: fewer than 256 are outside one of them.
local function overlap(c, d)
  local ok, neither = pcall(str_gsub, outside(c), d, "")
  return not ok or #outside(c) + #outside(d) - #neither < 256
end

local function full(tok) return #outside(tok) == 0 end

local CLASS_LETTERS = {a = true, c = true, d = true, g = true, l = true, p = true, s = true, u = true,
                       w = true, x = true}

-- A class token matching exactly the characters `tok` does not, or nil.
local complement_of = {}
local function complement(tok)
  local c = complement_of[tok]
  if c == nil then
    local first, second = str_sub(tok, 1, 1), str_sub(tok, 2, 2)
    if tok == "." then
      c = false
    elseif first == "%" and CLASS_LETTERS[str_lower(second)] then
      c = "%" .. (second == str_lower(second) and str_upper(second) or str_lower(second))
    elseif first == "%" then
      c = "[^" .. tok .. "]"
    elseif first == "[" and second == "^" then
      local inner = str_sub(tok, 3, -2)
      c = "[" .. (str_sub(inner, 1, 1) == "^" and "%" or "") .. inner .. "]"
    elseif first == "[" then
      c = "[^" .. str_sub(tok, 2)
    else
      c = "[^" .. tok .. "]"
    end
    if c and (size(tok) + size(c) ~= 256 or overlap(tok, c)) then c = false end
    complement_of[tok] = c
  end
  return c or nil
end

-- Every character is in `c` or in `d`.
local function covers(c, d)
  local ok, neither = pcall(str_gsub, outside(c), d, "")
  return ok and neither == ""
end

-- Where the class starting at p[i] ends (lstrlib's classEnd); malformed classes end the pattern.
local function class_end(p, i, m)
  local c = str_byte(p, i)
  if c == 37 then return math_min(i + 2, m + 1) end      -- %x
  if c ~= 91 then return i + 1 end                       -- a character
  local j = i + 1
  if str_byte(p, j) == 94 then j = j + 1 end
  repeat
    if j > m then return m + 1, true end
    local d = str_byte(p, j)
    j = j + 1
    if d == 37 and j <= m then j = j + 1 end
  until str_byte(p, j) == 93
  return j + 1
end

-- A class token as a pattern of its own: single punctuation characters escaped.
local function canonical(tok)
  if #tok == 1 and tok ~= "." and not str_find(tok, "^%w") then return "%" .. tok end
  return tok
end

local function parse(p, from)
  local items, m, i = {}, #p, from
  local opened = {}   -- capture number -> index of its item
  while i <= m do
    local c = str_byte(p, i)
    local it
    if c == 40 then                                                  -- (
      if str_byte(p, i + 1) == 41 then it = {kind = POSCAP}; i = i + 2
      else it = {kind = OPEN}; i = i + 1 end
      opened[#opened + 1] = it
      it.capture = #opened
    elseif c == 41 then it = {kind = CLOSE}; i = i + 1              -- )
    elseif c == 36 and i == m then it = {kind = ENDANCHOR}; i = i + 1
    elseif c == 37 and str_byte(p, i + 1) == 98 then                 -- %bxy
      it = {kind = BALANCE, first = canonical(str_sub(p, i + 2, i + 2))}; i = i + 4
    elseif c == 37 and str_byte(p, i + 1) == 102 then                -- %f[set]
      it = {kind = FRONTIER}; i = class_end(p, i + 2, m)
    elseif c == 37 and str_find(p, "^%d", i + 1) then               -- %1
      it = {kind = BACKREF, index = str_byte(p, i + 1) - 48}; i = i + 2
    else
      local j, malformed = class_end(p, i, m)
      local tok = malformed and "." or canonical(str_sub(p, i, j - 1))
      local q = str_sub(p, j, j)
      if q == "*" or q == "+" or q == "-" or q == "?" then j = j + 1 else q = nil end
      it = {kind = SINGLE, class = tok, quant = q, full = full(tok)}
      i = j
    end
    items[#items + 1] = it
  end
  -- The items of each capture (for the length of a back reference).
  local open = {}
  for k, it in ipairs(items) do
    if it.kind == OPEN then open[#open + 1] = k
    elseif it.kind == CLOSE and #open > 0 then
      local o = items[open[#open]]
      o.at, o.close = open[#open], k
      local inner = items[open[#open] + 1]
      if k == open[#open] + 2 and inner.kind == SINGLE and inner.quant == nil then o.only = inner end
      open[#open] = nil
    end
  end
  for _, it in ipairs(items) do
    if it.kind == BACKREF then
      local cap = opened[it.index]
      it.from = cap and cap.kind == OPEN and cap.close and cap or nil
    end
  end
  return items
end

-- What each tail of the pattern can do, from the right: `nofail[k]` (items k.. match at
-- any position), `endok[k]` (they match the empty string at the subject's end),
-- `first[k]` (the classes the tail's first character can be in; `unknown` if not known).
local function tails(items)
  local m = #items
  local nofail, endok, first = {[m + 1] = true}, {[m + 1] = true}, {[m + 1] = {}}
  for k = m, 1, -1 do
    local it, nf, eo, fs = items[k], false, false, nil
    if it.kind == OPEN or it.kind == CLOSE or it.kind == POSCAP then
      nf, eo, fs = nofail[k + 1], endok[k + 1], first[k + 1]
    elseif it.kind == SINGLE and it.quant and it.quant ~= "+" then
      nf = nofail[k + 1] or (it.full and it.quant ~= "?" and endok[k + 1])
      eo = endok[k + 1]
      fs = {it.class, unknown = first[k + 1].unknown, dollar = first[k + 1].dollar}
      for _, d in ipairs(first[k + 1]) do fs[#fs + 1] = d end
    elseif it.kind == SINGLE then
      fs = {it.class}
    elseif it.kind == ENDANCHOR then
      eo, fs = true, {dollar = true}
    elseif it.kind == BALANCE then
      fs = {it.first}
    else
      fs = {unknown = true}
    end
    nofail[k], endok[k], first[k] = nf, eo, fs
  end
  return nofail, endok, first
end

local function disjoint(c, fs)
  if fs.unknown then return false end
  for _, d in ipairs(fs) do
    if overlap(c, d) then return false end
  end
  return true
end

-- A lazy item followed by one mandatory character (a class, or a back reference to a
-- one-character capture) and then by what cannot fail stops at the first such character:
-- it tries at most the longest gap between two of them. The gaps, as classes whose runs
-- bound it (the complement of each character the head can be), or nil.
local function stops_at(items, h, nofail)
  while items[h] and (items[h].kind == CLOSE or items[h].kind == OPEN or items[h].kind == POSCAP) do h = h + 1 end
  local head = items[h]
  if not head or not nofail[h + 1] then return nil end
  local tokens
  if head.kind == SINGLE and head.quant == nil then
    tokens = {head.class}
  elseif head.kind == BACKREF and head.from and head.from.only then
    local inner = head.from.only
    if size(inner.class) <= 4 then
      tokens = {}
      for ch in str_gmatch(ALPHABET, inner.class) do tokens[#tokens + 1] = canonical(ch) end
    end
  end
  if not tokens then return nil end
  local gaps = {captured = head.kind == BACKREF}
  for _, tok in ipairs(tokens) do
    local gap = complement(tok)
    if not gap then return nil end
    gaps[#gaps + 1] = gap
  end
  return gaps
end

-- The analysis of one pattern (cached per state): its items, each quantified item's
-- mode ("free": what follows cannot fail; "commit": it cannot match inside the run;
-- "multiply"), and how an unanchored search starts (`lead`).
local analyses, cached = {}, 0
local function analyse(p, anchored)
  local key = (anchored and "^" or " ") .. p
  local a = analyses[key]
  if a then return a end
  local items = parse(p, anchored and 2 or 1)
  local nofail, _, first = tails(items)
  for k, it in ipairs(items) do
    if it.kind == SINGLE and it.quant then
      if nofail[k + 1] then it.mode = "free"
      elseif disjoint(it.class, first[k + 1]) then it.mode = "commit"
      else it.mode = "multiply" end
      if it.mode == "multiply" and it.quant == "-" then it.stops = stops_at(items, k + 1, nofail) end
    end
  end
  a = {items = items, anchored = anchored}
  if not anchored then
    local k = 1
    while items[k] and (items[k].kind == OPEN or items[k].kind == CLOSE or items[k].kind == POSCAP) do k = k + 1 end
    local lead = items[k]
    if lead and lead.kind == BALANCE then   -- it only scans where its opening character is
      a.lead, a.lead_kind, a.lead_class = k, "mandatory", lead.first
    elseif lead and lead.kind == SINGLE then
      a.lead, a.lead_class = k, lead.class
      if lead.quant == nil then
        a.lead_kind = "mandatory"
      elseif lead.quant ~= "?" and lead.mode == "free" then
        a.lead_kind = "free"
      elseif lead.quant ~= "?" and lead.mode == "commit" then
        -- the run can only end where the head matches: only the subject's last run can fail
        local h = k + 1
        while items[h] and (items[h].kind == CLOSE or items[h].kind == OPEN or items[h].kind == POSCAP) do h = h + 1 end
        local head = items[h]
        if head and head.kind == SINGLE and (head.quant == nil or head.quant == "+") and nofail[h + 1]
           and covers(lead.class, head.class) and complement(lead.class) then
          a.lead_kind = "last_run"
        end
      end
    end
  end
  -- The classes whose longest runs the bound uses (the lead's own, when its formula does not).
  local classes = {}
  for k, it in ipairs(items) do
    if it.kind == SINGLE and it.quant and it.quant ~= "?" and not it.full
       and not (k == a.lead and (a.lead_kind == "free" or a.lead_kind == "last_run")) then
      classes[it.class] = true
    end
    for _, gap in ipairs(it.stops or {}) do classes[gap] = true end
    if it.kind == BACKREF and it.from then
      for i = it.from.close - 1, 1, -1 do
        local inner = items[i]
        if inner == it.from then break end
        if inner.kind == SINGLE and inner.quant and not inner.full then classes[inner.class] = true end
      end
    end
  end
  a.classes = classes
  if cached >= 256 then analyses, cached = {}, 0 end
  analyses[key], cached = a, cached + 1
  return a
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
    elseif kind == BALANCE then c = n + c
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

-- Steps a subject's runs cost to measure (a scan is linear, ~3 steps a byte).
local SCAN_STEPS = 3

local function refuse(fname, p, n, estimate, budget, per_second)
  usage(str_format("string.%s: pattern %q on a %d-byte subject could backtrack for too long "
      .. "(worst case ~%.0e steps, ~%.1f s of C work; one call may take at most %.1f s here)",
      fname, #p > 40 and str_sub(p, 1, 40) .. "..." or p, n, estimate, estimate / per_second, budget / per_second),
    "make the repeated item end where the next one starts (\"[^,]*,\" instead of \".-,\"), anchor the pattern "
    .. "with ^, use a plain find (string.find(s, text, 1, true)), split the text first, or json.decode for JSON")
end

-- Steps per second: the slower of the two calibration calls the host timed (lazy and literal
-- matching cost different times per step), halved.
local function steps_per_second()
  if not rate then
    local n, lazy, m, k, literal = calibrate()
    local per_lazy = steps(analyse(".-b", false), n, {run = {}}) / math_max(lazy, 1e-6)
    local per_literal = steps(analyse(str_rep("a", k) .. "b", false), m, {run = {}}) / math_max(literal, 1e-6)
    rate = math_min(per_lazy, per_literal) / SAFETY
  end
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
  local refinable = a and (next(a.classes) ~= nil or a.lead_kind == "last_run" or a.lead_kind == "mandatory")
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
  local scans = #names + (a.lead_kind == "mandatory" and 1 or 0)   -- linear scans; the last run's check is not
  local spend = SCAN_STEPS * n * scans
  if a.lead_kind == "last_run" then scans = scans + 1 end
  -- How many positions a mandatory first class matches: counted (for up to 1 MiB), not bounded.
  local lead
  if a.lead_kind == "mandatory" and n <= (1 << 20) then
    lead = select(2, str_gsub(from > 1 and str_sub(s, from) or s, a.lead_class, ""))
  end
  local function with(t)
    local q = {run = {}, last = t, lead = lead}
    for _, class in ipairs(names) do q.run[class] = t end
    return steps(a, n, q)
  end
  if scans == 0 or spend + with(0) > budget then return refuse(fname, p, n, estimate, budget, per_second) end
  local low, high = 0, n
  while low < high do
    local mid = (low + high + 1) // 2
    if spend + with(mid) <= budget then low = mid else high = mid - 1 end
  end
  local q = {run = {}, lead = lead, absent = {}}
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
safe_string.dump = nil
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
  if total > BIG and total <= MEMORY and count / PIECE_RATE + total / COPY_RATE > allowed_seconds() then
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

return safe_string, safe_table, check_pattern

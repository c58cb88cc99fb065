-- kosmo sandbox: the pattern analysis behind the pattern-cost guard (_strlib.lua).
-- Loaded into a state the first time a pattern call there needs an analysis, in the real
-- globals; returns `analyse(p, anchored)` and `complement(class)`. Pure functions of the
-- pattern text: _strlib.lua keeps their results per state.

local pcall, ipairs = pcall, ipairs
local str_find, str_gmatch, str_gsub, str_sub, str_byte, str_upper, str_lower =
  string.find, string.gmatch, string.gsub, string.sub, string.byte, string.upper, string.lower
local math_min = math.min

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

-- every byte, 0 to 255, in order (a literal: no string.char calls when the model loads)
local ALPHABET = "\0\1\2\3\4\5\6\7\8\9\10\11\12\13\14\15\16\17\18\19\20\21\22\23\24\25\26\27\28\29\30\31\z
  \32\33\34\35\36\37\38\39\40\41\42\43\44\45\46\47\48\49\50\51\52\53\54\55\56\57\58\59\60\61\62\63\z
  \64\65\66\67\68\69\70\71\72\73\74\75\76\77\78\79\80\81\82\83\84\85\86\87\88\89\90\91\92\93\94\95\z
  \96\97\98\99\100\101\102\103\104\105\106\107\108\109\110\111\112\113\114\115\116\117\118\119\120\121\122\123\124\125\126\127\z
  \128\129\130\131\132\133\134\135\136\137\138\139\140\141\142\143\144\145\146\147\148\149\150\151\152\153\154\155\156\157\158\159\z
  \160\161\162\163\164\165\166\167\168\169\170\171\172\173\174\175\176\177\178\179\180\181\182\183\184\185\186\187\188\189\190\191\z
  \192\193\194\195\196\197\198\199\200\201\202\203\204\205\206\207\208\209\210\211\212\213\214\215\216\217\218\219\220\221\222\223\z
  \224\225\226\227\228\229\230\231\232\233\234\235\236\237\238\239\240\241\242\243\244\245\246\247\248\249\250\251\252\253\254\255"

-- The characters a class token does not match (a string), made in C: gsub removes its members.
local outside_of = {["."] = ""}   -- "." matches every character: known without a gsub
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
  if c == "." or d == "." then return true end
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
      local open, close = str_sub(p, i + 2, i + 2), str_sub(p, i + 3, i + 3)
      it = {kind = BALANCE, first = canonical(open), pair = #close == 1 and open .. close or nil}; i = i + 4
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

-- The analysis of one pattern: its items, each quantified item's mode ("free": what
-- follows cannot fail; "commit": it cannot match inside the run; "multiply"), and how an
-- unanchored search starts (`lead`).
local function analyse(p, anchored)
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
  local a = {items = items, anchored = anchored}
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
      -- otherwise, a lead that needs a character of its class scans only where one is
      if a.lead_kind == nil and lead.quant == "+" then a.lead_kind = "mandatory" end
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
  -- The %bxy pairs whose scans the bound uses (each scans to its match, or to the end).
  for _, it in ipairs(items) do
    if it.kind == BALANCE and it.pair then
      a.balances = a.balances or {}
      a.balances[#a.balances + 1] = it.pair
    end
  end
  return a
end

return analyse, complement

"""A reset state is what it was before its first run: the proof that reuse is isolation.

A Runtime resets a run's state for the next run (``Sandbox.reset``). These tests walk
everything the Lua state holds, from its registry (the real globals, the runtime's layers
and every closure's upvalues, every metatable, the values Python holds) and from the string
metatable, and describe it canonically: objects are numbered in the order a breadth-first walk
meets them, so two walks compare equal exactly when the two states hold the same graph of
values. (Lua's and lupa's tables of references are compared as sets: their free lists are not
compared.) A state walked after its first reset (before any run) must equal the same state walked
after a run that changed everything it could reach, and after runs that use every layer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kosmo_runtime import Demo, Limits, Runtime
from kosmo_runtime._sandbox import Sandbox

#: Describes every value the state holds, canonically (run in the real globals, unhooked).
WALK = r"""
local hook, mask, count = debug.gethook()
debug.sethook()
local getmetatable, getupvalue, getinfo, getuservalue = debug.getmetatable, debug.getupvalue, debug.getinfo,
  debug.getuservalue
-- (the real library's functions, never string methods: those are the sandbox's, which count their work)
local format, gsub, byte, sort, concat, status = string.format, string.gsub, string.byte, table.sort, table.concat,
  coroutine.status
local ids, queue, out = {}, {}, {}
local function ref(v)
  local kind = type(v)
  if kind == "string" then return (gsub(format("%q", v), "[\128-\255]", function(c) return "\\" .. byte(c) end)) end
  if kind == "number" then return format("%q", v) end
  if kind ~= "table" and kind ~= "function" and kind ~= "userdata" and kind ~= "thread" then return tostring(v) end
  local id = ids[v]
  if not id then
    queue[#queue + 1] = v
    id = #queue
    ids[v] = id
  end
  return "@" .. id
end
-- Tables of references (`from`: the first reference's key) keep a free list of integers, whose order
-- depends on which references were dropped when: their object values are listed by address.
local function entries(t, from)
  local plain, objects = {}, {}
  for k in next, t do
    local kind = type(k)
    if from and math.type(k) == "integer" and k >= from then
      local v = t[k]
      if type(v) ~= "number" then objects[#objects + 1] = {format("%p", v), v, true} end  -- lupa's references
    elseif kind == "table" or kind == "function" or kind == "userdata" or kind == "thread" then
      objects[#objects + 1] = {ids[k] and format("%08d", ids[k]) or format("~%p", k), k}
    else
      plain[#plain + 1] = k
    end
  end
  local keyed = {}
  for _, k in ipairs(plain) do keyed[#keyed + 1] = {ref(k), k} end
  sort(keyed, function(a, b) return a[1] < b[1] end)
  sort(objects, function(a, b) return a[1] < b[1] end)
  local parts = {}
  for _, e in ipairs(keyed) do parts[#parts + 1] = e[1] .. "=" .. ref(t[e[2]]) end
  for _, e in ipairs(objects) do
    parts[#parts + 1] = e[3] and "ref:" .. ref(e[2]) or ref(e[2]) .. "=" .. ref(t[e[2]])
  end
  return concat(parts, ",")
end
local registry = debug.getregistry()
local references = {[registry] = 3, [registry.LUPA_PYTHON_REFERENCES_TABLE] = 1}
ref(registry)
ref(getmetatable(""))
local i = 1
while i <= #queue do
  local v = queue[i]
  local kind, text = type(v), nil
  if kind == "table" then
    text = "table mt=" .. ref(getmetatable(v)) .. " {" .. entries(v, references[v]) .. "}"
  elseif kind == "function" then
    local info = getinfo(v, "Su")
    local ups = {}
    for u = 1, info.nups do ups[u] = ref(select(2, getupvalue(v, u))) end
    text = "function " .. info.what .. " " .. info.source .. ":" .. info.linedefined .. " [" .. concat(ups, ",") .. "]"
  elseif kind == "userdata" then
    text = "userdata mt=" .. ref(getmetatable(v)) .. " uv=" .. ref(getuservalue(v))
  else
    text = "thread " .. status(v)
  end
  out[i] = i .. " " .. text
  i = i + 1
end
debug.sethook(hook, mask, count)
return concat(out, "\n")
"""

#: Changes everything a script can reach: every table's entries and metatable, raw or not.
TAMPER = r"""
local pcall, pairs, ipairs, type, rawset, setmetatable, next = pcall, pairs, ipairs, type, rawset, setmetatable, next
local seen = {}
local function tamper(t, depth)
  if seen[t] or depth > 8 then return end
  seen[t] = true
  local keys = {}
  pcall(function() for k in pairs(t) do keys[#keys + 1] = k end end)
  for _, k in ipairs(keys) do
    local ok, v = pcall(function() return t[k] end)
    if ok and type(v) == "table" then tamper(v, depth + 1) end
  end
  for _, k in ipairs(keys) do pcall(function() t[k] = "leak" end) end
  pcall(function() t.kosmo_leak = "leak" end)
  pcall(rawset, t, "kosmo_raw_leak", "leak")
  pcall(setmetatable, t, {__index = function() return "leak" end})
end
math.randomseed(42)
local co = coroutine.create(function() coroutine.yield(1) end)
coroutine.resume(co)
kept = {co, coroutine.wrap(function() coroutine.yield() end), load("return 1", "chunk", "t", {})}
kept[2]()
local rooms = app.integrations.whereby.list_rooms{limit = 1}
kept[4] = rooms
local branches = app.parallel({function() return app.integrations.whereby.list_rooms{limit = 1} end})
kept[5] = branches
kept[6] = ("a=b, c=d"):gsub("(%w+)=(%w+)", "%2=%1")
kept[7] = pcall(error, {code = 1})
kept[8] = lua_list_docs()
pcall(function() local x <close> = setmetatable({}, {__close = function() end}) error("boom") end)
tamper(_G, 0)
return "tampered"
"""

#: What other runs leave behind when they fail in their own ways (not limits: those states are freed).
ENDINGS = [
    "error('boom')",
    "error({message = 'a table'})",
    "return app.integrations.whereby.get_room{room_id = 'nope'}",
    "local t = nil return t.x",
    "return (",
    "print(('x'):rep(10), {1, {2}}) return json.decode('[1, {\"a\": 2}]')",
    "local s = ('line\\n'):rep(100) local n = 0 for l in s:gmatch('([^\\n]*)\\n') do n = n + 1 end return n",
]


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo() as started:
        yield started


def _kept(runtime: Runtime) -> Sandbox:
    """The state a pool-less Runtime keeps for its next run (reset when the last one ended; the first
    run's state is freed, so call this after a second run)."""
    ready = runtime._sandboxes._ready
    assert len(ready) == 1, "the run's state was not kept for the next run"
    return ready[0].sandbox


def _walk(sandbox: Sandbox) -> str:
    return str(sandbox.lua.execute(WALK))


def test_a_reset_state_holds_exactly_what_it_held_before_any_run(demo: Demo) -> None:
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok  # the second run's state is kept
        sandbox = _kept(runtime)
        assert sandbox.reset()  # its layers are all loaded now: what every reset leaves
        before = _walk(sandbox)
        assert before.count("\n") > 500, "the walk did not reach the runtime's layers"
        tampered = runtime.run(TAMPER)
        assert tampered.ok and tampered.result == "tampered", tampered.to_dict()
        assert _kept(runtime) is sandbox
        after = _walk(sandbox)
        assert after == before, _first_difference(before, after)
        for source in ENDINGS:
            runtime.run(source)
            assert _kept(runtime) is sandbox, source
            again = _walk(sandbox)
            assert again == before, (source, _first_difference(before, again))


def test_the_walk_sees_what_a_run_leaves_behind(demo: Demo) -> None:
    """The walk is sharp: a value left in a layer's cache (a reset that forgot one) shows."""
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok
        sandbox = _kept(runtime)
        before = _walk(sandbox)
        assert _walk(sandbox) == before  # the walk itself leaves nothing
        sandbox.kit.extend("kosmo_left_behind", "value")  # as if a layer kept something of a run
        assert _walk(sandbox) != before


def _counts(sandbox: Sandbox) -> list[float | bool]:
    """The numbers and flags the bootstrap's ``run`` closes over (its limits, the hook's counts, whether the
    stack was seen deep), read unhooked."""
    return list(sandbox.lua.execute("""
        local run = ...
        local hook, mask, count = debug.gethook()
        debug.sethook()
        local numbers = {}
        for i = 1, math.huge do
          local name, value = debug.getupvalue(run, i)
          if name == nil then break end
          if type(value) == "number" or type(value) == "boolean" then numbers[#numbers + 1] = value end
        end
        debug.sethook(hook, mask, count)
        return numbers
    """, sandbox._run_chunk).values())


def test_a_reset_leaves_the_hooks_counts_at_zero_wherever_its_countdown_stood(demo: Demo) -> None:
    """Runs of every length modulo the hook's period (1,000 instructions) end with the countdown at every
    point of the reset: none may leave a count for the next run (the reset once zeroed the counts before
    re-arming the hook, and a countdown ending between the two left steps 1000, ticks 1)."""
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok
        sandbox = _kept(runtime)
        pristine = _counts(sandbox)
        for extra in range(1000):
            assert runtime.run(f"for i = 1, {extra} do end return 1").ok
            assert _kept(runtime) is sandbox
            assert _counts(sandbox) == pristine, f"after a run of {extra} more instructions"


def test_each_run_gets_a_fresh_random_generator(demo: Demo) -> None:
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok
        seeded = runtime.run("math.randomseed(42) return {math.random(1 << 40), math.random(1 << 40)}").result
        sandbox = _kept(runtime)
        following = [runtime.run("return {math.random(1 << 40), math.random(1 << 40)}").result for _ in range(3)]
        assert _kept(runtime) is sandbox
        assert seeded not in following and len({tuple(pair) for pair in following}) == 3


def test_a_state_that_hit_a_limit_is_not_reused(demo: Demo) -> None:
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok
        first = _kept(runtime)
        assert runtime.run("while true do end", limits=Limits(instructions=10_000)).error.limit == "instructions"
        assert not runtime._sandboxes._ready  # freed, not reset
        assert first.__dict__.get("lua") is None
        assert runtime.run("return 2").result == 2


def _first_difference(before: str, after: str) -> str:
    for old, new in zip(before.split("\n"), after.split("\n"), strict=False):
        if old != new:
            return f"before: {old[:400]}\nafter:  {new[:400]}"
    return f"{before.count(chr(10))} lines before, {after.count(chr(10))} after"


def test_the_next_run_cannot_tell_how_much_the_last_one_allocated(demo: Demo) -> None:
    """The reset collects the run's garbage: ``collectgarbage("count")`` at the next run's start is the same
    after a run that allocated ~20 KiB as after a later one that allocated nothing. (What stays is capacity
    the state's internal tables grew to, here ~4 KiB: it shows that some earlier run was bigger.)"""
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok
        counts = {}
        for label, source in (("nothing", "return 1"),
                              ("~20 KiB", "local t = {} for i = 1, 300 do t[i] = {i, tostring(i)} end return #t"),
                              ("nothing again", "return 1")):
            assert runtime.run(source).ok
            counts[label] = runtime.run("return collectgarbage('count')").result
        assert abs(counts["~20 KiB"] - counts["nothing again"]) < 1, counts
        assert counts["~20 KiB"] - counts["nothing"] < 8, counts


def test_a_runs_io_changes_stay_in_that_run(demo: Demo) -> None:
    """io is a per-run table (pairs(io) is refused, so TAMPER cannot reach its members): what one run
    assigns to io.write is not the next run's io.write, on the same state."""
    with demo.runtime(pool=0) as runtime:
        assert runtime.run("return 1").ok and runtime.run("return 1").ok
        sandbox = _kept(runtime)
        changed = runtime.run("io.write = function() return 'mine' end return io.write()")
        assert changed.ok and changed.result == "mine"
        assert _kept(runtime) is sandbox
        after = runtime.run("io.write('out') return io.write() == io.stdout")
        assert after.ok and after.result is True and after.output == "out"
        assert _kept(runtime) is sandbox

"""The pattern guard against the clock, and its cost on linear idioms, in the same run.

* ``patterns``: a generated family of worst cases (optional-item chains, adjacent quantifiers
  over one run, ``.-x``, ``%b``, a frontier, anchored and unanchored, gmatch/gsub over every
  start), each sized by the guard itself just under its budget (the largest accepted size)
  and ~10% over it. Every accepted call is timed in the sandbox: the worst must stay within
  what the guard allows (the time left + the documented overrun, at most 1 s) + 0.1 s; every
  refusal must come before any work (≤ 0.1 s). Then a loop of such calls under a 1 s limit:
  the run must end within 1.2 × the limit + 0.1 s.
* ``pattern_idioms``: linear idioms on ~40 KB to 1 MB subjects, sandbox against plain lupa
  (each once per fresh run: the state's first pattern call pays the pattern's analysis).

Timings are wall clock: on a loaded machine both the calibration (taken in this process, as
the sandbox does) and the calls slow down together; the figures say when load was high.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from common import Figure
from lupa import lua54

from kosmo_runtime import Limits, Runtime
from kosmo_runtime._patterns import PatternGuard, pattern_clock

CAP = 1.0        # the guard's one-call ceiling (_strlib.lua CAP_SECONDS)
SLACK = 0.1      # what an accepted call may take beyond what the guard allows


def _call(function: str) -> str:
    if function == "gmatch":
        return "for _ in s:gmatch(p) do end"
    if function == "gsub":
        return "local r = s:gsub(p, '')"
    return f"local r = s:{function}(p)"


#: (label, function, subject unit, pattern(size)); size is the subject's length, or k for chains
SHAPES = [
    ("a? chain (2^k)", "find", "a", lambda k: "a?" * k + "a" * k + "b", True),
    (".-b, unanchored", "find", "a", lambda n: ".-b", False),
    (".-b, gsub over all starts", "gsub", "a", lambda n: ".-b", False),
    ("a+b, gmatch over all starts", "gmatch", "a", lambda n: "a+b", False),
    ("(.*)(.*)x, adjacent", "match", "a", lambda n: "(.*)(.*)x", False),
    (".-.-.-b, chain of 3", "find", "a", lambda n: ".-.-.-b", False),
    ("a*a*b, nested-like", "find", "a", lambda n: "a*a*b", False),
    ("[^\\n]*\\n, no newline", "gmatch", "x", lambda n: "([^\n]*)\n", False),
    ("%b(), unbalanced", "find", "(", lambda n: "%b()", False),
    ("%f[%w].-x, frontier", "find", "a", lambda n: "%f[%w].-x", False),
    ("^(.-)b, anchored", "match", "a", lambda n: "^(.-)b", False),
    ("literal, #s*#p", "match", "a", lambda n: "a" * 2000 + "b", False),
]


def _largest_accepted(guard: PatternGuard, function: str, unit: str, pattern, chain: bool) -> int | None:
    """The largest size the guard accepts (doubling, then bisection to 2%), None if size 2 is refused."""
    def ok(size: int) -> bool:
        return guard.verdict(function, unit * size, pattern(size))[0]
    low, limit = 2, 64 if chain else 1 << 21
    if not ok(low):
        return None
    high = low * 2
    while high <= limit and ok(high):
        low, high = high, high * 2
    if high > limit:
        return low
    while high - low > max(1, low // 50):
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return low


def _timed(runtime: Runtime, function: str, unit: str, size: int, pattern: str,
           limits: Limits | None = None) -> tuple[float, object]:
    """Seconds of the call itself (the run minus the same run without the call) and the run's result."""
    head = f"local s = ({json.dumps(unit)}):rep({size}) local p = {json.dumps(pattern)} "
    started = time.perf_counter()
    runtime.run(head + "return 1", limits=limits)
    base = time.perf_counter() - started
    started = time.perf_counter()
    result = runtime.run(head + "local t = os.clock() " + _call(function) + " return os.clock() - t", limits=limits)
    return max(0.0, time.perf_counter() - started - base), result


def bench_patterns() -> list[Figure]:
    calibration = pattern_clock()
    guard = PatternGuard(calibration)      # a fresh run: 30 s left of 30, so a call may take CAP
    runtime = Runtime(pool=0)
    load = os.getloadavg()[0]
    worst, worst_label, refusal, refusal_label, ratios = 0.0, "", 0.0, "", []
    refused_all = True
    for label, function, unit, pattern, chain in SHAPES:
        size = _largest_accepted(guard, function, unit, pattern, chain)
        if size is None:
            continue
        seconds, result = _timed(runtime, function, unit, size, pattern(size))
        assert result.ok, (label, size, result.error and result.error.message)
        estimate = guard.verdict(function, unit * size, pattern(size))[1]
        ratios.append((seconds / CAP, label, size, estimate))
        if seconds > worst:
            worst, worst_label = seconds, f"{label} at {size}, {result.result:.2f} s of CPU"
        if guard.verdict(function, unit * (size * 2), pattern(size * 2))[0]:
            continue   # linear: accepted at every size tried, nothing to refuse
        over = size + max(1, size // 10)
        timings = [_timed(runtime, function, unit, over, pattern(over)) for _ in range(3)]
        seconds, result = statistics.median(t[0] for t in timings), timings[0][1]
        refused_all = refused_all and not result.ok and result.error.code == "invalid_argument"
        if seconds > refusal:
            refusal, refusal_label = seconds, f"{label} at {over}"
    # A loop of calls just under the budget, under a 1 s limit, until the clock stops it.
    wall = 1.0
    late = PatternGuard(calibration, seconds_left=wall, wall_time=wall)
    size = _largest_accepted(late, "find", "a", lambda n: ".-b", False) or 2
    source = f"local s = ('a'):rep({size}) while true do pcall(s.find, s, '.-b') end"
    started = time.perf_counter()
    looped = runtime.run(source, limits=Limits(wall_time=wall))
    loop_seconds = time.perf_counter() - started
    runtime.close()
    note = (f"load average {load:.1f} on {os.cpu_count()} cores; calibration {calibration[1] * 1e3:.1f} ms "
            f"lazy, {calibration[4] * 1e3:.1f} ms literal")
    return [
        Figure("worst accepted pattern call (fresh run, 12 shapes just under budget)", "s", worst,
               "allowed: min(1 s, time left + 0.2×limit + 0.05 s)", CAP, f"≤ allowed + {SLACK} s",
               worst <= CAP + SLACK, f"{worst_label}; {note}"),
        Figure("slowest refusal (the same shapes ~10% over budget)", "s", refusal, "before any work", SLACK,
               f"≤ {SLACK} s, every one refused", refusal <= SLACK and refused_all, refusal_label),
        Figure("run of `.-b` calls just under budget, 1 s wall-clock limit", "s", loop_seconds,
               "limit", wall, "≤ 1.2× limit + 0.1 s",
               loop_seconds <= 1.2 * wall + 0.1 and not looped.ok and looped.error.code == "limit_exceeded",
               f"subject {size} bytes; {note}"),
    ]


IDIOMS = [
    ("gmatch lines ([^\\n]*)\\n, 42 KB", "\n".join(f"line {i}: " + "word " * (i % 17) for i in range(3000)) + "\n",
     "local n = 0 for l in s:gmatch('([^\\n]*)\\n') do n = n + 1 end"),
    ("gmatch (%w+)=(%w+), 40 KB", ",".join(f"key{i}=value{i}" for i in range(3000)),
     "local n = 0 for k, v in s:gmatch('(%w+)=(%w+)') do n = n + 1 end"),
    ("gmatch [^,]+, 40 KB", ",".join(f"field{i}" for i in range(5000)) + ",",
     "local n = 0 for f in s:gmatch('[^,]+,') do n = n + 1 end"),
    ("trim ^%s*(.-)%s*$, 1 KB", "  " + "word " * 200 + "  ", "local r = s:match('^%s*(.-)%s*$')"),
    ("trim ^%s*(.-)%s*$, 1 MB", "  " + "word " * 200000 + "  ", "local r = s:match('^%s*(.-)%s*$')"),
    ("gsub %s+, 1 MB", "word  \t word\n" * 80000, "local r = s:gsub('%s+', ' ')"),
]

#: times one idiom inside Lua (CPU seconds, os.clock), the same code in both
TIMED = "local t = os.clock() {body} return os.clock() - t"


def bench_pattern_idioms() -> list[Figure]:
    """Each idiom once per fresh run (its state's first pattern call: analysis and scans included),
    against the same call in plain lupa; medians of 15, timed inside Lua with os.clock."""
    runtime = Runtime(pool=0)
    figures = []
    for label, subject, body in IDIOMS:
        code = TIMED.format(body=body)
        plain = lua54.LuaRuntime().eval(f"function(s) {code} end")
        source = f"local s = {json.dumps(subject)} {code}"
        ours, floor = [], []
        for _ in range(15):
            result = runtime.run(source)
            assert result.ok, (label, result.error and result.error.message)
            ours.append(result.result)
            floor.append(plain(subject))
        mine, base = statistics.median(ours), statistics.median(floor)
        figures.append(Figure(f"pattern idiom: {label}", "ms", mine * 1e3, "plain lupa, same call", base * 1e3,
                              "≤ 3× plain lupa", mine <= 3 * base,
                              "the guard scans the subject's runs once per call when the shape alone is refused"))
    runtime.close()
    return figures


BENCHMARKS = {"patterns": bench_patterns, "pattern_idioms": bench_pattern_idioms}

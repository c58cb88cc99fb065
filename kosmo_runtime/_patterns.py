"""How fast this machine runs Lua's pattern matcher: the unit of the sandbox's pattern guard.

The guard (``_strlib.lua``) bounds each find/match/gmatch/gsub call in matcher steps before
it runs; ``pattern_clock`` times two known calls once per process and ``pattern_rate`` turns
them into matcher steps per second, so the guard can turn steps into seconds of the run's
wall clock. Every state reads the one rate of its process.
"""

from __future__ import annotations

import math
import time
from functools import cache

from lupa import lua54

from ._luacode import bytecode

#: the calibration calls: ("a"):rep(N):match(".-b") (lazy backtracking, ~N*N/2 tries) and
#: ("a"):rep(M):match(("a"):rep(K) .. "b") (literal comparisons, ~M*K)
CALIBRATION = (2000, 20000, 200)
SAFETY = 2  #: the measured rate is halved: a loaded machine runs slower


@cache
def pattern_clock() -> tuple[int, float, int, int, float]:
    """``(N, seconds, M, K, seconds)`` for the calibration calls: median wall times of three, after a warm-up.

    Measured once per process (~70 ms), the first time a script's pattern call is big enough
    to need it. Wall time, not CPU time: the run's limit is on the wall clock.
    """
    n, m, k = CALIBRATION
    lua = lua54.LuaRuntime(register_eval=False, register_builtins=False)
    run = lua.eval("function(s, p) s:match(p) end")
    timings = []
    for subject, pattern in (("a" * n, ".-b"), ("a" * m, "a" * k + "b")):
        run(subject, pattern)
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            run(subject, pattern)
            samples.append(time.perf_counter() - started)
        timings.append(sorted(samples)[len(samples) // 2])  # the median (statistics costs ~3 ms to import)
    return n, timings[0], m, k, timings[1]


@cache
def pattern_rate() -> float:
    """Matcher steps per second on this machine (``pattern_clock`` through the guard's cost
    model, halved): measured once per process, read by every state's guard."""
    return PatternGuard(pattern_clock()).rate


class PatternGuard:
    """The sandbox's pattern guard outside a sandbox (for tests and benchmarks): verdicts, no matching.

    ``calibration`` is a ``pattern_clock()`` result (this machine's by default); the guard
    sees ``seconds_left`` of a run whose wall-clock limit is ``wall_time``.
    """

    def __init__(self, calibration: tuple[int, float, int, int, float] | None = None, *, seconds_left: float = 30.0,
                 wall_time: float = 30.0) -> None:
        self.calibration = calibration or pattern_clock()
        self.seconds_left = seconds_left
        self.rate = 0.0  # set below, from the calibration through the cost model
        self.lua = lua54.LuaRuntime(register_eval=False, register_builtins=False, unpack_returned_tuples=True)
        kit = self.lua.table_from({
            "usage": self.lua.eval("function(message) error({refused = message}, 0) end"),
            "trip": self.lua.eval("function(kind) error({limit = kind}, 0) end"),
            "now": lambda: 0.0,
            "remaining": lambda: self.seconds_left,
            "tripped": lambda: None,
            "calibrate": lambda: self.rate,
            "limits": self.lua.table_from({"wall_time": wall_time, "memory": math.inf}),
            "model": bytecode("_patmodel.lua"),
            "on_reset": lambda reset: None,  # one state, never reset
        })
        strlib = self.lua.compile(bytecode("_strlib.lua"), name="=[kosmo]", mode="b")
        _, _, self._check, cost = strlib(kit)
        n, lazy, m, k, literal = self.calibration
        #: matcher steps per second: the slower of the two calibration calls, halved
        self.rate = min(cost(".-b", n) / max(lazy, 1e-6), cost("a" * k + "b", m) / max(literal, 1e-6)) / SAFETY
        self._verdict = self.lua.eval("""function(check, ...)
          local ok, r = pcall(check, ...)
          if ok then return true, r end
          if type(r) == "table" and r.refused then return false, r.refused end
          error(r, 0)
        end""")

    def verdict(self, function: str, subject: str, pattern: str, init: int | None = None,
                plain: bool | None = None) -> tuple[bool, float | str]:
        """``(True, estimated steps)`` if the call would run, ``(False, the refusal's message)`` if not."""
        accepted, detail = self._verdict(self._check, function, subject, pattern, init, plain)
        return bool(accepted), detail

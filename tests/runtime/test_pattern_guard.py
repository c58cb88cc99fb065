"""The pattern guard: linear idioms run on big subjects, explosive patterns are refused before any work.

Verdicts come from the guard itself (``PatternGuard``: the sandbox's own Lua, with a fixed
calibration, no matching), so they do not depend on the machine's load; the sandbox tests
check the same verdicts end to end. Calls that would hang if the guard let them through run
in a child process with a timeout. How long accepted calls take is measured in
``benchmarks/bench_patterns.py``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kosmo_runtime import AccountsConfig, Limits, Runtime
from kosmo_runtime._patterns import PatternGuard, pattern_clock

REPO = Path(__file__).resolve().parents[2]
#: this machine, unloaded: (2000 a):match(".-b") in 10 ms, (20000 a):match(200 a .. "b") in 12 ms
CALIBRATION = (2000, 0.010, 20000, 200, 0.012)

LINES = "\n".join(f"line {i}: " + "word " * (i % 17) for i in range(3000)) + "\n"   # ~42 KB
PAIRS = ",".join(f"key{i}=value{i}" for i in range(3000))                          # ~40 KB
PROSE = ("The quick brown fox, (it said) jumps over \"the lazy\" dog. " * 700)       # ~40 KB


@pytest.fixture(scope="module")
def guard() -> PatternGuard:
    return PatternGuard(CALIBRATION)


ACCEPTED = [
    ("gmatch", LINES, "([^\n]*)\n"),
    ("gmatch", LINES, "[^\n]+"),
    ("gmatch", PAIRS, "(%w+)=(%w+)"),
    ("gmatch", PAIRS + ",", "[^,]+,"),
    ("match", "  " + PROSE + "  ", "^%s*(.-)%s*$"),
    ("match", " " * 1000 + "x" + " " * 1000, "^%s*(.-)%s*$"),
    ("gsub", PROSE * 25, "%s+"),
    ("gmatch", PROSE * 25, "%S+"),
    ("gsub", PROSE, "%b()"),
    ("gmatch", PROSE, "([\"'])(.-)%1"),
    ("gmatch", PROSE, "%f[%a]%a+"),
    ("find", PROSE * 25, "lazy dog", None, True),
    ("gsub", PAIRS, "(%w+)=", "%1: "),
    ("gmatch", ("k = v\n" * 10000), "(%w+)%s*=%s*(%w+)"),
    ("gmatch", LINES * 20, "([^\n]*)\n"),     # 840 KB
    ("find", "a" * 3000, ".-b"),             # quadratic, but small
    # %b scans only to the close that balances it; a first item's character the subject lacks skips every start
    ("gmatch", "(a)" * 10000, "%b()"),
    ("gsub", "f(x) + g(y); " * 5000, "%b()"),
    ("gmatch", '"a" ' * 20000, '%b""'),
    ("find", "1" * 20000, "1%b()"),
    ("find", "aab" * 70000, "x+.-y"),
    ("find", "((a" * 70000, "x+%b()"),
    ("find", "((a\0\0" * 70000, "]+%b()"),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: f"{c[0]}-{c[2]!r}-{len(c[1])}")
def test_linear_idioms_are_accepted(guard: PatternGuard, case: tuple) -> None:
    function, subject, pattern, *rest = case
    init, plain = [*rest, None, None][:2] if function == "find" else (None, None)
    accepted, detail = guard.verdict(function, subject, pattern, init, plain)
    assert accepted, detail


REFUSED = [
    ("find", "a" * 36, "a?" * 36 + "a" * 36 + "b"),
    ("find", "a" * 40000, ".-b"),
    ("gsub", "a" * 40000, ".-b"),
    ("find", "a" * 100000, "a*b"),
    ("find", "a" * 40000, "[^,]+,"),               # no comma: every start scans the rest
    ("gmatch", "a" * 40000, "([^\n]*)\n"),         # one 40 KB line without its newline
    ("match", "a" * 100000, "(.*)(.*)(.*)x"),
    ("find", "a" * 30, ".-" * 20 + "b"),
    ("find", "(" * 300000, "%b()"),
    ("find", "(" * 40000 + ")", "%b()"),           # every ( but the last scans to the end
    ("find", "x(" * 40000, "x+%b()"),
    ("match", "a" * 5000000, "a" * 5000 + "b"),
    ("find", "a" * 5000000, "a" * 5000 + "b", None, True),
    ("gsub", "a" * 100000, "(a+)+b"),
    ("find", "a" * 100000, "%a*%a*b"),
    ("find", " " * 100000 + "x", "^%s*(.-)%s*$"),   # unanchored? no: anchored, but 1e5 spaces then x
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: f"{c[0]}-{c[2][:20]!r}-{len(c[1])}")
def test_explosive_patterns_are_refused(guard: PatternGuard, case: tuple) -> None:
    function, subject, pattern, *rest = case
    init, plain = [*rest, None, None][:2]
    accepted, detail = guard.verdict(function, subject, pattern, init, plain)
    assert not accepted, detail
    assert "could backtrack for too long" in detail and f"string.{function}" in detail


def family() -> list[tuple[str, str, str, int]]:
    """Worst cases of every shape, each at a size (n) where its bound is ~1e10 steps or more."""
    cases = []
    for k in (24, 30, 36, 48):                        # optional items before a failing tail: 2^k
        cases.append(("find", "a" * k, "a?" * k + "a" * k + "b", k))
    for k in (2, 3, 4):                               # chains of lazy / greedy items over one run
        n = {2: 4000, 3: 600, 4: 200}[k]
        cases.append(("find", "a" * n, ".-" * k + "b", n))
        cases.append(("match", "a" * n, "(.*)" * k + "x", n))
        cases.append(("find", "a" * n, "a*" * k + "b", n))
    for n in (200000, 1000000):                       # one quantified item, failing tail, every start
        cases.append(("find", "a" * n, ".-b", n))
        cases.append(("gmatch", "a" * n, "a+b", n))
        cases.append(("gsub", "a" * n, "[^x]*x", n))
        cases.append(("find", "(" * n, "%b()", n))
        cases.append(("find", "a" * n, "%f[a]a*b", n))
    return cases


@pytest.mark.parametrize("function,subject,pattern,n", family(), ids=lambda v: repr(v)[:30])
def test_a_generated_family_of_worst_cases_is_refused(guard: PatternGuard, function: str, subject: str,
                                                      pattern: str, n: int) -> None:
    accepted, detail = guard.verdict(function, subject, pattern)
    assert not accepted, (pattern, n, detail)


def test_the_budget_follows_the_time_left() -> None:
    # ~1 s of work (as the guard counts): fine with 30 s left, refused 0.1 s before the end of a
    # 1 s run, where a call may take 0.1 s + 0.2 × 1 s + 0.05 s
    subject, pattern = "a" * 9000, ".-b"
    assert PatternGuard(CALIBRATION, seconds_left=30, wall_time=30).verdict("find", subject, pattern)[0]
    late = PatternGuard(CALIBRATION, seconds_left=0.1, wall_time=1).verdict("find", subject, pattern)
    assert not late[0] and "at most 0.4 s here" in late[1]
    assert PatternGuard(CALIBRATION, seconds_left=0.1, wall_time=1).verdict("find", "a" * 4000, pattern)[0]
    # never more than a second, whatever the limit
    assert not PatternGuard(CALIBRATION, seconds_left=3000, wall_time=3600).verdict("find", "a" * 20000, pattern)[0]


def test_the_subject_decides_when_the_shape_cannot(guard: PatternGuard) -> None:
    # the same pattern and length: short lines are linear, one long unterminated line is not
    assert guard.verdict("gmatch", LINES[:40000], "([^\n]*)\n")[0]
    assert not guard.verdict("gmatch", "x" * 40000, "([^\n]*)\n")[0]
    assert guard.verdict("gmatch", PAIRS, "(%w+)=(%w+)")[0]
    assert not guard.verdict("gmatch", "k" * 40000, "(%w+)=(%w+)")[0]


@pytest.fixture(scope="module")
def runtime():
    with Runtime() as rt:
        yield rt


def test_idioms_run_in_the_sandbox(runtime: Runtime) -> None:
    result = runtime.run(f"""
        local lines, pairs_, fields = {json.dumps(LINES)}, {json.dumps(PAIRS)}, {json.dumps(PAIRS + ",")}
        local n1, n2, n3 = 0, 0, 0
        for l in lines:gmatch("([^\\n]*)\\n") do n1 = n1 + 1 end
        for k, v in pairs_:gmatch("(%w+)=(%w+)") do n2 = n2 + 1 end
        for f in fields:gmatch("[^,]+,") do n3 = n3 + 1 end
        local padded = "  " .. ("x"):rep(1000) .. "  "
        return n1, n2, n3, #padded:match("^%s*(.-)%s*$")
    """)
    assert result.ok, result.error and result.error.to_dict()
    assert result.result == [3000, 3000, 3000, 1000]


def test_a_refusal_is_a_structured_error_at_the_scripts_line(runtime: Runtime) -> None:
    result = runtime.run('local s = ("a"):rep(40000)\nlocal i = s:find(".-b")\nreturn i')
    assert not result.ok and result.error.code == "invalid_argument" and result.error.line == 2
    assert "string.find: pattern \".-b\" on a 40000-byte subject could backtrack for too long" in result.error.message
    assert "[^,]*," in result.error.hint and "[kosmo]" not in result.error.message


CHILD = r"""
import json, sys, time
from kosmo_runtime import Limits, Runtime
cases = json.loads(sys.argv[1])
out = []
with Runtime() as rt:
    for function, n, subject_unit, pattern in cases:
        call = ("local x = 0 for _ in string.gmatch(s, p) do x = x + 1 end" if function == "gmatch"
                else f"local x = string.{function}(s, p" + (", '')" if function == "gsub" else ")"))
        src = f"local s = ({json.dumps(subject_unit)}):rep({n}) local p = {json.dumps(pattern)} {call} return 'ran'"
        started = time.monotonic()
        result = rt.run(src, limits=Limits(wall_time=5))
        out.append({"pattern": pattern, "n": n, "ok": result.ok, "code": result.error and result.error.code,
                    "seconds": time.monotonic() - started})
print(json.dumps(out))
"""


def test_bombs_end_in_the_sandbox_without_hanging() -> None:
    cases = [(f, n, s[0], p) for f, s, p, n in family()]
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    for report in json.loads(done.stdout):
        assert not report["ok"] and report["code"] == "invalid_argument", report


def test_a_pooled_sandbox_bounds_a_pattern_by_its_own_runs_wall_time() -> None:
    # A call's budget includes 0.2 x the run's wall-clock limit. A sandbox the pool built ahead, with
    # the Runtime's limits (30 s), takes the limits of the run it is handed to (0.2 s): this process's
    # calibration, which the Runtime's guard uses too, picks a call over what 0.2 s allows (0.29 s)
    # and under what 30 s would (1 s)
    def accepted(n: int, wall_time: float) -> bool:
        return PatternGuard(pattern_clock(), seconds_left=0.2, wall_time=wall_time).verdict("find", "a" * n, ".-b")[0]

    n = next(n for n in range(1000, 60000, 250) if not accepted(n, 0.2))
    assert accepted(n, 30)
    with Runtime(accounts=AccountsConfig.empty(), store=":memory:", pool=2) as runtime:
        assert runtime.limits.wall_time == 30
        assert runtime._sandboxes.wait_full(timeout=30)
        result = runtime.run(f'return (("a"):rep({n})):find(".-b")', limits=Limits(wall_time=0.2))
    assert result.error is not None and result.error.code == "invalid_argument", result.error
    assert "could backtrack for too long" in result.error.message

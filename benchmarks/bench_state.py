"""Shared state: the cost of the Redis token bucket per call against the in-process one, and the
combined request rate of two processes sharing one account's budget on Redis.

Each starts its own redis-server on a free loopback port (tests/redis_server.py) and stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from common import ROOT, Figure, paired_medians

from kosmo_runtime._ratelimit import RateLimiter
from kosmo_runtime._state import MemoryState, SqliteState
from tests.redis_server import RedisServer, redis_server_binary

CALLS = 500  # bucket reservations per round


def _missing(name: str) -> Figure:  # printed, not recorded (run.record)
    return Figure(name, "µs", float("nan"), "in-process bucket", float("nan"), "≤ 1 ms (1000 µs) per call on loopback", None,
                  "not measured: redis-server is not installed (apt-get install redis-server)")


def bench_bucket() -> list[Figure]:
    """RateLimiter.acquire (never waiting) with its bucket on Redis, on SQLite and in memory, rounds interleaved."""
    from kosmo_runtime._state_redis import RedisState

    binary = redis_server_binary()
    if binary is None:
        return [_missing("shared bucket per call (Redis, loopback)")]
    with RedisServer(binary) as server, tempfile.TemporaryDirectory() as scratch:
        redis_state = RedisState(server.url)
        sqlite_state = SqliteState(Path(scratch) / "state.sqlite3")
        limiters = {name: RateLimiter(1e9, 1, state=state, key="bucket:bench:default")
                    for name, state in (("redis", redis_state), ("sqlite", sqlite_state), ("memory", MemoryState(":memory:")))}

        def rounds(name: str) -> Any:
            limiter = limiters[name]
            return lambda: [limiter.acquire(1, 60) for _ in range(CALLS)]

        for name in limiters:
            rounds(name)()  # warm: connections, the script loaded (EVALSHA from then on)
        redis_s, memory_s = paired_medians(rounds("redis"), rounds("memory"), rounds=15)
        sqlite_s, memory2_s = paired_medians(rounds("sqlite"), rounds("memory"), rounds=9)
        redis_state.close()
        sqlite_state.close()
    per = {name: seconds / CALLS * 1e6 for name, seconds in
           (("redis", redis_s), ("memory", memory_s), ("sqlite", sqlite_s), ("memory2", memory2_s))}
    return [
        Figure("shared bucket per call (Redis, loopback, EVALSHA)", "µs", per["redis"], "in-process bucket",
               per["memory"], "≤ 1 ms (1000 µs) per call on loopback", per["redis"] <= 1000,
               f"{per['redis'] / per['memory']:.0f}× the in-process bucket; one round trip per request sent"),
        Figure("one-machine bucket per call (SQLite, BEGIN IMMEDIATE)", "µs", per["sqlite"], "in-process bucket",
               per["memory2"], "reported (worker processes without Redis)", None),
    ]


_CHILD = textwrap.dedent("""
    import json, sys
    from kosmo_runtime import Runtime
    accounts, state, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Runtime(accounts=accounts, state=state, store=":memory:") as runtime:
        result = runtime.run(f"for i = 1, {calls} do app.integrations.whereby.get_current_user{{}} end return true")
    print(json.dumps({"ok": result.ok}))
""")


def bench_combined_rate() -> Figure:
    """Two processes, one Whereby account limited to 10 requests/s, its bucket on Redis: the combined
    rate the simulator sees after the first burst, against the account's rate."""
    from kosmo_integrations.whereby.simulator import WherebySimulator

    from kosmo_runtime._simulate import LoopbackServer

    name = "combined rate of 2 processes sharing one account (Redis)"
    binary = redis_server_binary()
    if binary is None:
        return _missing(name)
    rate, calls = 10, 25
    simulator, stamps, lock = WherebySimulator(), [], threading.Lock()

    def timed(request: Any) -> Any:
        with lock:
            stamps.append(time.monotonic())
        return simulator(request)

    with RedisServer(binary) as server, LoopbackServer(timed) as sim, tempfile.TemporaryDirectory() as scratch:
        accounts = Path(scratch) / "accounts.yaml"
        accounts.write_text(textwrap.dedent(f"""\
            integrations:
              whereby:
                accounts:
                  default:
                    api_key: demo-whereby-key-default
                    base_url: {sim.url}
                    rate_limit: {{requests: {rate}, per_seconds: 1}}
        """))
        children = [subprocess.Popen([sys.executable, "-c", _CHILD, str(accounts), server.url, str(calls)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
        outcomes = [json.loads(child.communicate(timeout=120)[0].strip().splitlines()[-1]) for child in children]
    assert all(o["ok"] for o in outcomes) and len(stamps) == 2 * calls, outcomes
    stamps.sort()
    steady = (len(stamps) - rate) / (stamps[-1] - stamps[0])  # the first `rate` requests pass at once (the burst)
    return Figure(name, "req/s", steady, "the account's documented rate", float(rate),
                  f"≤ {rate} req/s together (+5% timing)", steady <= rate * 1.05,
                  f"{len(stamps)} requests in {stamps[-1] - stamps[0]:.2f} s; two private buckets would allow {2 * rate} req/s")


BENCHMARKS = {"state_bucket": bench_bucket, "state_combined_rate": bench_combined_rate}

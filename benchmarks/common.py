"""What every benchmark module shares: the figure record and the timing helpers."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Figure:
    name: str
    unit: str
    value: float
    floor_name: str
    floor: float
    target: str
    met: bool | None  # None: no hard target, the figure is reported
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.floor if self.floor else float("inf")


def median_time(action: Callable[[], object], rounds: int, inner: int = 1) -> float:
    """Median seconds per call of ``action`` over ``rounds`` rounds of ``inner`` calls."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(inner):
            action()
        samples.append((time.perf_counter() - started) / inner)
    return statistics.median(samples)


def paired_medians(first: Callable[[], object], second: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median seconds per call of ``first`` and of ``second``, their rounds interleaved so drift hits both."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for action, into in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            action()
            into.append(time.perf_counter() - started)
    return statistics.median(samples[0]), statistics.median(samples[1])


def child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python (nothing imported yet); it prints one JSON object, returned here."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])

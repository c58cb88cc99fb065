"""Run limits: safe defaults, hard ceilings, and how a caller overrides them."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ._errors import LimitExceeded

__all__ = ["CEILINGS", "ERROR_TEXT_BYTES", "MAX_SOURCE_BYTES", "Limits", "limit_exceeded"]

MiB = 1024 * 1024

#: The largest script source a run accepts (bytes of UTF-8), checked before it reaches Lua;
#: a source larger than the run's memory limit is refused with the memory limit's error.
MAX_SOURCE_BYTES = 16 * MiB

#: The longest message, traceback or text field of a run's error (characters).
ERROR_TEXT_BYTES = 16 * 1024

#: The hard ceilings: no caller (flag, API or accounts file) may set a limit above these.
CEILINGS: dict[str, float] = {
    "instructions": 20_000_000_000,
    "memory": 2048 * MiB,
    "wall_time": 3600.0,
    "output": 64 * MiB,
    "result": 256 * MiB,
    "depth": 256,
    "calls": 100_000,
}


@dataclass(frozen=True)
class Limits:
    """What one run may use. A script cannot raise any of these.

    ``instructions``  Lua VM instructions executed (counted every 1,000).
    ``memory``        bytes the Lua state may allocate.
    ``wall_time``     seconds from start to end, time inside integration calls included.
    ``output``        bytes of text ``print`` may produce.
    ``result``        bytes of the JSON-encoded return value.
    ``depth``         nesting depth of a value crossing between Lua and Python.
    ``calls``         integration calls per run.
    """

    instructions: int = 200_000_000
    memory: int = 64 * MiB
    wall_time: float = 30.0
    output: int = 256 * 1024
    result: int = 4 * MiB
    depth: int = 64
    calls: int = 1_000

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            ceiling = CEILINGS[field.name]
            if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                    or value <= 0):
                raise ValueError(f"limit {field.name} must be a positive number, got {value!r}")
            if field.name != "wall_time" and value != int(value):
                raise ValueError(f"limit {field.name} must be a whole number, got {value!r}")
            if ceiling is not None and value > ceiling:
                raise ValueError(
                    f"limit {field.name}={value} is above the hard ceiling {ceiling}; "
                    f"choose a value up to {ceiling}"
                )

    def merged(self, **overrides: Any) -> Limits:
        """A copy with the given limits changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @staticmethod
    def unit(name: str) -> str:
        """The unit a limit is measured in, for messages."""
        return {"memory": "bytes", "wall_time": "seconds", "output": "bytes", "result": "bytes",
                "instructions": "instructions", "depth": "levels", "calls": "calls"}[name]

    @staticmethod
    def flag(name: str) -> str:
        """The ``kosmo run`` flag that sets a limit."""
        return "--" + name.replace("_", "-")




_MESSAGES = {
    "instructions": "instruction limit of {value:,} instructions exceeded",
    "memory": "memory limit of {value:,} bytes exceeded",
    "wall_time": "wall-clock limit of {value:g} seconds exceeded",
    "output": "output limit of {value:,} bytes exceeded (output is truncated)",
    "result": "result larger than the limit of {value:,} bytes",
    "depth": "value nesting deeper than {value} levels",
    "calls": "more than {value:,} integration calls in one run",
}


def limit_exceeded(name: str, value: float) -> LimitExceeded:
    """The error for hitting limit ``name`` at ``value``: names both and how to raise it."""
    return LimitExceeded(
        "run stopped: " + _MESSAGES[name].format(value=value),
        limit=name, value=value,
        hint=f"do less per run, or raise the limit with {Limits.flag(name)} (Limits({name}=...) in Python); "
             f"the ceiling is {CEILINGS[name]:,}",
    )

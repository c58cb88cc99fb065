"""The cyclic garbage collector paused while large acyclic data is built (a spec, a manifest).

Parsing or generating a manifest of thousands of functions allocates millions of dicts, lists and
strings, none of them in a cycle; each allocation threshold reached starts a collection that walks
them all again, about half the time of a YAML parse. Reference counting still frees everything.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collection off inside the block, back on after it if it was on before (nesting is harmless)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

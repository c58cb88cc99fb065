"""Test-process set-up: Python ASTs are built by one thread at a time.

CPython 3.11's ``ast`` module keeps the recursion counter of its AST constructor in
per-interpreter state, so two threads building ASTs at once corrupt it, and the next
``ast.parse`` fails with ``SystemError: AST constructor recursion depth mismatch``. Both
happen in this suite: Python 3.11's ``traceback`` parses each source line to place its
``^^^`` carets (in loopback-server, worker and logging threads), while pytest parses source
files in the main thread to rewrite asserts and to report failures. One lock keeps
``ast.parse`` one call at a time (re-entrant, so a finaliser that formats a traceback
during a parse cannot deadlock).
"""

from __future__ import annotations

import ast
import functools
import threading
from typing import Any

_AST_LOCK = threading.RLock()
_parse = ast.parse


@functools.wraps(_parse)
def _serialised_parse(*args: Any, **kwargs: Any) -> Any:
    with _AST_LOCK:
        return _parse(*args, **kwargs)


ast.parse = _serialised_parse  # type: ignore[assignment]

"""The suite's guard against CPython 3.11's thread-unsafe AST constructor (see tests/conftest.py).

Without the guard, ``ast.parse`` in one thread while another formats tracebacks (and
collects garbage with finalisers) fails within a few parses with ``SystemError: AST
constructor recursion depth mismatch``; in a pytest run that was an INTERNALERROR.
"""

from __future__ import annotations

import ast
import json.decoder
import sys
import threading
import traceback
from pathlib import Path


def _format_tracebacks_until(stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            {}["missing"] + [1][2]
        except LookupError:
            traceback.format_exc()  # Python 3.11 parses the line to place its carets

        class Cyclic:
            def __del__(self) -> None:  # garbage with a finaliser: the GC runs Python code mid-parse
                pass

        cyclic = Cyclic()
        cyclic.self = cyclic  # type: ignore[attr-defined]


def test_ast_parse_survives_tracebacks_formatted_in_another_thread():
    source = Path(json.decoder.__file__).read_text(encoding="utf-8")
    stop = threading.Event()
    worker = threading.Thread(target=_format_tracebacks_until, args=(stop,), daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    worker.start()
    try:
        trees = [ast.parse(source) for _ in range(100)]
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
    assert all(isinstance(tree, ast.Module) for tree in trees)

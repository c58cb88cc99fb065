"""The package's logger. A library logs; the application decides where logs go (no output unless configured).

``logging`` is imported when something is first logged, not when a run starts.
"""

from __future__ import annotations

from typing import Any


class _Logger:
    """Stands for ``logging.getLogger("kosmo_runtime")`` (with a ``NullHandler``) until first used."""

    def __getattr__(self, name: str) -> Any:
        import logging

        logger = logging.getLogger("kosmo_runtime")
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())
        return getattr(logger, name)


log: Any = _Logger()

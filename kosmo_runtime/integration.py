"""The authoring API for integrations: everything a hooks module, a simulator or a demo module imports.

Integrations import only this module (a test fails if anything under ``integrations/`` imports
a private ``kosmo_runtime._`` module or the package façade)::

    from kosmo_runtime.integration import CallContext, InvalidArgument

    def create_thing(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        if args["size"] > ctx.setting("max_size"):
            raise InvalidArgument("size is too large", param="size")
        return {"thing": ctx.http.post("/things", json=args)}

* :class:`CallContext` — the call: ``http`` bound to the account, ``setting()``, ``store``,
  ``memo``, ``now()`` and ``label``. The framework adds ``integration``, ``function`` and
  ``account`` to every error a handler raises and leads its message with the call's label
  (``whereby.get_room: ...``): handlers never stamp errors themselves.
* :class:`Clock` — the type of the Runtime's clock (``ctx.now()`` reads it).
* :class:`ScopedStore` — the per-account record store (``ctx.store``).
* The errors an integration may raise: :class:`InvalidArgument` (an argument the manifest cannot
  check), :class:`NotFound`, :class:`UpstreamNotFound`, :class:`UpstreamError`,
  :class:`BadResponse`, :class:`AccountError`, :class:`ConfigError`.
* :class:`Pagination` — a named pagination strategy (``cursor``, ``skip_take``, ``page_size``,
  ``link``) as data; ``ctx.collect(path, pagination)`` walks every page of a list endpoint.
* The simulator base: :class:`Simulator`, :func:`route`, :class:`Fault`.

The module stays light to import: the store and the simulator base (sqlite3, httpx) load on
first use of their names.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._clock import Clock
from ._context import CallContext
from ._errors import (
    AccountError,
    BadResponse,
    ConfigError,
    InvalidArgument,
    NotFound,
    UpstreamError,
    UpstreamNotFound,
)

if TYPE_CHECKING:
    from ._paginate import Pagination
    from ._simulate import Fault, Simulator, route
    from ._store import ScopedStore

__all__ = [
    "AccountError",
    "BadResponse",
    "CallContext",
    "Clock",
    "ConfigError",
    "Fault",
    "InvalidArgument",
    "NotFound",
    "Pagination",
    "ScopedStore",
    "Simulator",
    "UpstreamError",
    "UpstreamNotFound",
    "route",
]

_LAZY = {"ScopedStore": "._store", "Simulator": "._simulate", "route": "._simulate", "Fault": "._simulate",
         "Pagination": "._paginate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __package__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Demo mode: every built-in integration's upstream simulator on loopback, with accounts for it.

Each built-in integration folder has ``simulator.py`` defining one ``Simulator``
subclass (constructed as ``cls(clock=...)``, its credentials defaulting to the demo
ones) and ``DEMO_ACCOUNTS`` (account name -> credential and setting fields).
An integration may also ship ``demo.py`` with ``seed_store(store, account)`` to
put records in the local store that its simulator's seed data implies.

The demo is a simulated world with its own clock: it starts at ``DEMO_START`` and
advances in real time. The simulators, the handlers (``ctx.now()``) and the
script's ``os.time()``/``os.date()`` all read that one clock.
"""

from __future__ import annotations

import importlib
import inspect
from datetime import datetime, timezone
from typing import Any

from ._accounts import AccountsConfig
from ._clock import Clock, read, running_from, utc_now
from ._discovery import Catalog
from ._runtime import Runtime
from ._simulate import LoopbackServer, Simulator
from ._store import Store

__all__ = ["DEMO_START", "Demo"]

#: The demo's simulated date when it starts. The product reference's examples carry fixed dates
#: (Whereby's January 2025 meetings and rooms, GoTo webinars and Cal.com bookings in 2026), written
#: as future dates; services refuse past ones. Starting the demo world here keeps every one of them
#: in the future, as their authors intended, whatever the real date is.
DEMO_START = datetime(2025, 1, 10, 9, 0, 0, tzinfo=timezone.utc)


class Demo:
    """Starts the simulators (real HTTP servers on 127.0.0.1) and describes accounts for them.

    Use as a context manager; ``runtime()`` gives a Runtime wired to the demo services.
    """

    def __init__(self, integrations: list[str] | None = None, *, rate_limits: bool = True,
                 start: datetime | None = DEMO_START) -> None:
        """``rate_limits=False`` turns client-side rate limiting off for the demo accounts (tests, benchmarks).

        ``start`` is the simulated date the demo world starts at (default ``DEMO_START``); it then
        advances in real time. ``start=None`` runs the demo on the real clock.
        """
        self.clock: Clock = running_from(start) if start is not None else utc_now
        catalog = Catalog()
        self.simulators: dict[str, Simulator] = {}
        self.servers: dict[str, LoopbackServer] = {}
        self.accounts_data: dict[str, dict[str, dict[str, Any]]] = {}
        self.store = Store(":memory:")
        try:
            for ident in integrations or catalog.names():
                loaded = catalog.find(ident)
                if loaded is None or loaded.module is None:
                    continue
                module = importlib.import_module(f"{loaded.module}.simulator")
                simulator = _simulator_class(module)(clock=self.clock)
                server = LoopbackServer(simulator)
                self.simulators[ident], self.servers[ident] = simulator, server
                extra: dict[str, Any] = {} if rate_limits else {"rate_limit": False}
                self.accounts_data[ident] = {
                    name: {**fields, "base_url": server.url, **extra} for name, fields in module.DEMO_ACCOUNTS.items()
                }
                self._seed_store(loaded.module, ident)
        except BaseException:
            self.close()
            raise
        self.catalog = catalog

    def _seed_store(self, package: str, ident: str) -> None:
        try:
            demo = importlib.import_module(f"{package}.demo")
        except ModuleNotFoundError:
            return
        for account in self.accounts_data[ident]:
            demo.seed_store(self.store.scoped(ident, account), account)

    def accounts(self) -> AccountsConfig:
        """An accounts configuration naming every demo account (``default`` is the default)."""
        import yaml

        document = {"integrations": {
            ident: {"default": "default", "accounts": accounts} for ident, accounts in self.accounts_data.items()
        }}
        return AccountsConfig.parse(yaml.safe_dump(document), "(demo accounts)",
                                    lambda name: (found.manifest if (found := self.catalog.find(name)) else None),
                                    self.catalog.names)

    def now(self) -> datetime:
        """The current time of the demo world (aware, UTC)."""
        return read(self.clock)

    def runtime(self, **options: Any) -> Runtime:
        """A Runtime using the demo accounts, the demo store and the demo clock."""
        options.setdefault("store", self.store)
        options.setdefault("clock", self.clock)
        return Runtime(accounts=self.accounts(), **options)

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()

    def __enter__(self) -> Demo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _simulator_class(module: Any) -> type[Simulator]:
    found = [obj for _, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, Simulator) and obj is not Simulator and obj.__module__ == module.__name__]
    if len(found) != 1:
        raise RuntimeError(f"{module.__name__} must define exactly one Simulator subclass, found {len(found)}")
    return found[0]

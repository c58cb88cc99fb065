"""A small local store for facts an upstream API cannot answer later (SQLite).

Some services have no endpoint to list what was created through them (Agora's
cloud recordings, for one). Handlers keep such records here, scoped by
integration and account, as JSON documents in named collections.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from ._dirs import user_dir

__all__ = ["ScopedStore", "Store", "connect", "default_store_path"]


def connect(path: str | Path, timeout: float, *setup: str) -> sqlite3.Connection:
    """An autocommit connection with the ``setup`` scripts run. Set-up that finds the file locked
    (another process opening it at the same moment: changing the journal mode or creating tables
    does not always wait on SQLite's busy timeout) is tried again until ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        connection = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
        try:
            for script in setup:
                connection.executescript(script)
            return connection
        except sqlite3.OperationalError as exc:
            connection.close()
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)  # a lock held by another process: back off and open again
            pause = min(pause * 2, 0.2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    integration TEXT NOT NULL,
    account TEXT NOT NULL,
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    created REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (integration, account, collection, key)
)
"""


def default_store_path() -> Path:
    """The per-user store (the platform's data directory)."""
    return user_dir("data") / "store.sqlite3"


class ScopedStore(Protocol):
    """One integration account's records (``ctx.store``), whichever state backend holds them."""

    def put(self, collection: str, key: str, data: dict[str, Any]) -> None:
        """Keep ``data`` under ``key`` (replacing what was there)."""
        ...

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The record under ``key``, or None."""
        ...

    def all(self, collection: str) -> list[dict[str, Any]]:
        """Every record of a collection, newest first."""
        ...


class Store:
    """JSON records keyed by (integration, account, collection, key). ``":memory:"`` keeps nothing.

    A file store may be shared by several processes (SQLite locks it); each process opens its own
    connection, waiting up to ``timeout`` seconds for another's write.
    """

    def __init__(self, path: str | Path = ":memory:", *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid != os.getpid() and self.path != ":memory:":
            self._connection = None  # a forked process: the parent's connection is not ours to use
        if self._connection is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._connection = connect(self.path, self._timeout, _SCHEMA)
            self._pid = os.getpid()
        return self._connection

    def scoped(self, integration: str, account: str) -> ScopedStore:
        """The part of the store one integration account sees."""
        return _SqliteScope(self, integration, account)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _SqliteScope:
    """One integration account's records in a SQLite ``Store``."""

    def __init__(self, store: Store, integration: str, account: str) -> None:
        self._store = store
        self._scope = (integration, account)

    def put(self, collection: str, key: str, data: dict[str, Any]) -> None:
        with self._store._lock:
            self._store._db().execute(
                "INSERT INTO records (integration, account, collection, key, created, data) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET data = excluded.data",
                (*self._scope, collection, key, time.time(), json.dumps(data)),
            )

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        with self._store._lock:
            row = self._store._db().execute(
                "SELECT data FROM records WHERE integration = ? AND account = ? AND collection = ? AND key = ?",
                (*self._scope, collection, key),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def all(self, collection: str) -> list[dict[str, Any]]:
        """Every record of a collection, newest first."""
        with self._store._lock:
            rows = self._store._db().execute(
                "SELECT data FROM records WHERE integration = ? AND account = ? AND collection = ? "
                "ORDER BY created DESC, key",
                (*self._scope, collection),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

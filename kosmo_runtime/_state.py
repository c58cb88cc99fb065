"""Where the runtime keeps state that outlives one call: rate budgets, records, idempotency claims.

A :class:`State` holds

* each account's **token bucket** — ``reserve(bucket_key, cost, capacity, rate)`` takes ``cost``
  tokens at once (the balance may go negative) and answers the seconds the caller must wait before
  sending; ``refund(bucket_key, cost)`` gives them back when the caller will not send after all;
* the **records store** handlers keep facts in (``scoped(integration, account)``, the
  :class:`~kosmo_runtime._store.ScopedStore` API: Agora's recordings);
* **idempotency claims** — ``claim(key, ttl)`` is true for the first caller of ``key`` within
  ``ttl`` seconds, false for every later one; ``remember(key, data, ttl)``/``recall(key)`` keep what
  the claimant did, ``release(key)`` gives a claim back (see ``_idempotency.py``).

Implementations: :class:`MemoryState` (the default: one process; buckets in memory, records in
the local SQLite store), :class:`SqliteState` (every process on one machine sharing one SQLite
file), and ``RedisState`` (``_state_redis.py``, the ``redis`` extra: replicas on several
machines). :func:`open_state` picks one from a URL.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # sqlite3 loads when a state first needs it (a bare `return 1` run imports none of it)
    import sqlite3

    from ._store import ScopedStore, Store

__all__ = ["MemoryState", "SqliteState", "State", "open_state"]


@runtime_checkable
class State(Protocol):
    """What every state backend offers (see the module docstring)."""

    #: Where the state lives, as configured (``memory``, ``sqlite:///path``, ``redis://host:port/db``);
    #: passwords never appear in it.
    url: str

    def reserve(self, bucket_key: str, cost: float, capacity: float, rate: float) -> float:
        """Take ``cost`` tokens from the bucket (``capacity`` tokens, refilled at ``rate`` per second);
        the seconds to wait before sending (0 when the tokens were there)."""
        ...

    def refund(self, bucket_key: str, cost: float) -> None:
        """Give back ``cost`` tokens a caller reserved but will not spend."""
        ...

    def scoped(self, integration: str, account: str) -> ScopedStore:
        """The records one integration account sees."""
        ...

    def claim(self, key: str, ttl: float) -> bool:
        """True for the first claim of ``key`` within ``ttl`` seconds, false while that claim lasts."""
        ...

    def release(self, key: str) -> None:
        """Drop the claim of ``key`` (and what was remembered for it)."""
        ...

    def remember(self, key: str, data: dict[str, Any], ttl: float) -> None:
        """Keep ``data`` (JSON-compatible) for ``key`` for ``ttl`` seconds."""
        ...

    def recall(self, key: str) -> dict[str, Any] | None:
        """What was remembered for ``key`` (None if nothing, or expired)."""
        ...

    def close(self) -> None:
        """Release connections (the state itself persists where it lives)."""
        ...


def _refill(tokens: float, updated: float, now: float, capacity: float, rate: float) -> float:
    """The bucket's balance at ``now`` (never above ``capacity``; a clock going back refills nothing)."""
    return min(capacity, tokens + max(0.0, now - updated) * rate)


class MemoryState:
    """State for one process: token buckets in memory, records in a local SQLite ``Store``.

    ``store`` is the records store (a ``Store``, a path, or ``":memory:"``; default: the per-user
    store file, opened when first used).
    """

    url = "memory"

    def __init__(self, store: Store | str | Path | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store_source = store
        self._made_store: Store | None = None
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, updated]
        self._claims: dict[str, float] = {}  # key -> expiry (clock seconds)
        self._memos: dict[str, tuple[float, dict[str, Any]]] = {}  # key -> (expiry, data)
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The records store (made on first use)."""
        with self._lock:
            if self._made_store is None:
                from ._store import Store, default_store_path

                source = self._store_source
                self._made_store = source if isinstance(source, Store) else Store(
                    source if source is not None else default_store_path())
            return self._made_store

    def reserve(self, bucket_key: str, cost: float, capacity: float, rate: float) -> float:
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(bucket_key)
            tokens = capacity if bucket is None else _refill(bucket[0], bucket[1], now, capacity, rate)
            tokens -= cost
            self._buckets[bucket_key] = [tokens, now]
            return max(0.0, -tokens / rate)

    def refund(self, bucket_key: str, cost: float) -> None:
        with self._lock:
            bucket = self._buckets.get(bucket_key)
            if bucket is not None:
                bucket[0] += cost

    def scoped(self, integration: str, account: str) -> ScopedStore:
        return self.store.scoped(integration, account)

    def claim(self, key: str, ttl: float) -> bool:
        with self._lock:
            now = self._clock()
            if len(self._claims) > 1024:  # keep the table bounded: drop what has expired
                self._claims = {k: v for k, v in self._claims.items() if v > now}
            if self._claims.get(key, now) > now:
                return False
            self._claims[key] = now + ttl
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._claims.pop(key, None)
            self._memos.pop(key, None)

    def remember(self, key: str, data: dict[str, Any], ttl: float) -> None:
        with self._lock:
            now = self._clock()
            if len(self._memos) > 1024:
                self._memos = {k: v for k, v in self._memos.items() if v[0] > now}
            self._memos[key] = (now + ttl, json.loads(json.dumps(data)))

    def recall(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            held = self._memos.get(key)
            return json.loads(json.dumps(held[1])) if held is not None and held[0] > self._clock() else None

    def close(self) -> None:
        with self._lock:
            store, self._made_store = self._made_store, None
        if store is not None and store is not self._store_source:
            store.close()


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL, capacity REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS claims_expires ON claims (expires);
CREATE TABLE IF NOT EXISTS memos (key TEXT PRIMARY KEY, expires REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS memos_expires ON memos (expires);
"""


class SqliteState:
    """State shared by every process on one machine through one SQLite file (WAL mode).

    Each bucket update is one ``BEGIN IMMEDIATE`` transaction, so concurrent processes take
    tokens one after another; times are wall-clock seconds (``time.time``), the one clock every
    process agrees on. The records live in the same file (the ``Store`` tables). A connection is
    opened per process (a forked worker opens its own).
    """

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time, timeout: float = 10.0) -> None:
        self.path = Path(path).expanduser()
        self.url = f"sqlite:///{self.path}"
        self._clock = clock
        self._timeout = timeout
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._store: Store | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            from ._store import connect

            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a bucket need not survive a power cut: synchronous=NORMAL, and WAL stays consistent
            connection = connect(self.path, self._timeout, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                                 _SQLITE_SCHEMA)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before reading (no other process writes in between)."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @property
    def store(self) -> Store:
        """The records store, in the same file."""
        with self._lock:
            if self._store is None:
                from ._store import Store

                self._store = Store(self.path, timeout=self._timeout)
            return self._store

    def reserve(self, bucket_key: str, cost: float, capacity: float, rate: float) -> float:
        with self._immediate() as db:
            now = self._clock()
            row: Any = db.execute("SELECT tokens, updated FROM buckets WHERE key = ?", (bucket_key,)).fetchone()
            tokens = (capacity if row is None else _refill(row[0], row[1], now, capacity, rate)) - cost
            db.execute("INSERT INTO buckets (key, tokens, updated, capacity) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated, "
                       "capacity = excluded.capacity", (bucket_key, tokens, now, capacity))
        return max(0.0, -tokens / rate)

    def refund(self, bucket_key: str, cost: float) -> None:
        with self._immediate() as db:
            db.execute("UPDATE buckets SET tokens = MIN(capacity, tokens + ?) WHERE key = ?", (cost, bucket_key))

    def scoped(self, integration: str, account: str) -> ScopedStore:
        return self.store.scoped(integration, account)

    def claim(self, key: str, ttl: float) -> bool:
        with self._immediate() as db:
            now = self._clock()
            db.execute("DELETE FROM claims WHERE expires <= ?", (now,))
            return db.execute("INSERT OR IGNORE INTO claims (key, expires) VALUES (?, ?)",
                              (key, now + ttl)).rowcount == 1

    def release(self, key: str) -> None:
        with self._immediate() as db:
            db.execute("DELETE FROM claims WHERE key = ?", (key,))
            db.execute("DELETE FROM memos WHERE key = ?", (key,))

    def remember(self, key: str, data: dict[str, Any], ttl: float) -> None:
        with self._immediate() as db:
            now = self._clock()
            db.execute("DELETE FROM memos WHERE expires <= ?", (now,))
            db.execute("INSERT OR REPLACE INTO memos (key, expires, data) VALUES (?, ?, ?)", (key, now + ttl, json.dumps(data)))

    def recall(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db().execute("SELECT data FROM memos WHERE key = ? AND expires > ?", (key, self._clock())).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            store, self._store = self._store, None
        if connection is not None:
            connection.close()
        if store is not None:
            store.close()


def open_state(url: str | None, *, store: Store | str | Path | None = None) -> State:
    """The state a URL names: ``memory`` (or none) in this process (records in ``store``),
    ``sqlite:///path`` (or a plain path) shared on this machine, ``redis://``/``rediss://``/``unix://``
    on Redis (the ``redis`` extra)."""
    from ._errors import ConfigError

    if not url or url == "memory":
        return MemoryState(store)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._state_redis import RedisState

        return RedisState(url)
    if url.startswith("sqlite:///"):
        return SqliteState(url[len("sqlite:///"):] or ".")
    if "://" in url:
        raise ConfigError(f"cannot use state URL {url.split('://')[0]}://…",
                          hint="use memory, sqlite:///path/to/state.sqlite3, or redis://host:6379/0")
    return SqliteState(url)

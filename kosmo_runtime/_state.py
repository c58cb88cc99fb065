"""Where the runtime keeps state that outlives one call: rate budgets, records, idempotency claims.

A :class:`State` holds

* each account's **token bucket** — ``reserve(bucket_key, cost, capacity, rate)`` takes ``cost``
  tokens at once (the balance may go negative) and answers the seconds the caller must wait before
  sending; ``refund(bucket_key, cost)`` gives them back when the caller will not send after all;
* the **records store** handlers keep facts in (``scoped(integration, account)``, the
  :class:`~kosmo_runtime._store.ScopedStore` API: Agora's recordings);
* **idempotency claims** — ``claim(key, ttl)`` is true for the first caller of ``key`` within
  ``ttl`` seconds, false for every later one; ``remember(key, data, ttl)``/``recall(key)`` keep what
  the claimant did, ``release(key)`` gives a claim back (see ``_idempotency.py``);
* **pending approvals** of ``ask`` writes — ``ask_approval(approval, ttl)`` lists one (a JSON
  object with an ``id``) until it is decided or expires; ``decide_approval(id, decision, ttl)`` takes
  it off the list and posts the decision to the mailbox ``decision:<id>`` in one step, only if it
  was still pending; ``withdraw_approval(id)`` takes it off unanswered (see ``_pending.py``);
* **mailboxes** — ``post(box, message, ttl)`` appends, ``take(box, timeout)`` removes the oldest,
  waiting at most ``timeout`` seconds for one (a run waiting for its decision, a tool call waiting
  for the run that paused on another replica).

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

    def ask_approval(self, approval: dict[str, Any], ttl: float) -> None:
        """List ``approval`` (JSON-compatible, ``approval["id"]`` names it) as pending for ``ttl`` seconds."""
        ...

    def pending_approvals(self) -> list[dict[str, Any]]:
        """The approvals neither decided, withdrawn nor expired, oldest first."""
        ...

    def decide_approval(self, approval_id: str, decision: dict[str, Any], ttl: float) -> bool:
        """If the approval is pending: take it off the list and post ``decision`` to ``decision:<id>`` (kept
        ``ttl`` seconds), atomically; True then, False when it is unknown, expired or already decided."""
        ...

    def withdraw_approval(self, approval_id: str) -> bool:
        """Take a pending approval off the list undecided; False when it was not pending (decided meanwhile)."""
        ...

    def post(self, box: str, message: dict[str, Any], ttl: float) -> None:
        """Append ``message`` to the mailbox ``box`` (the mailbox expires ``ttl`` seconds later)."""
        ...

    def take(self, box: str, timeout: float) -> dict[str, Any] | None:
        """Remove and answer the oldest message of ``box``, waiting at most ``timeout`` seconds (None: none came)."""
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
        self._approvals: dict[str, tuple[float, dict[str, Any]]] = {}  # id -> (expiry, approval)
        self._boxes: dict[str, tuple[float, list[str]]] = {}  # box -> (expiry, messages as JSON)
        self._lock = threading.Lock()
        self._posted = threading.Condition(self._lock)

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

    def ask_approval(self, approval: dict[str, Any], ttl: float) -> None:
        with self._lock:
            now = self._clock()
            self._approvals = {k: v for k, v in self._approvals.items() if v[0] > now}
            self._approvals[approval["id"]] = (now + ttl, json.loads(json.dumps(approval)))

    def pending_approvals(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self._clock()
            held = [json.loads(json.dumps(data)) for expires, data in self._approvals.values() if expires > now]
        return sorted(held, key=lambda approval: approval.get("asked", 0))

    def decide_approval(self, approval_id: str, decision: dict[str, Any], ttl: float) -> bool:
        with self._lock:
            held = self._approvals.pop(approval_id, None)
            if held is None or held[0] <= self._clock():
                return False
            self._append(f"decision:{approval_id}", json.dumps(decision), ttl)
            return True

    def withdraw_approval(self, approval_id: str) -> bool:
        with self._lock:
            held = self._approvals.pop(approval_id, None)
            return held is not None and held[0] > self._clock()

    def post(self, box: str, message: dict[str, Any], ttl: float) -> None:
        with self._lock:
            self._append(box, json.dumps(message), ttl)

    def _append(self, box: str, message: str, ttl: float) -> None:
        """(Lock held.) Append to ``box``, drop expired mailboxes, wake the takers."""
        now = self._clock()
        self._boxes = {name: held for name, held in self._boxes.items() if held[0] > now}
        self._boxes.setdefault(box, (0.0, []))[1].append(message)
        self._boxes[box] = (now + ttl, self._boxes[box][1])
        self._posted.notify_all()

    def take(self, box: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                held = self._boxes.get(box)
                if held is not None and held[0] > self._clock() and held[1]:
                    message = held[1].pop(0)
                    if not held[1]:
                        del self._boxes[box]
                    return json.loads(message)  # type: ignore[no-any-return]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._posted.wait(left)

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
CREATE TABLE IF NOT EXISTS approvals (id TEXT PRIMARY KEY, expires REAL NOT NULL, asked REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mail (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, box TEXT NOT NULL, expires REAL NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mail_box ON mail (box, seq);
CREATE INDEX IF NOT EXISTS mail_expires ON mail (expires);
"""

#: How often a SqliteState taker looks for a message posted by another process (seconds; SQLite has no
#: notification across processes; a message posted in this process wakes it at once).
_MAIL_POLL = 0.05


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
        self._posted = threading.Condition()

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

    def ask_approval(self, approval: dict[str, Any], ttl: float) -> None:
        with self._immediate() as db:
            now = self._clock()
            db.execute("DELETE FROM approvals WHERE expires <= ?", (now,))
            db.execute("INSERT OR REPLACE INTO approvals (id, expires, asked, data) VALUES (?, ?, ?, ?)",
                       (approval["id"], now + ttl, now, json.dumps(approval)))

    def pending_approvals(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db().execute("SELECT data FROM approvals WHERE expires > ? ORDER BY asked",
                                      (self._clock(),)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def decide_approval(self, approval_id: str, decision: dict[str, Any], ttl: float) -> bool:
        with self._immediate() as db:
            now = self._clock()
            if db.execute("DELETE FROM approvals WHERE id = ? AND expires > ?", (approval_id, now)).rowcount != 1:
                return False
            self._append(db, f"decision:{approval_id}", decision, now + ttl)
        self._wake()
        return True

    def withdraw_approval(self, approval_id: str) -> bool:
        with self._immediate() as db:
            return bool(db.execute("DELETE FROM approvals WHERE id = ? AND expires > ?",
                                   (approval_id, self._clock())).rowcount == 1)

    def post(self, box: str, message: dict[str, Any], ttl: float) -> None:
        with self._immediate() as db:
            self._append(db, box, message, self._clock() + ttl)
        self._wake()

    def _append(self, db: sqlite3.Connection, box: str, message: dict[str, Any], expires: float) -> None:
        db.execute("DELETE FROM mail WHERE expires <= ?", (self._clock(),))
        db.execute("UPDATE mail SET expires = ? WHERE box = ?", (expires, box))  # the mailbox expires as one
        db.execute("INSERT INTO mail (box, expires, data) VALUES (?, ?, ?)", (box, expires, json.dumps(message)))

    def _wake(self) -> None:
        with self._posted:
            self._posted.notify_all()

    def take(self, box: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:  # a plain read first: no write lock while the mailbox is empty
                row = self._db().execute("SELECT seq, data FROM mail WHERE box = ? AND expires > ? ORDER BY seq LIMIT 1",
                                         (box, self._clock())).fetchone()
            if row is not None:
                with self._immediate() as db:
                    if db.execute("DELETE FROM mail WHERE seq = ?", (row[0],)).rowcount == 1:  # not another taker's
                        return json.loads(row[1])  # type: ignore[no-any-return]
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with self._posted:  # woken by a post from this process, else looks again after _MAIL_POLL
                self._posted.wait(min(left, _MAIL_POLL))

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

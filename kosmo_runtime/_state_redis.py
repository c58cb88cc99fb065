"""State on Redis, shared by every replica that names the same server (the ``redis`` extra).

* The token bucket is one Lua script run by Redis (``EVALSHA``): it reads the server's clock
  (``TIME``, so replicas' clocks need not agree), refills, takes the cost and sets the key to expire
  once the bucket would be full again (a missing bucket is a full one), atomically.
* Records are one key per record with a TTL (``retention``, renewed on each write) and a sorted
  index per collection, trimmed of expired entries on each write.
* Idempotency keys are ``SET NX PX`` with a per-claim token, so a claim retried after a lost reply
  is still recognised as the caller's own.
* Pending approvals are one key each with a TTL plus a sorted index (by expiry) for listing;
  deciding one deletes it and pushes the decision onto its mailbox in one script, so a decision and
  a withdrawal at the timeout never both win. Mailboxes are lists with a TTL, waited on with
  ``BLPOP`` (in slices shorter than the socket timeout: the wait is Redis's, not a poll).

Every key starts with ``prefix`` (default ``kosmo:``) and has a TTL. When Redis cannot be reached,
each operation raises :class:`~kosmo_runtime._errors.StateUnavailable` naming the URL (password
hidden); nothing falls back to a private budget, and the next operation reconnects.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from ._errors import ConfigError, StateUnavailable

if TYPE_CHECKING:
    from ._store import ScopedStore

__all__ = ["RedisState", "redact_url"]

_T = TypeVar("_T")

#: KEYS[1] bucket; ARGV cost, capacity, rate. Returns the seconds to wait, as a string (Lua numbers
#: become integers in a Redis reply).
_RESERVE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local cost, capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(held[1])
if tokens == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - tonumber(held[2])) * rate)
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updated', string.format('%.17g', now),
           'capacity', string.format('%.17g', capacity))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
if tokens >= 0 then return '0' end
return string.format('%.17g', -tokens / rate)
"""

#: KEYS[1] bucket; ARGV cost. Gives tokens back (never past capacity) if the bucket still exists.
_REFUND = """
local held = redis.call('HMGET', KEYS[1], 'tokens', 'capacity')
if held[1] then
  local tokens = math.min(tonumber(held[2]), tonumber(held[1]) + tonumber(ARGV[1]))
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens))
end
return 0
"""

#: KEYS[1] claim; ARGV token, ttl ms. 1 when the claim is (or already was) this token's.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""

#: KEYS[1] record, KEYS[2] index; ARGV key, data, now, ttl ms, record key prefix. Keeps the first
#: ``created``; drops index entries of records that have expired (those created before the horizon).
_PUT = """
local created = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not created or redis.call('EXISTS', KEYS[1]) == 0 then created = ARGV[3] end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], created, ARGV[1])
local horizon = tonumber(ARGV[3]) - tonumber(ARGV[4]) / 1000
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', horizon, 'LIMIT', 0, 100)) do
  if redis.call('EXISTS', ARGV[5] .. member) == 0 then redis.call('ZREM', KEYS[2], member) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 0
"""


#: KEYS[1] approval, KEYS[2] index; ARGV id, data, ttl ms. Lists the approval; trims expired index entries.
_ASK = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 0
"""

#: KEYS[1] index; ARGV approval key prefix. The pending approvals' data (expired index entries dropped).
_PENDING = """
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local data = redis.call('GET', ARGV[1] .. id)
  if data then table.insert(out, data) else redis.call('ZREM', KEYS[1], id) end
end
return out
"""

#: KEYS[1] approval, KEYS[2] index, KEYS[3] decision mailbox; ARGV id, decision, ttl ms. 1 when it was pending.
_DECIDE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
"""

#: KEYS[1] approval, KEYS[2] index; ARGV id. 1 when it was pending.
_WITHDRAW = """
local gone = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return gone
"""


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


class RedisState:
    """State on the Redis server at ``url`` (``redis://[:password@]host:port/db``, ``rediss://``, ``unix://``).

    ``retention`` is how long records are kept after their last write (seconds, default 30 days);
    ``timeout`` bounds each operation (seconds) before it fails as ``state_unavailable``.
    """

    def __init__(self, url: str, *, prefix: str = "kosmo:", retention: float = 30 * 86400, timeout: float = 2.0) -> None:
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ModuleNotFoundError:
            raise ConfigError(f"state {redact_url(url)} needs the redis client library",
                              hint="pip install 'kosmo-runtime[redis]'") from None
        self.url = redact_url(url)
        self.prefix = prefix
        self.retention = retention
        self._timeout = timeout
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        try:
            self._redis = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
        except ValueError as exc:
            raise ConfigError(f"cannot read state URL {self.url}: {exc}",
                              hint="write redis://[:password@]host:6379/0 (rediss:// for TLS)") from None
        self._reserve = self._redis.register_script(_RESERVE)
        self._refund = self._redis.register_script(_REFUND)
        self._claim = self._redis.register_script(_CLAIM)
        self._put = self._redis.register_script(_PUT)
        self._ask = self._redis.register_script(_ASK)
        self._pending = self._redis.register_script(_PENDING)
        self._decide = self._redis.register_script(_DECIDE)
        self._withdraw = self._redis.register_script(_WITHDRAW)

    def _do(self, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except self._errors as exc:
            raise StateUnavailable(
                f"shared state unavailable: cannot use Redis at {self.url} ({_reason(exc)}); nothing was sent",
                hint="start Redis there (or fix settings: state / KOSMO_STATE_URL), then run again; "
                     "rate budgets are kept only there, so no call is sent until it answers",
            ) from None

    def ping(self) -> bool:
        """True when Redis answers (raises StateUnavailable when it does not)."""
        return bool(self._do(self._redis.ping))

    def reserve(self, bucket_key: str, cost: float, capacity: float, rate: float) -> float:
        key = self.prefix + bucket_key
        return float(self._do(lambda: self._reserve(keys=[key], args=[repr(cost), repr(capacity), repr(rate)])))

    def refund(self, bucket_key: str, cost: float) -> None:
        key = self.prefix + bucket_key
        self._do(lambda: self._refund(keys=[key], args=[repr(cost)]))

    def claim(self, key: str, ttl: float) -> bool:
        name = f"{self.prefix}claim:{key}"
        token = os.urandom(8).hex()  # this claim's own: redis-py resending it after a lost reply still wins it
        return bool(self._do(lambda: self._claim(keys=[name], args=[token, max(1, math.ceil(ttl * 1000))])))

    def release(self, key: str) -> None:
        self._do(lambda: self._redis.delete(f"{self.prefix}claim:{key}", f"{self.prefix}memo:{key}"))

    def remember(self, key: str, data: dict[str, Any], ttl: float) -> None:
        name, value = f"{self.prefix}memo:{key}", json.dumps(data)
        self._do(lambda: self._redis.set(name, value, px=max(1, math.ceil(ttl * 1000))))

    def recall(self, key: str) -> dict[str, Any] | None:
        raw = self._do(lambda: self._redis.get(f"{self.prefix}memo:{key}"))
        return json.loads(raw) if raw is not None else None

    def scoped(self, integration: str, account: str) -> ScopedStore:
        return _RedisScope(self, f"{self.prefix}rec:{integration}:{account}:")

    def ask_approval(self, approval: dict[str, Any], ttl: float) -> None:
        keys = [f"{self.prefix}approval:{approval['id']}", f"{self.prefix}approvals"]
        args: list[str | int] = [str(approval["id"]), json.dumps(approval), _ms(ttl)]
        self._do(lambda: self._ask(keys=keys, args=args))

    def pending_approvals(self) -> list[dict[str, Any]]:
        keys, args = [f"{self.prefix}approvals"], [f"{self.prefix}approval:"]
        held = [json.loads(raw) for raw in self._do(lambda: self._pending(keys=keys, args=args))]
        return sorted(held, key=lambda approval: approval.get("asked", 0))

    def decide_approval(self, approval_id: str, decision: dict[str, Any], ttl: float) -> bool:
        keys = [f"{self.prefix}approval:{approval_id}", f"{self.prefix}approvals",
                f"{self.prefix}mail:decision:{approval_id}"]
        args: list[str | int] = [approval_id, json.dumps(decision), _ms(ttl)]
        return bool(self._do(lambda: self._decide(keys=keys, args=args)))

    def withdraw_approval(self, approval_id: str) -> bool:
        keys = [f"{self.prefix}approval:{approval_id}", f"{self.prefix}approvals"]
        return bool(self._do(lambda: self._withdraw(keys=keys, args=[approval_id])))

    def post(self, box: str, message: dict[str, Any], ttl: float) -> None:
        name, value = f"{self.prefix}mail:{box}", json.dumps(message)

        def push() -> None:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(name, value)
                pipe.pexpire(name, _ms(ttl))
                pipe.execute()

        self._do(push)

    def take(self, box: str, timeout: float) -> dict[str, Any] | None:
        name = f"{self.prefix}mail:{box}"
        deadline = time.monotonic() + timeout

        def pop(wait: float) -> Any:
            if wait < 0.01:  # no time to block: whatever is there now
                return self._redis.lpop(name)
            popped = cast("list[bytes] | None", self._redis.blpop([name], timeout=wait))
            return popped[1] if popped is not None else None

        while True:
            left = deadline - time.monotonic()
            wait = round(min(left, self._timeout / 2), 3)  # each BLPOP ends before the socket's timeout
            raw = self._do(functools.partial(pop, wait))
            if raw is not None:
                return json.loads(raw)  # type: ignore[no-any-return]
            if left < 0.01:
                return None

    def close(self) -> None:
        self._redis.close()


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class _RedisScope:
    """One integration account's records on Redis."""

    def __init__(self, state: RedisState, prefix: str) -> None:
        self._state = state
        self._prefix = prefix

    def put(self, collection: str, key: str, data: dict[str, Any]) -> None:
        state = self._state
        keys = [f"{self._prefix}{collection}:{key}", f"{self._prefix}{collection}"]
        args: list[str | int] = [key, json.dumps(data), repr(time.time()), math.ceil(state.retention * 1000),
                                 f"{self._prefix}{collection}:"]
        state._do(lambda: state._put(keys=keys, args=args))

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        raw = self._state._do(lambda: self._state._redis.get(f"{self._prefix}{collection}:{key}"))
        return json.loads(raw) if raw is not None else None

    def all(self, collection: str) -> list[dict[str, Any]]:
        """Every record of a collection, newest first (expired ones are gone)."""
        redis_ = self._state._redis

        def read() -> list[tuple[bytes, float, Any]]:
            index = cast("list[tuple[bytes, float]]", redis_.zrange(f"{self._prefix}{collection}", 0, -1, withscores=True))
            if not index:
                return []
            values = redis_.mget([f"{self._prefix}{collection}:".encode() + member for member, _ in index])
            return [(member, score, value) for (member, score), value in zip(index, values, strict=True)]

        rows = self._state._do(read)
        rows.sort(key=lambda row: (-row[1], row[0]))
        return [json.loads(value) for _, _, value in rows if value is not None]

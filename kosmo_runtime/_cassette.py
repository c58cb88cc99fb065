"""Record and replay: every upstream exchange of a run, written to a cassette and answered from it.

A cassette is one JSON file (format ``CASSETTE_VERSION``, described in the README)::

    {"kosmo_cassette": 1, "script": "demo.lua", "recorded_at": "...Z",
     "clock": ["2025-01-10T09:00:00.120000+00:00", ...],
     "exchanges": [{"integration": "whereby", "account": "default",
                    "request": {"method": "GET", "path": "/v1/rooms", "query": [["limit", "2"]],
                                "headers": {...}, "body": ...},
                    "response": {"status": 200, "reason": "OK", "headers": {...}, "body": ...}}]}

Recording wraps the transport of each account's client (``ClientPool.wrapped``), so retries, rate
limits, the audit log and error mapping behave as in any run; replaying answers from the cassette and
never opens a connection. Requests are matched in order: each request takes the first unused exchange
with the same integration, account, method, path, query and body (parallel calls may come in any
order); a request the cassette does not hold raises ``ReplayMismatch`` naming it and what the cassette
expected next. ``clock`` holds every reading of the run's clock (``os.time``, ``ctx.now()``), replayed
in order, so that time-dependent scripts replay identically.

Secrets never enter a cassette: credential headers, secret-looking query parameters and body fields are
replaced by ``***``, and so is every occurrence of the account's credential values anywhere.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ._clock import Clock
from ._errors import ConfigError, ReplayMismatch

if TYPE_CHECKING:
    from ._accounts import Account
    from ._http import ClientPool
    from ._manifest import Manifest
    from ._result import RunResult

__all__ = ["CASSETTE_VERSION", "Tape", "open_tape"]

#: Version of the cassette format; a cassette of another version is refused.
CASSETTE_VERSION = 1
REDACTED = "***"
_SECRET_NAME = re.compile(r"(secret|password|passwd|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|"
                          r"authorization|signature|cookie)", re.I)
# In answers, a narrower rule: a service's own ids and cursors (``sessionKey``, ``nextPageToken``) must replay.
_SECRET_ANSWER = re.compile(r"(secret|password|passwd|api[_-]?key|access[_-]?key|private[_-]?key|credential|^(access[_-]|refresh[_-]|id[_-])?token$)",
                            re.I)
# Headers that describe one connection or one encoding of the body, not the exchange.
_TRANSIENT_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive",
                                "date"})


class _Scrubber:
    """Redacts one account's secrets out of headers, query pairs, bodies and text."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers: httpx.Headers) -> dict[str, str]:
        kept: dict[str, str] = {}
        for name, value in headers.multi_items():
            name = name.lower()
            if name in _TRANSIENT_HEADERS:
                continue
            value = REDACTED if _SECRET_NAME.search(name) else self.text(value)
            kept[name] = f"{kept[name]}, {value}" if name in kept else value
        return kept

    def query(self, params: httpx.QueryParams) -> list[list[str]]:
        return [[k, REDACTED if _SECRET_NAME.search(k) and v else self.text(v)] for k, v in params.multi_items()]

    def value(self, value: Any, rule: re.Pattern[str] = _SECRET_NAME) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if _secret_field(rule, k, v) else self.value(v, rule) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, rule) for v in value]
        return self.text(value) if isinstance(value, str) else value

    def body(self, content: bytes, into: dict[str, Any], rule: re.Pattern[str] = _SECRET_NAME) -> None:
        """Put ``content`` into ``into`` as ``body`` (JSON), ``text`` or nothing (empty)."""
        if not content:
            return
        try:
            into["body"] = self.value(json.loads(content), rule)
        except (ValueError, UnicodeDecodeError):
            into["text"] = self.text(content.decode("utf-8", "replace"))


def _secret_field(rule: re.Pattern[str], key: Any, value: Any) -> bool:
    return bool(rule.search(str(key))) and isinstance(value, (str, int, float)) and not isinstance(value, bool) \
        and value != ""


def _describe_request(request: httpx.Request, scrub: _Scrubber) -> dict[str, Any]:
    described: dict[str, Any] = {"method": request.method, "path": scrub.text(request.url.path),
                                 "query": scrub.query(request.url.params), "headers": scrub.headers(request.headers)}
    scrub.body(request.content, described)
    return described


def _key(described: dict[str, Any]) -> tuple[Any, ...]:
    return (described["method"], described["path"], described["query"], described.get("body"), described.get("text"))


def _shown(described: dict[str, Any]) -> str:
    query = "&".join(f"{k}={v}" for k, v in described.get("query", []))
    return f"{described.get('method')} {described.get('path')}" + (f"?{query}" if query else "")


def _content(response: dict[str, Any]) -> bytes:
    if "body" in response:
        return json.dumps(response["body"], ensure_ascii=False).encode("utf-8")
    return str(response.get("text", "")).encode("utf-8")


class Tape:
    """One run's cassette: records (``record``) or answers (``replay``) the run's upstream exchanges."""

    def __init__(self, path: Path, *, replaying: bool, pool: ClientPool, clock: Clock,
                 document: dict[str, Any] | None = None) -> None:
        self.path = path
        self.replaying = replaying
        self._lock = threading.Lock()
        document = document or {}
        self._exchanges: list[dict[str, Any]] = list(document.get("exchanges", []))
        self._used = [False] * len(self._exchanges)
        self._readings: list[str] = list(document.get("clock", []))
        self._next_reading = 0
        #: The run's own clients (their transports record or replay), sharing ``pool``'s rate limiters.
        self.pool = pool.wrapped(self._transport)
        #: The run's clock: recorded readings, or the readings replayed.
        self.clock = self._replayed_clock(clock) if replaying else self._recording_clock(clock)

    # -- transports ----------------------------------------------------------------

    def _transport(self, inner: httpx.BaseTransport, manifest: Manifest, account: Account,
                   owned: bool) -> httpx.BaseTransport:
        scrub = _Scrubber(account.secret_values())
        kind = _Replaying if self.replaying else _Recording
        return kind(self, manifest.id, account.name, scrub, inner, owned)

    def add(self, exchange: dict[str, Any]) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def take(self, integration: str, account: str, described: dict[str, Any]) -> dict[str, Any]:
        """The first unused exchange answering ``described``; raises ReplayMismatch when there is none."""
        key = _key(described)
        with self._lock:
            pending = [i for i, used in enumerate(self._used) if not used]
            for index in pending:
                exchange = self._exchanges[index]
                if (exchange.get("integration"), exchange.get("account")) == (integration, account) \
                        and _key(exchange.get("request", {})) == key:
                    self._used[index] = True
                    return exchange
        total = len(self._exchanges)
        if pending:
            following = self._exchanges[pending[0]]
            expected = (f"{following.get('integration')}.{following.get('account')}: "
                        f"{_shown(following.get('request', {}))} (exchange {pending[0] + 1} of {total})")
        else:
            expected = f"no more requests (all {total} exchanges were used)"
        got = f"{integration}.{account}: {_shown(described)}"
        raise ReplayMismatch(
            f"replay: the run sent {got}, which the cassette {self.path.name} does not hold; next it expected {expected}",
            expected=expected, got=got, file=str(self.path),
            hint="the script now sends a request it did not send when recorded (or with other arguments or body); "
                 "record the run again with --record, or change the script back",
        )

    # -- the clock -------------------------------------------------------------------

    def _recording_clock(self, inner: Clock) -> Clock:
        def clock() -> datetime:
            moment = inner()
            with self._lock:
                self._readings.append(moment.isoformat())
            return moment

        return clock

    def _replayed_clock(self, inner: Clock) -> Clock:
        last: list[datetime] = []

        def clock() -> datetime:
            with self._lock:
                if self._next_reading < len(self._readings):
                    moment = datetime.fromisoformat(self._readings[self._next_reading])
                    self._next_reading += 1
                    last[:] = [moment]
                    return moment
            return last[0] if last else inner()  # more readings than recorded (an edited script): time stands

        return clock

    # -- the file ----------------------------------------------------------------------

    def finish(self, result: RunResult, script: str) -> RunResult:
        """Close the run's clients and write the cassette (when recording); ``result``, or it failed by
        a cassette that cannot be written."""
        self.pool.close()
        if self.replaying:
            return result
        with self._lock:
            document = {"kosmo_cassette": CASSETTE_VERSION, "script": script,
                        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                        "clock": self._readings, "exchanges": self._exchanges}
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
        try:
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, self.path)
        except OSError as exc:
            error = ConfigError(f"cannot write the cassette {self.path}: {exc.strerror or exc}", file=str(self.path),
                                hint="record to a writable file")
            return replace(result, ok=False, result=None, error=result.error or error)
        return result


class _Taped(httpx.BaseTransport):
    """A transport of one account of a taped run, around the transport the run would use (``inner``)."""

    def __init__(self, tape: Tape, integration: str, account: str, scrub: _Scrubber, inner: httpx.BaseTransport,
                 owned: bool) -> None:
        self._tape, self._integration, self._account, self._scrub = tape, integration, account, scrub
        self._inner, self._owned = inner, owned

    def close(self) -> None:
        if self._owned:  # a transport the Runtime was given stays open for its other clients
            self._inner.close()


class _Recording(_Taped):
    """Sends through ``inner`` and adds each exchange (redacted) to the tape."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange: dict[str, Any] = {"integration": self._integration, "account": self._account,
                                    "request": _describe_request(request, self._scrub)}
        try:
            response = self._inner.handle_request(request)
            content = response.read()
        except httpx.TransportError as exc:
            exchange["error"] = type(exc).__name__
            self._tape.add(exchange)
            raise
        response.close()
        answer: dict[str, Any] = {"status": response.status_code, "reason": response.reason_phrase,
                                  "headers": self._scrub.headers(response.headers)}
        self._scrub.body(content, answer, _SECRET_ANSWER)
        exchange["response"] = answer
        self._tape.add(exchange)
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-encoding",
                                                                                          "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=content, extensions=response.extensions)


class _Replaying(_Taped):
    """Answers from the tape; never sends through ``inner``."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange = self._tape.take(self._integration, self._account, _describe_request(request, self._scrub))
        failure = exchange.get("error")
        if failure is not None:
            error = getattr(httpx, str(failure), None)
            if not (isinstance(error, type) and issubclass(error, httpx.TransportError)):
                error = httpx.TransportError
            raise error(f"{failure} (replayed)", request=request)
        answer = exchange.get("response", {})
        return httpx.Response(int(answer.get("status", 200)), headers=answer.get("headers", {}), content=_content(answer),
                              extensions={"reason_phrase": str(answer.get("reason", "")).encode("ascii", "replace"),
                                          "http_version": b"HTTP/1.1"}, request=request)


def open_tape(*, record: str | Path | None, replay: str | Path | None, pool: ClientPool, clock: Clock) -> Tape:
    """The tape of a run that records to ``record`` or replays ``replay``, with clients made from ``pool``
    and readings of ``clock``; ConfigError when the file cannot be used."""
    if record is not None and replay is not None:
        raise ConfigError("a run either records or replays a cassette, not both", hint="give record= or replay=")
    if record is not None:
        path = Path(record).expanduser()
        if not path.parent.is_dir():
            raise ConfigError(f"cannot record to {path}: the folder {path.parent} does not exist", file=str(path),
                              hint="create the folder or record elsewhere")
        return Tape(path, replaying=False, pool=pool, clock=clock)
    path = Path(str(replay)).expanduser()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the cassette {path}: {exc.strerror or exc}", file=str(path),
                          hint="record one first: kosmo run --record FILE ...") from None
    except ValueError as exc:
        raise ConfigError(f"the cassette {path} is not JSON: {exc}", file=str(path),
                          hint="record it again: kosmo run --record FILE ...") from None
    if not isinstance(document, dict) or document.get("kosmo_cassette") != CASSETTE_VERSION \
            or not isinstance(document.get("exchanges"), list):
        version = document.get("kosmo_cassette") if isinstance(document, dict) else None
        raise ConfigError(f"{path} is not a kosmo cassette of version {CASSETTE_VERSION} (found version {version!r})",
                          file=str(path), hint="record it again with this kosmo: kosmo run --record FILE ...")
    return Tape(path, replaying=True, pool=pool, clock=clock, document=document)

"""Loopback simulators of the upstream services: the shared plumbing.

A simulator behaves like a real upstream API (its paths, auth checks, status
codes, error bodies and response shapes), never like our Lua contract. It is a
plain callable ``httpx.Request -> httpx.Response`` with in-memory state, so it
can be mounted two ways:

* in-process, as ``httpx.MockTransport(simulator)``;
* behind a real HTTP/1.1 server on loopback: ``LoopbackServer(simulator)``,
  which is what ``--demo`` and the end-to-end tests use.

Faults (latency, an error status with ``Retry-After``, a malformed body, a
dropped connection) are injected with :meth:`Simulator.inject`.

A simulator's idea of the current time is :meth:`Simulator.now`: the real clock
by default, the demo's simulated date when ``Demo`` passes its ``clock``.

What every simulator repeats lives here too: the demo accounts and seed records
read from a data file beside the simulator (:meth:`Simulator.read_data`), the
default credentials made from those accounts, ``Authorization`` parsing
(:meth:`Simulator.bearer_token`, :meth:`Simulator.basic_credential`), ISO 8601
times (:meth:`Simulator.format_iso`, :meth:`Simulator.parse_iso`, and
:meth:`Simulator.at` for the relative dates of seed data) and offset paging
(:meth:`Simulator.page`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import httpx
import yaml

from ._clock import Clock, read, utc_now

__all__ = [
    "ConnectionDropped",
    "Fault",
    "LoopbackServer",
    "Page",
    "Simulator",
    "route",
]

T = TypeVar("T")
DATA_FILE = "simulator_data.yaml"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ANCHORS = ("midnight", "hour", "now")

FaultKind = Literal["latency", "status", "malformed", "drop"]


class ConnectionDropped(Exception):
    """Raised by a simulator to close the connection without any response."""


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``times`` matching requests.

    ``kind`` is one of ``latency`` (sleep ``seconds`` then answer normally),
    ``status`` (answer ``status`` with the service's error body, plus
    ``Retry-After`` when ``retry_after`` is set), ``malformed`` (answer 200
    with ``body``, by default a truncated JSON document) or ``drop`` (close the
    connection without answering). ``method`` and ``path`` (a regular
    expression searched in the URL path) narrow which requests it hits;
    ``times=None`` means every matching request until :meth:`Simulator.clear_faults`.
    """

    kind: FaultKind
    status: int = 503
    seconds: float = 0.0
    retry_after: float | None = None
    body: bytes | None = None
    content_type: str = "application/json"
    method: str | None = None
    path: str | None = None
    times: int | None = 1

    def matches(self, request: httpx.Request) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return not self.path or re.search(self.path, request.url.path) is not None


Handler = Callable[..., httpx.Response]


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Mark a simulator method as the handler of ``method template``.

    ``template`` is an upstream path such as ``/v1/meetings/{meetingId}``;
    each ``{name}`` matches one path segment and is passed to the handler as a
    keyword argument (a string). The handler receives the ``httpx.Request``.
    """

    def mark(handler: Handler) -> Handler:
        handler.__dict__.setdefault("_routes", []).append((method.upper(), template))
        return handler

    return mark


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: ``items`` are ``total`` items from ``offset`` on, at most ``limit``."""

    items: list[T]
    offset: int
    limit: int
    total: int

    @property
    def end(self) -> int:
        """The offset of the next page."""
        return self.offset + self.limit

    @property
    def has_next(self) -> bool:
        return self.end < self.total

    @property
    def total_pages(self) -> int:
        """``ceil(total / limit)``; 0 for an empty list (or a limit of 0)."""
        return -(-self.total // self.limit) if self.limit else 0


@functools.cache
def _read_data(package: str, name: str) -> Any:
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_LOADER)


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


class Simulator:
    """Base class of every upstream simulator.

    Subclasses set ``service``, define ``@route`` handlers, implement
    :meth:`authenticate` (return ``None`` when the request's credentials are
    accepted, else the service's own 401 response) and :meth:`error` (the
    service's error body for a status), and seed their state in
    :meth:`seed`. Every request seen is appended to :attr:`requests`, which the
    contract tests check against the official specs.

    ``clock`` (a callable returning an aware datetime) is the simulated world's
    time; subclasses read it with :meth:`now` for everything time-dependent
    (seeding relative dates, "in the past" checks, expiry, timestamps). Default:
    the real clock.
    """

    service: str = ""
    demo_accounts: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    """Account name -> credential and setting fields (a module's ``DEMO_ACCOUNTS``)."""
    credential_fields: ClassVar[tuple[str, ...]] = ()
    """The fields of a demo account that make one accepted credential, joined by ``:``."""

    def __init__(self, credentials: Collection[str] | None = None, clock: Clock | None = None) -> None:
        if credentials is None:
            credentials = self.default_credentials()
        self.credentials = frozenset(credentials)
        self._clock: Clock = clock or utc_now
        self.requests: list[httpx.Request] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._routes = [
            (method, _compile(template), getattr(self, name))
            for name in dir(type(self))
            for method, template in getattr(getattr(type(self), name), "_routes", ())
        ]
        self.seed()

    # -- what subclasses provide -------------------------------------------

    def seed(self) -> None:
        """Fill the in-memory state with the demo data."""

    def authenticate(self, request: httpx.Request) -> httpx.Response | None:
        """Return ``None`` if the request is authorised, else the 401 response."""
        raise NotImplementedError

    def error(self, status: int, message: str, **extra: Any) -> httpx.Response:
        """Return the service's own error response for ``status``."""
        return self.json(status, {"error": message, **extra})

    # -- data: demo accounts, seed records ---------------------------------------

    @classmethod
    def default_credentials(cls) -> list[str]:
        """The credential of every demo account (``credential_fields`` joined by ``:``)."""
        return [":".join(account[name] for name in cls.credential_fields) for account in cls.demo_accounts.values()]

    @staticmethod
    def read_data(package: str, name: str = DATA_FILE) -> Any:
        """The YAML data file ``name`` of ``package`` (a simulator's ``__package__``), as fresh plain data.

        Read through ``importlib.resources``, so it works from a source tree and an installed wheel alike;
        parsed once per process, copied on every call so seeding may keep or change what it gets.
        """
        return copy.deepcopy(_read_data(package, name))

    def seed_data(self) -> Any:
        """The data file beside this simulator's module (see :meth:`read_data`)."""
        return self.read_data(type(self).__module__.rpartition(".")[0])

    # -- helpers for handlers ------------------------------------------------

    def now(self) -> datetime:
        """The current time of this simulator's world (aware, UTC)."""
        return read(self._clock)

    def midnight(self) -> datetime:
        """Midnight UTC of this simulator's current day: what seed data's relative dates count from."""
        return self.now().replace(hour=0, minute=0, second=0, microsecond=0)

    def at(self, when: Any) -> datetime:
        """A moment of seed data: an absolute time (a YAML timestamp or ISO string), or a relative one.

        A relative time is a mapping of ``timedelta`` fields (``days``, ``hours``, ``minutes``,
        ``seconds``, ``weeks``) counted from ``from``: ``midnight`` (the default: midnight UTC of the
        simulator's day), ``hour`` (the current hour) or ``now`` (the current second).
        """
        if isinstance(when, datetime):
            return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        if isinstance(when, str):
            moment = self.parse_iso(when)
            if moment is None:
                raise ValueError(f"not an ISO 8601 time: {when!r}")
            return moment
        offset = dict(when)
        anchor = offset.pop("from", "midnight")
        if anchor not in _ANCHORS:
            raise ValueError(f"a relative time counts from one of {', '.join(_ANCHORS)}, not {anchor!r}")
        now = self.now().replace(microsecond=0)
        base = {"midnight": now.replace(hour=0, minute=0, second=0), "hour": now.replace(minute=0, second=0), "now": now}
        return base[anchor] + timedelta(**offset)

    @staticmethod
    def format_iso(moment: datetime, *, milliseconds: bool = False) -> str:
        """``moment`` in UTC as ISO 8601 with ``Z``: ``2026-03-15T10:00:00Z``, or ``...00.000Z`` with milliseconds
        (JavaScript's ``toISOString``)."""
        moment = moment.astimezone(timezone.utc)
        if milliseconds:
            return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
        return f"{moment:%Y-%m-%dT%H:%M:%S}Z"

    @staticmethod
    def parse_iso(value: Any, *, assume_utc: bool = True) -> datetime | None:
        """An ISO 8601 date or date-time (``Z``/``z`` or an offset) in UTC, or ``None`` when it is not one.

        Without an offset the time is UTC, or stays naive with ``assume_utc=False`` (for services that
        refuse it). Services check their own stricter shapes before calling this.
        """
        if not isinstance(value, str):
            return None
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc) if assume_utc else moment
        return moment.astimezone(timezone.utc)

    @staticmethod
    def page(items: Sequence[T], offset: int, limit: int) -> Page[T]:
        """The items ``[offset, offset + limit)`` of ``items``, with what a page answer reports."""
        return Page(list(items[offset : offset + limit]), offset, limit, len(items))

    # -- helpers for authenticate ----------------------------------------------

    @staticmethod
    def bearer_token(request: httpx.Request) -> str | None:
        """The token of ``Authorization: Bearer <token>`` (scheme case-insensitive), else ``None``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    @staticmethod
    def basic_credential(request: httpx.Request) -> str | None:
        """``user:secret`` of ``Authorization: Basic <base64>``; ``None`` when the request has no Basic credentials,
        ``""`` (which no accepted credential equals) when they are not base64 of UTF-8 text."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            return None
        try:
            return base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""

    def accepts(self, credential: str | None) -> bool:
        """Whether ``credential`` (from :meth:`bearer_token` or :meth:`basic_credential`) is accepted."""
        return credential is not None and credential in self.credentials

    @staticmethod
    def json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        """A JSON response with the given status."""
        return httpx.Response(
            status,
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", **(headers or {})},
        )

    @staticmethod
    def body(request: httpx.Request) -> Any:
        """The request's JSON body, or ``None`` when it has none or it is not JSON."""
        try:
            return json.loads(request.content or b"null")
        except ValueError:
            return None

    # -- faults ----------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Queue ``fault`` for the next matching requests; returns it."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, request: httpx.Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(request):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _fault_response(self, fault: Fault) -> httpx.Response:
        if fault.kind == "drop":
            raise ConnectionDropped()
        if fault.kind == "malformed":
            body = fault.body if fault.body is not None else b'{"results": [{"id": '
            return httpx.Response(200, content=body, headers={"content-type": fault.content_type})
        response = self.error(fault.status, f"Injected fault: HTTP {fault.status}")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response

    # -- dispatch ----------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault is not None:
            if fault.kind == "latency":
                time.sleep(fault.seconds)
            else:
                return self._fault_response(fault)
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        path = request.url.path
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            with self._lock:
                response: httpx.Response = handler(request, **match.groupdict())
                return response
        if allowed:
            return self.error(405, f"Method {request.method} not allowed on {path}")
        return self.error(404, f"No route for {request.method} {path}")

    def transport(self) -> httpx.MockTransport:
        """This simulator as an in-process httpx transport (drops become transport errors)."""

        def handle(request: httpx.Request) -> httpx.Response:
            request.read()
            try:
                return self(request)
            except ConnectionDropped:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request) from None

        return httpx.MockTransport(handle)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait for ACKs
    simulator: Callable[[httpx.Request], httpx.Response]

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        content = self.rfile.read(length) if length else b""
        address = cast("tuple[str, int]", self.server.server_address)
        host = self.headers.get("Host") or f"{address[0]}:{address[1]}"
        request = httpx.Request(
            self.command,
            f"http://{host}{self.path}",
            headers=list(self.headers.items()),
            content=content,
        )
        try:
            response = self.simulator(request)
        except ConnectionDropped:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = response.read()
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the simulator keeps its own request log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a run that ended, a test that moved on) is no error: stay quiet.

        Anything else is a simulator bug: let the standard handler print it.
        """
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A real HTTP/1.1 server on 127.0.0.1 answering with a simulator.

    Use as a context manager or call :meth:`close`; :attr:`url` is the base URL,
    e.g. ``http://127.0.0.1:54321``.
    """

    def __init__(self, simulator: Callable[[httpx.Request], httpx.Response]) -> None:
        handler = type("SimulatorHandler", (_Handler,), {"simulator": staticmethod(simulator)})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-{getattr(simulator, 'service', 'http')}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        address = cast("tuple[str, int]", self._server.server_address)
        return f"http://{address[0]}:{address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""OpenTelemetry tracing (the ``otel`` extra): a span per run, per integration call, per HTTP request.

Tracing is on when the host application configured a tracer provider (``opentelemetry.trace.
set_tracer_provider``, or ``kosmo run --otel``) or passed one as ``Runtime(tracer_provider=...)``.
Whether the host configured one is only asked when the host has imported ``opentelemetry`` itself:
a process that does not trace never imports it, and a run costs one dictionary look-up.

Spans (names, attributes):

* ``kosmo.run`` (internal): ``kosmo.script``, ``kosmo.run.id`` (once it calls an integration); the
  error's type as ``error.type``.
* ``{integration}.{function}`` (internal), a child of the run: ``kosmo.integration``,
  ``kosmo.function``, ``kosmo.account``, ``kosmo.operation``, ``kosmo.dry_run``.
* ``{METHOD}`` (client), a child of the call, one per attempt, following OpenTelemetry's semantic
  conventions for HTTP client spans: ``http.request.method``, ``server.address``, ``server.port``,
  ``url.full`` (never with its query), ``http.response.status_code``, ``error.type``,
  ``http.request.resend_count`` (from the second attempt on).

Events: ``kosmo.limit_exceeded`` (``kosmo.limit``, ``kosmo.limit.value``), ``kosmo.error``
(``error.type``, ``kosmo.error.code``) and ``kosmo.policy`` (``kosmo.policy.decision``: ``allow``,
``ask``, ``deny`` or ``dry_run``). No attribute carries an argument value, a credential, a query
string or an error message (messages may quote arguments).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

if TYPE_CHECKING:
    import httpx
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._errors import KosmoError
    from ._result import CallRecord, RunResult

__all__ = ["CallSpan", "RunSpan", "Tracing", "configure_from_environment", "tracing_for"]

_INSTRUMENTATION = "kosmo_runtime"


def tracing_for(provider: TracerProvider | bool | None) -> Tracing | None:
    """The tracing of a run: ``provider`` if given, else the host's global provider if it set one, else ``None``.

    This module imports ``opentelemetry``: the Runtime imports it only when given a provider or when the
    host has imported ``opentelemetry`` itself.
    """
    if provider is False:
        return None
    if provider is None or provider is True:
        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None  # the API's default: nobody configured tracing
    from . import __version__

    return Tracing(provider.get_tracer(_INSTRUMENTATION, __version__))


class Tracing:
    """Starts the spans of runs, calls and HTTP requests on one tracer."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def run(self, script: str) -> RunSpan:
        """The span of one run, a child of the caller's current span (if any); its first call names its run id."""
        span = self.tracer.start_span("kosmo.run", attributes={"kosmo.script": script})
        return RunSpan(self, span)


class RunSpan:
    """One run's span: its calls become children; ``end`` records how the run ended."""

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self._context = set_span_in_context(span)
        self._run_id = ""

    def call(self, record: CallRecord) -> CallSpan:
        """Start the span of one integration call and put its ids on ``record``."""
        if not self._run_id:
            self._run_id = record.run_id
            self.span.set_attribute("kosmo.run.id", record.run_id)
        span = self.tracing.tracer.start_span(
            f"{record.integration}.{record.function}", context=self._context,
            attributes={"kosmo.integration": record.integration, "kosmo.function": record.function,
                        "kosmo.account": record.account, "kosmo.operation": record.operation,
                        "kosmo.dry_run": record.dry_run})
        ids = span.get_span_context()
        record.trace_id, record.span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
        return CallSpan(self.tracing, span, record.account)

    def end(self, result: RunResult) -> None:
        _ended(self.span, result.error)


class CallSpan:
    """One call's span: each HTTP attempt becomes a child (``request``); ``end`` records the outcome."""

    def __init__(self, tracing: Tracing, span: Span, account: str) -> None:
        self.tracing = tracing
        self.account = account
        self.span = span
        self._context: Any = None  # made for the first HTTP request: most no-op calls make none
        self.policy: str | None = None  # the write policy applied, set by the caller

    def request(self, request: httpx.Request, entry: dict[str, Any], attempt: int) -> None:
        """Add the span of one finished HTTP attempt (``entry``: the request's line in ``CallRecord.requests``)."""
        ended = time.time_ns()
        started = ended - int(entry.get("duration", 0.0) * 1e9)
        url = request.url
        attributes: dict[str, Any] = {
            "http.request.method": request.method, "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
            "url.full": str(url.copy_with(query=None, fragment=None, username=None, password=None)),
        }
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        status = entry.get("status")
        if status is not None:
            attributes["http.response.status_code"] = status
        failure = entry.get("error") or (str(status) if status is not None and status >= 400 else None)
        if failure is not None:
            attributes["error.type"] = failure
        if self._context is None:
            self._context = set_span_in_context(self.span)
        span = self.tracing.tracer.start_span(request.method, context=self._context, kind=SpanKind.CLIENT,
                                              attributes=attributes, start_time=started)
        if failure is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=ended)

    def end(self, record: CallRecord) -> None:
        if record.account != self.account:
            self.span.set_attribute("kosmo.account", record.account)  # known once the account is resolved
        if record.operation == "write":
            decision = ("dry_run" if record.dry_run else "deny" if record.error == "permission_denied"
                        else self.policy)
            if decision is not None:
                self.span.add_event("kosmo.policy", {"kosmo.policy.decision": decision})
        if record.retries:
            self.span.set_attribute("kosmo.retries", record.retries)
        _ended(self.span, None, record.error)


def _ended(span: Span, error: KosmoError | None, code: str | None = None) -> None:
    """End ``span``, with error status and events when the run or call failed (never the message)."""
    code = error.code if error is not None else code
    if code is not None:
        kind = error.type if error is not None else code
        limit = getattr(error, "limit", None)
        if limit is not None:
            value = getattr(error, "value", None)
            span.add_event("kosmo.limit_exceeded", {"kosmo.limit": str(limit),
                                                    **({"kosmo.limit.value": value} if isinstance(value, (int, float)) else {})})
        span.add_event("kosmo.error", {"error.type": kind, "kosmo.error.code": code})
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def configure_from_environment() -> Any:
    """Install an SDK tracer provider exporting OTLP over HTTP, configured by the standard
    ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` variables
    (``kosmo run --otel``); returns the provider (``shutdown()`` flushes it). ImportError without the extra."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "kosmo-runtime"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider

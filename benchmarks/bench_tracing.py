"""What OpenTelemetry tracing (extra ``otel``) costs: per integration call and per HTTP request, traced
against untraced, measured side by side (reported figures; tracing off is bench_bridge's no-op call)."""

from __future__ import annotations

from typing import Any

from common import HERE, Figure, paired_medians

from kosmo_runtime import AccountsConfig, Limits, Runtime
from kosmo_runtime._demo import Demo


def _provider() -> Any:
    """An SDK provider whose exporter takes every span and keeps none: what is measured is making the
    spans, not shipping them. (Imported here: without the otel extra the other benchmarks still run.)"""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Discard()))
    return provider


def _noop_runtime(**options: object) -> Runtime:
    runtime = Runtime(integration_paths=[HERE / "noop_integration"], store=":memory:", limits=Limits(calls=100_000),
                      **options)  # type: ignore[arg-type]
    runtime._accounts = AccountsConfig.parse(
        "integrations:\n  bench-noop:\n    accounts:\n      default: {api_key: unused}\n",
        "(benchmark)", runtime._manifest_for, runtime.catalog.names)
    return runtime


def bench_tracing_call() -> Figure:
    """One no-op integration call (no HTTP): traced (run + call span) against untraced, per call."""
    calls = 2000
    loop = f"local ns = app.integrations.bench_noop for i = 1, {calls} do ns.ping{{id = 'a'}} end"
    traced, plain = _noop_runtime(tracer_provider=_provider()), _noop_runtime(tracer_provider=False)
    assert traced.run(loop).calls[0].span_id and plain.run(loop).calls[0].span_id is None
    on, off = paired_medians(lambda: traced.run(loop), lambda: plain.run(loop), rounds=15)
    return Figure("no-op call, tracing on (SDK, spans discarded)", "µs", on / calls * 1e6,
                  "same call, tracing off", off / calls * 1e6, "reported", None,
                  f"{(on - off) / calls * 1e6:.1f} µs per call span")


def bench_tracing_http() -> Figure:
    """50 get_webinar calls over loopback HTTP (call + request spans): traced against untraced, per call."""
    calls, ident = 50, "goto-webinar"
    script = f"local gw = app.integrations['{ident}'] for i = 1, {calls} do gw.get_webinar{{id = '1234567890'}} end"
    with Demo([ident], rate_limits=False) as demo, demo.runtime(tracer_provider=_provider()) as traced, \
            demo.runtime(tracer_provider=False) as plain:
        assert traced.run(script).ok and plain.run(script).ok
        on, off = paired_medians(lambda: traced.run(script), lambda: plain.run(script), rounds=10)
    return Figure(f"{calls} get_webinar over loopback, tracing on", "ms", on * 1e3, "same, tracing off", off * 1e3,
                  "reported", None, f"{(on - off) / calls * 1e6:.0f} µs per call (call + HTTP span)")


BENCHMARKS = {"tracing_call": bench_tracing_call, "tracing_http": bench_tracing_http}

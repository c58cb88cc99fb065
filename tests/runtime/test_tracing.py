"""OpenTelemetry tracing (extra ``otel``): spans of runs, calls and HTTP requests, exported to the SDK's
in-memory exporter; nothing imported when tracing is off; ``--otel`` exporting OTLP over loopback HTTP.

The tests pass their provider as ``Runtime(tracer_provider=...)``: the global provider can be set once
per process, so the tests of the global one run in child processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra (pip install -e '.[otel]')")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from kosmo_runtime import Demo, Fault, Limits, RetryPolicy, RunResult, Runtime, Store
from tests.reliability.cases import credential_values
from tests.surfaces import check_envelope

ROOT = Path(__file__).resolve().parents[2]
DEMO_SCRIPT = (ROOT / "examples" / "demo.lua").read_text(encoding="utf-8")
MARKER = "arg-marker-7f3c"  # an argument value: it must reach no span


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with Demo(rate_limits=False) as running:
        yield running


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def runtime(demo: Demo, exporter: InMemorySpanExporter, tmp_path: Path) -> Iterator[Runtime]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    waits: list[float] = []
    with demo.runtime(tracer_provider=provider, store=Store(":memory:"), retry=RetryPolicy(sleep=waits.append),
                      audit_log=tmp_path / "audit.jsonl") as traced:
        yield traced


def by_kind(spans: tuple[ReadableSpan, ...]) -> tuple[list[ReadableSpan], list[ReadableSpan], list[ReadableSpan]]:
    runs = [s for s in spans if s.name == "kosmo.run"]
    http = [s for s in spans if s.kind == SpanKind.CLIENT]
    calls = [s for s in spans if s not in runs and s not in http]
    return runs, calls, http


def everything_said(spans: tuple[ReadableSpan, ...]) -> str:
    """Every span name, attribute and event (name and attributes) as one text."""
    said = []
    for span in spans:
        said += [span.name, json.dumps(dict(span.attributes or {}), default=str), span.status.description or ""]
        for event in span.events:
            said += [event.name, json.dumps(dict(event.attributes or {}), default=str)]
    return "\n".join(said)


def test_a_run_is_a_span_its_calls_children_their_requests_grandchildren(
        runtime: Runtime, exporter: InMemorySpanExporter) -> None:
    result = runtime.run(DEMO_SCRIPT, name="demo.lua")
    assert result.ok, result.error and result.error.to_dict()
    runs, calls, http = by_kind(exporter.get_finished_spans())
    assert len(runs) == 1 and len(calls) == len(result.calls) > 5
    run = runs[0]
    assert run.attributes["kosmo.script"] == "demo.lua" and run.attributes["kosmo.run.id"] == result.calls[0].run_id
    assert run.status.status_code != StatusCode.ERROR
    assert {c.parent.span_id for c in calls} == {run.context.span_id}
    call_ids = {c.context.span_id for c in calls}
    assert {h.parent.span_id for h in http} <= call_ids
    assert len(http) == sum(len(call.requests) for call in result.calls)
    for span in http:
        attributes = span.attributes
        assert span.name == attributes["http.request.method"] in ("GET", "POST", "DELETE", "PUT", "PATCH")
        assert attributes["server.address"] == "127.0.0.1" and isinstance(attributes["server.port"], int)
        assert attributes["url.full"].startswith("http://127.0.0.1:") and "?" not in attributes["url.full"]
        assert 200 <= attributes["http.response.status_code"] < 300 and "error.type" not in attributes
        assert "http.request.resend_count" not in attributes
        assert span.start_time <= span.end_time
    # RunResult.calls, the envelope and the audit log carry the call's trace and span ids
    spans = {c.context.span_id: c for c in calls}
    for record in result.calls:
        span = spans[int(record.span_id, 16)]
        assert int(record.trace_id, 16) == span.context.trace_id == run.context.trace_id
        assert span.name == f"{record.integration}.{record.function}"
        assert span.attributes["kosmo.account"] == record.account
    envelope = check_envelope(result.to_dict())
    assert all(len(call["trace_id"]) == 32 and len(call["span_id"]) == 16 for call in envelope["calls"])
    audited = [json.loads(line) for line in runtime.audit_log.path.read_text(encoding="utf-8").splitlines()]  # type: ignore[union-attr]
    assert [(a["trace_id"], a["span_id"]) for a in audited] == [(c.trace_id, c.span_id) for c in result.calls]


def test_no_secret_argument_or_query_reaches_a_span(demo: Demo, runtime: Runtime, exporter: InMemorySpanExporter) -> None:
    checks = {ident: runtime.catalog.find(ident).manifest.check for ident in demo.accounts_data}  # type: ignore[union-attr]
    script = "\n".join(f"pcall(app.integrations.{ident.replace('-', '_')}.{account}.{check}, {{}})"
                       for ident, check in checks.items() for account in demo.accounts_data[ident])
    script += (f"\nlocal r = app.integrations.whereby.create_room{{room_name_prefix = '{MARKER}', room_mode = 'group'}}"
               f"\npcall(app.integrations.whereby.get_room, {{room_name = '{MARKER}-missing'}})"
               "\nlocal m = app.integrations.whereby.list_rooms{limit = 3}"
               "\nreturn DEMO_SCRIPT")
    result = runtime.run(script)
    assert result.ok, result.error and result.error.to_dict()
    assert runtime.run(DEMO_SCRIPT).ok
    spans = exporter.get_finished_spans()
    assert len(by_kind(spans)[2]) > 10
    said = everything_said(spans)
    secrets = [value for values in credential_values().values() for value in values]
    assert secrets and not [secret for secret in secrets if secret in said]
    assert MARKER not in said
    assert "limit=" not in said and "?" not in said


def test_each_retry_is_a_request_span_with_its_resend_count(demo: Demo, runtime: Runtime,
                                                            exporter: InMemorySpanExporter) -> None:
    demo.simulators["whereby"].inject(Fault("status", status=503, method="GET", path=r"^/v1/meetings$", times=1))
    try:
        result = runtime.run("return #app.integrations.whereby.list_rooms{limit = 1}.data")
    finally:
        demo.simulators["whereby"].clear_faults()
    assert result.ok and result.calls[0].retries == 1
    _runs, calls, http = by_kind(exporter.get_finished_spans())
    first, second = sorted(http, key=lambda s: s.start_time)
    assert (first.attributes["http.response.status_code"], first.attributes["error.type"]) == (503, "503")
    assert first.status.status_code == StatusCode.ERROR and "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1 and second.attributes["http.response.status_code"] == 200
    assert calls[0].attributes["kosmo.retries"] == 1


def _events(spans: tuple[ReadableSpan, ...], name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for s in spans for e in s.events if e.name == name]


def test_limits_errors_and_policy_decisions_are_events(demo: Demo, exporter: InMemorySpanExporter,
                                                       runtime: Runtime) -> None:
    limited = runtime.run("while true do end", limits=Limits(instructions=10_000))
    assert limited.error is not None and limited.error.code == "limit_exceeded"
    spans = exporter.get_finished_spans()
    assert _events(spans, "kosmo.limit_exceeded") == [{"kosmo.limit": "instructions", "kosmo.limit.value": 10_000}]
    assert _events(spans, "kosmo.error") == [{"error.type": "LimitExceeded", "kosmo.error.code": "limit_exceeded"}]
    assert spans[0].status.status_code == StatusCode.ERROR and spans[0].attributes["error.type"] == "LimitExceeded"
    exporter.clear()

    write = "return app.integrations.whereby.create_room{room_mode = 'group'}"
    assert runtime.run(write, dry_run=True).ok
    assert not runtime.run(write, read_only=True).ok
    assert runtime.run(write, writes="ask", approve=lambda request: True).ok
    assert not runtime.run(write, writes="ask", approve=lambda request: False).ok
    assert runtime.run(write).ok
    spans = exporter.get_finished_spans()
    decisions = [e["kosmo.policy.decision"] for e in _events(spans, "kosmo.policy")]
    assert decisions == ["dry_run", "deny", "ask", "deny", "allow"]
    failed = [s for s in by_kind(spans)[1] if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == 2 and all(s.attributes["error.type"] == "permission_denied" for s in failed)
    exporter.clear()

    runtime.run("return app.integrations.whereby.get_room{room_name = 'no-such-room'}")
    spans = exporter.get_finished_spans()
    assert {"error.type": "upstream_not_found", "kosmo.error.code": "upstream_not_found"} in _events(spans, "kosmo.error")


def test_single_calls_are_runs_too(runtime: Runtime, exporter: InMemorySpanExporter) -> None:
    result = runtime.call("whereby.list_rooms", {"limit": 1})
    assert result.ok
    runs, calls, http = by_kind(exporter.get_finished_spans())
    assert [r.attributes["kosmo.script"] for r in runs] == ["whereby.list_rooms"]
    assert calls[0].parent.span_id == runs[0].context.span_id and http[0].parent.span_id == calls[0].context.span_id


def test_tracing_false_and_no_provider_trace_nothing(demo: Demo, exporter: InMemorySpanExporter) -> None:
    with demo.runtime(tracer_provider=False) as untraced:
        result: RunResult = untraced.run("return app.integrations.whereby.list_rooms{limit = 1}")
    assert result.ok and result.calls[0].trace_id is None and "trace_id" not in result.to_dict()["calls"][0]
    assert exporter.get_finished_spans() == ()


def _child(code: str, **env: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_tracing_a_run_imports_no_opentelemetry() -> None:
    found = _child(
        "import json, sys\n"
        "from kosmo_runtime import Demo\n"
        "with Demo() as demo, demo.runtime() as runtime:\n"
        "    result = runtime.run('return app.integrations.whereby.list_rooms{limit = 1}')\n"
        "    call = runtime.call('whereby.list_rooms', {'limit': 1})\n"
        "print(json.dumps({'ok': result.ok and call.ok, 'ids': result.calls[0].trace_id,\n"
        "                  'modules': sorted(m for m in sys.modules if m.startswith('opentelemetry'))}))\n")
    assert found == {"ok": True, "ids": None, "modules": []}


def test_a_host_configured_global_provider_is_used() -> None:
    found = _child(
        "import json\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "from kosmo_runtime import Demo\n"
        "exporter = InMemorySpanExporter()\n"
        "with Demo() as demo, demo.runtime() as runtime:\n"
        "    before = runtime.run('return app.integrations.whereby.list_rooms{limit = 1}')\n"
        "    provider = TracerProvider()\n"
        "    provider.add_span_processor(SimpleSpanProcessor(exporter))\n"
        "    trace.set_tracer_provider(provider)\n"
        "    with trace.get_tracer('host').start_as_current_span('host request') as host:\n"
        "        result = runtime.run('return app.integrations.whereby.list_rooms{limit = 1}')\n"
        "spans = exporter.get_finished_spans()\n"
        "run = next(s for s in spans if s.name == 'kosmo.run')\n"
        "print(json.dumps({'before': before.calls[0].trace_id, 'names': sorted(s.name for s in spans),\n"
        "                  'parent': run.parent.span_id == host.get_span_context().span_id,\n"
        "                  'ids': result.calls[0].trace_id == f'{run.context.trace_id:032x}'}))\n")
    assert found == {"before": None, "names": ["GET", "host request", "kosmo.run", "whereby.list_rooms"],
                     "parent": True, "ids": True}


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.received.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_cli_otel_exports_otlp_over_http_from_the_standard_variables() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
               "OTEL_SERVICE_NAME": "kosmo-test", "XDG_CONFIG_HOME": "/nonexistent", "KOSMO_ACCOUNTS": ""}
        done = subprocess.run([sys.executable, "-m", "kosmo_runtime", "run", "--otel", "--demo", "--json", "-e",
                               "return #app.integrations.whereby.list_rooms{limit = 1}.data"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    call = json.loads(done.stdout)["calls"][0]
    assert len(call["trace_id"]) == 32
    paths = {path for path, _, _ in _Collector.received}
    assert paths == {"/v1/traces"}
    body = b"".join(body for _, kind, body in _Collector.received if kind == "application/x-protobuf")
    for expected in (b"kosmo.run", b"whereby.list_rooms", b"http.request.method", b"kosmo-test",
                     bytes.fromhex(call["trace_id"])):
        assert expected in body


def test_the_readme_tracing_example_runs(tmp_path: Path) -> None:
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Tracing with OpenTelemetry\n.*?```python\n(.*?)^```", readme, re.S | re.M)
    assert block, "the README has a tracing example"
    done = subprocess.run([sys.executable, "-c", block.group(1)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, stdin=subprocess.DEVNULL,
                          env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:3]] == ["GET", "whereby.list_rooms", "kosmo.run"]
    assert re.fullmatch(r"[0-9a-f]{32} [0-9a-f]{16}", lines[3])


@pytest.mark.parametrize("command", ["run", "call", "mcp", "repl"])
def test_every_running_command_takes_otel(command: str) -> None:
    from kosmo_runtime._cli import _parser

    argv = [command, "--otel"] + (["whereby.list_rooms"] if command == "call" else [])
    assert _parser(argv).parse_args(argv).otel is True

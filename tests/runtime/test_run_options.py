"""``RunOptions``: one dataclass for what a run may do, checked once, merged once, passed through every surface."""

from __future__ import annotations

import importlib
import inspect
import io
import pickle
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kosmo_runtime
from kosmo_runtime import Limits, RunOptions, Runtime, WriteRequest
from kosmo_runtime._options import RunOverrides
from tests.fixtures.integrations.test_notes.simulator import NotesSimulator
from tests.support import notes_service

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "integrations"
WRITE = "return app.integrations['test-notes'].create_note{text = 'hi'}"
OPTION_NAMES = {"limits", "dry_run", "read_only", "writes", "approve", "idempotency_key"}


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[NotesSimulator, Path]]:
    """The notes simulator on loopback and an accounts file whose account has ``writes: ask`` (the CLI
    finds the fixture integration on ``KOSMO_INTEGRATIONS_PATH``; its store and state stay in ``tmp_path``)."""
    monkeypatch.setenv("KOSMO_INTEGRATIONS_PATH", str(FIXTURES))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with notes_service(tmp_path) as pair:
        yield pair


def _runtime(accounts: Path, **options: Any) -> Runtime:
    return Runtime(accounts=accounts, integration_paths=[FIXTURES], store=":memory:", pool=0, **options)


def _posts(simulator: NotesSimulator) -> int:
    return sum(request.method == "POST" for request in simulator.requests)


def _yes(request: WriteRequest) -> bool:
    return True


# -- the dataclass -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"limits": {"wall_time": 5}}, TypeError, ["limits", "Limits(wall_time=10)"]),
    ({"dry_run": "yes"}, TypeError, ["dry_run", "True or False"]),
    ({"read_only": 1}, TypeError, ["read_only", "True or False"]),
    ({"writes": "never"}, ValueError, ["writes", "'allow', 'ask', 'deny'"]),
    ({"approve": True}, TypeError, ["approve", "callable"]),
    ({"idempotency_key": ""}, ValueError, ["idempotency_key", "pass None"]),
    ({"idempotency_key": 42}, ValueError, ["idempotency_key", "non-empty string"]),
])
def test_a_bad_option_is_refused_naming_it_and_the_fix(changes: dict[str, Any], error: type[Exception],
                                                       words: list[str]) -> None:
    with pytest.raises(error) as made:
        RunOptions(**changes)
    with pytest.raises(error) as replaced:
        RunOptions().replace(**changes)  # a change is checked like a new one
    for word in words:
        assert word in str(made.value) and word in str(replaced.value)


def test_an_unknown_option_names_the_closest_and_lists_them_all() -> None:
    with pytest.raises(TypeError, match=r"unknown run option 'dryrun'; did you mean dry_run\? \(the options are: "
                                        r"limits, dry_run, read_only, writes, approve, idempotency_key\)"):
        RunOptions().replace(dryrun=True)


def test_options_are_frozen_and_replace_makes_a_checked_copy() -> None:
    base = RunOptions(dry_run=True)
    changed = base.replace(read_only=True, idempotency_key="job-1")
    assert (base.read_only, changed.read_only, changed.dry_run, changed.idempotency_key) == (False, True, True, "job-1")
    assert base.replace() is base
    with pytest.raises(AttributeError):
        base.dry_run = False  # type: ignore[misc]


def test_merging_over_defaults_keeps_what_the_run_gives_and_is_never_less_strict() -> None:
    limits, other = Limits(wall_time=5), Limits(wall_time=9)

    def theirs(request: WriteRequest) -> bool:
        return False

    defaults = RunOptions(limits=limits, writes="ask", approve=theirs)
    assert RunOptions().over(defaults) == defaults
    merged = RunOptions(limits=other, approve=_yes, idempotency_key="k").over(defaults)
    assert (merged.limits, merged.approve, merged.idempotency_key) == (other, _yes, "k")
    assert RunOptions(writes="allow").over(defaults).writes == "ask"  # a run cannot loosen its Runtime
    assert RunOptions(writes="deny").over(defaults).writes == "deny"
    assert RunOptions().over(RunOptions()).writes is None
    assert RunOptions().over(RunOptions(dry_run=True, read_only=True)).dry_run is True
    assert RunOptions().over(RunOptions(read_only=True)).read_only is True
    once = RunOptions(dry_run=True).over(defaults)
    assert once.over(defaults) == once  # merging twice (parent, then worker) changes nothing


@pytest.mark.parametrize(("options", "policy", "may_write"), [
    (RunOptions(), "allow", True),
    (RunOptions(writes="ask"), "ask", True),
    (RunOptions(read_only=True), "deny", False),
    (RunOptions(writes="deny"), "deny", False),
    (RunOptions(dry_run=True), "allow", False),
])
def test_the_write_policy_and_whether_a_write_can_be_sent(options: RunOptions, policy: str, may_write: bool) -> None:
    assert (options.write_policy, options.may_write) == (policy, may_write)


def test_a_worker_gets_a_picklable_copy_without_the_approver() -> None:
    options = RunOptions(limits=Limits(calls=3), dry_run=True, writes="ask", approve=lambda request: True,
                         idempotency_key="job-7")
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(options)  # a lambda cannot cross to another process ...
    sent = pickle.loads(pickle.dumps(options.for_worker()))  # ... so the parent keeps it and answers
    assert sent == options.replace(approve=None)
    assert isinstance(sent, RunOptions) and sent.limits == Limits(calls=3)


def test_the_keyword_shorthand_has_exactly_the_dataclass_fields() -> None:
    assert set(RunOverrides.__annotations__) == OPTION_NAMES
    assert {field for field in inspect.signature(RunOptions).parameters} == OPTION_NAMES
    assert "RunOptions" in kosmo_runtime.__all__


# -- one code path: keywords, options= and the Runtime's defaults ---------------------------------------


def test_keywords_and_options_give_the_same_run(notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    with _runtime(accounts) as runtime:
        by_keyword = runtime.run(WRITE, dry_run=True)
        by_options = runtime.run(WRITE, options=RunOptions(dry_run=True))
        called = runtime.call("test-notes.create_note", {"text": "hi"}, options=RunOptions(dry_run=True))
    assert by_keyword.ok and by_options.ok and called.ok
    assert by_keyword.result["would_send"] == by_options.result["would_send"] == called.result["would_send"]
    assert _posts(simulator) == 0


def test_a_keyword_wins_over_the_options_object(notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    with _runtime(accounts) as runtime:
        result = runtime.run(WRITE, options=RunOptions(dry_run=True), dry_run=False, approve=_yes)
    assert result.ok and "would_send" not in result.result
    assert _posts(simulator) == 1


def test_the_runtime_s_approver_and_write_policy_are_the_defaults(notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    with _runtime(accounts, approve=_yes) as runtime:
        assert runtime.run(WRITE).ok  # the Runtime's approver answers
        assert runtime.defaults == RunOptions(limits=runtime.limits, approve=_yes)
    with _runtime(accounts, writes="deny") as runtime:
        denied = runtime.run(WRITE, options=RunOptions(writes="allow", approve=_yes))
    assert denied.error is not None and denied.error.code == "permission_denied"
    assert _posts(simulator) == 1


def test_a_runtime_s_default_options_hold_for_every_run_and_cannot_be_loosened(
        notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    with _runtime(accounts, options=RunOptions(read_only=True, limits=Limits(calls=2), approve=_yes)) as runtime:
        assert runtime.limits == Limits(calls=2) and runtime.approve is _yes
        assert runtime.defaults == RunOptions(limits=Limits(calls=2), read_only=True, approve=_yes)
        denied = runtime.run(WRITE, read_only=False)  # a run cannot undo its Runtime's read-only
        called = runtime.call("test-notes.create_note", {"text": "x"})
    assert denied.error is not None and "read-only" in denied.error.message
    assert called.error is not None and called.error.code == "permission_denied"
    with _runtime(accounts, options=RunOptions(dry_run=True, writes="ask"), writes="deny",
                  limits=Limits(calls=5)) as runtime:
        assert (runtime.writes, runtime.limits) == ("deny", Limits(calls=5))  # the keywords win over options
        assert runtime.defaults.dry_run is True
    assert _posts(simulator) == 0


def test_a_run_without_options_gets_the_defaults_and_sees_a_reassigned_one() -> None:
    runtime = Runtime(accounts=None, store=":memory:", pool=0, limits=Limits(calls=3))
    with runtime:
        assert runtime.run_options() is runtime.defaults  # nothing to merge: no copy per run
        assert runtime.run_options(dry_run=True) == RunOptions(limits=Limits(calls=3), dry_run=True)
        runtime.limits = Limits(output=64)  # reassigned after runs: the next run has the new defaults
        runtime.writes = "deny"
        assert runtime.run_options() == RunOptions(limits=Limits(output=64), writes="deny")
        result = runtime.run("print(('x'):rep(100))")
    assert result.error is not None and result.error.limit == "output"


def test_a_runtime_refuses_a_default_idempotency_key_and_bad_defaults() -> None:
    with pytest.raises(ValueError, match="idempotency_key: a key names one run"):
        Runtime(options=RunOptions(idempotency_key="job-1"))
    with pytest.raises(ValueError, match="run option writes"):
        Runtime(writes="maybe")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="run option limits"):
        Runtime(limits={"calls": 3})  # type: ignore[arg-type]


def test_a_mistyped_keyword_is_refused_before_anything_runs(notes: tuple[NotesSimulator, Path]) -> None:
    _, accounts = notes
    with _runtime(accounts) as runtime:
        with pytest.raises(TypeError, match="did you mean read_only"):
            runtime.run("return 1", readonly=True)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="run option writes"):
            runtime.call("test-notes.list_notes", writes="sometimes")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="run option limits"):
            runtime.session(limits=30)  # type: ignore[arg-type]


def test_a_session_s_chunks_run_with_its_options(notes: tuple[NotesSimulator, Path]) -> None:
    simulator, accounts = notes
    with _runtime(accounts) as runtime, runtime.session(options=RunOptions(read_only=True)) as session:
        result = session.run(WRITE)
    assert result.error is not None and "read-only" in result.error.message
    assert _posts(simulator) == 0


# -- the workers receive the same dataclass -----------------------------------------------------------------


class _Pool:
    """Stands in for the worker pool: what the parent hands a worker."""

    def __init__(self) -> None:
        self.jobs: list[tuple[dict[str, Any], RunOptions]] = []

    def execute(self, job: dict[str, Any], run: RunOptions, *, on_output: Any = None) -> Any:
        from kosmo_runtime import RunResult

        self.jobs.append((job, run))
        return RunResult(ok=True)

    def close(self) -> None:
        pass


def test_the_parent_hands_the_pool_the_merged_options(notes: tuple[NotesSimulator, Path]) -> None:
    _, accounts = notes
    with _runtime(accounts, writes="ask", approve=_yes) as runtime:
        pool = _Pool()
        runtime.workers, runtime._made["workers"] = 1, pool
        runtime.run("return 1", dry_run=True, idempotency_key="k")
        runtime.call("test-notes.list_notes", options=RunOptions(read_only=True))
        runtime._made.pop("workers")
    (run_job, run), (call_job, call) = pool.jobs
    assert run_job["kind"] == "run" and call_job["kind"] == "call"
    assert run == RunOptions(limits=runtime.limits, dry_run=True, writes="ask", approve=_yes, idempotency_key="k")
    assert call == RunOptions(limits=runtime.limits, read_only=True, writes="ask", approve=_yes)


def test_a_worker_s_runtime_gets_the_parent_s_defaults_without_the_approver(
        notes: tuple[NotesSimulator, Path], tmp_path: Path) -> None:
    from kosmo_runtime._workers import worker_options

    _, accounts = notes
    with _runtime(accounts, options=RunOptions(dry_run=True, writes="ask", approve=_yes,
                                               limits=Limits(wall_time=4))) as runtime:
        options = worker_options(runtime, lambda: str(tmp_path))
        worker = Runtime(**pickle.loads(pickle.dumps(options)))  # what a spawned worker builds
    assert worker.defaults == runtime.defaults.replace(approve=None)
    assert worker.limits == Limits(wall_time=4) and worker.approve is None
    worker.close()


def test_a_worker_runs_the_job_with_the_options_it_received(notes: tuple[NotesSimulator, Path]) -> None:
    from kosmo_runtime._workers import _execute

    simulator, accounts = notes
    asked: list[WriteRequest] = []

    class Channel:
        def output(self, text: str) -> None:
            pass

        def ask(self, request: WriteRequest) -> bool:
            asked.append(request)
            return True

    received = pickle.loads(pickle.dumps(RunOptions(dry_run=True).for_worker()))
    with _runtime(accounts) as runtime:
        dry = _execute(runtime, {"kind": "run", "source": WRITE, "name": "w.lua"}, received, Channel())  # type: ignore[arg-type]
        sent = _execute(runtime, {"kind": "call", "function": "test-notes.create_note", "arguments": {"text": "x"},
                                  "account": None}, RunOptions(approve=Channel().ask), Channel())  # type: ignore[arg-type]
    assert dry.ok and "would_send" in dry.result
    assert sent.ok and [request.function for request in asked] == ["create_note"]
    assert _posts(simulator) == 1


# -- the surfaces build one and pass it through --------------------------------------------------------------


def test_the_mcp_server_s_options_reach_every_run_and_its_descriptions(notes: tuple[NotesSimulator, Path]) -> None:
    import anyio
    from mcp import Client

    from kosmo_runtime._mcp import build_server

    simulator, accounts = notes
    results: dict[str, Any] = {}
    with _runtime(accounts, writes="deny") as runtime:  # the Runtime's own policy counts too
        server = build_server(runtime, options=RunOptions(limits=Limits(calls=1)))

        async def body() -> None:
            async with Client(server) as client:
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                results["description"] = tools["execute_lua"].description
                results["hint"] = tools["execute_lua"].annotations.read_only_hint
                results["two"] = await client.call_tool("execute_lua", {
                    "code": "local n = app.integrations['test-notes']\n"
                            "n.list_notes{} return n.list_notes{}"})
                results["write"] = await client.call_tool("execute_lua", {"code": WRITE})

        anyio.run(body)
    assert "read-only server" in results["description"] and results["hint"] is True
    two = results["two"].structured_content
    assert two["error"]["type"] == "LimitExceeded" and "calls" in two["error"]["message"]
    assert results["write"].structured_content["error"]["code"] == "permission_denied"
    assert _posts(simulator) == 0


def test_the_repl_runs_every_chunk_with_its_options_also_after_reset(notes: tuple[NotesSimulator, Path]) -> None:
    from kosmo_runtime._repl import Repl

    simulator, accounts = notes
    out, err = io.StringIO(), io.StringIO()
    with _runtime(accounts) as runtime:
        code = Repl(runtime, options=RunOptions(dry_run=True), history=False, stdout=out, stderr=err,
                    stdin=io.StringIO(f"{WRITE}\n.reset\n{WRITE}\n")).loop()
    assert code == 0 and err.getvalue() == ""
    assert out.getvalue().count("would_send") == 2
    assert _posts(simulator) == 0


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "-e", "return 1"], RunOptions(limits=Limits())),
    (["run", "--dry-run", "--wall-time", "5", "-e", "return 1"], RunOptions(limits=Limits(wall_time=5), dry_run=True)),
    (["call", "--read-only", "--calls", "3", "x.y"], RunOptions(limits=Limits(calls=3), read_only=True)),
    (["repl", "--dry-run", "--read-only"], RunOptions(limits=Limits(), dry_run=True, read_only=True)),
    (["mcp", "--read-only", "--memory", "32MiB"], RunOptions(limits=Limits(memory=32 * 1024 * 1024), read_only=True)),
    (["docs", "list"], RunOptions(limits=Limits())),
])
def test_cli_flags_map_to_the_options(argv: list[str], expected: RunOptions) -> None:
    from kosmo_runtime._cli import _parser, _run_options

    assert _run_options(_parser(argv).parse_args(argv), interactive=False) == expected


def test_the_cli_passes_its_options_to_the_mcp_server_and_the_repl(notes: tuple[NotesSimulator, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import kosmo_runtime._mcp
    import kosmo_runtime._repl
    from kosmo_runtime._cli import main

    _, accounts = notes
    seen: dict[str, Any] = {}

    def serve(runtime: Runtime, **options: Any) -> None:
        seen["mcp"], seen["mcp_runtime"] = options["options"], runtime.limits

    class Repl:
        def __init__(self, runtime: Runtime, *, options: RunOptions, history: bool) -> None:
            seen["repl"] = options

        def loop(self) -> int:
            return 0

    monkeypatch.setattr(kosmo_runtime._mcp, "serve", serve)
    monkeypatch.setattr(kosmo_runtime._repl, "Repl", Repl)
    assert main(["mcp", "--accounts", str(accounts), "--dry-run", "--wall-time", "7"]) == 0
    assert main(["repl", "--accounts", str(accounts), "--read-only", "--no-history"]) == 0
    assert seen["mcp"] == RunOptions(limits=Limits(wall_time=7), dry_run=True)
    assert seen["mcp_runtime"] == Limits(wall_time=7)  # the Runtime's default too: its pooled sandboxes match
    assert seen["repl"].read_only is True and seen["repl"].limits == Limits()


def test_kosmo_call_dry_run_describes_the_write(notes: tuple[NotesSimulator, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from kosmo_runtime._cli import main

    simulator, accounts = notes
    code = main(["call", "--accounts", str(accounts), "--dry-run", "--json", "--arg", "text=hi",
                 "test-notes.create_note"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["result"]["would_send"]["method"] == "POST"
    assert _posts(simulator) == 0


# -- the keyword list does not come back --------------------------------------------------------------------

#: The only functions that may take two or more of the options as separate parameters, and why.
ALLOWED = {
    "kosmo_runtime._options.RunOptions.__init__": "the dataclass itself",
    "kosmo_runtime._runtime.Runtime.__init__": "the Runtime's defaults (limits, writes, approve)",
    "kosmo_runtime._calls.Invoker.__init__": "the call layer a merged RunOptions is unpacked into, once",
    "kosmo_runtime._policy.authorize": "one write's check (run policy, approver, dry run)",
}


def _home(member: Any) -> str:
    """The module defining ``member`` (the package renames its exported classes' ``__module__``)."""
    if member.__module__ == "kosmo_runtime":
        return "kosmo_runtime" + kosmo_runtime._HOME[member.__name__]
    return str(member.__module__)


def _functions() -> Iterator[tuple[str, Any]]:
    for info in pkgutil.iter_modules(kosmo_runtime.__path__):
        if info.name == "__main__":  # runs the command line
            continue
        module = importlib.import_module(f"kosmo_runtime.{info.name}")
        for name, member in vars(module).items():
            if not (inspect.isfunction(member) or inspect.isclass(member)) or _home(member) != module.__name__:
                continue  # defined elsewhere
            if inspect.isfunction(member):
                yield f"{module.__name__}.{name}", member
            else:
                for attribute, value in vars(member).items():
                    if inspect.isfunction(value):
                        yield f"{module.__name__}.{name}.{attribute}", value


def test_no_function_repeats_the_option_keywords() -> None:
    taking = {}
    for name, function in _functions():
        given = OPTION_NAMES & set(inspect.signature(function).parameters)
        if len(given) >= 2:
            taking[name] = sorted(given)
    assert {name: given for name, given in taking.items() if name not in ALLOWED} == {}, \
        "take a RunOptions instead of these keywords"
    assert set(ALLOWED) <= set(taking)  # the exceptions are real (the walk sees them), none stale


@pytest.mark.parametrize("method", ["run", "call", "session"])
def test_the_public_methods_take_options_and_the_typed_shorthand(method: str) -> None:
    function = getattr(Runtime, method)
    parameters = inspect.signature(function).parameters
    assert "options" in parameters and not OPTION_NAMES & set(parameters)
    (rest,) = [p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert "RunOverrides" in str(rest.annotation)

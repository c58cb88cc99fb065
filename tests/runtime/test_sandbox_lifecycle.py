"""A run's Lua state lives exactly as long as the run: freed when it ends, never shared."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

import kosmo_runtime._runtime as runtime_module
from kosmo_runtime import Demo, Limits, Runtime
from kosmo_runtime._sandbox import Sandbox


class _Probe:
    """A Python object only the Lua state holds: it is freed exactly when the state is."""


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref[_Probe]]:
    """Every sandbox the Runtime makes carries a probe in its state's real globals."""
    made: list[weakref.ref[_Probe]] = []

    class Probed(Sandbox):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            probe = _Probe()
            self.lua.globals().kosmo_test_probe = probe
            made.append(weakref.ref(probe))

    monkeypatch.setattr(runtime_module, "Sandbox", Probed)
    return made


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


SCRIPTS = [
    "return 1",
    "return app.integrations.whereby.list_rooms{limit = 2}",
    "return app.parallel({function() return app.integrations.whereby.list_rooms{} end})",
    "error('boom')",
    "local t = nil return t.x",
    "return function() end",
    "return (",
    "while true do end",
    "local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end",
    "print({1, 2}) return json.decode('[1, {\"a\": 2}]')",
]


@pytest.mark.parametrize("source", SCRIPTS)
def test_a_runs_state_is_freed_when_the_run_ends_without_the_cycle_collector(
        source: str, probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    with Demo() as demo, demo.runtime(limits=Limits(instructions=1_000_000, memory=8 << 20)) as runtime:
        result = runtime.run(source)
        assert probes and all(probe() is None for probe in probes), result.to_dict()


def test_a_sessions_state_is_freed_when_it_closes(probes: list[weakref.ref[_Probe]], no_gc: None) -> None:
    with Runtime() as runtime, runtime.session() as session:
        assert session.run("x = 1").ok
        assert session.run("return x").result == 1
        assert probes[0]() is not None
    assert probes[0]() is None

"""Shared test plumbing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import pytest

from kosmo_runtime import LoopbackServer, Simulator

S = TypeVar("S", bound=Simulator)

DATA = Path(__file__).resolve().parent / "data"
SPECS = DATA / "specs"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "integrations"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEEDS = SHARED / "seeds"
NO_SEEDS = "needs the product reference beside the repository (../shared/seeds); CI has it"


@cache
def reference() -> dict[str, dict[str, Any]]:
    """The product reference's facts, carried in the repository (``tests/data/make_reference.py``)."""
    facts: dict[str, dict[str, Any]] = json.loads((DATA / "reference.json").read_text(encoding="utf-8"))
    return facts


def seed_params(examples: list[tuple[str, str]]) -> list[Any]:
    """Parameters for tests of the seeds' own Lua examples: one skipped entry when the seeds are absent."""
    if not SEEDS.is_dir():
        return [pytest.param("absent", "", id="no-seeds", marks=pytest.mark.skip(reason=NO_SEEDS))]
    return [pytest.param(name, source, id=name) for name, source in examples]


class Switchboard(Generic[S]):
    """One loopback server for a test module (closing one costs a poll interval), answering
    with whichever simulator the current test uses; ``reset()`` installs a fresh one."""

    def __init__(self, factory: Callable[[], S]) -> None:
        self.factory = factory
        self.target: S = factory()
        self.url = ""

    def reset(self) -> S:
        self.target = self.factory()
        return self.target

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.target(request)


@contextlib.contextmanager
def serving(factory: Callable[[], S]) -> Iterator[Switchboard[S]]:
    """A Switchboard behind a running LoopbackServer."""
    board = Switchboard(factory)
    with LoopbackServer(board) as server:
        board.url = server.url
        yield board


@contextlib.contextmanager
def notes_service(folder: Path, writes: str = "ask") -> Iterator[tuple[Any, Path]]:
    """The test-notes simulator on loopback and an accounts file in ``folder`` whose one account,
    ``main``, has ``writes: ask`` (or the policy ``writes`` names)."""
    from tests.fixtures.integrations.test_notes.simulator import KEY, NotesSimulator

    simulator = NotesSimulator([KEY])
    with LoopbackServer(simulator) as server:
        accounts = folder / "accounts.yaml"
        accounts.write_text(f"version: 1\nintegrations:\n  test-notes:\n    accounts:\n      main:\n"
                            f"        api_key: {KEY}\n        base_url: {server.url}\n        writes: {writes}\n",
                            encoding="utf-8")
        yield simulator, accounts


@contextlib.contextmanager
def fixture_runtime(accounts: str) -> Iterator[Any]:
    """A Runtime over the test fixtures' integrations (``tests/fixtures/integrations``), no pool, with the
    accounts the YAML text ``accounts`` describes (nothing read from the environment or a file)."""
    from kosmo_runtime import AccountsConfig, Runtime

    runtime = Runtime(integration_paths=[FIXTURES], store=":memory:", pool=0)
    runtime._accounts = AccountsConfig.parse(accounts, "(test)", runtime._manifest_for, runtime.catalog.names)
    try:
        yield runtime
    finally:
        runtime.close()

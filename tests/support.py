"""Shared test plumbing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import httpx

from kosmo_runtime import LoopbackServer, Simulator

S = TypeVar("S", bound=Simulator)


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

"""Shared material of the reliability tests: one read and one write per built-in integration,
a sleep that records instead of sleeping, and small helpers over the simulators' request logs.

Each ``Case`` names Lua expressions (one call each, taken from the integration's manifest and
``lua_docs/integrations/<name>.md``) and the upstream path their request goes to, so that a
fault can be aimed at exactly that request (GoTo's first call also reads ``/admin/rest/v1/me``;
Cal.com's ``create_booking`` reads the event type before it posts).
"""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from kosmo_runtime import Simulator

ISO = '"!%Y-%m-%dT%H:%M:%SZ"'


@dataclass(frozen=True)
class Case:
    """One integration: a read and a write, where they go, and what their results look like."""

    ident: str
    read: str                                   # Lua expression: one read call
    read_path: str                              # regex searched in the read's upstream URL path
    read_key: Callable[[Any], Any]              # a stable summary of the read's result (to compare runs)
    read_check: Callable[[Any], bool]           # the read returned the right data
    write: str                                  # Lua expression: one write call ("UNIQUE" is replaced)
    write_path: str                             # regex of the write's POST path
    sent_body_check: Callable[[dict[str, Any]], bool]  # the ``sent.body`` of an OutcomeUnknown
    secret_in_write: str | None = None          # a secret-looking argument value the write carries

    def lua_write(self) -> str:
        return self.write.replace("UNIQUE", uuid.uuid4().hex[:10])

    def __str__(self) -> str:
        return self.ident


GOTO_WRITE = (
    'app.integrations["goto-webinar"].create_webinar{subject = "Reliability drill UNIQUE", '
    "times = {{startTime = os.date(" + ISO + ", os.time() + 30 * 86400), "
    "endTime = os.date(" + ISO + ", os.time() + 30 * 86400 + 3600)}}}"
)
CAL_WRITE = (
    'app.integrations["cal-com"].create_booking{eventTypeId = 42, '
    "start = os.date(" + ISO + ", os.time() // 86400 * 86400 + 21 * 86400 + 10 * 3600), "
    '["end"] = os.date(' + ISO + ", os.time() // 86400 * 86400 + 21 * 86400 + 10 * 3600 + 30 * 60), "
    'responses = {name = "Robin Drill", email = "robin.drill@example.com", notes = "UNIQUE", '
    'api_token = "tok-should-never-be-logged"}}'
)

CASES = [
    Case(
        ident="goto-webinar",
        read='app.integrations["goto-webinar"].get_webinar{id = "1234567890"}',
        read_path=r"/webinars/1234567890$",
        read_key=lambda r: (r["webinarKey"], r["subject"], r["times"]),
        read_check=lambda r: r["webinarKey"] == "1234567890" and r["subject"] == "Quarterly Product Update",
        write=GOTO_WRITE,
        write_path=r"^/G2W/rest/v2/organizers/\d+/webinars$",
        sent_body_check=lambda b: (b["subject"].startswith("Reliability drill") and b["type"] == "single_session"
                                   and len(b["times"]) == 1 and set(b["times"][0]) == {"startTime", "endTime"}),
    ),
    Case(
        ident="whereby",
        read="app.integrations.whereby.list_rooms{limit = 5}",
        read_path=r"^/v1/meetings$",
        read_key=lambda r: [room["meetingId"] for room in r["data"]],
        read_check=lambda r: len(r["data"]) == 5 and all(room["roomName"] and room["meetingId"] for room in r["data"]),
        write='app.integrations.whereby.create_room{room_name_prefix = "drill", fields = {"hostRoomUrl"}}',
        write_path=r"^/v1/meetings$",
        sent_body_check=lambda b: (b["roomNamePrefix"] == "drill" and b["fields"] == ["hostRoomUrl"]
                                   and b["endDate"].endswith("Z")),
    ),
    Case(
        ident="cal-com",
        read='app.integrations["cal-com"].get_event_type{id = 42}',
        read_path=r"^/v2/event-types/42$",
        read_key=lambda r: (r["event_type"]["id"], r["event_type"]["title"], r["event_type"]["length"]),
        read_check=lambda r: r["event_type"]["id"] == 42 and r["event_type"]["length"] == r["event_type"]["lengthInMinutes"],
        write=CAL_WRITE,
        write_path=r"^/v2/bookings$",
        sent_body_check=lambda b: (b["eventTypeId"] == 42 and b["attendee"]["email"] == "robin.drill@example.com"
                                   and b["bookingFieldsResponses"]["api_token"] == "***"
                                   and b["bookingFieldsResponses"]["notes"] != "***"),
        secret_in_write="tok-should-never-be-logged",
    ),
    Case(
        ident="agora",
        read="app.integrations.agora.list_projects{}",
        read_path=r"^/dev/v1/projects$",
        read_key=lambda r: sorted(p["id"] for p in r["projects"]),
        read_check=lambda r: {"abc123", "7sdnf3xRH", "Qm4pT8wLz"} <= {p["id"] for p in r["projects"]},
        write='app.integrations.agora.create_project{name = "reliability-UNIQUE"}',
        write_path=r"^/dev/v1/project$",
        sent_body_check=lambda b: b["name"].startswith("reliability-") and b["enable_sign_key"] is False,
    ),
]
IDS = [case.ident for case in CASES]


class SleepLog:
    """A ``RetryPolicy.sleep`` that records the seconds it is asked to wait and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)

    def clear(self) -> None:
        self.calls.clear()


def hits(sim: Simulator, mark: int, method: str, path: str) -> list[httpx.Request]:
    """The requests the simulator received since ``mark`` with ``method`` and a path matching ``path``."""
    return [r for r in sim.requests[mark:] if r.method == method and re.search(path, r.url.path)]


def credential_values() -> dict[str, list[str]]:
    """Every demo credential (not setting) value, per integration, from each simulator's DEMO_ACCOUNTS."""
    from kosmo_runtime._discovery import Catalog

    catalog = Catalog()
    found: dict[str, list[str]] = {}
    for ident in catalog.names():
        loaded = catalog.find(ident)
        if loaded is None or loaded.module is None:
            continue
        module = importlib.import_module(f"{loaded.module}.simulator")
        names = set(loaded.manifest.credentials)
        found[ident] = [value for account in module.DEMO_ACCOUNTS.values()
                        for key, value in account.items() if key in names]
    return found

"""Demo store records implied by the simulator's seed data.

The simulator seeds a running recording (``sid-abc123``) on the default customer's
project ``abc123``. Agora cannot list recordings, so the integration only knows the
recordings it started; in demo mode that one is recorded as if this runtime had
started it, for the account that owns the project.
"""

from __future__ import annotations

from kosmo_runtime.integration import ScopedStore

from .hooks import RECORDINGS, recording_record
from .simulator import (
    DEMO_ACCOUNTS,
    SEEDED_CLIENT_REQUEST,
    SEEDED_CNAME,
    SEEDED_RESOURCE_ID,
    SEEDED_SID,
    SEEDED_STARTED_MS,
    SEEDED_UID,
)

OWNER = "default"  # the demo account whose project abc123 holds the seeded recording


def seed_store(store: ScopedStore, account: str) -> None:
    """Record the simulator's seeded recording for the account that owns it."""
    if account != OWNER:
        return
    store.put(RECORDINGS, SEEDED_SID, recording_record(
        sid=SEEDED_SID, resource_id=SEEDED_RESOURCE_ID, cname=SEEDED_CNAME, uid=SEEDED_UID, mode="mix",
        app_id=DEMO_ACCOUNTS[OWNER]["app_id"], started_at=SEEDED_STARTED_MS // 1000,
        storage=SEEDED_CLIENT_REQUEST["storageConfig"],
    ))

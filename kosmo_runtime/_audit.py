"""The audit trail: one JSON line per integration call, appended to a file.

Each entry: time, run id, integration, function, account, operation, the HTTP
requests (method, path, status, duration), status, duration, outcome, retries.
Credentials and credential-bearing headers are never written; argument values are
recorded only for writes, with fields that look like secrets redacted. A write's
entry is flushed to disk before the function returns to the script.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._http import redact
from ._result import CallRecord

__all__ = ["AuditLog"]


class AuditLog:
    """An append-only JSON Lines file, safe to share between threads and runs."""

    def __init__(self, path: str | Path) -> None:
        """Open ``path`` for appending; raises ConfigError naming the path and why when it cannot be written."""
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the audit log {self.path}: {exc.strerror or exc}", file=str(self.path),
                              hint="choose a writable file with --audit-log, KOSMO_AUDIT_LOG or 'settings: audit_log' "
                                   "in the accounts file") from None
        self._lock = threading.Lock()

    def record(self, call: CallRecord, arguments: dict[str, Any]) -> None:
        """Append one call; a write is flushed and synced before this returns."""
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **call.to_dict(),
            "outcome": "ok" if call.ok else call.error,
        }
        if call.operation == "write":
            entry["arguments"] = redact(arguments)
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if call.operation == "write":
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()

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
    """An append-only JSON Lines file, safe to share between threads, runs and processes: each line is
    one ``write()`` on a descriptor opened with ``O_APPEND``."""

    def __init__(self, path: str | Path) -> None:
        """Open ``path`` for appending; raises ConfigError naming the path and why when it cannot be written."""
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
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
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd < 0:
                return
            written = os.write(self._fd, line)  # one write() of the whole line on an O_APPEND fd: processes
            if written < len(line):              # sharing the file (worker processes) never interleave lines
                os.write(self._fd, line[written:])  # (only a full disk or a signal cuts a regular-file write)
            if call.operation == "write":
                os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

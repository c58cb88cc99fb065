"""The demo simulators in their own process, so a benchmark's process CPU time is the client's alone.

``SimulatorProcess([...])`` starts a child Python that runs ``Demo(integrations, rate_limits=False)``
(real loopback HTTP servers) and prints its accounts; ``runtime()`` is a Runtime in this process
wired to them, on the demo's clock. Faults are injected over the child's stdin, one JSON line per
command, each answered ``ok``. The child exits when its stdin closes (``close()``, or this process
ending), so no simulator outlives the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from common import ROOT

_CHILD = r"""
import json, sys
from kosmo_runtime._demo import Demo
from kosmo_runtime._simulate import Fault

with Demo(json.loads(sys.argv[1]), rate_limits=False) as demo:
    print(json.dumps(demo.accounts_data), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        simulator = demo.simulators[command["integration"]]
        if "inject" in command:
            simulator.inject(Fault(**command["inject"]))
        else:
            simulator.clear_faults()
        print("ok", flush=True)
"""


class SimulatorProcess:
    """The demo simulators of ``integrations`` served by a child process (a context manager)."""

    def __init__(self, integrations: list[str]) -> None:
        self._child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(integrations)], cwd=ROOT,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._child.stdout is not None
        first = self._child.stdout.readline()
        if not first:
            self.close()
            raise RuntimeError("the simulator process ended before it served")
        self.accounts_data: dict[str, dict[str, dict[str, Any]]] = json.loads(first)

    def url(self, integration: str) -> str:
        """The base URL of ``integration``'s simulator."""
        return str(self.accounts_data[integration]["default"]["base_url"])

    def runtime(self, **options: Any) -> Any:
        """A Runtime in this process using the child's demo accounts and the demo's clock."""
        import yaml

        from kosmo_runtime._accounts import AccountsConfig
        from kosmo_runtime._clock import running_from
        from kosmo_runtime._demo import DEMO_START
        from kosmo_runtime._discovery import Catalog
        from kosmo_runtime._runtime import Runtime

        catalog = Catalog()
        document = {"integrations": {ident: {"default": "default", "accounts": accounts}
                                     for ident, accounts in self.accounts_data.items()}}
        accounts = AccountsConfig.parse(yaml.safe_dump(document), "(simulator process accounts)",
                                        lambda name: (found.manifest if (found := catalog.find(name)) else None),
                                        catalog.names)
        options.setdefault("clock", running_from(DEMO_START))
        options.setdefault("store", ":memory:")
        return Runtime(accounts=accounts, **options)

    def inject(self, integration: str, **fault: Any) -> None:
        """Queue a ``Fault(**fault)`` on ``integration``'s simulator."""
        self._command({"integration": integration, "inject": fault})

    def clear_faults(self, integration: str) -> None:
        self._command({"integration": integration})

    def _command(self, command: dict[str, Any]) -> None:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps(command) + "\n")
        self._child.stdin.flush()
        if self._child.stdout.readline().strip() != "ok":
            raise RuntimeError(f"the simulator process did not take {command}")

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

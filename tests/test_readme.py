"""The README's examples work as written."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_port

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_python_api_block_runs(tmp_path):
    block = re.search(r"^## Python API\n\n```python\n(.*?)^```", README, re.S | re.M)
    assert block, "the README has a Python API block"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    env.pop("KOSMO_ACCOUNTS", None)
    done = subprocess.run([sys.executable, "-c", block.group(1)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert " rooms" in done.stdout and "CallRecord(integration='whereby'" in done.stdout


def test_the_command_line_block_has_no_pipeline_of_separate_commands():
    block = re.search(r"^## Command line\n\n```bash\n(.*?)^```", README, re.S | re.M)
    assert block
    for line in block.group(1).splitlines():
        assert "| kosmo" not in line.split("#")[0], line


_DEPLOYMENT_TOOLS = ("redis-server", "redis-cli", "nginx", "openssl", "curl")


@pytest.mark.skipif(any(shutil.which(tool) is None for tool in _DEPLOYMENT_TOOLS),
                    reason="the deployment example needs redis-server, nginx, openssl and curl "
                           "(Debian: apt-get install redis-server nginx-light openssl curl)")
def test_the_deployment_example_runs_as_written(tmp_path):
    # README "Deployment": one Redis, two demo replicas, nginx with TLS, the SDK's client through it;
    # its ports and folder swapped for free ones, and stopped the way it says
    section = README[README.index("\n## Deployment\n"):README.index("\n## Worker processes\n")]
    shell, client = (re.search(rf"^```{kind}\n(.*?)^```", section, re.S | re.M).group(1) for kind in ("bash", "python"))
    ports = {old: str(free_port()) for old in ("6390", "8801", "8802", "8443")}
    for old, new in ports.items():
        shell, client = shell.replace(old, new), client.replace(old, new)
    shell = shell.replace("/tmp/kosmo-deploy", str(tmp_path))
    (tmp_path / "client.py").write_text(client, encoding="utf-8")
    stop = f'nginx -p "$PWD" -c nginx.conf -s stop; kill %1 %2; redis-cli -p {ports["6390"]} shutdown nosave'
    script = f"set -e\ntrap '{stop}' EXIT\n{shell}\npython3 client.py\n"
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    runner = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = runner.communicate(timeout=240)
    except subprocess.TimeoutExpired:  # what the trap would have stopped, stopped here
        os.killpg(runner.pid, signal.SIGTERM)
        subprocess.run(["nginx", "-p", str(tmp_path), "-c", "nginx.conf", "-s", "stop"], capture_output=True, timeout=30)
        subprocess.run(["redis-cli", "-p", ports["6390"], "shutdown", "nosave"], capture_output=True, timeout=30)
        out, _ = runner.communicate(timeout=30)
        raise AssertionError(f"the deployment example did not finish in 240 s:\n{out}") from None
    logs = "".join(path.read_text(errors="replace") for path in sorted(tmp_path.glob("replica*.log")))
    assert runner.returncode == 0, out + logs
    assert 'www-authenticate: Bearer realm="kosmo", resource_metadata="https://localhost:' in out, out
    assert out.splitlines().count("True 1") == 4, out  # four answers through the proxy, alternating replicas
    assert "kosmo mcp: streamable HTTP at" in logs and logs.count("not shown again") == 2, logs

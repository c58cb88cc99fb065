"""The README's examples work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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

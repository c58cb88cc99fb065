"""kosmo's per-user folders (config, data, state), as ``platformdirs`` names them.

On Linux with an absolute ``$HOME`` (the usual case) the XDG rule is applied here: the variable
(``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``, ``XDG_STATE_HOME``) when it holds an absolute path, else
``~/.config``, ``~/.local/share`` or ``~/.local/state``; then ``kosmo``. Everywhere else (macOS,
Windows, Android, a relative or missing ``$HOME``) ``platformdirs`` answers. Importing it costs
~4 ms, a tenth of a whole ``kosmo run`` process, and every run asks where the accounts file is.
A test checks that both give the same folders.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

__all__ = ["user_dir"]

_APP = "kosmo"
#: kind -> (XDG variable, default under the home folder)
_XDG = {"config": ("XDG_CONFIG_HOME", "/.config"), "data": ("XDG_DATA_HOME", "/.local/share"),
        "state": ("XDG_STATE_HOME", "/.local/state")}


def _xdg(kind: str) -> str | None:
    """The folder by the XDG rule, or None where platformdirs must decide."""
    environ = os.environ
    if not sys.platform.startswith("linux") or "ANDROID_DATA" in environ or hasattr(sys, "getandroidapilevel"):
        return None
    variable, default = _XDG[kind]
    base = environ.get(variable, "")
    if not base.startswith("/"):
        home = environ.get("HOME", "")
        if not home.startswith("/"):
            return None
        base = home.rstrip("/") + default
    return os.path.join(base, _APP)


def user_dir(kind: Literal["config", "data", "state"]) -> Path:
    """The per-user folder of ``kind`` (on Linux ``~/.config/kosmo``, ``~/.local/share/kosmo``, ``~/.local/state/kosmo``)."""
    found = _xdg(kind)
    if found is None:
        import platformdirs

        found = getattr(platformdirs, f"user_{kind}_dir")(_APP)
    return Path(found)

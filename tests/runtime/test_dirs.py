"""kosmo's per-user folders: the XDG rule applied without platformdirs names the folders platformdirs names."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from kosmo_runtime import _dirs

KINDS = ("config", "data", "state")
XDG = {"config": "XDG_CONFIG_HOME", "data": "XDG_DATA_HOME", "state": "XDG_STATE_HOME"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("home", "xdg"), [
    ("/home/ada", None),            # the defaults under the home folder
    ("/home/ada/", None),           # a trailing slash on HOME
    ("/", None),                    # the root as home
    ("/home/ada", "/srv/xdg"),      # an absolute XDG variable wins
    ("/home/ada", "relative/xdg"),  # a relative one is ignored
    ("/home/ada", ""),              # so is an empty one
    ("relative-home", None),        # a relative HOME: platformdirs decides
    (None, "/srv/xdg"),             # no HOME at all
])
def test_the_folders_are_the_ones_platformdirs_names(monkeypatch: pytest.MonkeyPatch, kind: str, home: str | None,
                                                     xdg: str | None) -> None:
    for name, value in (("HOME", home), (XDG[kind], xdg)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    try:
        expected = Path(getattr(platformdirs, f"user_{kind}_dir")("kosmo"))
    except RuntimeError:  # platformdirs could not find a home folder either: nothing to compare
        pytest.skip("platformdirs finds no home folder in this environment")
    assert _dirs.user_dir(kind) == expected  # type: ignore[arg-type]


def test_the_common_case_is_answered_without_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    if not _dirs.sys.platform.startswith("linux"):
        pytest.skip("the XDG rule is applied here only on Linux")
    monkeypatch.setenv("HOME", "/home/ada")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(platformdirs, "user_config_dir", lambda *a, **k: pytest.fail("platformdirs was asked"))
    assert _dirs.user_dir("config") == Path("/home/ada/.config/kosmo")

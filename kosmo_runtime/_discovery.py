"""Finding installed integrations without loading the ones a run does not touch.

Integrations come from folders (the built-in ``kosmo_integrations`` package, which is
the repository's ``integrations/`` folder installed under that name, plus any directories passed to the Runtime or listed in ``KOSMO_INTEGRATIONS_PATH``) and
from third-party packages declaring an entry point in the group
``kosmo_runtime.integrations`` whose value is the package holding the manifest.
Looking one up by name costs a file-existence check per folder root; manifests
are parsed on first use and cached; entry points are read only when a name is
not found in the folders, or when everything is listed.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ManifestError

if TYPE_CHECKING:  # the manifest model (pydantic, yaml) loads with the first integration used
    from ._manifest import LoadedIntegration

__all__ = ["ENTRY_POINT_GROUP", "Catalog"]

ENTRY_POINT_GROUP = "kosmo_runtime.integrations"
_VALID_ID = re.compile(r"^[a-z][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class _Root:
    directory: Path
    package: str | None  # importable package name of the directory, if any


_BUILTIN = "kosmo_integrations"


def _builtin_root() -> _Root:
    spec = importlib.util.find_spec(_BUILTIN)
    if spec is None or not spec.submodule_search_locations:
        raise ManifestError(f"the built-in {_BUILTIN!r} package is not installed", hint="reinstall kosmo-runtime")
    return _Root(Path(next(iter(spec.submodule_search_locations))), _BUILTIN)


def user_integrations_dir() -> Path:
    """Where ``kosmo integrations new`` writes by default: the per-user data folder's ``integrations``
    (``$XDG_DATA_HOME/kosmo/integrations`` on Linux), always searched after the other roots."""
    from ._dirs import user_dir

    return user_dir("data") / "integrations"


def entry_points(group: str) -> Any:
    """``importlib.metadata.entry_points(group=...)``, imported when first needed (it is slow to import)."""
    from importlib.metadata import entry_points as select

    return select(group=group)


class Catalog:
    """The installed integrations, found by name and loaded lazily."""

    def __init__(self, extra_paths: Iterable[str | Path] = (), *, builtin: bool = True) -> None:
        env_paths = [p for p in os.environ.get("KOSMO_INTEGRATIONS_PATH", "").split(os.pathsep) if p]
        self._roots = [_builtin_root()] if builtin else []
        self._roots += [_Root(Path(p), None) for p in [*extra_paths, *env_paths, user_integrations_dir()]]
        self._loaded: dict[str, LoadedIntegration] = {}
        self._entry_points: dict[str, tuple[Path, str]] | None = None

    @staticmethod
    def canonical(name: str) -> str:
        """``goto_webinar`` and ``goto-webinar`` both name integration ``goto-webinar``."""
        return name.replace("_", "-")

    def find(self, name: str) -> LoadedIntegration | None:
        """The integration called ``name`` (either spelling), or ``None``."""
        ident = self.canonical(name)
        if ident in self._loaded:
            return self._loaded[ident]
        if not _VALID_ID.match(ident):
            return None
        location = self._locate(ident)
        if location is None:
            return None
        from ._manifest import load_manifest

        folder, package = location
        loaded = load_manifest(folder, package)
        if loaded.manifest.id != ident:
            raise ManifestError(
                f"{folder / 'manifest.yaml'}: id {loaded.manifest.id!r} does not match its name {ident!r}",
                file=str(folder / "manifest.yaml"),
                hint="make the folder name and the manifest id agree",
            )
        self._loaded[ident] = loaded
        return loaded

    def _locate(self, ident: str) -> tuple[Path, str | None] | None:
        folder_name = ident.replace("-", "_")
        for root in self._roots:
            folder = root.directory / folder_name
            if (folder / "manifest.yaml").is_file():
                return folder, f"{root.package}.{folder_name}" if root.package else None
        return self._third_party().get(ident)

    def _third_party(self) -> dict[str, tuple[Path, str]]:
        if self._entry_points is None:
            found: dict[str, tuple[Path, str]] = {}
            for point in entry_points(group=ENTRY_POINT_GROUP):
                spec = importlib.util.find_spec(point.value)
                if spec and spec.submodule_search_locations:
                    found[self.canonical(point.name)] = (Path(next(iter(spec.submodule_search_locations))), point.value)
            self._entry_points = found
        return self._entry_points

    def names(self) -> list[str]:
        """Every installed integration id, sorted (reads directories and entry points, not manifests)."""
        names: set[str] = set()
        for root in self._roots:
            if root.directory.is_dir():
                for entry in os.scandir(root.directory):
                    if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "manifest.yaml")):
                        names.add(self.canonical(entry.name))
        names.update(self._third_party())
        return sorted(names)

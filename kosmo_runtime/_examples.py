"""The bundled examples (the data package ``kosmo_runtime.examples``): listed, read, copied out."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import NotFound

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = ["copy_examples", "example_names", "example_summary", "read_example"]

_SUFFIXES = (".lua", ".yaml")


def _folder() -> Traversable:
    return resources.files("kosmo_runtime.examples")


def example_names() -> list[str]:
    """The bundled files, e.g. ``demo.lua``, ``accounts.yaml``."""
    return sorted(entry.name for entry in _folder().iterdir() if entry.name.endswith(_SUFFIXES))


def _resolve(name: str) -> str:
    names = example_names()
    for candidate in (name, f"{name}.lua"):
        if candidate in names:
            return candidate
    raise NotFound(f"no bundled example {name!r}", candidates=names,
                   hint=f"the examples are: {', '.join(names)} (kosmo examples lists them)")


def read_example(name: str) -> tuple[str, str]:
    """``(text, file name)`` of a bundled example, named with or without ``.lua``."""
    filename = _resolve(name)
    return _folder().joinpath(filename).read_text(encoding="utf-8"), filename


def example_summary(name: str) -> str:
    """The first sentence of an example's leading comment (which may run over several lines)."""
    words: list[str] = []
    for line in read_example(name)[0].splitlines():
        text = line.lstrip("-# ").strip()
        if not line.startswith(("--", "#")) or not text:
            break
        words.append(text)
    comment = " ".join(words)
    end = comment.find(". ")
    return comment if end < 0 else comment[:end + 1]


def copy_examples(destination: Path, names: list[str]) -> list[Path]:
    """Write the named examples (all when ``names`` is empty) into ``destination``; never overwrite."""
    chosen = [_resolve(n) for n in names] or example_names()
    targets = [destination / name for name in chosen]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise FileExistsError(", ".join(existing))
    destination.mkdir(parents=True, exist_ok=True)
    for name, target in zip(chosen, targets, strict=True):
        target.write_text(read_example(name)[0], encoding="utf-8")
    return targets

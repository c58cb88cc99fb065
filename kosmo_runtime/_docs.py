"""The docs scripts read at run time: ``lua_list_docs``, ``lua_search_docs``, ``lua_read_doc``.

Pages are Markdown in the data package ``kosmo_runtime.lua_docs`` (the repository's
``lua_docs/``: ``runtime.md`` and ``integrations/<id>.md``), read through
``importlib.resources``; a third-party integration may ship ``docs.md`` in its folder. Paths:

* ``runtime``, ``integrations`` (an index generated from the manifests);
* ``integrations.goto-webinar`` (or ``integrations.goto_webinar``): one integration;
* ``integrations.goto-webinar.list_webinars``: one function's section, headed by its
  signature generated from the manifest (short or full function name).

Function sections are the ``## <function>`` sections of an integration page.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._discovery import Catalog
from ._errors import InvalidArgument, NotFound
from ._stubs import lua_type, namespace_name

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from ._manifest import FunctionSpec, Manifest, ParamSpec

__all__ = ["MAX_QUERY_BYTES", "MAX_SEARCH_RESULTS", "Docs", "parameter_table", "quick_reference", "signature", "sync_parameter_tables"]

#: The longest query the search tools take (``lua_search_docs`` in Lua and over MCP): the host's work stays small.
MAX_QUERY_BYTES = 1000
#: The most hits one search returns.
MAX_SEARCH_RESULTS = 100
_WORD = re.compile(r"[a-z0-9]+")
_PARAMS_BLOCK = re.compile(r"(<!-- kosmo:params (\w+) -->\n)(.*?)(<!-- /kosmo:params -->)", re.S)
_MARKER_LINE = re.compile(r"^<!-- /?kosmo:params[^>]*-->\n?", re.M)
_BRACKETED = re.compile(r"""\[\s*["']([^"'\]]+)["']\s*\]""")
_VALID_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _default_root() -> Traversable:
    override = os.environ.get("KOSMO_DOCS_PATH")
    return Path(override) if override else resources.files("kosmo_runtime.lua_docs")


@dataclass
class _Unit:
    """One searchable piece: a page or a function section."""

    path: str
    title: str
    summary: str
    text: str
    boost: str  # words that count triple (names, titles)


def signature(manifest: Manifest, name: str, namespace: str | None = None) -> str:
    """A one-line Lua signature of a function, generated from its declaration (types as in the stubs)."""
    spec = manifest.functions[name]
    params = ", ".join(_param(pname, p) for pname, p in spec.params.items())
    namespace = namespace or _namespace(manifest.id)
    return f"{namespace}.{name}({{{params}}}) -> {spec.returns}   -- {spec.operation}"


def _namespace(ident: str) -> str:
    return f'app.integrations["{ident}"]' if "-" in ident else f"app.integrations.{ident}"


def quick_reference(manifest: Manifest) -> str:
    """Every function of an integration in one typed line each: the top of its page."""
    local = namespace_name(manifest.id)
    lines = [f"local {local} = {_namespace(manifest.id)}",
             *(signature(manifest, name, local) for name in manifest.functions)]
    return ("## Quick reference\n\nOne typed line per function (`?` optional, `\"a\" | \"b\"` the allowed values, "
            "`= x` the default); the sections below give each one's parameters, result and examples.\n\n"
            "```lua\n" + "\n".join(lines) + "\n```\n")


def lua_literal(value: Any) -> str:
    """A JSON-compatible value written as Lua source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {lua_literal(v)}" for k, v in value.items()) + "}"
    return "nil" if value is None else str(value)


def _param(name: str, param: ParamSpec) -> str:
    text = f"{name}{'' if param.required else '?'}: {lua_type(param)}"
    if param.default is not None:
        text += f" = {lua_literal(param.default)}"
    return text


def parameter_table(spec: FunctionSpec) -> str:
    """The Markdown parameter table of a function, generated from its declaration."""
    if not spec.params:
        return "No parameters."
    rows = ["| Name | Type | Required | Default | Description |", "|------|------|----------|---------|-------------|"]
    for name, param in spec.params.items():
        kind = param.type + (f" of {param.items}" if param.items else "")
        extra = []
        if param.enum:
            extra.append("one of " + ", ".join(f"`{e}`" for e in param.enum))
        if param.minimum is not None or param.maximum is not None:
            extra.append(f"range {'' if param.minimum is None else f'{param.minimum:g}'}..{'' if param.maximum is None else f'{param.maximum:g}'}")
        description = param.description + (f" ({'; '.join(extra)})" if extra else "")
        default = "" if param.default is None else f"`{lua_literal(param.default)}`"
        rows.append(f"| `{name}` | {kind} | {'yes' if param.required else 'no'} | {default} | {description} |")
    return "\n".join(rows)


_Units = list[_Unit]  # aliases: inside Docs, ``list`` names its method
_Counts = list[tuple[Counter[str], set[str]]]
_Rows = list[dict[str, Any]]


class Docs:
    """Doc pages for scripts and the CLI."""

    def __init__(self, catalog: Catalog, root: str | Path | None = None) -> None:
        self.catalog = catalog
        self.root: Traversable = Path(root) if root is not None else _default_root()

    # -- pages -------------------------------------------------------------------

    def _integration_file(self, ident: str) -> Traversable | None:
        loaded = self.catalog.find(ident)
        if loaded is None:
            return None
        candidates: tuple[Traversable, ...] = (self.root / "integrations" / f"{loaded.manifest.id}.md", loaded.folder / "docs.md")
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        return None

    def integration_page(self, ident: str) -> str:
        """The Markdown page of an installed integration (its file, else one generated from the manifest)."""
        path = self._integration_file(ident)
        manifest = self.catalog.find(ident).manifest  # type: ignore[union-attr]
        if path is None:
            return _generated_page(manifest)
        return path.read_text(encoding="utf-8")

    def index(self) -> str:
        """The generated ``integrations`` page: every installed integration in a line."""
        lines = ["# Integrations", "", "Every installed integration, with its Lua namespace. "
                 'Read one with lua_read_doc("integrations.<name>"): it starts with a quick reference, '
                 "one typed line per function.", ""]
        for ident in self.catalog.names():
            manifest = self.catalog.find(ident).manifest  # type: ignore[union-attr]
            lines.append(f"- `{ident}` ({manifest.name}, {len(manifest.functions)} functions): {manifest.description}")
        return "\n".join(lines) + "\n"

    def read(self, path: str) -> str:
        """The Markdown at ``path`` as readers see it (no sync markers); raises NotFound naming the closest paths.

        Besides the listed paths it takes the forms an agent types: ``app.integrations.whereby.list_rooms``,
        ``app.integrations["goto-webinar"]``, ``whereby.list_rooms``.
        """
        return _MARKER_LINE.sub("", self._read(_canonical_path(path, self.catalog)))

    def _read(self, key: str) -> str:
        if key == "runtime":
            return (self.root / "runtime.md").read_text(encoding="utf-8")
        if key == "integrations":
            return self.index()
        if key.startswith("integrations."):
            rest = key[len("integrations."):]
            ident, _, function = rest.partition(".")
            if self.catalog.find(ident) is not None:
                manifest = self.catalog.find(ident).manifest  # type: ignore[union-attr]
                if not function:
                    return _with_quick_reference(self.integration_page(ident), manifest)
                short = manifest.resolve_function(function)
                if short is not None:
                    return self.function_section(manifest, short)
        raise self._not_found(key)

    def function_section(self, manifest: Manifest, name: str) -> str:
        """One function's section, headed by its generated signature."""
        page = self.integration_page(manifest.id)
        body = _sections(page).get(name) or parameter_table(manifest.functions[name])
        return f"```lua\n{signature(manifest, name)}\n```\n\n{body.strip()}\n"

    def _not_found(self, path: str) -> NotFound:
        paths = [u.path for u in self._units]
        close = difflib.get_close_matches(path, paths, n=3, cutoff=0.4)
        return NotFound(f"no doc page {path!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                        candidates=close or None, hint="list pages with lua_list_docs() (kosmo docs list) or search with lua_search_docs(query) (kosmo docs search)")

    # -- listing and search --------------------------------------------------------

    def list(self) -> list[dict[str, str]]:
        """Every page (not function sections): path, title and a one-line summary."""
        return [{"path": u.path, "title": u.title, "summary": u.summary} for u in self._units if u.path.count(".") < 2]

    def search(self, query: str, limit: int = 10) -> _Rows:
        """Pages and function sections ranked by relevance to ``query`` (best first).

        The one place the search's bounds are checked (``MAX_QUERY_BYTES``, 1 to
        ``MAX_SEARCH_RESULTS`` hits), for Lua, MCP and the CLI alike.
        """
        size = len(query.encode("utf-8", "replace"))
        if size > MAX_QUERY_BYTES:
            raise InvalidArgument(f"lua_search_docs: the query is {size:,} bytes; at most {MAX_QUERY_BYTES:,} are searched",
                                  param="query", hint='search for a few words, e.g. "webinar sessions"')
        if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_RESULTS:
            raise InvalidArgument(f"lua_search_docs: limit must be a whole number from 1 to {MAX_SEARCH_RESULTS}",
                                  param="limit", got=repr(limit), hint="leave it out for the 10 best hits")
        terms = list(dict.fromkeys(_WORD.findall(query.lower())))  # a repeated word counts once
        if not terms:
            return []
        units, counts = self._units, self._counts
        idf = {term: math.log(1 + len(units) / (1 + sum(1 for words, _ in counts if term in words))) for term in terms}
        scored: list[tuple[float, _Unit]] = []
        for unit, (words, boost) in zip(units, counts, strict=True):
            score = 0.0
            for term in terms:
                frequency = sum(c for w, c in words.items() if w.startswith(term)) if len(term) > 3 else words.get(term, 0)
                if frequency == 0 and not any(term in b for b in boost):
                    continue
                score += idf[term] * (math.log(1 + frequency) + (3 if any(term in b for b in boost) else 0))
            if score > 0:
                scored.append((score, unit))
        scored.sort(key=lambda pair: (-pair[0], pair[1].path))
        return [{"path": u.path, "title": u.title, "summary": u.summary, "score": round(s, 3)}
                for s, u in scored[:limit]]

    @cached_property
    def _counts(self) -> _Counts:
        """Each unit's word counts and boost words, counted once per Docs."""
        return [(Counter(_WORD.findall(u.text.lower())), set(_WORD.findall(u.boost.lower()))) for u in self._units]

    @cached_property
    def _units(self) -> _Units:
        units = [_page_unit("runtime", (self.root / "runtime.md").read_text(encoding="utf-8"))]
        units.append(_page_unit("integrations", self.index()))
        for ident in self.catalog.names():
            manifest = self.catalog.find(ident).manifest  # type: ignore[union-attr]
            page = self.integration_page(ident)
            units.append(_page_unit(f"integrations.{ident}", page, boost=f"{ident} {manifest.name}"))
            sections = _sections(page)
            for name, spec in manifest.functions.items():
                text = sections.get(name, "") + " " + spec.description
                units.append(_Unit(
                    path=f"integrations.{ident}.{name}", title=f"{manifest.name}: {name}",
                    summary=spec.description.split(". ")[0].rstrip(".") + ".",
                    text=f"{name} {manifest.full_name(name)} {text}",
                    boost=f"{name} {manifest.full_name(name)} {ident} {manifest.name} {' '.join(spec.params)}",
                ))
        return units


def sync_parameter_tables(page: str, manifest: Manifest) -> str:
    """``page`` with every ``<!-- kosmo:params NAME -->`` block regenerated from the manifest.

    Parameter tables are never written by hand: ``kosmo docs sync`` rewrites them, and a
    test fails when a page is out of date.
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in manifest.functions:
            raise NotFound(f"doc block names function {name!r}, which {manifest.id} does not have")
        return f"{match.group(1)}{parameter_table(manifest.functions[name])}\n{match.group(4)}"

    return _PARAMS_BLOCK.sub(fill, page)


def _with_quick_reference(page: str, manifest: Manifest) -> str:
    """``page`` with the quick reference after its title and first paragraph."""
    parts = re.split(r"(\n\s*\n)", page, maxsplit=2)
    if len(parts) < 5 or not parts[0].startswith("# "):
        return f"{quick_reference(manifest)}\n{page}"
    return "".join(parts[:4]) + quick_reference(manifest) + "\n" + parts[4]


def _canonical_path(path: str, catalog: Catalog) -> str:
    """``app.integrations["x"].f``, ``app.integrations.x.f`` and ``x.f`` as the listed path ``integrations.x.f``."""
    key = _BRACKETED.sub(r".\1", path.strip()).removeprefix("app.")
    first = key.split(".", 1)[0]
    if first not in ("runtime", "integrations") and _VALID_NAME.match(first) and catalog.find(first) is not None:
        return f"integrations.{key}"
    return key


def _summary(text: str, limit: int = 200) -> str:
    """``text`` up to ``limit`` characters, cut at a word boundary with an ellipsis when longer."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def _page_unit(path: str, text: str, boost: str = "") -> _Unit:
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# ")), path)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip() and not p.lstrip().startswith(("#", "```", "|", "-"))]
    summary = paragraphs[0].replace("\n", " ") if paragraphs else title
    return _Unit(path, title, _summary(summary), text, boost=f"{title} {boost}")


def _sections(page: str) -> dict[str, str]:
    """The ``## name`` sections of a page, by name (text up to the next ``## `` heading)."""
    sections: dict[str, str] = {}
    for match in re.finditer(r"^## `?(\w+)`?\s*$(.*?)(?=^## |\Z)", page, re.M | re.S):
        sections[match.group(1)] = f"## {match.group(1)}{match.group(2)}"
    return sections


def _generated_page(manifest: Manifest) -> str:
    parts = [f"# {manifest.name}", "", manifest.description, ""]
    for name, spec in manifest.functions.items():
        parts += [f"## {name}", "", spec.description, "", parameter_table(spec), ""]
    return "\n".join(parts)

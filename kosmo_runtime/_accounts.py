"""The account registry: which accounts exist per integration, their credentials and policies.

The file (YAML)::

    version: 1
    settings:                     # optional, run-wide
      writes: allow               # default write policy: allow | deny | ask
      audit_log: ~/kosmo-audit.jsonl
      state: redis://localhost:6379/0   # where rate budgets and records live (default: this process)
    integrations:
      goto-webinar:
        default: marketing        # optional; else the account named "default", else the only one
        accounts:
          marketing:
            access_token: ${GOTO_MARKETING_TOKEN}   # ${VAR}: from the environment
            writes: ask
          sales:
            access_token: ${GOTO_SALES_TOKEN}
            writes: deny

An account's keys are the integration's credential and setting fields (from its
manifest) plus ``writes``, ``label``, ``timeout`` (seconds, or a mapping of
``connect``/``read``/``write``/``pool``) and ``rate_limit`` (``{requests, per_seconds}``
or ``false``; default: the service's documented rate). The file is checked when
loaded (YAML syntax, unknown integration or field, missing credential, duplicate
account, invalid policy: each error names file, line and fix); ``${VAR}`` is
resolved when the account is first used, so one broken account does not break
runs that never touch it. Credentials are held as :class:`Secret` and never shown.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._errors import AccountError, AccountsFileError, KosmoError, NotFound

if TYPE_CHECKING:  # yaml and the manifest model load only when an accounts file is parsed
    import yaml

    from ._manifest import Manifest
    from ._yamlfile import LocatedYAML

__all__ = ["Account", "AccountsConfig", "Secret", "WritePolicy", "default_accounts_path"]

WritePolicy = Literal["allow", "deny", "ask"]
POLICIES: tuple[str, ...] = ("allow", "deny", "ask")
ACCOUNT_KEYS = ("writes", "label", "timeout", "rate_limit")
TIMEOUT_KEYS = ("connect", "read", "write", "pool")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z_-]{0,15}$")


class Secret:
    """A credential value. It never shows itself: ``str``/``repr`` give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value, for the one place that sends it (the HTTP auth)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Account:
    """A usable account: non-secret settings, credentials and policy."""

    integration: str
    name: str
    settings: Mapping[str, Any]
    credentials: Mapping[str, Secret] = field(repr=False)
    writes: WritePolicy = "allow"
    label: str | None = None
    timeouts: Mapping[str, float] = field(default_factory=dict)
    rate_limit: Mapping[str, float] | bool | None = None

    def credential(self, name: str) -> str:
        return self.credentials[name].reveal()

    def secret_values(self) -> list[str]:
        """Every credential value, for redaction checks."""
        return [s.reveal() for s in self.credentials.values()]


@dataclass
class _AccountEntry:
    name: str
    fields: dict[str, Any]
    line: int | None
    field_lines: dict[str, int] = field(default_factory=dict)


@dataclass
class _IntegrationEntry:
    default: str | None
    accounts: dict[str, _AccountEntry]
    line: int | None


def default_accounts_path() -> Path:
    """The per-user accounts file (the platform's config directory)."""
    from ._dirs import user_dir

    return user_dir("config") / "accounts.yaml"


class AccountsConfig:
    """The parsed, checked accounts file. ``account(integration, name)`` resolves one lazily."""

    def __init__(self, source: str, settings: Mapping[str, Any], integrations: dict[str, _IntegrationEntry],
                 manifests: Mapping[str, Manifest], environ: Mapping[str, str] | None = None) -> None:
        self.source = source
        self.settings = dict(settings)
        self._integrations = integrations
        self._manifests = manifests
        self._environ = environ if environ is not None else os.environ
        self._resolved: dict[tuple[str, str], Account] = {}

    def __getstate__(self) -> dict[str, Any]:
        """What a worker process receives: the checked file, never resolved secrets; it reads its own
        (inherited) environment when the process environment is the one in use."""
        state = {**self.__dict__, "_resolved": {}}
        if self._environ is os.environ:
            state["_environ"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._environ is None:
            self._environ = os.environ

    # -- loading ---------------------------------------------------------------

    @classmethod
    def empty(cls) -> AccountsConfig:
        """No accounts: the state when no accounts file was given or found."""
        return cls("", {}, {}, {})

    @classmethod
    def load(cls, path: str | Path, manifest_for: Callable[[str], Manifest | None], known: Callable[[], list[str]],
             environ: Mapping[str, str] | None = None) -> AccountsConfig:
        """Read and check an accounts file; raises AccountsFileError with file, line and fix."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AccountsFileError(f"{path}: cannot read the accounts file: {exc.strerror}", file=str(path),
                                    hint="check the path given by --accounts or KOSMO_ACCOUNTS") from None
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise _file_error(str(path), line, f"the accounts file is not UTF-8 text (byte 0x{exc.object[exc.start]:02x})",
                              "save the file as UTF-8") from None
        return cls.parse(text, str(path), manifest_for, known, environ)

    @classmethod
    def parse(cls, text: str, source: str, manifest_for: Callable[[str], Manifest | None],
              known: Callable[[], list[str]], environ: Mapping[str, str] | None = None) -> AccountsConfig:
        """Check accounts YAML ``text`` (``source`` names it in errors)."""
        import yaml

        from ._yamlfile import DuplicateKey, UnsupportedYAML, parse_located

        try:
            located = parse_located(text)
        except DuplicateKey as exc:
            raise _file_error(source, exc.line, str(exc), "remove or rename one of them") from None
        except UnsupportedYAML as exc:
            raise _file_error(source, exc.line, str(exc), "write plain mappings of text keys to values") from None
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, source, text) from None
        return _Checker(located, source, manifest_for, known).build(environ)

    # -- queries ---------------------------------------------------------------

    def integrations(self) -> list[str]:
        return sorted(self._integrations)

    def account_names(self, integration: str) -> list[str]:
        entry = self._integrations.get(integration)
        return list(entry.accounts) if entry else []

    def default_account(self, integration: str) -> str | None:
        entry = self._integrations.get(integration)
        if entry is None or not entry.accounts:
            return None
        if entry.default:
            return entry.default
        if "default" in entry.accounts:
            return "default"
        return next(iter(entry.accounts)) if len(entry.accounts) == 1 else None

    def account(self, integration: str, name: str | None = None) -> Account:
        """The resolved account (``None``: the default); raises NotFound or AccountError."""
        entry = self._integrations.get(integration)
        if entry is None or not entry.accounts:
            where = (f"the accounts file {self.source}" if self.source else
                     f"an accounts file (pass --accounts PATH, set KOSMO_ACCOUNTS, or create {default_accounts_path()})")
            raise AccountError(
                f"no account is configured for {integration}",
                integration=integration,
                hint=f"add an account under 'integrations: {integration}: accounts:' in {where}; "
                     "the README shows the format",
            )
        resolved_name = name if name not in (None, "default") else self.default_account(integration)
        if resolved_name is None:
            raise AccountError(
                f"{integration} has several accounts and none is the default",
                integration=integration,
                hint=f"set 'default: <account>' under {integration} in {self.source}, or name the account",
            )
        if resolved_name not in entry.accounts:
            raise NotFound(
                f"{integration} has no account named {resolved_name!r}",
                integration=integration, account=resolved_name,
                candidates=sorted(entry.accounts),
                hint=_did_you_mean(resolved_name, entry.accounts, "accounts"),
            )
        key = (integration, resolved_name)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(integration, entry.accounts[resolved_name])
        return self._resolved[key]

    def _resolve(self, integration: str, entry: _AccountEntry) -> Account:
        manifest = self._manifests[integration]
        values: dict[str, Any] = {}
        for key, raw in entry.fields.items():
            line = entry.field_lines.get(key, entry.line)
            where = f"{self.source}:{line}" if line else self.source
            if isinstance(raw, str):
                missing = [v for v in _VARIABLE.findall(raw) if v not in self._environ]
                if missing:
                    raise AccountError(
                        f"account {integration}.{entry.name} needs environment variable {missing[0]} "
                        f"(for '{key}', {where}), which is not set",
                        integration=integration, account=entry.name,
                        hint=f"export {missing[0]}=... before running, or change '{key}' in {self.source}",
                    )
                raw = _VARIABLE.sub(lambda m: self._environ[m.group(1)], raw)
            values[key] = raw
        credentials = {k: Secret(str(v)) for k, v in values.items() if k in manifest.credentials}
        settings = {k: spec.default for k, spec in manifest.settings.items()}
        settings.update({k: v for k, v in values.items() if k in manifest.settings})
        for name, spec in manifest.credentials.items():
            if spec.required and not credentials.get(name, Secret("")).reveal():
                line = entry.field_lines.get(name, entry.line)
                raise AccountError(f"account {integration}.{entry.name}: credential '{name}' is empty ({self.source}:{line})",
                                   integration=integration, account=entry.name,
                                   hint=f"set '{name}' to a value or ${{VARIABLE}}")
        policy = values.get("writes", self.settings.get("writes", "allow"))
        timeout = values.get("timeout")
        timeouts = {"read": float(timeout)} if isinstance(timeout, (int, float)) else dict(timeout or {})
        return Account(
            integration=integration, name=entry.name, settings=settings, credentials=credentials,
            writes=policy, label=values.get("label"), timeouts=timeouts, rate_limit=values.get("rate_limit"),
        )

    def check(self) -> list[KosmoError]:
        """Resolve every account; the problems found (for ``kosmo accounts check``)."""
        problems: list[KosmoError] = []
        for integration in self.integrations():
            for name in self.account_names(integration):
                try:
                    self.account(integration, name)
                except KosmoError as exc:
                    problems.append(exc)
        return problems

    def describe(self) -> list[dict[str, Any]]:
        """One row per account (never a secret), for ``kosmo accounts list``."""
        rows = []
        for integration in self.integrations():
            default = self.default_account(integration)
            entry = self._integrations[integration]
            for name, account in entry.accounts.items():
                rows.append({
                    "integration": integration,
                    "account": name,
                    "default": name == default,
                    "writes": account.fields.get("writes", self.settings.get("writes", "allow")),
                    "label": account.fields.get("label"),
                })
        return rows


def _yaml_error(exc: yaml.YAMLError, source: str, text: str) -> AccountsFileError:
    """The file error for a YAML syntax error: the line where the broken construct starts."""
    import yaml

    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):
        problem = f"character {exc.character!r} is not allowed in YAML"
        return _file_error(source, text[: exc.position].count("\n") + 1, f"invalid YAML: {problem}",
                           "remove the control character")
    context_mark = getattr(exc, "context_mark", None)
    last_line = max(1, len(text.splitlines()))
    line: int | None = mark.line + 1 if mark else None
    if context_mark is not None and (line is None or line > last_line or "quoted" in (context or "")):
        line = context_mark.line + 1
    detail = (f"{context}: {problem}" if context else problem).replace("\n", " ")
    return _file_error(source, min(line, last_line) if line else None, f"invalid YAML: {detail}",
                       "fix the YAML syntax (indentation with spaces, matching quotes, 'key: value')")


def _shown(value: Any) -> str:
    """A mistaken value as an error may show it: numbers, booleans and short words; anything else
    (which could be a secret pasted in the wrong place) only by its kind."""
    if value is None or isinstance(value, (bool, int, float)) or (isinstance(value, str) and _WORD.match(value)):
        return repr(value)
    if isinstance(value, dict) and all(isinstance(k, str) and _WORD.match(k) for k in value):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return f"(a {type(value).__name__} value, not shown)"


def _all_mistakes(problems: list[AccountsFileError]) -> AccountsFileError:
    """One error for every mistake in the file: the first names file, line and fix; the others follow."""
    first = problems[0]
    if len(problems) == 1:
        return first
    others = "".join(f"; also {p.message} ({p.hint})" for p in problems[1:])
    return AccountsFileError(f"{first.message}{others}", file=first.file, line=first.line,
                             hint=f"{first.hint}; the file has {len(problems)} mistakes, all listed")


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _file_error(source: str, line: int | None, message: str, hint: str) -> AccountsFileError:
    where = f"{source}:{line}" if line else source
    return AccountsFileError(f"{where}: {message}", file=source, line=line, hint=hint)


def _did_you_mean(name: str, options: Any, what: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    listing = ", ".join(sorted(options)) or "none"
    return (f"did you mean {close[0]!r}? " if close else "") + f"{what}: {listing}"


class _Checker:
    """Checks the parsed file against the schema and the integrations' manifests."""

    def __init__(self, located: LocatedYAML, source: str, manifest_for: Callable[[str], Manifest | None],
                 known: Callable[[], list[str]]) -> None:
        self.located = located
        self.source = source
        self.manifest_for = manifest_for
        self.known = known
        self.problems: list[AccountsFileError] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Go on after a mistake in one part of the file, so that one check reports every mistake."""
        try:
            yield
        except AccountsFileError as exc:
            self.problems.append(exc)

    def fail(self, path: tuple[Any, ...], message: str, hint: str) -> AccountsFileError:
        return _file_error(self.source, self.located.line(*path), message, hint)

    def mapping(self, value: Any, path: tuple[Any, ...], what: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"{what} must be a mapping, got {type(value).__name__}", f"write {what} as 'key: value' lines")
        for key in value:
            if not isinstance(key, str):
                raise self.fail((*path, key), f"key {key!r} in {what} must be text", f"quote it: '{key}':")
        return value

    def build(self, environ: Mapping[str, str] | None) -> AccountsConfig:
        top = self.mapping(self.located.data, (), "the file")
        for key in sorted(set(top) - {"version", "settings", "integrations"}):
            with self.collecting():
                raise self.fail((key,), f"unknown top-level key {key!r}", "top-level keys are: version, settings, integrations")
        if top.get("version", 1) != 1:
            with self.collecting():
                raise self.fail(("version",), f"unsupported version {_shown(top['version'])}", "use version: 1")
        settings: dict[str, Any] = {}
        with self.collecting():
            settings = self.mapping(top.get("settings"), ("settings",), "settings")
        for key in settings:
            if key not in ("writes", "audit_log", "state"):
                with self.collecting():
                    raise self.fail(("settings", key), f"unknown setting {key!r}", "settings are: writes, audit_log, state")
        with self.collecting():
            self.policy(settings.get("writes", "allow"), ("settings", "writes"))
        integrations: dict[str, _IntegrationEntry] = {}
        manifests: dict[str, Manifest] = {}
        entries: dict[str, Any] = {}
        with self.collecting():
            entries = self.mapping(top.get("integrations"), ("integrations",), "integrations")
        for ident, body in entries.items():
            with self.collecting():
                path = ("integrations", ident)
                manifest = self.manifest_for(str(ident))
                if manifest is None:
                    raise self.fail(path, f"unknown integration {ident!r}", _did_you_mean(str(ident), self.known(), "installed integrations"))
                if manifest.id != ident:
                    raise self.fail(path, f"write the integration as {manifest.id!r}, not {ident!r}", f"rename the key to {manifest.id}")
                manifests[manifest.id] = manifest
                integrations[manifest.id] = self.integration(manifest, self.mapping(body, path, ident), path)
        if self.problems:
            raise _all_mistakes(self.problems)
        return AccountsConfig(self.source, settings, integrations, manifests, environ)

    def integration(self, manifest: Manifest, body: dict[str, Any], path: tuple[Any, ...]) -> _IntegrationEntry:
        for key in body:
            if key not in ("default", "accounts"):
                raise self.fail((*path, key), f"unknown key {key!r} under {manifest.id}", "an integration has 'default' and 'accounts'")
        accounts: dict[str, _AccountEntry] = {}
        broken: set[Any] = set()
        for name, fields in self.mapping(body.get("accounts"), (*path, "accounts"), "accounts").items():
            broken.add(name)
            with self.collecting():
                account_path = (*path, "accounts", name)
                if not isinstance(name, str) or not _ACCOUNT_NAME.match(name):
                    raise self.fail(account_path, f"invalid account name {name!r}",
                                    "use lower-case letters, digits and _ (it becomes a Lua name)")
                if manifest.resolve_function(name) is not None:
                    raise self.fail(account_path, f"account name {name!r} is also a function of {manifest.id}", "choose another name")
                before = len(self.problems)
                checked = self.account(manifest, self.mapping(fields, account_path, name), account_path)
                if len(self.problems) == before:
                    accounts[name] = _AccountEntry(name, checked, self.located.line(*account_path),
                                                   {key: self.located.line(*account_path, key) or 0 for key in checked})
                    broken.discard(name)
        default = body.get("default")
        if isinstance(default, str) and default in broken:
            return _IntegrationEntry(default, accounts, self.located.line(*path))
        if default is not None and not isinstance(default, str):
            raise self.fail((*path, "default"), f"default must be an account name, got {default!r}", "write default: <account>")
        if default is not None and default not in accounts:
            raise self.fail((*path, "default"), f"default account {default!r} is not defined",
                            _did_you_mean(str(default), accounts, "accounts"))
        if default not in (None, "default") and "default" in accounts:
            raise self.fail((*path, "default"), f"'default: {default}' hides the account named 'default' "
                            "(.default would mean the other account)", "rename the account called 'default', or drop 'default:'")
        return _IntegrationEntry(default, accounts, self.located.line(*path))

    def account(self, manifest: Manifest, fields: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
        allowed = [*manifest.credentials, *manifest.settings, *ACCOUNT_KEYS]
        for key, value in fields.items():
            with self.collecting():
                self.field(manifest, allowed, key, value, (*path, key))
        misspelt = any(key not in allowed for key in fields)  # then a "missing" credential is that same mistake
        for name, spec in manifest.credentials.items():
            if spec.required and name not in fields and not misspelt:
                with self.collecting():
                    raise self.fail(path, f"account is missing credential {name!r} ({spec.description})",
                                    f"add '{name}: ${{SOME_ENV_VAR}}' to the account")
        return fields

    def field(self, manifest: Manifest, allowed: list[str], key: Any, value: Any, path: tuple[Any, ...]) -> None:
        if key not in allowed:
            raise self.fail(path, f"unknown field {key!r} for a {manifest.id} account",
                            _did_you_mean(str(key), allowed, "fields"))
        if key == "writes":
            self.policy(value, path)
        elif key == "timeout":
            self.timeout(value, path)
        elif key == "rate_limit":
            self.rate_limit(value, path)
        elif key not in ACCOUNT_KEYS and not isinstance(value, (str, int, float)):
            raise self.fail(path, f"'{key}' must be a string", "quote the value")

    def timeout(self, value: Any, path: tuple[Any, ...]) -> None:
        values = value.values() if isinstance(value, dict) else [value]
        unknown = set(value) - set(TIMEOUT_KEYS) if isinstance(value, dict) else set()
        if unknown or not values or not all(_positive(v) for v in values):
            raise self.fail(path, f"invalid timeout {_shown(value)}",
                            "write seconds (timeout: 20, the read timeout) or a mapping of connect, read, write, pool")

    def rate_limit(self, value: Any, path: tuple[Any, ...]) -> None:
        if value is False:
            return
        if not (isinstance(value, dict) and set(value) == {"requests", "per_seconds"} and all(_positive(v) for v in value.values())):
            raise self.fail(path, f"invalid rate_limit {_shown(value)}",
                            "write rate_limit: {requests: 10, per_seconds: 1}, or false to turn client-side limiting off")

    def policy(self, value: Any, path: tuple[Any, ...]) -> None:
        if value not in POLICIES:
            raise self.fail(path, f"invalid write policy {_shown(value)}", "use one of: allow, deny, ask")

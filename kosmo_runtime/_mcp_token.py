"""The bearer token of ``kosmo mcp --http``: where it comes from, made once, kept readable by its owner only.

Sources, first match wins: ``--token-file PATH``, then ``$KOSMO_MCP_TOKEN``, then ``mcp-token`` in the
platform's config directory (``~/.config/kosmo/mcp-token`` on Linux). A token file that does not exist
yet is created with a fresh random token (mode 0600, its folder 0700); only then is the token shown,
once. A file that others can read, or a token too short to be a secret, stops the server.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._errors import ConfigError

__all__ = ["MIN_TOKEN_CHARS", "TOKEN_ENV", "Token", "default_token_path", "load_token"]

TOKEN_ENV = "KOSMO_MCP_TOKEN"
MIN_TOKEN_CHARS = 32  # secrets.token_urlsafe(32) gives 43
_GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class Token:
    """The token clients must send (``Authorization: Bearer <value>``) and where it came from."""

    value: str = ""
    source: str = ""
    created: bool = False  # made by this start: the only time it is shown

    def __repr__(self) -> str:  # never the value, in logs or tracebacks
        return f"Token(source={self.source!r}, created={self.created})"


def default_token_path() -> Path:
    """``mcp-token`` in the platform's per-user config directory."""
    from ._dirs import user_dir

    return user_dir("config") / "mcp-token"


def load_token(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Token:
    """The token from ``path``, else ``$KOSMO_MCP_TOKEN``, else the default file (made when missing)."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(TOKEN_ENV):
        return Token(_checked(environ[TOKEN_ENV].strip(), TOKEN_ENV), TOKEN_ENV)
    file = Path(path).expanduser() if path is not None else default_token_path()
    try:
        return Token(_read(file), str(file))
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(32)
    if _create(file, value):
        return Token(value, str(file), created=True)
    return Token(_read(file), str(file))  # another replica made it first


def _read(file: Path) -> str:
    try:
        with file.open("rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"the MCP token file {file} can be read by other users (mode {stat.S_IMODE(mode):04o})",
                                  file=str(file), hint=f"chmod 600 {file}")
            text = stream.read().decode("utf-8", "replace").strip()
    except IsADirectoryError:
        raise ConfigError(f"the MCP token file {file} is a directory", file=str(file)) from None
    except PermissionError:
        raise ConfigError(f"cannot read the MCP token file {file}: permission denied", file=str(file)) from None
    return _checked(text, str(file))


def _checked(value: str, source: str) -> str:
    if len(value) < MIN_TOKEN_CHARS or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ConfigError(f"the MCP token from {source} is not usable: it needs at least {MIN_TOKEN_CHARS} printable "
                          "characters and no spaces", hint=f"make one with: {_GENERATE}")
    return value


def _create(file: Path, value: str) -> bool:
    """Write ``value`` to ``file`` (0600) unless it exists; whole or not at all, even with replicas racing."""
    try:
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = file.with_name(f".{file.name}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                stream.write(value + "\n")
            os.link(draft, file)  # fails if the file exists: never overwrites
        finally:
            draft.unlink(missing_ok=True)
    except FileExistsError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot create the MCP token file {file}: {exc.strerror or exc}", file=str(file),
                          hint="give a writable place with --token-file PATH, or the token in KOSMO_MCP_TOKEN") from None
    return True

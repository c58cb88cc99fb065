"""A script's source as the ``kosmo`` command reads it: bounded, UTF-8, as Lua's own ``lua`` takes files.

Files and standard input are read up to ``MAX_SOURCE_BYTES`` (``kosmo run /dev/zero`` stops
there); a UTF-8 byte-order mark is dropped and a first line starting with ``#`` (``#!``) is
turned into a comment, keeping every line number.
"""

from __future__ import annotations

from typing import BinaryIO

from ._limits import MAX_SOURCE_BYTES, MiB

__all__ = ["SourceError", "decode_source", "read_source"]

_BOM = b"\xef\xbb\xbf"


class SourceError(ValueError):
    """The source cannot be run: too large or not UTF-8 (the message names where and why)."""


def read_source(stream: BinaryIO, where: str) -> str:
    """Read a whole script from ``stream`` (a file or standard input), refusing one over the size cap."""
    data = stream.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(f"{where} is larger than {MAX_SOURCE_BYTES // MiB} MiB, the most a script may be; "
                          "keep data out of the source (fetch it from an integration, or split the script)")
    return decode_source(data, where)


def decode_source(data: bytes, where: str) -> str:
    """``data`` as script text: strict UTF-8 without a byte-order mark, a first ``#`` line commented out."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceError(f"{where} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                          "save it as UTF-8") from None
    return "--" + text[1:] if text.startswith("#") else text

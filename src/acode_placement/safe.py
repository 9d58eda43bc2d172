"""Untrusted text made safe to show, and secrets kept out of what is shown.

Every string a user or a probed machine supplies (a task name, a label, a GPU model,
a file name) is data. Before it reaches a terminal it goes through `printable`, which
writes control characters (ESC, CR, newline, DEL, the C1 range) and the Unicode
controls that reorder or hide text as visible escapes, so no value can move the
cursor, change colours, open a link, split a line or hide what follows it. The
command line also renders with rich's markup off, so `[/]` or `[link=...]` stay text.

Database URLs carry passwords, key paths and user names: `mask_url` replaces the
user-info and every query value before a URL is printed, logged or returned.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

# Format characters that reorder or hide text (bidirectional overrides and isolates,
# zero-width joiners are harmless and kept); a Trojan Source trick otherwise.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# ... and lone surrogates, which no terminal encoding can write
_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
MASK = "***"
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,39}$")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named:
        return named
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` as one line of plain characters: controls shown as `\\x1b`, `\\n`, `\\u202e`."""
    value = str(text)
    if value.isprintable() and not any(c in _BIDI for c in value):
        return value  # the common case, checked in C
    return _UNSAFE.sub(_escape, value)


def storable(text: str, *, nul: bool = False) -> str:
    """`text` as a database can hold it: a lone surrogate, which is what Python makes
    of bytes that are not UTF-8 and of a JSON `"\\udc80"`, and which no UTF-8 text
    can hold, written as its escape `\\udc80`; with `nul`, NUL too, as `\\x00`
    (PostgreSQL's text refuses it; SQLite keeps it as it is). Any other text as it is."""
    if nul and "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text  # the common case, checked in C
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def mask_url(url: str | None) -> str:
    """`url` without secrets: user-info as ***, every query value as ***.

    `postgresql+psycopg://app:pw@db:5432/h?sslkey=/k&password=x` becomes
    `postgresql+psycopg://***@db:5432/h?sslkey=***&password=***`. Host, port,
    database and the names of the query parameters stay, so a person can still
    tell which database is meant. Something that is not a URL is shown as
    `(unparsable URL)` rather than risk echoing a secret.
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(unparsable URL)"
    if not parts.scheme:
        return "(unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        bracketed = f"[{host}]" if ":" in host else host
        netloc = f"{MASK}@{bracketed}{port}"
    query = ""
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        names = [name if _PARAMETER.match(name) else MASK for name, _ in pairs]
        query = "?" + "&".join(f"{name}={MASK}" for name in names) if names else f"?{MASK}"
    shown = f"{parts.scheme}://{netloc}{parts.path}{query}"
    return printable(shown)


class UnsafeFileError(ValueError):
    """A file that is not a regular file, or is larger than allowed."""


def read_regular(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them.

    The file is opened without blocking and checked before it is read, so a FIFO, a
    device (`/dev/zero`) or a socket is refused at once (UnsafeFileError) instead of
    hanging or filling memory. OSError as `open` raises it (FileNotFoundError...).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    handle = os.open(path, flags)
    try:
        mode = os.fstat(handle).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise UnsafeFileError("not a regular file (a pipe, device or socket)")
        os.set_blocking(handle, True)
        with os.fdopen(handle, "rb", closefd=False) as file:
            raw = file.read(limit + 1)
    finally:
        os.close(handle)
    if len(raw) > limit:
        raise UnsafeFileError(f"too large: over {limit // (1024 * 1024) or 1} MiB")
    return raw

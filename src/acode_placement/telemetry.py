"""Logging set-up. The library logs through the standard `logging` module, so it is
silent until an application configures logging; the command line does that.

Events are structlog event dicts rendered at the last moment: JSON lines for
machines, aligned `key=value` lines for people. Whatever the format, values of
keys that name a secret are replaced before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from acode_placement.safe import mask_url, printable

_ROOT = "acode_placement"
logging.getLogger(_ROOT).addHandler(logging.NullHandler())

# Keys whose values are never logged, whoever passes them.
SECRET_KEYS = frozenset(
    {
        "password",
        "passphrase",
        "secret",
        "token",
        "access_key",
        "secret_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "credentials",
        "private_key",
        "authorization",
        "identity_file",
        "identityfile",
        "key_path",
        "sslkey",
        "sslcert",
        "sslpassword",
    }
)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask the values of secret-looking keys, and the secrets in
    URLs (user-info, query values) of keys that name a URL."""
    for key in list(event):
        lowered = key.lower()
        if lowered in SECRET_KEYS or lowered.endswith(("_token", "_secret", "_password")):
            event[key] = "***"
        elif (lowered == "url" or lowered.endswith("_url")) and isinstance(event[key], str):
            event[key] = mask_url(event[key])
    return event


def literal(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor for lines read by people: control characters in any text
    value shown as escapes, so that a logged name cannot drive the terminal."""
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = printable(value)
    return event


_SHARED: list[Any] = [
    structlog.stdlib.add_logger_name,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    redact,
]


def get_logger(name: str) -> Any:
    """A structlog logger whose events reach the stdlib logger `name` as event dicts."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def configure_logging(level: str = "warning", fmt: str = "json") -> None:
    """Send the package's log events to stderr: `json` lines, or `console` lines
    for people (`auto`: console on a terminal, JSON otherwise)."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=True)
    )
    logger = logging.getLogger(_ROOT)
    logger.setLevel(level.upper())
    for handler in [h for h in logger.handlers if getattr(h, "_acode", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    escape = [literal] if fmt == "console" else []  # JSON escapes controls itself
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *escape,
                renderer,
            ],
            foreign_pre_chain=_SHARED,
        )
    )
    handler._acode = True  # type: ignore[attr-defined]
    logger.addHandler(handler)

"""Logging set-up. The library logs through the standard `logging` module, so it is
silent until an application configures logging; the command line does that."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_ROOT = "acode_placement"
logging.getLogger(_ROOT).addHandler(logging.NullHandler())

_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    structlog.processors.JSONRenderer(sort_keys=True),
]


def get_logger(name: str) -> Any:
    """A structlog logger writing JSON events to the stdlib logger `name`."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=_PROCESSORS,
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def configure_logging(level: str = "warning") -> None:
    """Send the package's log events, one JSON object per line, to stderr."""
    logger = logging.getLogger(_ROOT)
    logger.setLevel(level.upper())
    if not any(getattr(h, "_acode", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._acode = True  # type: ignore[attr-defined]
        logger.addHandler(handler)

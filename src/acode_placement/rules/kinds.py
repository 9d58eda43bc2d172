"""What a kind of check is called and how it reads: its words, its cause name, how
hard a miss is to fix, and whether it is about where a task may run.

One `Kind` per check kind, declared once beside the rule that makes such checks
(`rules.builtin`, or a plug-in's own module) and looked up here by name. This module
holds the registry alone: no rule, no prose, no import of the rules themselves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acode_placement.models import Check


@dataclass(frozen=True, slots=True, eq=False)
class Kind:
    """A kind of check. `name` is what `Check.kind` holds (a `CheckKind` for the
    built-in ones, any other string for a plug-in's).

    - `words`: one check as a short phrase with its numbers, for a match and for a
      mismatch (`cpu 8 < 16`, `tool docker found`).
    - `cause`: the short name a failed check is counted under (`not enough CPU`), or
      a function of its wanted value and key when the name depends on them.
    - `severity`: how hard a miss is to fix, for naming the nearest miss: a
      different machine is needed (2), more of something (1), a setting differs (0).
    - `where`: a check about where a task may run (a mode, an option, a policy): a
      target failing only such checks makes the failure ModeRestricted.
    """

    name: str
    words: Callable[[Check], str]
    cause: str | Callable[[Any, str | None], str]
    severity: int = 0
    where: bool = False

    def cause_of(self, wanted: object, key: str | None) -> str:
        return self.cause if isinstance(self.cause, str) else self.cause(wanted, key)


_KINDS: dict[str, Kind] = {}
_LOCK = threading.Lock()


def register_kind(kind: Kind) -> Kind:
    """Make `kind` known by its name; a name already taken by another kind is refused."""
    with _LOCK:
        known = _KINDS.get(kind.name)
        if known is not None and known is not kind:
            raise ValueError(f"check kind {kind.name!r} is already declared")
        _KINDS[kind.name] = kind
    return kind


def unregister_kind(kind: Kind) -> None:
    with _LOCK:
        if _KINDS.get(kind.name) is kind:
            del _KINDS[kind.name]


def kind_of(name: str) -> Kind:
    """The declared kind of this name (every check made has one)."""
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"no check kind {name!r} is declared") from None

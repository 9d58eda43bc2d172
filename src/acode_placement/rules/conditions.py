"""How a custom value meets a condition: equality as text, sets, presence, numbers,
versions and patterns. Pure functions over one offered value; no prose.

Versions: a PEP 440 version compares as `packaging` has it (`535.104.05` is
535.104.5, so driver versions compare number by number); anything else compares by
its leading dotted number (`5.15.0-91-generic` as 5.15.0, `12.4.r12.4` as 12.4); a
value with no leading number is not a version and meets no specifier. Numbers in
YAML lose their trailing zeros (12.10 is 12.1): quote versions. Patterns run on
RE2, in time linear in the value, so no pattern can hang a decision.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import re2  # type: ignore[import-untyped]
from packaging.version import InvalidVersion, Version

from acode_placement.models.conditions import Condition, specifier
from acode_placement.rules.selectors import canonical

if TYPE_CHECKING:
    from acode_placement.models import Scalar

_LEADING = re.compile(r"v?(\d+(?:\.\d+)*)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# google-re2 ships no type information (hence the ignore on its import).
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the caller's one-line error, not a log


@functools.lru_cache(maxsize=1024)
def pattern(text: str) -> Any:
    """The compiled RE2 pattern; ValueError with RE2's reason when it does not compile."""
    try:
        return re2.compile(text, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None


@functools.lru_cache(maxsize=4096)
def version_of(value: str) -> Version | None:
    """The version a value states (see the module's words), or None."""
    try:
        return Version(value)
    except InvalidVersion:
        found = _LEADING.match(value.strip())
        return Version(found.group(1)) if found else None


def satisfies(spec: str, offered: Scalar) -> bool:
    """Whether the version a value states meets the specifier (pre-releases count)."""
    version = version_of(canonical(offered))
    return version is not None and specifier(spec).contains(version, prereleases=True)


def number_of(value: Scalar) -> float | None:
    """A number, or text that is one (labels are text); never a boolean."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def holds(wanted: Scalar | Condition, offered: Scalar | None) -> bool:
    """Whether the offered value (None: not set) meets what is wanted."""
    if not isinstance(wanted, Condition):
        return offered is not None and canonical(offered) == canonical(wanted)
    name, operand = wanted.operator
    if name == "exists":
        return (offered is not None) is operand
    if name == "notIn":
        return offered is None or canonical(offered) not in texts(operand)
    if offered is None:
        return False
    if name == "in":
        return canonical(offered) in texts(operand)
    if name == "version":
        return satisfies(operand, offered)
    if name == "regex":
        return pattern(operand).fullmatch(canonical(offered)) is not None
    number = number_of(offered)
    bound = float(operand)
    if number is None:
        return False
    if name == "gt":
        return number > bound
    if name == "gte":
        return number >= bound
    if name == "lt":
        return number < bound
    return number <= bound  # lte


def texts(values: tuple[Scalar, ...]) -> frozenset[str]:
    """The values as text, kept per values told apart by type ((1,) is not (True,))."""
    return _texts(tuple((type(value), value) for value in values))


@functools.lru_cache(maxsize=1024)
def _texts(typed: tuple[tuple[type, Scalar], ...]) -> frozenset[str]:
    return frozenset(canonical(value) for _, value in typed)

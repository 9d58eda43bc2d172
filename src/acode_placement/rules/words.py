"""Words of check kinds that several kinds share (amounts, equalities, versions) or
that take more than a line (custom values and their operators), and `declare`, which
makes a kind and keeps it for the registry. The kinds themselves are declared with
their rules (`rules.builtin`, `rules.gpus`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acode_placement.explain.format import num, scalar
from acode_placement.models import Check, CheckKind, Condition
from acode_placement.models.conditions import specifier
from acode_placement.rules.conditions import number_of, version_of
from acode_placement.rules.kinds import Kind
from acode_placement.rules.selectors import canonical

DECLARED: list[Kind] = []  # every built-in kind, for the registry (`rules.table`)


def declare(
    name: CheckKind,
    words: Callable[[Check], str],
    cause: str | Callable[[Any, str | None], str],
    *,
    severity: int = 0,
    where: bool = False,
) -> Kind:
    kind = Kind(name, words, cause, severity, where)
    DECLARED.append(kind)
    return kind


def amount(name: str, *, fractions: bool = False) -> Callable[[Check], str]:
    """`cpu 8 < 16`; with free capacity (the key) `cpu 2 free of 8 (...) < 4`."""

    def words(check: Check) -> str:
        ok, wanted, offered = check.ok, check.wanted, check.offered
        if offered is None:
            return f"{name} unknown (needs >= {num(wanted)})"
        if check.key:
            return f"{name} {num(offered)} free {check.key} {'>=' if ok else '<'} {num(wanted)}"
        text = f"{name} {num(offered)} {'>=' if ok else '<'} {num(wanted)}"
        if fractions and not ok and 0 < offered < 1:
            text += " (a fraction of one GPU)"
        return text

    return words


def equal(name: str) -> Callable[[Check], str]:
    """`os linux`; `os macos, not linux`; `os unknown (needs linux)`."""

    def words(check: Check) -> str:
        if check.ok:
            return f"{name} {check.offered}"
        if check.offered is None:
            return f"{name} unknown (needs {check.wanted})"
        return f"{name} {check.offered}, not {check.wanted}"

    return words


def version_words(name: str | None = None) -> Callable[[Check], str]:
    """`cuda 11.8 does not satisfy >=12.1`; `driver unknown (needs >=535)`. Without a
    name, the check's key names it (a tool: `python3 3.9.18 does not satisfy >=3.11`)."""

    def words(check: Check) -> str:
        named = name or check.key
        if check.offered is None:
            return f"{named} unknown (needs {check.wanted})"
        return versus(named, check.offered, check.wanted, check.ok)

    return words


def versus(name: str | None, offered: Any, spec: str, ok: bool) -> str:
    """A stated version against a specifier, in words."""
    shown = scalar(offered)
    if ok:
        return f"{name} {shown} satisfies {spec}"
    if version_of(canonical(offered)) is None:
        return f"{name} {shown} is not a version (needs {spec})"
    return f"{name} {shown} does not satisfy {spec}"


def version_cause(name: str) -> Callable[[Any, str | None], str]:
    """`CUDA too old` when the specifier only sets a floor, else `... not accepted`."""

    def cause(wanted: Any, key: str | None) -> str:
        if key == "unknown":
            return f"{name} version unknown"
        floors = isinstance(wanted, str) and all(
            spec.operator in (">=", ">", "~=") for spec in specifier(wanted)
        )
        return f"{name} too old" if floors else f"{name} version not accepted"

    return cause


def custom_words(check: Check) -> str:
    key, wanted, offered = check.key, check.wanted, check.offered
    if isinstance(wanted, Condition):
        return _condition_words(check.ok, key, wanted, offered)
    if check.ok:
        return f"{key}={scalar(offered)}"
    if offered is None:
        return f"{key} not set (needs {scalar(wanted)})"
    return f"{key} {scalar(offered)}, not {scalar(wanted)}"


def _condition_words(ok: bool, key: str | None, wanted: Condition, offered: Any) -> str:
    """`cuda 11.8 does not satisfy >=12.1`, `region eu-north-1 not in [a, b]`."""
    name, operand = wanted.operator
    if name == "exists":
        if offered is None:
            return f"{key} not set" + ("" if ok else " (must be set)")
        return f"{key} set ({scalar(offered)})" + ("" if ok else ", must not be")
    if name in ("in", "notIn"):
        choices = f"[{', '.join(scalar(v) for v in operand)}]"
        if offered is None:
            return f"{key} not set" + ("" if ok else f" (needs one of {choices})")
        if name == "notIn":
            if ok:
                return f"{key} {scalar(offered)} not in {choices}"
            return f"{key} {scalar(offered)} excluded (notIn {choices})"
        return f"{key} {scalar(offered)} {'in' if ok else 'not in'} {choices}"
    if offered is None:
        return f"{key} not set (needs {_needs(name, operand)})"
    shown = scalar(offered)
    if name == "version":
        return versus(key, offered, operand, ok)
    if name == "regex":
        return f"{key} {shown} {'matches' if ok else 'does not match'} {operand!r}"
    if number_of(offered) is None:
        return f"{key} {shown} is not a number (needs {_needs(name, operand)})"
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[name]
    return f"{key} {shown} {symbol if ok else 'not ' + symbol} {num(operand)}"


def _needs(name: str, operand: Any) -> str:
    if name == "regex":
        return f"a match of {operand!r}"
    symbol = {"gt": "> ", "gte": ">= ", "lt": "< ", "lte": "<= "}.get(name, "")
    return f"{symbol}{num(operand)}" if symbol else str(operand)

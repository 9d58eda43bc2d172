"""An operator on a custom value: `{version: ">=12.1"}`, `{in: [a, b]}`...

A custom requirement (or wish) is a scalar, matched by equality as before, or a
mapping with exactly one operator. This module validates what a user writes: one
operator, a known one, a value of the right kind, a version specifier `packaging`
accepts, a pattern RE2 compiles. How a condition is evaluated lives in
`rules.conditions`; its words beside the custom kind in `rules.builtin`.
"""

from __future__ import annotations

import difflib
import functools
from typing import Annotated, Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from acode_placement.models.base import Flag, Model, Number, Scalar

OPERATORS = ("in", "notIn", "exists", "gt", "gte", "lt", "lte", "version", "regex")
MAX_CHOICES = 256
MAX_PATTERN = 1024


def _version_spec(value: str) -> str:
    try:
        specifier(value)
    except InvalidSpecifier:
        raise ValueError(
            f"not a version specifier: {value!r} (write it like >=12.1 or >=535,<600)"
        ) from None
    return value


@functools.lru_cache(maxsize=1024)
def specifier(value: str) -> SpecifierSet:
    """The parsed specifier (kept: a task's specifier is asked of every target)."""
    return SpecifierSet(value)


def _pattern(value: str) -> str:
    from acode_placement.rules.conditions import pattern  # noqa: PLC0415 (imports re2)

    try:
        pattern(value)
    except ValueError as exc:
        raise ValueError(f"not a pattern RE2 accepts: {value!r} ({exc})") from None
    return value


VersionSpec = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_version_spec)]
Pattern = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN), AfterValidator(_pattern)]
Choices = Annotated[tuple[Scalar, ...], Field(min_length=1, max_length=MAX_CHOICES)]


class Condition(Model):
    """Exactly one operator on a custom value. `in`/`notIn`: one of these values
    (compared as text, as equality is); `exists`: set or not; `gt`/`gte`/`lt`/`lte`:
    a number; `version`: a version specifier; `regex`: the whole value matches."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    in_: Choices | None = Field(default=None, alias="in")
    not_in: Choices | None = None
    exists: Flag | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    version: VersionSpec | None = None
    regex: Pattern | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [name for name, value in self.operands() if value is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one operator ({', '.join(OPERATORS)})")
        return self

    def operands(self) -> tuple[tuple[str, Any], ...]:
        """Each operator with its value (None where not given), as a user writes them."""
        return (
            ("in", self.in_),
            ("notIn", self.not_in),
            ("exists", self.exists),
            ("gt", self.gt),
            ("gte", self.gte),
            ("lt", self.lt),
            ("lte", self.lte),
            ("version", self.version),
            ("regex", self.regex),
        )

    @functools.cached_property
    def operator(self) -> tuple[str, Any]:
        """The one operator given, with its value (found once: asked of every target)."""
        return next((name, value) for name, value in self.operands() if value is not None)


def _custom_value(value: Any) -> Any:
    """A mapping becomes a `Condition`, with a one-line error naming what is wrong."""
    if not isinstance(value, dict):
        return value
    # An operator given as null is not given (a dump that kept its None fields).
    value = {key: operand for key, operand in value.items() if operand is not None}
    keys = [str(key) for key in value]
    if len(keys) != 1:
        shown = ", ".join(keys) or "none"
        raise ValueError(f"give exactly one operator ({', '.join(OPERATORS)}); got {shown}")
    if keys[0] not in OPERATORS:
        close = difflib.get_close_matches(keys[0], OPERATORS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"unknown operator {keys[0]!r}; use {', '.join(OPERATORS)}{hint}")
    try:
        return Condition.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        text = str((error.get("ctx") or {}).get("error", error["msg"]))
        if text.startswith("Value error, "):
            text = text[len("Value error, ") :]
        raise ValueError(f"{keys[0]}: {text[0].lower()}{text[1:]}") from None


CustomValue = Annotated[Scalar | Condition, BeforeValidator(_custom_value)]

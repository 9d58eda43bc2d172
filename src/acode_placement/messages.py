"""Validation errors in a user's words: one line naming the key path, what is wrong
and, for a misspelt key or value, what was probably meant.

Used for files (with their lines, by `config`) and for HTTP bodies (by `service`).
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from acode_placement.explain import num

Path_ = tuple[str | int, ...]


def describe_error(errors: list[ErrorDetails], data: Any, model: type[BaseModel]) -> str:
    """The first of pydantic's errors as the files' errors read, without file and line:
    `requirements.memroyGb: unknown key; did you mean memoryGb?` (the HTTP API's words)."""
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path = _data_path(error["loc"], data)
    where = dotted(path) if path else "body"
    return f"{where}: {message(error, path, data, model)}"


def first_error(exc: ValidationError) -> ErrorDetails:
    """The error to show: an unknown key first, as it often explains a missing one."""
    errors = exc.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def describe(
    error: ErrorDetails, source: str, lines: Mapping[Path_, int], data: Any, model: type[BaseModel]
) -> str:
    path = _data_path(error["loc"], data)
    return f"{source}:{line_of(lines, path)}: {dotted(path)}: {message(error, path, data, model)}"


def _data_path(loc: tuple[str | int, ...], data: Any) -> Path_:
    """pydantic's location without the union tags it inserts (`targets.2.ssh.port`)."""
    path: list[str | int] = []
    here = data
    for part in loc:
        key = isinstance(here, dict) and part in here  # a key of the data, whatever it says
        tag = not key and isinstance(here, dict) and here.get("type") == part
        member = not key and isinstance(part, str) and ("[" in part or "(" in part)
        if tag or member:
            continue  # a union's tag or member type (`tuple[...]`), not a key of the file
        path.append(part)
        here = here.get(part) if isinstance(here, dict) else _index(here, part)
    return tuple(path)


def _index(value: Any, part: str | int) -> Any:
    if isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
        return value[part]
    return None


def message(error: ErrorDetails, path: Path_, data: Any, model: type[BaseModel]) -> str:
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        if not path:
            return "unknown key"
        return "unknown key" + did_you_mean(str(path[-1]), _allowed_keys(model, path[:-1], data))
    if kind == "missing":
        return "missing required key"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {num(bound)}, got {_show(given)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("enum", "literal_error"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(choices)}; got {_show(given)}" + did_you_mean(
            str(given), choices
        )
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return f"unknown type {_show(ctx.get('tag'))}; use {', '.join(tags)}" + did_you_mean(
            str(ctx.get("tag")), tags
        )
    if kind == "union_tag_not_found":
        return "missing key 'type' (local, ssh or ec2)"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    text = error["msg"]
    return f"{text[0].lower()}{text[1:]}, got {_show(given)}"


def did_you_mean(word: str, choices: list[str]) -> str:
    by_lower = {c.lower().replace("_", ""): c for c in choices}
    close = difflib.get_close_matches(word.lower().replace("_", ""), by_lower, n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]}?" if close else ""


def _allowed_keys(model: type[BaseModel], path: Path_, data: Any) -> list[str]:
    """The keys valid at `path` of a file validated by `model`."""
    candidates: list[type[BaseModel]] = [model]
    here = data
    for part in path:
        here = here.get(part) if isinstance(here, dict) else _index(here, part)
        if isinstance(part, int):
            continue
        found: list[type[BaseModel]] = []
        for cls in candidates:
            for name, info in cls.model_fields.items():
                if (info.alias or name) == part:
                    found.extend(_models_in(info.annotation))
        candidates = found
        if len(candidates) > 1 and isinstance(here, dict):
            tagged = [
                c
                for c in candidates
                if c.model_fields.get("type") is not None
                and c.model_fields["type"].default == here.get("type")
            ]
            candidates = tagged or candidates
    return sorted(
        {info.alias or name for cls in candidates for name, info in cls.model_fields.items()}
    )


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or args:
        return [m for arg in args for m in _models_in(arg)]
    return []


def line_of(lines: Mapping[Path_, int], path: Path_) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def dotted(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    # A task file's keys are named from inside `task:` (requirements.memoryGb).
    for root in ("task.", "placement."):
        if text.startswith(root):
            return text[len(root) :]
    return text or "(top)"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def kind_of(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"

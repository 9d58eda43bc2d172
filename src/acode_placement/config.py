"""YAML files -> models, with every error naming the file, the line and the key.

Files are read with PyYAML's safe constructor only, over libyaml's parser where
PyYAML has it (else PyYAML's own). The node tree gives each key its
line; pydantic validates; the first error becomes one line such as
`task.yaml:7: requirements.memroyGb: unknown key; did you mean memoryGb?`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acode_placement import heap
from acode_placement.errors import InputError
from acode_placement.messages import (
    Path_,
    describe,
    did_you_mean,
    dotted,
    first_error,
    kind_of,
    line_of,
    message,
)
from acode_placement.models import AnyTarget, PlacementSettings, Target, Task
from acode_placement.safe import UnsafeFileError, read_regular

M = TypeVar("M", bound=BaseModel)

ENV_PREFIX = "ACODE_PLACEMENT_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
TARGETS_ENV = ENV_PREFIX + "TARGETS"
TOKEN_ENV = ENV_PREFIX + "TOKEN"  # the HTTP service's bearer token
# Bounds on what a file may cost to read. A fleet of tens of thousands of targets
# fits; an alias bomb (a few lines that expand into billions of values) or a
# nesting a thousand deep does not.
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_VALUES = 2_000_000  # values once aliases are expanded
MAX_DEPTH = 64
_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
)


class TaskFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    task: Task


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    targets: list[Target] = Field(default_factory=list)


class SettingsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    placement: PlacementSettings = Field(default_factory=PlacementSettings)


SCHEMAS: dict[str, type[BaseModel]] = {
    "task": TaskFile,
    "targets": TargetsFile,
    "settings": SettingsFile,
}


@dataclass(frozen=True, slots=True)
class Loaded(Generic[M]):
    """A validated file, and where each of its keys was written."""

    value: M
    source: str
    lines: Mapping[Path_, int]

    def where(self, *path: str | int) -> str:
        """`file:line: dotted.key` for a key of this file, for error messages."""
        return f"{self.source}:{line_of(self.lines, path)}: {dotted(path)}"


# ----------------------------------------------------------------------- the files


def load_task(path: str | Path) -> Task:
    return read_task(path).value.task


def load_targets(path: str | Path) -> list[AnyTarget]:
    return list(read_targets(path).value.targets)


def load_settings(path: str | Path) -> PlacementSettings:
    return read_settings(path).value.placement


def read_task(path: str | Path) -> Loaded[TaskFile]:
    return parse(_read(Path(path)), str(path), TaskFile)


def read_targets(path: str | Path) -> Loaded[TargetsFile]:
    loaded = parse(_read(Path(path)), str(path), TargetsFile)
    first: dict[str, int] = {}
    for i, target in enumerate(loaded.value.targets):
        if target.id in first:
            at = line_of(loaded.lines, ("targets", first[target.id], "id"))
            raise InputError(
                f"{loaded.where('targets', i, 'id')}: duplicate id {target.id!r}"
                f" (first at line {at})"
            )
        first[target.id] = i
    return loaded


def read_settings(path: str | Path) -> Loaded[SettingsFile]:
    return parse(_read(Path(path)), str(path), SettingsFile)


def parse(text: str, source: str, model: type[M]) -> Loaded[M]:
    """Validate YAML text as `model`; raise `InputError` naming file, line and key."""
    data, lines = _compose(text, source)
    root = next(iter(model.model_fields))
    if data is None:
        raise InputError(f"{source}:1: empty file; expected a '{root}:' mapping")
    if not isinstance(data, dict):
        raise InputError(f"{source}:1: expected a '{root}:' mapping, not {kind_of(data)}")
    try:
        value = model.model_validate(data, by_name=False)
    except ValidationError as exc:
        raise InputError(describe(first_error(exc), source, lines, data, model)) from None
    return Loaded(value, source, lines)


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file's bytes, at most `limit` of them (see `safe.read_regular`);
    InputError naming the file when it is missing, not a regular file or too large."""
    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a YAML file") from None
    except UnsafeFileError as exc:
        raise InputError(f"{path}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _read(path: Path) -> str:
    raw = read_bounded(path)
    if b"\x00" in raw:
        raise InputError(f"{path}: binary file, not YAML")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 text (bad byte at offset {exc.start})"
        ) from None


# ------------------------------------------------------------------------ YAML nodes


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than MAX_DEPTH as it composes
    (its composer recurses once per level: deep enough, and Python's stack ends).
    Used where PyYAML was built without libyaml."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
            raise InputError(f"{self.source}:{line}: nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# libyaml's parser, PyYAML's safe constructor and resolver: the same values as
# `_Loader`, scanned and composed in C (a 10,000-target file: 1.2 s against 4.4 s).
# libyaml refuses nesting over 1,000 levels, so its composer's recursion stays
# shallow; `_size` refuses what nests deeper than MAX_DEPTH before anything
# recurses further.
# (PyYAML defines CSafeLoader exactly when it was built with libyaml.)
_CLoader: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"


def _loader(text: str, source: str) -> yaml.SafeLoader:
    if _CLoader is not None:
        return _CLoader(text)
    return _Loader(text, source)


def _compose(text: str, source: str) -> tuple[Any, Mapping[Path_, int]]:
    """The file's values, after its checks (`_size`), and where each key was written
    (found when first asked: only an error message or `config` asks)."""
    with heap.collector_paused():
        return _composed(text, source), _Lines(text, source)


def _composed(text: str, source: str) -> Any:
    try:
        loader = _loader(text, source)  # PyYAML's reader checks the characters here
    except yaml.reader.ReaderError as exc:
        raise _unreadable(exc, text, source) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _size(node, source, {})
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        if _LIBYAML_TOO_DEEP in problem:
            raise InputError(f"{source}:{line}: nested more than {MAX_DEPTH} levels deep") from None
        raise InputError(f"{source}:{line}: YAML error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # libyaml's reader: as it reads
        raise _unreadable(exc, text, source) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: YAML error: {exc}") from None
    finally:
        loader.dispose()


def _unreadable(exc: yaml.reader.ReaderError, text: str, source: str) -> InputError:
    """A character YAML does not allow (a control character, say), in one line with
    the line it is on: libyaml counts its position in UTF-8 bytes, PyYAML in
    characters."""
    if _CLoader is not None:
        line = text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
    else:
        line = text[: exc.position].count("\n") + 1
    character = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
    return InputError(
        f"{source}:{line}: YAML error: character U+{character:04X} is not allowed ({exc.reason})"
    )


def _size(
    node: yaml.Node,
    source: str,
    seen: dict[int, tuple[int, int]],
    level: int = 1,
    path: Path_ = (),
) -> tuple[int, int]:
    """How many values `node` (at nesting `level`, first met at `path`) stands for
    once its aliases are expanded, and how deep it nests then; each distinct node is
    counted once. Refuses, at the first in the file: a tag outside YAML's core schema,
    a recursive alias, a key given twice in a mapping, too many values and too deep a
    nesting (written, before going further down, or through aliases)."""
    known = seen.get(id(node))
    if known is not None:
        if known[0] < 0:
            raise InputError(f"{source}:{node.start_mark.line + 1}: recursive alias")
        return known
    if level > MAX_DEPTH:
        raise InputError(
            f"{source}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep"
        )
    seen[id(node)] = (-1, 0)  # in progress: meeting it again is a cycle
    _check_tag(node, source)
    # Each child with the step from `path` to it: a key, an index, or None (a key
    # node, or a mapping merged with `<<`, whose keys are where they are written).
    children: list[tuple[yaml.Node, str | int | None]] = []
    if isinstance(node, yaml.MappingNode):
        keys: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            children.append((key_node, None))
            if key == "<<":
                children.append((value_node, None))
                continue
            line = key_node.start_mark.line + 1
            if key in keys:
                raise InputError(
                    f"{source}:{line}: {dotted((*path, key))}: duplicate key"
                    f" (first at line {keys[key]})"
                )
            keys[key] = line
            children.append((value_node, key))
    elif isinstance(node, yaml.SequenceNode):
        children = list(zip(node.value, range(len(node.value)), strict=True))
    total, depth = 1, 1
    for child, step in children:
        if type(child) is yaml.ScalarNode and level < MAX_DEPTH:
            # a scalar (most of a file) is one value, one level: no call, no memo
            _check_tag(child, source)
            total, depth = total + 1, max(depth, 2)
            continue
        below_path = path if step is None else (*path, step)
        size, below = _size(child, source, seen, level + 1, below_path)
        total, depth = total + size, max(depth, below + 1)
    line = node.start_mark.line + 1
    if total > MAX_VALUES:
        raise InputError(
            f"{source}:{line}: too large: over {MAX_VALUES} values once aliases are expanded"
            " (an alias bomb?)"
        )
    if depth > MAX_DEPTH:
        raise InputError(f"{source}:{line}: nested more than {MAX_DEPTH} levels deep")
    seen[id(node)] = (total, depth)
    return total, depth


_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()  # the resolver both loaders use


def _implied(value: str) -> str:
    """The tag YAML's core schema gives a plain scalar written as `value`."""
    if len(value) > 64:  # (a short value is kept: a fleet says "ssh" thousands of times)
        return _resolved(value)
    return _resolved_short(value)


def _resolved(value: str) -> str:
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


_resolved_short = functools.lru_cache(maxsize=4096)(_resolved)


def _check_tag(node: yaml.Node, source: str) -> None:
    """Only the core schema's plain types, as written without a tag: `!!binary`,
    `!!set`, `!!python/...` and a tag that changes a value's type (`!!str 12`) are
    refused, so that what a file says is what it means."""
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        plain = node.style in (None, "")  # (the C composer says "" for plain)
        # a quoted scalar is a string (whatever it looks like), a plain one what it looks like
        ok = tag == (_implied(node.value) if plain else _STR)
    else:
        ok = tag in _CORE_TAGS
    if not ok or tag not in _CORE_TAGS:
        line = node.start_mark.line + 1
        raise InputError(f"{source}:{line}: YAML tag {tag!r} is not allowed; write the plain value")


class _Lines(Mapping[Path_, int]):
    """Where each key of a file was written, by its path: found when first asked, by
    composing the file's text again (it passed `_size`, so it is bounded). A file that
    loads is never asked: at 10,000 targets this walk took 0.3 s and its map 38 MB."""

    def __init__(self, text: str, source: str) -> None:
        self._text, self._source = text, source
        self._found: dict[Path_, int] | None = None

    def _lines(self) -> dict[Path_, int]:
        if self._found is None:
            found: dict[Path_, int] = {}
            with heap.collector_paused():
                loader = _loader(self._text, self._source)
                try:
                    node = loader.get_single_node()
                    if node is not None:
                        _walk(node, (), found)
                finally:
                    loader.dispose()
            self._found, self._text = found, ""
        return self._found

    def __getitem__(self, path: Path_) -> int:
        return self._lines()[path]

    def __iter__(self) -> Iterator[Path_]:
        return iter(self._lines())

    def __len__(self) -> int:
        return len(self._lines())


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key == "<<":  # merge key: the merged keys are walked where they are written
                _walk(value_node, path, lines)
                continue
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


# ------------------------------------------------------------------- finding files


@functools.cache  # reading the installed metadata takes milliseconds; it is asked per record
def package_version() -> str:
    """This package's installed version ("unknown" when run from a bare source tree)."""
    try:
        return metadata.version("acode-placement")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def find_file(explicit: str | Path | None, env: str, name: str) -> Path | None:
    """The file named on the command line, else in `$env`, else in the user's config dir."""
    return locate_file(explicit, env, name)[0]


def locate_file(explicit: str | Path | None, env: str, name: str) -> tuple[Path | None, str]:
    """`find_file`, and where the answer came from: the option, the variable, the
    user config dir, or nowhere (`none: ...` names the place looked in)."""
    if explicit is not None:
        return Path(explicit).expanduser(), "option"
    if value := os.environ.get(env):
        return Path(value).expanduser(), f"environment {env}"
    candidate = Path(platformdirs.user_config_dir("acode-placement")) / name
    if candidate.is_file():
        return candidate, "the user config dir"
    return None, f"none: no {candidate}"


def stray_environment(environ: Mapping[str, str]) -> list[str]:
    """One line for each `ACODE_PLACEMENT_*` variable nothing reads (a misspelt one
    would otherwise be ignored without a word), with the name it probably meant."""
    from acode_placement.discovery.cache import CACHE_ENV  # noqa: PLC0415

    known = {ENV_PREFIX + name.upper() for name in PlacementSettings.model_fields}
    known |= {CONFIG_ENV, TARGETS_ENV, TOKEN_ENV, CACHE_ENV}
    internal = ENV_PREFIX + "_"  # what a command hands its own worker processes
    return [
        f"environment {name}: no setting or file has this name, so it is ignored"
        f"{did_you_mean(name, sorted(known))}"
        for name in sorted(environ)
        if name.startswith(ENV_PREFIX) and not name.startswith(internal) and name not in known
    ]


def resolve_settings(config: str | Path | None) -> tuple[PlacementSettings, str | None]:
    """Settings from the file (if any), then `ACODE_PLACEMENT_*` variables over them.

    Returns the settings and the file they came from.
    """
    settings, path, _ = settings_with_origins(config)
    return settings, path


def settings_with_origins(
    config: str | Path | None,
) -> tuple[PlacementSettings, str | None, dict[str, str]]:
    """`resolve_settings`, and where each setting's value came from, by field name:
    `environment ACODE_PLACEMENT_X`, `FILE:LINE`, or `default`."""
    path = find_file(config, CONFIG_ENV, "placement.yaml")
    values: dict[str, Any] = {}
    origins = dict.fromkeys(PlacementSettings.model_fields, "default")
    if path is not None:
        loaded = read_settings(path)
        values = loaded.value.placement.model_dump(exclude_unset=True, by_alias=False)
        for name in values:
            alias = PlacementSettings.model_fields[name].alias or name
            origins[name] = f"{loaded.source}:{line_of(loaded.lines, ('placement', alias))}"
    for name in PlacementSettings.model_fields:
        env = ENV_PREFIX + name.upper()
        if env in os.environ:
            values[name] = os.environ[env]
            origins[name] = f"environment {env}"
    try:
        return PlacementSettings.model_validate(values), str(path) if path else None, origins
    except ValidationError as exc:
        error = exc.errors()[0]
        env = ENV_PREFIX + str(error["loc"][0]).upper()
        raise InputError(
            f"environment {env}: {message(error, error['loc'], values, PlacementSettings)}"
        ) from None

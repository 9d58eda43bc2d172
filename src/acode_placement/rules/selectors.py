"""How names compare: selectors of targets (ids, fleets, `label=value`) and the
affinity rules built on them, GPU model names, and custom values as YAML writes
them. Pure, no prose (the words are declared with each kind in `rules.builtin`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from acode_placement.models import Check, PlacementOptions, Preferences
from acode_placement.rules.base import Rule
from acode_placement.rules.kinds import Kind

if TYPE_CHECKING:
    from acode_placement.columns import Failing, FleetColumns
    from acode_placement.models import AnyTarget, Capabilities, Scalar
    from acode_placement.rules.base import Wanted, Wished

_VENDOR_PREFIX = re.compile(r"^(?:nvidia|amd|intel|apple|geforce|tesla)\s+")


def selects(entries: Iterable[str], target: AnyTarget) -> bool:
    """Whether any entry names the target: an id (or a fleet's id), or `label=value`."""
    for entry in entries:
        name, sep, value = entry.partition("=")
        if sep:
            if target.labels.get(name.strip()) == value.strip():
                return True
        elif target.id == entry or target.id.startswith(entry + "/"):
            return True
    return False


def model_matches(wanted: str, offered: str) -> bool:
    """GPU models compare case-insensitively, without vendor, as whole names.

    `A100` matches `A100-80GB` and `NVIDIA A100-SXM4-40GB`; `A10` matches neither
    `A100` nor `A10G`.
    """
    return _model_pattern(_normalise_model(wanted)).search(_normalise_model(offered)) is not None


@functools.lru_cache(maxsize=256)
def _model_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|[\s_/-]){re.escape(name)}(?:$|[\s_/-])")


@functools.lru_cache(maxsize=1024)
def _normalise_model(name: str) -> str:
    text = " ".join(name.lower().split())
    while (stripped := _VENDOR_PREFIX.sub("", text)) != text:
        text = stripped
    return text


def canonical(value: Scalar) -> str:
    """A label or custom value as text: `true`, `12` for 12.0, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Selects(Rule):
    """The target must be one the entries name (`matching.selects`): affinity."""

    def __init__(self, kind: Kind, *, wanted: Wanted, wished: Wished | None = None) -> None:
        self.kind = kind
        self.wanted = wanted
        self.wished = wished

    def ask(self, source: Any, options: PlacementOptions) -> Any:
        return tuple(self.wanted(source, options)) or None

    def wish(self, prefs: Preferences, options: PlacementOptions) -> Any:
        return None if self.wished is None else (tuple(self.wished(prefs)) or None)

    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        yield Check(self.kind.name, selects(ask, target), ask, target.id)

    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        return selects(ask, target)

    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        out.append((self.kind.name, ask, None, ~fleet.rows(self, ask, _selector(ask))))


class Avoids(Selects):
    """The target must be none the entries name: anti-affinity. A hard requirement
    speaks only when it excludes, naming the entry that did; a wish is one check."""

    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        hit = next((entry for entry in ask if selects((entry,), target)), None)
        if hit is not None:
            yield Check(self.kind.name, False, ask, target.id, hit)

    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        return not selects(ask, target)

    def wish_checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        yield Check(self.kind.name, not selects(ask, target), ask, target.id)

    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        out.append((self.kind.name, ask, None, fleet.rows(self, ask, _selector(ask))))


def _selector(entries: tuple[str, ...]) -> Callable[[AnyTarget, Capabilities], bool]:
    def row(target: AnyTarget, caps: Capabilities) -> bool:
        return selects(entries, target)

    return row

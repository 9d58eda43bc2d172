"""The tools rule: each tool a task names must be found on the target; a tool named
with a version (`{name: python3, version: ">=3.11"}`) must also state a version
that satisfies it. A missing tool fails as missing (not as old), and a tool whose
version could not be read fails as such (not as old either): three kinds, one rule.
What must not live here: the kinds' words (`rules.builtin`), NumPy, I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from acode_placement.models import Check, PlacementOptions, Preferences, ToolWanted
from acode_placement.rules.base import Rule
from acode_placement.rules.conditions import satisfies
from acode_placement.rules.kinds import Kind

if TYPE_CHECKING:
    from acode_placement.columns import Failing, FleetColumns
    from acode_placement.models import AnyTarget, Capabilities


class Tools(Rule):
    """`found` for a tool's presence, `version` for a version that does not satisfy
    the specifier, `unknown` for a version the tool did not state."""

    def __init__(
        self,
        found: Kind,
        version: Kind,
        unknown: Kind,
        *,
        wanted: Callable[[Any], tuple[str | ToolWanted, ...]],
        wished: Callable[[Preferences], tuple[str | ToolWanted, ...]],
    ) -> None:
        self.kind = found
        self.version = version
        self.unknown = unknown
        self.wanted = wanted
        self.wished = wished

    def ask(self, source: Any, options: PlacementOptions) -> Any:
        return tuple(self.wanted(source)) or None

    def wish(self, prefs: Preferences, options: PlacementOptions) -> Any:
        return tuple(self.wished(prefs)) or None

    def _check(self, entry: str | ToolWanted, caps: Capabilities) -> Check:
        name = entry if isinstance(entry, str) else entry.name
        if name not in caps.tools or isinstance(entry, str):
            return Check(self.kind.name, name in caps.tools, name, None, name)
        stated = caps.tool_versions.get(name)
        if stated is None:
            return Check(self.unknown.name, False, entry.version, None, name)
        return Check(
            self.version.name, satisfies(entry.version, stated), entry.version, stated, name
        )

    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        for entry in ask:
            yield self._check(entry, caps)

    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        tools = caps.tools
        for entry in ask:
            if isinstance(entry, str):  # the fast path's common case: a name alone
                if entry not in tools:
                    return False
            elif not self._check(entry, caps).ok:
                return False
        return True

    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        sets = fleet.category(self, _tool_sets)  # one column: the sets of tools found
        for entry in ask:
            name = entry if isinstance(entry, str) else entry.name
            missing = sets.fails(_has, name, False)
            out.append((self.kind.name, name, name, missing))
            if isinstance(entry, ToolWanted):
                stated = fleet.category(self, _stated(name), name)
                old = stated.fails(_satisfied, entry.version, True)  # not stated: below
                unknown = ~missing & stated.missing
                out.append((self.version.name, entry.version, name, ~missing & old))
                out.append((self.unknown.name, entry.version, name, unknown))


def _tool_sets(target: AnyTarget, caps: Capabilities) -> tuple[str, ...]:
    return caps.tools


def _has(tools: tuple[str, ...] | None, name: str) -> bool:
    return tools is not None and name in tools


def _satisfied(stated: str, spec: str) -> bool:
    return satisfies(spec, stated)


def _stated(name: str) -> Callable[[AnyTarget, Capabilities], str | None]:
    def read(target: AnyTarget, caps: Capabilities) -> str | None:
        return caps.tool_versions.get(name)

    return read

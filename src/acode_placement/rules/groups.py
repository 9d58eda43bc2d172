"""`Group`: checks that mean something only when a thing is there at all (a GPU's
type, model, memory, count and versions under "has a GPU"), and how a group sees a
target offering several kinds of its thing (`Pool`: MIG instances, mixed cards).
What must not live here: the declarations (`rules.builtin`), NumPy, I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from acode_placement.models import Check, PlacementOptions, Preferences
from acode_placement.rules.base import Rule
from acode_placement.rules.kinds import Kind

if TYPE_CHECKING:
    from acode_placement.columns import Failing, FleetColumns
    from acode_placement.models import AnyTarget, Capabilities
    from acode_placement.rules.base import Wanted, Wished


class Pool(Protocol):
    """How a group sees a target offering several kinds of its thing."""

    def applies(self, target: AnyTarget, caps: Capabilities) -> bool:
        """Whether this target offers several kinds (and so is seen through `view`)."""
        ...

    def view(self, target: AnyTarget, caps: Capabilities, ask: Any) -> Capabilities:
        """The capabilities as this ask sees them."""
        ...


class Group(Rule):
    """Checks that mean something only when a thing is there at all.

    Without it (`present` false), one mismatch of the group's own kind, wanted
    `absent(wanted)`, offered 0; with it, each part's checks. The parts read their
    wanted values from the group's (a GPU requirement), not from the task. As a wish
    the group is one check: met when present and every part passes.

    With `pool`, a target offering several kinds of the thing (MIG instances, mixed
    cards) is seen as `pool(target, caps, ask)` says for this ask (the kinds that
    fit, pooled); the columns check such rows one by one (they are few), with the
    same `checks`."""

    def __init__(
        self,
        kind: Kind,
        *,
        wanted: Wanted,
        present: Callable[[AnyTarget, Capabilities], bool],
        absent: Callable[[Any], Any],
        whole: Callable[[AnyTarget, Capabilities], Any],
        parts: tuple[Rule, ...],
        wished: Wished | None = None,
        pool: Pool | None = None,
    ) -> None:
        self.kind = kind
        self.wanted = wanted
        self.present = present
        self.absent = absent
        self.whole = whole
        self.parts = parts
        self.wished = wished
        self.pool = pool

    def _asked(self, wanted: Any, options: PlacementOptions) -> Any:
        if wanted is None:
            return None
        asked = tuple((p, a) for p in self.parts if (a := p.ask(wanted, options)) is not None)
        return wanted, asked

    def ask(self, source: Any, options: PlacementOptions) -> Any:
        return self._asked(self.wanted(source, options), options)

    def wish(self, prefs: Preferences, options: PlacementOptions) -> Any:
        return None if self.wished is None else self._asked(self.wished(prefs), options)

    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        wanted, parts = ask
        if self.pool is not None:
            caps = self.pool.view(target, caps, ask)
        if not self.present(target, caps):
            yield Check(self.kind.name, False, self.absent(wanted), 0)
            return
        for part, asked in parts:
            yield from part.checks(asked, target, caps, cost)

    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        if self.pool is not None:
            caps = self.pool.view(target, caps, ask)
        if not self.present(target, caps):
            return False
        return all(part.passes(asked, target, caps, cost) for part, asked in ask[1])

    def wish_checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        ok = self.passes(ask, target, caps, cost)
        if self.pool is not None:
            caps = self.pool.view(target, caps, ask)
        yield Check(self.kind.name, ok, ask[0], self.whole(target, caps))

    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        wanted, parts = ask
        present = fleet.rows(self, None, self.present)
        mine: list[Failing] = [(self.kind.name, self.absent(wanted), None, ~present)]
        found: list[Failing] = []
        for part, asked in parts:
            part.failing(asked, fleet, minutes, found)
        mine.extend((kind, shown, key, present & fails) for kind, shown, key, fails in found)
        if self.pool is not None:
            pooled = fleet.rows(self, "pooled", self.pool.applies)
            if pooled.any():  # a few rows with several kinds: as their own checks say
                self._one_by_one(ask, fleet, pooled.nonzero()[0].tolist(), mine)
        out.extend(mine)

    def _one_by_one(
        self, ask: Any, fleet: FleetColumns, rows: list[int], entries: list[Failing]
    ) -> None:
        """Set these rows of the entries' masks (fresh arrays) from the rows' checks."""
        for row in rows:
            target, caps = fleet.targets[row], fleet.caps[row]
            failed = {(c.kind, c.key) for c in self.checks(ask, target, caps, None) if not c.ok}
            for kind, _, key, mask in entries:
                mask[row] = (kind, key) in failed

    def columnar(self, ask: Any) -> bool:
        return all(part.columnar(asked) for part, asked in ask[1])

"""A fleet compiled into columns, so one decision rules out thousands of targets in a
few vector operations instead of a Python loop over every target.

`FleetColumns.failing` gives, as one mask per check, every check the task's rules
make (`rules.plan_for(...).failing`): each rule compares its column of offered
values the way it compares one target's value, so nothing here restates a rule.
The survivors are the targets that fail none of them; the same masks count the
causes of mismatch for an explanation (`misses`) without building a single check.
A plug-in's rule without a column makes `exact` false: the survivors are then
checked one by one. The property tests hold all of it to the reference path on
random fleets.

Columns are built on first use, once per fleet, and reused while the same target and
capability objects come back (both are immutable). NumPy lives here, never in the
rules: a small fleet decides without importing it.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from acode_placement import explain
from acode_placement.models import (
    Capabilities,
    Check,
    Known,
    Misses,
    PlacementOptions,
    TaskRequirements,
)
from acode_placement.rules import Rule, kind_of, plan_for
from acode_placement.rules.base import exact

T = TypeVar("T")

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from acode_placement.models import AnyTarget

    Floats = NDArray[np.float64]
    Mask = NDArray[np.bool_]
    # A check as `explain` needs it (kind, wanted, key), and the targets failing it.
    Failing = tuple[str, object, str | None, Mask]

_CAPABILITIES = attrgetter("capabilities")
_COUNTED = 256  # cause counts kept per compiled fleet (distinct task shapes)
_KEPT = 512  # answers kept per compiled fleet (distinct asks of category and row rules)


def _keep(kept: dict[Hashable, Mask], lock: threading.Lock, key: Hashable, mask: Mask) -> Mask:
    """Keep `mask` under `key`, among the last `_KEPT` (forgetting all when full)."""
    with lock:
        if len(kept) >= _KEPT:
            kept.clear()
        kept[key] = mask
    return mask


def _floats(values: list[Any]) -> Floats:
    """A float column, NaN where the value is not known."""
    column: Floats = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return column


class Category:
    """A column of values that repeat: each row's code and the distinct values. A
    comparison runs once per distinct value and its answers spread over the rows;
    the answers are kept per wanted value (the column never changes)."""

    __slots__ = ("_answers", "_lock", "codes", "distinct", "missing")

    def __init__(self, values: list[Any]) -> None:
        # By `exact` keys: 1, 1.0 and True are one key to a dict, but not one value.
        seen: dict[Hashable, int] = {}
        distinct: list[Any] = []
        codes = []
        for value in values:
            if value is None:
                codes.append(-1)
                continue
            code = seen.setdefault(exact(value), len(seen))
            if code == len(distinct):
                distinct.append(value)
            codes.append(code)
        self.codes = np.array(codes, dtype=np.int64)
        self.distinct = distinct
        self.missing = self.codes < 0  # the rows whose value is not known
        self._answers: dict[Hashable, Mask] = {}
        self._lock = threading.Lock()

    def fails(self, test: Callable[[Any, Any], bool], wanted: Any, unknown_ok: bool) -> Mask:
        """The rows failing `test(offered, wanted)`; a row whose value is not known
        passes exactly when `unknown_ok`."""
        answer = (exact(wanted), unknown_ok)
        failed = self._answers.get(answer)
        if failed is None:
            table = [bool(test(value, wanted)) for value in self.distinct]
            ok = np.array([*table, unknown_ok], dtype=np.bool_)[self.codes]  # -1: the last
            failed = _keep(self._answers, self._lock, answer, ~ok)
        return failed


class Exclusions(NamedTuple):
    """See `FleetColumns.exclusions`."""

    kinds: tuple[str | None, ...]
    key: tuple[tuple[int, str], ...]


class FleetColumns:
    """The targets' capabilities as NumPy columns, one row per target."""

    __slots__ = (
        "_answers",
        "_columns",
        "_counted",
        "_exclusions",
        "_lock",
        "caps",
        "known",
        "rate",
        "size",
        "targets",
    )

    def __init__(self, targets: Sequence[AnyTarget], caps: Sequence[Capabilities]) -> None:
        self.targets = tuple(targets)
        self.caps = tuple(caps)
        self.size = len(self.targets)
        # What one hour costs: unknown is NaN on a cloud target (fails any maxCost) and
        # 0 on an owned machine, as `matching.estimated_cost` has it.
        self.rate = np.array(
            [
                math.nan
                if t.hourly_rate is None and t.is_cloud
                else (t.hourly_rate if t.hourly_rate is not None else 0.0)
                for t in self.targets
            ],
            dtype=np.float64,
        )
        self._columns: dict[Hashable, Any] = {}
        self._answers: dict[Hashable, Mask] = {}
        self._counted: dict[Hashable, Counter[str]] = {}
        self._exclusions: dict[bool, tuple[tuple[Known, ...], Exclusions]] = {}
        self._lock = threading.Lock()
        self.known: tuple[Known, ...] = ()  # the last Known objects seen for these caps

    def same(self, targets: Sequence[AnyTarget], known: Sequence[Known]) -> bool:
        """Whether these are exactly the objects compiled (identity, not equality)."""
        if targets is self.targets and known is self.known:  # the very tuples: immutable
            return True
        if len(targets) != self.size or not all(map(is_, targets, self.targets)):
            return False
        if len(known) == self.size and all(map(is_, known, self.known)):
            return True
        if not all(map(is_, map(_CAPABILITIES, known), self.caps)):
            return False
        self.known = tuple(known)  # new Known objects over the same capabilities
        return True

    def derived(
        self,
        key: Hashable,
        build: Callable[[tuple[AnyTarget, ...], tuple[Capabilities, ...]], T],
    ) -> T:
        """`build(targets, caps)`, made on first use and kept with the columns."""
        kept = self._columns.get(("derived", key))
        if kept is None:
            kept = self._columns[("derived", key)] = build(self.targets, self.caps)
        return kept

    def exclusions(self, verified_only: bool) -> Exclusions:
        """Per target, the kind of the check that rules it out before its
        requirements (`Known.excluded`) or None, and the ruled-out ones as a key:
        kept while the Known objects are these (a decision on a fleet of 10,000 would
        otherwise ask each of them on every placement, for the causes it counts)."""
        kept = self._exclusions.get(verified_only)
        if kept is not None and kept[0] is self.known:
            return kept[1]
        kinds = tuple(
            None if (check := facts.excluded(verified_only)) is None else check.kind
            for facts in self.known
        )
        found = Exclusions(kinds, tuple((i, k) for i, k in enumerate(kinds) if k is not None))
        self._exclusions[verified_only] = (self.known, found)
        return found

    @staticmethod
    def exact(req: TaskRequirements, options: PlacementOptions | None = None) -> bool:
        """Whether `survivors` alone decides eligibility (no rule left to check)."""
        return plan_for(req, options or _DEFAULTS).exact

    def costs(self, indices: Sequence[int], minutes: float) -> list[float | None]:
        """`matching.estimated_cost` of these targets (the same float operations)."""
        costs: list[float] = self.cost_rows(indices, minutes).tolist()
        # NaN (not known) is the one value unequal to itself: no call per target
        return [None if cost != cost else cost for cost in costs]  # noqa: PLR0124

    def cost_rows(self, indices: Sequence[int], minutes: float) -> Floats:
        """`costs` as a column (NaN: not known)."""
        column: Floats = self.rate[indices] * minutes / 60.0
        return column

    def cost_column(self, minutes: float) -> Floats:
        """What one run of `minutes` costs on each target (NaN: not known)."""
        column: Floats = self.rate * minutes / 60.0
        return column

    def number(
        self,
        rule: Rule,
        read: Callable[[AnyTarget, Capabilities], Any],
        key: Hashable = None,
    ) -> Floats:
        """The floats `read` finds on each target (NaN where not known), built on first
        use and kept per rule (and key, for a rule with several columns)."""
        column: Floats = self._column(rule, key, read, _floats)
        return column

    def category(
        self,
        rule: Rule,
        read: Callable[[AnyTarget, Capabilities], Any],
        key: Hashable = None,
    ) -> Category:
        """The values `read` finds on each target, as a `Category`, built on first use
        and kept per rule (and key)."""
        column: Category = self._column(rule, key, read, Category)
        return column

    def _column(
        self,
        rule: Rule,
        key: Hashable,
        read: Callable[[AnyTarget, Capabilities], Any],
        build: Callable[[list[Any]], Any],
    ) -> Any:
        name = rule if key is None else (rule, key)
        column = self._columns.get(name)
        if column is None:
            column = build([read(t, c) for t, c in zip(self.targets, self.caps, strict=True)])
            with self._lock:
                self._columns[name] = column
        return column

    def rows(
        self, rule: Rule, ask: Hashable, test: Callable[[AnyTarget, Capabilities], bool]
    ) -> Mask:
        """Which targets `test` holds for, one row at a time, kept per rule and ask."""
        answer = (rule, exact(ask)) if ask is not None else rule
        ok = self._answers.get(answer)
        if ok is None:
            ok = self.keep(
                answer,
                np.fromiter(
                    (test(t, c) for t, c in zip(self.targets, self.caps, strict=True)),
                    dtype=np.bool_,
                    count=self.size,
                ),
            )
        return ok

    def kept(self, answer: Hashable) -> Mask | None:
        """A mask kept for this answer's key (a rule and what it was asked), if any."""
        return self._answers.get(answer)

    def keep(self, answer: Hashable, mask: Mask) -> Mask:
        """Keep a mask under this key (the last `_KEPT` asks; the fleet never changes)."""
        return _keep(self._answers, self._lock, answer, mask)

    def failing(
        self, req: TaskRequirements, options: PlacementOptions, minutes: float
    ) -> list[Failing]:
        """Each check the task's rules make, in their order, with the targets that
        fail it; a value not known fails as None fails there."""
        return plan_for(req, options).failing(self, minutes)

    def survivors(self, failing: Sequence[Failing]) -> list[int]:
        """Indices of the targets that fail none of these checks."""
        if not failing:
            return list(range(self.size))
        failed = np.logical_or.reduce([entry[3] for entry in failing])
        result: list[int] = np.flatnonzero(~failed).tolist()
        return result

    def misses(self, failing: Sequence[Failing], excluded: Sequence[str | None]) -> Misses:
        """What `explain.misses` finds from every target's checks (the causes of
        mismatch, the nearest miss, whether a target failed only on where the task may
        run), from the masks. `excluded` gives, per target, the kind of the one check
        that rules it out before its requirements (`Known.excluded`), or None."""
        entries = self._entries(failing, excluded)
        count = np.zeros(self.size, dtype=np.int64)
        severity = np.zeros(self.size, dtype=np.int64)
        where = np.zeros(self.size, dtype=np.int64)
        for kind, wanted, key, mask in entries:
            count += mask
            severity += explain.severity(Check(kind, False, wanted, None, key)) * mask
            if kind_of(kind).where:
                where += mask
        # the fewest misses, the easiest to fix; a target never probed comes last
        lost = np.array([kind is not None for kind in excluded], dtype=np.bool_)
        ranked = np.lexsort((np.arange(self.size), severity, count, lost))
        only_where = bool(((count > 0) & (count == where)).any())
        return Misses(self._causes(entries), int(ranked[0]) if self.size else -1, only_where)

    def causes(
        self,
        failing: Sequence[Failing],
        excluded: Sequence[str | None],
        minutes: float,
        excluded_key: tuple[tuple[int, str], ...] | None = None,
    ) -> Counter[str]:
        """`misses(...).causes` alone (what the metrics and the log of every placement
        count), without the nearest miss's ranking. The masks follow from the checks
        (kind, wanted, key), the runtime the costs are for and which targets are
        excluded, so the count is kept for the next decision that asks the same of
        these columns (they never change)."""
        key = (
            tuple(entry[:3] for entry in failing),
            minutes,
            excluded_key
            if excluded_key is not None
            else tuple((i, kind) for i, kind in enumerate(excluded) if kind is not None),
        )
        try:
            counted = self._counted.get(key)
        except TypeError:  # a wanted value that cannot be a key: counted each time
            return self._causes(self._entries(failing, excluded))
        if counted is None:
            counted = self._causes(self._entries(failing, excluded))
            if len(self._counted) >= _COUNTED:
                self._counted.clear()
            self._counted[key] = counted
        return counted  # shared: read, never changed (explain.cause_counts copies it)

    def _entries(self, failing: Sequence[Failing], excluded: Sequence[str | None]) -> list[Failing]:
        """The checks with the targets failing each; a target ruled out before its
        requirements (unknown, or unverified under requireVerified) fails that one
        check alone (what it lacks is not known, or not trusted, either)."""
        if not any(kind is not None for kind in excluded):
            return list(failing)
        kinds: dict[str, list[int]] = {}
        for index, kind in enumerate(excluded):
            if kind is not None:
                kinds.setdefault(kind, []).append(index)
        out: list[Failing] = []
        for kind, rows in kinds.items():
            mask = np.zeros(self.size, dtype=np.bool_)
            mask[rows] = True
            out.append((kind, None, None, mask))
        decided = np.array([kind is None for kind in excluded], dtype=np.bool_)
        return out + [(kind, wanted, key, mask & decided) for kind, wanted, key, mask in failing]

    @staticmethod
    def _causes(entries: Sequence[Failing]) -> Counter[str]:
        if not entries or not len(entries[0][3]):  # nothing checked, or no target
            return Counter()
        groups: dict[str, list[int]] = {}
        for order, (kind, wanted, key, _) in enumerate(entries):
            groups.setdefault(explain.cause_name(kind, wanted, key), []).append(order)
        masks = np.stack([entry[3] for entry in entries])
        if len(groups) < len(entries):  # a cause several checks show: a target once
            masks = np.stack([np.logical_or.reduce(masks[members]) for members in groups.values()])
        totals = np.count_nonzero(masks, axis=1).tolist()
        firsts = masks.argmax(axis=1).tolist()
        # A Counter over the targets in order meets each cause first at its first
        # target, and there at its first check: most_common() keeps that order on ties.
        met = []
        for (name, members), total, first in zip(groups.items(), totals, firsts, strict=True):
            if total:
                order = min(order for order in members if entries[order][3][first])
                met.append(((first, order), name, total))
        met.sort()
        return Counter({name: total for _, name, total in met})


_DEFAULTS = PlacementOptions()


class ColumnCache:
    """The last few fleets compiled, found again by the identity of their objects.

    Holding the objects keeps their ids from being reused while they are cached.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._fleets: list[FleetColumns] = []
        self._lock = threading.Lock()

    def get(self, targets: Sequence[AnyTarget], known: Sequence[Known]) -> FleetColumns:
        for fleet in list(self._fleets):
            if fleet.same(targets, known):
                return fleet
        fleet = FleetColumns(targets, [facts.capabilities for facts in known])
        fleet.known = tuple(known)
        with self._lock:
            self._fleets = [fleet, *self._fleets[: self.size - 1]]
        return fleet

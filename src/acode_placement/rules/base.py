"""The shapes a requirement rule takes, and what each derives from its declaration.

A rule states once where the wanted value is read from the task (and from the
task's preferences, when it can be a wish), where the offered value is read from a
target, and the comparison between them. From that one statement each shape
derives the three ways a decision asks the question:

- `checks`: the `Check`s of one target, with the numbers (the reference, and what
  an explanation quotes);
- `passes`: the same answer without making a check (the fast path);
- `failing`: one mask per check over a whole compiled fleet (`columns`), made by
  applying the same comparison to a column of the offered values.

Shapes: `Compare` (one wanted value against one offered value), `Each` (one check
per item: custom keys); `groups` adds `Group` (checks that mean something only when
a thing is there at all: a GPU's type, model, memory and count), `selectors` adds
`Selects` and `Avoids` (affinity and anti-affinity by target id and labels) and
`tools` the tools rule.

What must not live here: the declarations themselves (`rules.builtin`), prose
(each kind's words are declared with it), NumPy (the column work is
`columns.FleetColumns`'s; small fleets never import NumPy), I/O.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from acode_placement.models import Check, PlacementOptions, Preferences
from acode_placement.rules.kinds import Kind

if TYPE_CHECKING:
    from acode_placement.columns import Failing, FleetColumns
    from acode_placement.models import AnyTarget, Capabilities

    # What a rule reads of a target: the target, its capabilities, one run's cost.
    Offered = Callable[[AnyTarget, Capabilities, float | None], Any]
    # What a rule reads of the task (or of its group's wanted value) and the options.
    Wanted = Callable[[Any, PlacementOptions], Any]
    Wished = Callable[[Preferences], Any]
    Test = Callable[[Any, Any], bool]


class Values(enum.Enum):
    """How a rule's offered values become a column.

    NUMBER: floats, unknown as NaN; the comparison runs on the whole column at once,
    so it must be one NumPy applies elementwise and that is false on NaN (an ordered
    comparison: `operator.ge`, `operator.le`, `operator.gt`, `operator.lt`).
    CATEGORY: each distinct value is compared once and the answers spread over the
    rows; any comparison works (equality, a GPU model's name, a tool in a set).
    ROWS: the comparison runs on every row (values that are nearly all distinct);
    the offered value must not depend on a run's cost.
    None (as a rule's `values`): no column; the survivors are checked one by one.
    """

    NUMBER = "number"
    CATEGORY = "category"
    ROWS = "rows"


class Rule(abc.ABC):
    """One requirement kind. `ask` reads what one decision asks of it (None: not
    asked); the other methods take that ask, so a task is read once per decision."""

    kind: Kind

    @abc.abstractmethod
    def ask(self, source: Any, options: PlacementOptions) -> Any:
        """The wanted value (None when the task does not ask this)."""

    def wish(self, prefs: Preferences, options: PlacementOptions) -> Any:
        """The wished value (None: not wished, or this rule cannot be a wish)."""
        return None

    @abc.abstractmethod
    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        """The checks of one target: matches and mismatches, with the numbers."""

    @abc.abstractmethod
    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        """Whether `checks` would find no mismatch, without making a check."""

    def wish_checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        """The checks of a wish (each one counts toward the preferences met)."""
        return self.checks(ask, target, caps, cost)

    @abc.abstractmethod
    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        """Append each check `checks` makes, in its order, as (kind, wanted, key) with
        the mask of the fleet's targets that fail it."""

    def columnar(self, ask: Any) -> bool:
        """Whether `failing` can answer this ask (else survivors are checked one by one)."""
        return True


def exact(value: Any) -> Hashable:
    """A key that tells apart values Python finds equal (1, 1.0 and True), for the
    answers a compiled fleet keeps per wanted value."""
    if isinstance(value, tuple | list):
        return tuple(exact(item) for item in value)
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return (type(value), value)
    return (type(value), repr(value))  # a model: its fields as written, 1 not True


def read(name: str) -> Callable[[Any, PlacementOptions], Any]:
    """A reader of one field of the task (or of its group's wanted value)."""

    def reader(source: Any, options: PlacementOptions) -> Any:
        return getattr(source, name)

    return reader


def wished(name: str) -> Callable[[Preferences], Any]:
    """A reader of one field of the task's preferences."""

    def reader(prefs: Preferences) -> Any:
        return getattr(prefs, name)

    return reader


def capability(name: str) -> Offered:
    """A reader of one field of a target's capabilities."""

    def reader(target: AnyTarget, caps: Capabilities, cost: float | None) -> Any:
        return getattr(caps, name)

    return reader


def _same(ask: Any) -> Any:
    return ask


def _no_key(ask: Any) -> None:
    return None


class Compare(Rule):
    """One check: the offered value against the wanted one by `test(offered, wanted)`.

    An offered value of None (not known) fails, or, with `unknown_passes`, makes no
    check at all (a limit nobody declared). With `failures_only` a met check is not
    shown (a policy says only when it excludes). `shown` and `key` give the check's
    wanted value and key from the ask. `column` computes the NUMBER column itself
    when the offered value depends on the decision (a run's cost on its runtime).
    With `unknown_key`, a check failed because the value is not known carries that
    key, so it is counted under its own cause (`CUDA version unknown`, not `CUDA too
    old`); the key must mean nothing else to the kind's words.
    """

    def __init__(
        self,
        kind: Kind,
        *,
        wanted: Wanted,
        offered: Offered,
        test: Test,
        values: Values | None = Values.NUMBER,
        wished: Wished | None = None,
        unknown_passes: bool = False,
        failures_only: bool = False,
        shown: Callable[[Any], Any] = _same,
        key: Callable[[Any], str | None] = _no_key,
        column: Callable[[FleetColumns, float], Any] | None = None,
        unknown_key: str | None = None,
    ) -> None:
        self.kind = kind
        self.wanted = wanted
        self.offered = offered
        self.test = test
        self.values = values
        self.wished = wished
        self.unknown_passes = unknown_passes
        self.failures_only = failures_only
        self.shown = shown
        self.key = key
        self.column = column
        self.unknown_key = unknown_key
        self._plain = shown is _same and key is _no_key and unknown_key is None

    def ask(self, source: Any, options: PlacementOptions) -> Any:
        return self.wanted(source, options)

    def wish(self, prefs: Preferences, options: PlacementOptions) -> Any:
        return None if self.wished is None else self.wished(prefs)

    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        offered = self.offered(target, caps, cost)
        key = self.key(ask)
        if offered is None:
            if self.unknown_passes:
                return
            ok = False
            key = self.unknown_key or key
        else:
            ok = self.test(offered, ask)
        if not (ok and self.failures_only):
            yield Check(self.kind.name, ok, self.shown(ask), offered, key)

    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        offered = self.offered(target, caps, cost)
        if offered is None:
            return self.unknown_passes
        return self.test(offered, ask)

    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        values = self.values
        if values is Values.NUMBER:
            # The answer for this wanted value is kept: the column never changes.
            answer = (self, exact(ask), None if self.column is None else minutes)
            fails = fleet.kept(answer)
            if fails is None:
                fails = fleet.keep(answer, self._number_fails(ask, fleet, minutes))
        elif values is Values.CATEGORY:
            fails = fleet.category(self, self._row).fails(self.test, ask, self.unknown_passes)
        elif values is Values.ROWS:

            def row(target: AnyTarget, caps: Capabilities) -> bool:
                return self.passes(ask, target, caps, None)

            fails = ~fleet.rows(self, ask, row)
        else:
            raise TypeError(f"{self.kind.name} has no column")
        if self._plain:
            out.append((self.kind.name, ask, None, fails))
        elif self.unknown_key is None:
            out.append((self.kind.name, self.shown(ask), self.key(ask), fails))
        else:
            unknown = fleet.rows(self, None, self._unknown)
            shown = self.shown(ask)
            out.append((self.kind.name, shown, self.key(ask), fails & ~unknown))
            out.append((self.kind.name, shown, self.unknown_key, fails & unknown))

    def _unknown(self, target: AnyTarget, caps: Capabilities) -> bool:
        return self.offered(target, caps, None) is None

    def _number_fails(self, ask: Any, fleet: FleetColumns, minutes: float) -> Any:
        """Floats with NaN where not known: an ordered comparison is false on NaN."""
        if self.column is None:
            column = fleet.number(self, self._row)
        else:
            column = self.column(fleet, minutes)
        ok: Any = self.test(column, ask)
        if self.unknown_passes:
            return ~(ok | (column != column))  # noqa: PLR0124 (only NaN differs from itself)
        return ~ok

    def _row(self, target: AnyTarget, caps: Capabilities) -> Any:
        return self.offered(target, caps, None)

    def columnar(self, ask: Any) -> bool:
        return self.values is not None


class Each(Rule):
    """One check per item of the ask: (key, wanted) pairs such as each tool, each
    custom key. `offered(key, target, caps)` reads what the target has for that key
    (one column per key, or one for all with `shared`); `test(offered, wanted)` is
    asked of None too (not set), so a condition such as `exists: false` can hold."""

    def __init__(
        self,
        kind: Kind,
        *,
        items: Callable[[Any, PlacementOptions], Iterable[tuple[str, Any]]],
        offered: Callable[[str, AnyTarget, Capabilities], Any],
        test: Test,
        wished: Callable[[Preferences], Iterable[tuple[str, Any]]] | None = None,
        shared: bool = False,
    ) -> None:
        self.kind = kind
        self.items = items
        self.offered = offered
        self.test = test
        self.wished = wished
        self.shared = shared

    def ask(self, source: Any, options: PlacementOptions) -> Any:
        return tuple(self.items(source, options)) or None

    def wish(self, prefs: Preferences, options: PlacementOptions) -> Any:
        return None if self.wished is None else (tuple(self.wished(prefs)) or None)

    def checks(
        self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> Iterator[Check]:
        for key, wanted in ask:
            offered = self.offered(key, target, caps)
            yield Check(self.kind.name, self.test(offered, wanted), wanted, offered, key)

    def passes(self, ask: Any, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        for key, wanted in ask:  # noqa: SIM110 (a loop: the hot path, all() costs more)
            if not self.test(self.offered(key, target, caps), wanted):
                return False
        return True

    def failing(self, ask: Any, fleet: FleetColumns, minutes: float, out: list[Failing]) -> None:
        for key, wanted in ask:
            column = None if self.shared else key

            def row(target: AnyTarget, caps: Capabilities, key: str = key) -> Any:
                return self.offered(key, target, caps)

            fails = fleet.category(self, row, column).fails(
                self.test, wanted, self.test(None, wanted)
            )
            out.append((self.kind.name, wanted, key, fails))

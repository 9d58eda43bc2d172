"""The rule table in force, and the plan of one decision: the rules its task asks,
each with what it asks, read once.

`plan_for(requirements, options)` is what `matching` (one target at a time) and
`columns` (a whole fleet at once) both work from, so the two can only differ in how
they compute, never in what they check. `register` adds a rule (a plug-in's own
requirement kind) after the built-in ones. What must not live here: any rule's
logic (`rules.builtin`, `rules.base`), prose, NumPy, I/O.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from acode_placement.models import Check, PlacementOptions, TaskRequirements
from acode_placement.rules.base import Rule
from acode_placement.rules.builtin import KINDS, RULES
from acode_placement.rules.kinds import register_kind, unregister_kind

if TYPE_CHECKING:
    from acode_placement.columns import Failing, FleetColumns
    from acode_placement.models import AnyTarget, Capabilities

for _kind in KINDS:
    register_kind(_kind)


_PLANS = 64  # plans kept (distinct requirements and options objects)


class _InForce:
    """The table in force (replaced whole, never changed in place) and the last plan."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.table: tuple[Rule, ...] = RULES
        # The last plans, by the identity of their requirements and options (a plan
        # holds both, so their ids cannot be reused while it is kept).
        self.plans: dict[tuple[int, int], Plan] = {}


def rules() -> tuple[Rule, ...]:
    """The rules in force, in the order of a target's checks."""
    return _IN_FORCE.table


def register(rule: Rule) -> None:
    """Add a rule after the others; its kind becomes known to `explain`."""
    with _IN_FORCE.lock:
        register_kind(rule.kind)
        if all(r is not rule for r in _IN_FORCE.table):
            _IN_FORCE.table = (*_IN_FORCE.table, rule)


def unregister(rule: Rule) -> None:
    with _IN_FORCE.lock:
        _IN_FORCE.table = table = tuple(r for r in _IN_FORCE.table if r is not rule)
        if all(r.kind is not rule.kind for r in table):
            unregister_kind(rule.kind)


@contextlib.contextmanager
def registered(rule: Rule) -> Iterator[Rule]:
    """The rule in force for the length of a `with` block (tests, experiments)."""
    register(rule)
    try:
        yield rule
    finally:
        unregister(rule)


class Plan:
    """What one task asks under one set of options: each asked rule with its ask
    (`hard`), each wished rule with its wish (`wishes`), and whether the fleet's
    columns alone can decide (`exact`)."""

    __slots__ = ("columnar", "exact", "hard", "options", "requirements", "table", "wishes")

    def __init__(self, requirements: TaskRequirements, options: PlacementOptions) -> None:
        self.requirements = requirements
        self.options = options
        self.table = table = _IN_FORCE.table
        self.hard: tuple[tuple[Rule, Any], ...] = tuple(
            (rule, ask) for rule in table if (ask := rule.ask(requirements, options)) is not None
        )
        prefs = requirements.preferences
        self.wishes: tuple[tuple[Rule, Any], ...] = (
            ()
            if prefs is None
            else tuple(
                (rule, wish) for rule in table if (wish := rule.wish(prefs, options)) is not None
            )
        )
        self.columnar = tuple((rule, ask) for rule, ask in self.hard if rule.columnar(ask))
        self.exact = len(self.columnar) == len(self.hard)

    def checks(self, target: AnyTarget, caps: Capabilities, cost: float | None) -> list[Check]:
        """Every check of one target, matches and mismatches, in table order."""
        return [check for rule, ask in self.hard for check in rule.checks(ask, target, caps, cost)]

    def passes(self, target: AnyTarget, caps: Capabilities, cost: float | None) -> bool:
        """Whether `checks` finds no mismatch, decided without making a check."""
        for rule, ask in self.hard:  # noqa: SIM110 (a loop: the hot path, all() costs more)
            if not rule.passes(ask, target, caps, cost):
                return False
        return True

    def preference_checks(
        self, target: AnyTarget, caps: Capabilities, cost: float | None
    ) -> list[Check]:
        return [
            check
            for rule, wish in self.wishes
            for check in rule.wish_checks(wish, target, caps, cost)
        ]

    def failing(self, fleet: FleetColumns, minutes: float) -> list[Failing]:
        """Each check as (kind, wanted, key) with the mask of the targets failing it, of
        the rules with a column (all of them when `exact`)."""
        out: list[Failing] = []
        for rule, ask in self.columnar:
            rule.failing(ask, fleet, minutes, out)
        return out


_IN_FORCE = _InForce()


def plan_for(requirements: TaskRequirements, options: PlacementOptions) -> Plan:
    """The plan of these requirements and options, kept for the very same objects
    (both are immutable; a worker places the same few tasks again and again) while
    the table does not change."""
    plans = _IN_FORCE.plans
    key = (id(requirements), id(options))
    plan = plans.get(key)
    if (
        plan is not None
        and plan.requirements is requirements
        and plan.options is options
        and plan.table is _IN_FORCE.table
    ):
        return plan
    plan = Plan(requirements, options)
    if len(plans) >= _PLANS:
        plans.clear()
    plans[key] = plan
    return plan

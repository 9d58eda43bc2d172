"""Hard requirements and soft preferences against one target: pure, no I/O.

Every requirement yields a `Check` carrying what was asked and what is offered, so
an explanation can quote the numbers. All mismatches of a target are kept. The
rules themselves are declared once in `rules`; this module applies them to one
target (and prices a run). What must not live here: a rule's logic, prose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from acode_placement.models import (
    AnyTarget,
    Capabilities,
    Check,
    PlacementOptions,
    TaskRequirements,
    share_met,
)
from acode_placement.rules import Plan, model_matches, plan_for, selects

__all__ = [
    "Facts",
    "QuickFacts",
    "Verdict",
    "estimated_cost",
    "evaluate",
    "model_matches",
    "quick_eligible",
    "quick_preference_share",
    "runtime_minutes",
    "selects",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """All checks of one target. Eligible exactly when `mismatches` is empty."""

    matches: tuple[Check, ...]
    mismatches: tuple[Check, ...]
    preferences: tuple[Check, ...]
    estimated_cost: float | None
    runtime_minutes: float

    @property
    def eligible(self) -> bool:
        return not self.mismatches

    @property
    def preference_share(self) -> float:
        return share_met(self.preferences)


def runtime_minutes(requirements: TaskRequirements, options: PlacementOptions) -> float:
    """The runtime that prices a run: the task's maximum, else the default."""
    return requirements.max_runtime_minutes or options.default_runtime_minutes


def estimated_cost(target: AnyTarget, minutes: float) -> float | None:
    """USD for one run; owned machines without a rate cost 0; None when unknown."""
    rate = target.hourly_rate
    if rate is None:
        return None if target.is_cloud else 0.0
    return rate * minutes / 60.0


def evaluate(
    target: AnyTarget,
    caps: Capabilities,
    requirements: TaskRequirements,
    options: PlacementOptions,
    plan: Plan | None = None,
) -> Verdict:
    """Every check of one target (the reference every fast path is held to)."""
    if plan is None:
        plan = plan_for(requirements, options)
    minutes = runtime_minutes(requirements, options)
    cost = estimated_cost(target, minutes)
    checks = plan.checks(target, caps, cost)
    return Verdict(
        matches=tuple(c for c in checks if c.ok),
        mismatches=tuple(c for c in checks if not c.ok),
        preferences=tuple(plan.preference_checks(target, caps, cost)),
        estimated_cost=cost,
        runtime_minutes=minutes,
    )


class Facts(Protocol):
    """What a built-in strategy reads of a verdict."""

    @property
    def estimated_cost(self) -> float | None: ...

    @property
    def runtime_minutes(self) -> float: ...

    @property
    def preference_share(self) -> float: ...


class QuickFacts(NamedTuple):
    """A verdict's facts without its checks (the fast path's; a tuple is the
    cheapest object to make once per eligible target)."""

    estimated_cost: float | None
    runtime_minutes: float
    preference_share: float


def quick_preference_share(
    plan: Plan, target: AnyTarget, caps: Capabilities, cost: float | None
) -> float:
    """The share of the plan's wishes this target meets (0 when none)."""
    if not plan.wishes:
        return 0.0
    return share_met(tuple(plan.preference_checks(target, caps, cost)))


def quick_eligible(
    target: AnyTarget,
    caps: Capabilities,
    req: TaskRequirements,
    options: PlacementOptions,
    cost: float | None,
) -> bool:
    """Whether `evaluate` finds no mismatch, decided without building a single check."""
    return plan_for(req, options).passes(target, caps, cost)

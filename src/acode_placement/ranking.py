"""Ranking: each target's verdict and score, then the eligible in rank order.

`score_all` takes the fast path (columns, `quick_eligible`, lazy checks) or the
reference path (every check built up front); `rank` orders the eligible; the
reason and failure reason come from the ranking. Pure functions of their inputs:
no I/O, no events, no history here (that is `engine`), no prose (that is `explain`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from acode_placement import capacity, explain
from acode_placement.errors import StrategyError
from acode_placement.matching import (
    QuickFacts,
    Verdict,
    estimated_cost,
    evaluate,
    quick_preference_share,
    runtime_minutes,
)
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    CheckSets,
    Known,
    LazyChecks,
    Misses,
    PlacementOptions,
    Reason,
    Scores,
    TargetScore,
    TaskRequirements,
    TieBreaker,
    Usage,
)
from acode_placement.rules import Plan, plan_for
from acode_placement.strategies import BuiltinStrategy, Strategy
from acode_placement.strategies.base import rates_all

# From this many candidates, the built-in strategies score them on columns
# (`strategies.vector`); below, NumPy's fixed cost per call is more than Python's
# loop (measured: the two meet at about 24 targets).
VECTOR_FROM = 24

if TYPE_CHECKING:
    from acode_placement.columns import Failing, FleetColumns


def score_all(
    strategy: Strategy,
    requirements: TaskRequirements,
    targets: Sequence[AnyTarget],
    known: Sequence[Known],
    options: PlacementOptions,
    *,
    usage: Sequence[Usage] | None = None,
    fast: bool = True,
    columns: FleetColumns | None = None,
) -> Sequence[TargetScore]:
    """Each target's verdict and score (0 when ineligible), in the order given.

    With `usage`, each target offers its free capacity. `fast` decides with
    `quick_eligible` (after the `columns` prefilter, when given) and returns
    `Scores`: a ruled-out target's TargetScore, and any target's checks, are made
    only when read. Without it every check is built up front (the reference the
    property tests compare against).
    """
    if fast:
        columns = columns if usage is None else None  # columns hold the whole capacity
        return _quick_scores(
            strategy, requirements, targets, known, options, columns=columns, usage=usage
        )
    return [
        _evaluated(
            strategy,
            requirements,
            options,
            target,
            facts,
            index=index,
            held=usage[index] if usage is not None else None,
        )
        for index, (target, facts) in enumerate(zip(targets, known, strict=True))
    ]


def _quick_scores(
    strategy: Strategy,
    requirements: TaskRequirements,
    targets: Sequence[AnyTarget],
    known: Sequence[Known],
    options: PlacementOptions,
    *,
    columns: FleetColumns | None,
    usage: Sequence[Usage] | None = None,
) -> Scores:
    # What the scores made later read: the lists as they are now, whatever the caller
    # does with them afterwards.
    targets, known = tuple(targets), tuple(known)
    builtin = strategy if isinstance(strategy, BuiltinStrategy) else None
    minutes = runtime_minutes(requirements, options)
    plan = plan_for(requirements, options)
    deferred = _Deferred(requirements, options, plan, known)
    verified_only = options.require_verified
    misses: Callable[[], Misses] | None = None
    causes: Callable[[], Counter[str]] | None = None
    if columns is None:
        candidates: Sequence[int] = range(len(targets))
        costs: Sequence[float | None] | None = None
        exact = False
    else:
        failing = plan.failing(columns, minutes)
        candidates = columns.survivors(failing)
        costs = columns.costs(candidates, minutes)
        exact = plan.exact
        if exact:
            misses, causes = _counted(columns, failing, verified_only, minutes)

    wishes = bool(plan.wishes)
    shares, rated, column = None, None, None  # every candidate's score at once, bit for bit:
    if columns is not None and builtin is not None and rates_all(type(builtin)):
        shares, rated, column = _rated_all(
            builtin,
            columns,
            plan,
            targets,
            known,
            candidates=candidates,
            costs=costs,
            minutes=minutes,
        )
    eligible: dict[int, TargetScore] = {}
    if column is not None and exact:  # the columns settled the rest, and rank them too
        eligible = _rated(
            targets, known, candidates, columns, column=column, scores=rated, costs=costs,
            shares=shares, checks=deferred, options=options,
        )  # fmt: skip
        candidates = ()
    for position, index in enumerate(candidates):
        facts = known[index]
        if facts.excluded(verified_only) is not None:  # ruled out before its requirements
            continue
        target = targets[index]
        caps = facts.capabilities
        held = None if usage is None else usage[index]
        if held is not None and not held.empty:  # it offers what reservations leave free
            caps = capacity.free(caps, capacity.capacity_of(target, caps), held)
        cost = estimated_cost(target, minutes) if costs is None else costs[position]
        if not exact and not plan.passes(target, caps, cost):
            continue
        if rated is not None:
            share = shares[position] if shares is not None else 0.0
            score = rated[position]
        else:
            share = quick_preference_share(plan, target, caps, cost) if wishes else 0.0
            score = (
                builtin.rate(target, requirements, caps, QuickFacts(cost, minutes, share))
                if builtin is not None
                else _plugin_score(strategy, target, requirements, caps)
            )
        eligible[index] = TargetScore(
            target=target,
            capabilities=caps,
            eligible=True,
            score=score,
            checks=deferred,
            estimated_cost=cost,
            index=index,
            status=facts.status,
            cause=facts.cause,
            usage=held,
            preference_share=share,
        )

    def ruled_out(index: int) -> TargetScore:
        facts = known[index]
        target = targets[index]
        held = None if usage is None else usage[index]
        if facts.excluded(verified_only) is not None or held is not None:
            # its one check, or its checks against free capacity: build them now
            return _evaluated(
                strategy, requirements, options, target, facts, index=index, held=held
            )
        return TargetScore(
            target=target,
            capabilities=facts.capabilities,
            eligible=False,
            score=0.0,
            checks=deferred,
            estimated_cost=estimated_cost(target, minutes),
            index=index,
            status=facts.status,
            cause=facts.cause,
        )

    return Scores(  # with the columns' scores, `_rated` made the eligible in rank order
        len(targets), eligible, ruled_out, misses, causes, ranked=column is not None and exact
    )


def _rated(
    targets: Sequence[AnyTarget],
    known: Sequence[Known],
    candidates: Sequence[int],
    columns: FleetColumns | None,
    *,
    column: Any,
    scores: Sequence[float] | None,
    costs: Sequence[float | None] | None,
    shares: Sequence[float] | None,
    checks: LazyChecks,
    options: PlacementOptions,
) -> dict[int, TargetScore]:
    """`_quick_scores`'s loop when the columns decided eligibility exactly and rated
    every candidate (`column`, and as a list `scores`): what is left per target is
    its exclusion and its TargetScore (from 24 candidates up, this loop is most of
    what a decision costs). The candidates are taken in rank order (`_rank_order`),
    so the eligible come ranked."""
    assert columns is not None and costs is not None  # noqa: PT018  (the columns rated them)
    assert scores is not None
    verified_only = options.require_verified
    eligible: dict[int, TargetScore] = {}
    for position in _rank_order(columns, candidates, column, shares, options.tie_breaker):
        index, score, cost = candidates[position], scores[position], costs[position]
        share = shares[position] if shares is not None else 0.0
        facts = known[index]
        if facts.excluded(verified_only) is None:
            eligible[index] = TargetScore(
                targets[index], facts.capabilities, True, score, checks, cost, index,
                facts.status, facts.cause, None, share,
            )  # fmt: skip
    return eligible


def _rank_order(
    columns: FleetColumns,
    candidates: Sequence[int],
    scores: Any,
    shares: Sequence[float] | None,
    tie_breaker: TieBreaker,
) -> list[int]:
    """The candidates' positions in `rank`'s order (score, then preferences met, then
    with `id` the target's id, then the order given), sorted on columns: the
    candidates come in the order given (`survivors` is ascending) and `np.lexsort`
    is stable. Negating a float is exact, so the keys compare as `rank`'s do."""
    import numpy as np  # noqa: PLC0415  (columns only)

    keys = [-scores]  # np.lexsort's last key sorts first
    if shares is not None:
        keys.append(-np.asarray(shares, dtype=np.float64))
    if tie_breaker == TieBreaker.ID:
        keys.append(columns.derived("id order", _id_order)[np.asarray(candidates, dtype=np.intp)])
    order: list[int] = np.lexsort(keys[::-1]).tolist()
    return order


def _id_order(targets: tuple[AnyTarget, ...], _: object) -> Any:
    """Each target's place among the fleet's ids in Python's order of strings."""
    import numpy as np  # noqa: PLC0415  (columns only)

    place = {name: n for n, name in enumerate(sorted({t.id for t in targets}))}
    return np.array([place[t.id] for t in targets], dtype=np.int64)


def _counted(
    fleet: FleetColumns, failing: list[Failing], verified_only: bool, minutes: float
) -> tuple[Callable[[], Misses], Callable[[], Counter[str]]]:
    """What the ruled-out targets lack, and their causes, counted on the columns."""

    def misses() -> Misses:
        return fleet.misses(failing, fleet.exclusions(verified_only).kinds)

    def causes() -> Counter[str]:
        kinds, key = fleet.exclusions(verified_only)
        return fleet.causes(failing, kinds, minutes, excluded_key=key)

    return misses, causes


def _rated_all(
    builtin: BuiltinStrategy,
    columns: FleetColumns,
    plan: Plan,
    targets: Sequence[AnyTarget],
    known: Sequence[Known],
    *,
    candidates: Sequence[int],
    costs: Sequence[float | None] | None,
    minutes: float,
) -> tuple[list[float] | None, list[float] | None, Any]:
    """The candidates' preference shares (None: no wishes) and scores, as a list and
    as a column, from the fleet's columns (`BuiltinStrategy.rate_all`); all None below
    `VECTOR_FROM`."""
    if len(candidates) < VECTOR_FROM:
        return None, None, None
    from acode_placement.strategies import vector  # noqa: PLC0415  (numpy: columns only)

    shares = None
    if plan.wishes:
        shares = [
            quick_preference_share(plan, targets[i], known[i].capabilities, cost)
            for i, cost in zip(candidates, costs or (), strict=True)
        ]
    batch = vector.Batch(
        columns.derived("scoring", vector.ScoringColumns.of).at(candidates),
        minutes,
        columns.cost_rows(candidates, minutes),
        vector.column(shares if shares is not None else [0.0] * len(candidates)),
        lambda: columns.cost_column(minutes),
    )
    rated = builtin.rate_all(plan.requirements, batch)
    return shares, rated.tolist(), rated


def _evaluated(
    strategy: Strategy,
    requirements: TaskRequirements,
    options: PlacementOptions,
    target: AnyTarget,
    facts: Known,
    *,
    index: int,
    held: Usage | None,
) -> TargetScore:
    """One target's score with every check built (free capacity with `held`)."""
    caps = facts.capabilities
    if held is not None:
        total = capacity.capacity_of(target, caps)
        caps = capacity.free(caps, total, held)
        verdict = capacity.annotate(evaluate(target, caps, requirements, options), total, held)
    else:
        verdict = evaluate(target, caps, requirements, options)
    excluded = facts.excluded(options.require_verified)
    if excluded is not None:  # not known (or not confirmed): never a guess
        verdict = replace(verdict, matches=(), mismatches=(excluded,), preferences=())
    score = 0.0
    if verdict.eligible:
        if isinstance(strategy, BuiltinStrategy):
            score = strategy.rate(target, requirements, caps, verdict)
        else:
            score = _plugin_score(strategy, target, requirements, caps)
    return TargetScore(
        target=target,
        capabilities=caps,
        eligible=verdict.eligible,
        score=score,
        checks=LazyChecks(_sets(verdict)),
        estimated_cost=verdict.estimated_cost,
        index=index,
        status=facts.status,
        cause=facts.cause,
        usage=held,
        preference_share=verdict.preference_share,
    )


class _Deferred(LazyChecks):
    """The checks of every target the fast path decided, built when first read.

    One per decision, shared by its scores (one object per target would cost as
    much as ruling the target out)."""

    __slots__ = ("_built", "_known", "_options", "_plan", "_requirements")

    def __init__(
        self,
        requirements: TaskRequirements,
        options: PlacementOptions,
        plan: Plan,
        known: Sequence[Known],
    ) -> None:
        super().__init__(value=((), (), ()))
        self._requirements = requirements
        self._options = options
        self._plan = plan
        self._known = known
        self._built: dict[int, CheckSets] = {}

    def get(self, score: TargetScore | None = None) -> CheckSets:
        if score is None:
            raise TypeError("the checks of a decision are read through its TargetScore")
        built = self._built.get(score.index)
        if built is None:
            verdict = evaluate(
                score.target, score.capabilities, self._requirements, self._options, self._plan
            )
            if score.usage is not None:  # say what the reservations hold, as the reference
                whole = self._known[score.index].capabilities
                total = capacity.capacity_of(score.target, whole)
                verdict = capacity.annotate(verdict, total, score.usage)
            built = self._built[score.index] = _sets(verdict)
        return built


def _sets(verdict: Verdict) -> CheckSets:
    return verdict.matches, verdict.mismatches, verdict.preferences


def _plugin_score(
    strategy: Strategy, target: AnyTarget, requirements: TaskRequirements, caps: Capabilities
) -> float:
    try:
        score = float(strategy.score(target, requirements, caps))
    except Exception as exc:
        raise StrategyError(f"strategy {strategy.name!r} failed on {target.id}: {exc}") from exc
    if not (math.isfinite(score) and 0.0 < score <= 1.0):
        raise StrategyError(
            f"strategy {strategy.name!r} scored {target.id} {score}; scores must be in (0, 1]"
        )
    return score


def rank(scores: Sequence[TargetScore], tie_breaker: TieBreaker) -> list[TargetScore]:
    """Eligible targets, best first: score, then preferences met, then the tie-breaker
    (the target's id, with `id`), then the order given (`index`).

    Sorted by each key in turn, least significant first: Python's sort is stable, in
    reverse too, so equals keep the order of the sort before, and keys read in C
    (`attrgetter`) cost a fraction of a Python key function per target."""
    eligible = sorted((ts for ts in scores if ts.eligible), key=_INDEX)
    if tie_breaker == TieBreaker.ID:
        eligible.sort(key=_ID)
    eligible.sort(key=_MERIT, reverse=True)
    return eligible


_INDEX, _ID = attrgetter("index"), attrgetter("target.id")  # (`id` is a property)
_MERIT = attrgetter("score", "preference_share")


def decision_reason(
    strategy: Strategy, ranked: Sequence[TargetScore], scores: Sequence[TargetScore]
) -> Reason:
    if not ranked:
        return failure_reason(scores)
    if len(ranked) == 1:
        return Reason.ONLY_OPTION
    if isinstance(strategy, BuiltinStrategy):
        return strategy.reason(ranked[0])
    return Reason.HIGHEST_SCORE


def failure_reason(scores: Sequence[TargetScore]) -> Reason:
    """ModeRestricted when some target failed only on where the task may run."""
    if explain.misses(scores).only_where:
        return Reason.MODE_RESTRICTED
    return Reason.NO_VALID_TARGET

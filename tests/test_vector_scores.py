"""The built-in strategies' scores on columns are their scores one by one, bit for
bit: `rate_all` against `rate` on random fleets, tasks, costs and preference shares,
and whole decisions on fleets large enough to take that path held to the reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acode_placement import PlacementEngine, PlacementOptions, SshTarget, TaskRequirements
from acode_placement.explain import result_json
from acode_placement.matching import QuickFacts, estimated_cost, runtime_minutes
from acode_placement.models import AnyTarget, Capabilities, DiscoveryStatus, GpuInfo, Known
from acode_placement.ranking import VECTOR_FROM
from acode_placement.strategies import BuiltinStrategy, StrategyRegistry
from acode_placement.strategies.auto import Auto
from acode_placement.strategies.base import rates_all
from acode_placement.strategies.vector import Batch, ScoringColumns
from tests.test_properties import TOOLS, every_option, every_rule, fleets, requirements


def _grown(seed: list[AnyTarget]) -> st.SearchStrategy[list[AnyTarget]]:
    """A fleet of 5 x VECTOR_FROM or more: the drawn targets again and again under new ids
    (a fleet too large to draw target by target overruns hypothesis's buffer), each
    copy with its own price."""
    copies = -(-5 * VECTOR_FROM // len(seed))  # so that a fifth surviving is enough
    return st.lists(
        st.sampled_from([None, 0.0, 0.2, 1.006, 3.5]),
        min_size=copies * len(seed),
        max_size=copies * len(seed),
    ).map(
        lambda prices: [
            seed[n % len(seed)].model_copy(update={"id": f"t{n}", "hourly_rate": price})
            for n, price in enumerate(prices)
        ]
    )


BUILTINS = ["auto", "local-first", "cloud-first", "cost-optimized", "performance"]
CHECKED = settings(max_examples=150, deadline=None)
# Requirements and options that leave most of a fleet eligible, preferences included.
LOOSE = st.builds(
    TaskRequirements,
    cpu=st.one_of(st.none(), st.integers(1, 4)),
    memory_gb=st.one_of(st.none(), st.just(1)),
    max_runtime_minutes=st.sampled_from([None, 20, 240]),
    gpu=st.sampled_from(
        [None, None, {"type": "any", "minVram": 8}, {"count": 0.125}, {"count": 2, "minVram": 16}]
    ),
    preferences=st.one_of(
        st.none(),
        st.builds(
            dict,
            cpu=st.one_of(st.none(), st.just(16)),
            memory_gb=st.one_of(st.none(), st.just(64)),
            tools=st.lists(st.sampled_from(TOOLS), max_size=2, unique=True),
        ),
    ),
)
OPEN = st.builds(
    PlacementOptions,
    strategy=st.sampled_from(BUILTINS),
    tie_breaker=st.sampled_from(["first", "id"]),
    default_runtime_minutes=st.sampled_from([1, 30, 90]),
    discovery_enabled=st.just(False),
    require_verified=st.sampled_from([False, False, True]),
)
Status = tuple[DiscoveryStatus, str | None, bool]  # Known's status, cause and `known`
# How each target's capabilities are known: confirmed, declared, stale, or not at all
# (ruled out before its requirements; with `require_verified`, the unconfirmed too).
HOW_KNOWN = st.lists(
    st.sampled_from(
        [
            (DiscoveryStatus.DECLARED, None, True),
            (DiscoveryStatus.FRESH, None, True),
            (DiscoveryStatus.CACHED, None, True),
            (DiscoveryStatus.STALE, "timed out", True),
            (DiscoveryStatus.UNREACHABLE, "refused", False),
        ]
    ),
    min_size=1,
    max_size=7,
)


@CHECKED
@given(
    fleets(1, 40),
    every_rule,
    st.sampled_from(BUILTINS),
    st.sampled_from([1, 30, 90]),
    st.data(),
)
def test_rate_all_is_rate_bit_for_bit(
    targets: list[AnyTarget],
    req: TaskRequirements,
    name: str,
    runtime: int,
    data: st.DataObject,
) -> None:
    strategy = StrategyRegistry.default().get(name)
    assert isinstance(strategy, BuiltinStrategy) and rates_all(type(strategy))
    opts = PlacementOptions(default_runtime_minutes=runtime)
    minutes = runtime_minutes(req, opts)
    caps = [t.capabilities or Capabilities() for t in targets]
    shares = data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1 / 3]), min_size=len(targets),
                                max_size=len(targets)))  # fmt: skip
    costs = [estimated_cost(t, minutes) for t in targets]
    one_by_one = [
        strategy.rate(t, req, c, QuickFacts(cost, minutes, share))
        for t, c, cost, share in zip(targets, caps, costs, shares, strict=True)
    ]
    columns = ScoringColumns.of(targets, caps)
    rows = data.draw(st.permutations(range(len(targets))))  # any order, as survivors come
    batch = Batch(
        columns.at(rows),
        minutes,
        np.array([np.nan if costs[r] is None else costs[r] for r in rows], dtype=np.float64),
        np.array([shares[r] for r in rows], dtype=np.float64),
    )
    at_once = strategy.rate_all(req, batch).tolist()
    expected = [one_by_one[r] for r in rows]
    assert [x.hex() for x in at_once] == [float(x).hex() for x in expected]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fleets(4, 12).flatmap(_grown),
    st.one_of(LOOSE, every_rule, requirements),
    st.one_of(OPEN, every_option),
    HOW_KNOWN,
)
def test_decisions_scored_on_columns_are_the_reference(
    targets: list[AnyTarget], req: TaskRequirements, opts: PlacementOptions, how: list[Status]
) -> None:
    _same_as_reference(targets, req, opts, how)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(fleets(4, 12).flatmap(_grown), LOOSE, OPEN, HOW_KNOWN)
def test_decisions_most_of_a_fleet_can_run_are_the_reference(
    targets: list[AnyTarget], req: TaskRequirements, opts: PlacementOptions, how: list[Status]
) -> None:
    """Tasks most targets can run: the columns score them (the test above draws
    many a task that leaves too few for that)."""
    _same_as_reference(targets, req, opts, how)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    fleets(4, 12).flatmap(_grown),
    st.lists(st.one_of(LOOSE, every_rule), min_size=2, max_size=5),
    st.lists(st.one_of(OPEN, every_option), min_size=1, max_size=2),
    HOW_KNOWN,
)
def test_one_engine_deciding_task_after_task_on_a_fleet_is_the_reference(
    targets: list[AnyTarget],
    tasks: list[TaskRequirements],
    options: list[PlacementOptions],
    how: list[Status],
) -> None:
    """Metrics made once per fleet and ask (`ScoringColumns.per_row`) and read by
    later decisions, with other candidates, give what the reference gives each."""
    engine = PlacementEngine(compile_from=0)
    known = _known(targets, how)  # the same objects each time: the same compiled fleet
    for n, req in enumerate(tasks * 2):  # each task again, after the others
        _same_as_reference(targets, req, options[n % len(options)], how, engine=engine, known=known)


def _same_as_reference(
    targets: list[AnyTarget],
    req: TaskRequirements,
    opts: PlacementOptions,
    how: list[Status],
    *,
    engine: PlacementEngine | None = None,
    known: list[Known] | None = None,
) -> None:
    """The `place --json` object decided on columns is the reference's, every
    candidate's score, order and checks included, whatever its targets' discovery
    said of them."""
    known = known or _known(targets, how)
    fast = engine or PlacementEngine(compile_from=0)
    columns = fast.decide(req, targets, known, opts, request_id="r")
    slow = PlacementEngine().decide(req, targets, known, opts, request_id="r", reference=True)
    both = [result_json(r) for r in (columns, slow)]
    for answer in both:
        answer.pop("decisionMs")
    assert both[0] == both[1]


@pytest.mark.parametrize("strategy", ["auto", "local-first", "performance", "cost-optimized"])
def test_asks_that_differ_on_one_fleet_each_get_their_own_metrics(strategy: str) -> None:
    """The same engine and fleet, tasks asking different amounts one after the other
    (and the first again): a metric kept for one ask is never read for another."""
    targets: list[AnyTarget] = [
        SshTarget(
            id=f"h{n}",
            host=f"h{n}",
            hourly_rate=[None, 0.0, 0.4, 2.5][n % 4],
            capabilities=Capabilities(
                cpu=2 ** (n % 7),
                memory_gb=4 * (1 + n % 5),
                gpu=GpuInfo(
                    type="nvidia",
                    count=1 + n % 2,
                    model=["a100", "t4", "h100"][n // 3 % 3],
                    vram_gb=[40, 16, 80][n // 3 % 3],
                )
                if n % 3 == 0
                else None,
            ),
        )
        for n in range(150)
    ]
    asks = [
        TaskRequirements(cpu=1),
        TaskRequirements(cpu=16, memory_gb=8),
        TaskRequirements(cpu=1, max_runtime_minutes=240),
        TaskRequirements(gpu={"count": 1, "minVram": 16}),  # 50 GPU targets can
        TaskRequirements(gpu={"count": 2, "minVram": 16}),  # and 25
        TaskRequirements(cpu=1),
    ]
    engine = PlacementEngine(compile_from=0)
    known = _known(targets, [(DiscoveryStatus.DECLARED, None, True)])
    opts = PlacementOptions(strategy=strategy, discovery_enabled=False)
    for req in asks:
        _same_as_reference(targets, req, opts, [], engine=engine, known=known)


def _known(targets: list[AnyTarget], how: list[Status]) -> list[Known]:
    known = []
    for n, target in enumerate(targets):
        status, cause, ok = how[n % len(how)]
        known.append(Known(target.capabilities or Capabilities(), status, cause, known=ok))
    return known


def test_a_subclass_that_changes_rate_alone_is_rated_one_target_at_a_time() -> None:
    class Contrarian(Auto):
        name = "contrarian"

        def rate(self, target: AnyTarget, *args: Any) -> float:
            return 0.9 if target.id == "t7" else 0.1

    assert rates_all(Auto) and not rates_all(Contrarian)
    targets = [t.model_copy(update={"id": f"t{n}"}) for n, t in enumerate(_many(40))]
    engine = PlacementEngine(compile_from=0)
    engine.register_strategy(Contrarian())
    known = [Known(t.capabilities or Capabilities()) for t in targets]
    result = engine.decide(
        TaskRequirements(), targets, known, PlacementOptions(strategy="contrarian")
    )
    assert result.selected is not None and result.selected.id == "t7"


def _many(count: int) -> list[AnyTarget]:
    from acode_placement import SshTarget

    return [
        SshTarget(id=f"s{n}", host=f"h{n}", capabilities=Capabilities(cpu=1 + n % 8))
        for n in range(count)
    ]

"""Large fleets decide on compiled columns; every target's facts stay available."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acode_placement import bench, explain
from acode_placement.engine import PlacementEngine, Scores
from acode_placement.explain import result_json
from acode_placement.models import (
    Capabilities,
    DiscoveryStatus,
    Known,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from tests.test_properties import SETTINGS, every_option, every_rule

OPTIONS = PlacementOptions(discovery_enabled=False)


def _json(result: object) -> dict[str, object]:
    data = result_json(result)  # type: ignore[arg-type]
    data.pop("decisionMs")
    return data


@pytest.mark.parametrize("task", list(bench.TASKS))
@pytest.mark.parametrize("strategy", ["auto", "cost-optimized", "performance", "local-first"])
def test_a_large_fleet_decides_like_the_reference(task: str, strategy: str) -> None:
    targets, known = bench.fleet(600)
    opts = PlacementOptions(strategy=strategy, discovery_enabled=False)
    req = bench.TASKS[task]
    engine = PlacementEngine()
    fast = engine.decide(req, targets, known, opts, request_id="r")
    slow = engine.decide(req, targets, known, opts, request_id="r", reference=True)
    assert engine._columns is not None  # the fast decision went through the columns
    assert _json(fast) == _json(slow)


def test_the_fleet_is_compiled_once_and_again_when_it_changes() -> None:
    targets, known = bench.fleet(200)
    engine = PlacementEngine()
    first = engine._compiled(targets, known)
    assert engine._compiled(targets, known) is first
    # New Known objects over the same capabilities (what discovery hands out): reused.
    again = [Known(k.capabilities, DiscoveryStatus.CACHED) for k in known]
    assert engine._compiled(targets, again) is first

    # A list changed in place: a target replaced by a bigger one is seen at once.
    big = Capabilities(cpu=512, memory_gb=4096, tools=("docker",), os="linux", network=True)
    task = TaskRequirements(cpu=300)
    assert engine.decide(task, targets, known, OPTIONS).selected is None
    targets[7] = SshTarget(id="giant", host="giant.lan", capabilities=big)
    known[7] = Known(big)
    result = engine.decide(task, targets, known, OPTIONS)
    assert result.selected is not None and result.selected.id == "giant"
    assert engine._compiled(targets, known) is not first

    # Same targets, new capabilities for one of them: compiled again.
    known[7] = Known(Capabilities(cpu=2))
    assert engine.decide(task, targets, known, OPTIONS).selected is None


def test_ruled_out_targets_are_made_on_demand_with_their_checks() -> None:
    targets, known = bench.fleet(300)
    engine = PlacementEngine()
    result = engine.decide(bench.GPU_TASK, targets, known, OPTIONS)
    reference = engine.decide(bench.GPU_TASK, targets, known, OPTIONS, reference=True)
    scores = result.all_scores
    assert isinstance(scores, Scores)
    assert len(scores) == 300
    assert len(scores.eligible) == len(result.ranked)
    out = next(i for i in range(300) if not reference.all_scores[i].eligible)
    assert scores[out] is scores[out]  # made once, then kept
    assert scores[out].mismatches == reference.all_scores[out].mismatches
    assert scores[out - 300].id == targets[out].id
    assert [ts.id for ts in scores[10:13]] == [t.id for t in targets[10:13]]
    assert list(scores) == [scores[i] for i in range(300)]
    with pytest.raises(IndexError):
        scores[300]


def test_an_unknown_target_in_a_large_fleet_says_discovery_failed() -> None:
    targets, known = bench.fleet(100)
    known[3] = Known(
        Capabilities(), DiscoveryStatus.UNREACHABLE, cause="connection refused", known=False
    )
    result = PlacementEngine().decide(bench.GPU_TASK, targets, known, OPTIONS)
    third = result.all_scores[3]
    assert not third.eligible
    assert third.mismatches[0].kind.value == "discovery"
    assert third.mismatches[0].key == "connection refused"


def test_small_fleets_never_import_numpy() -> None:
    code = (
        "import sys\n"
        "from acode_placement import bench\n"
        "from acode_placement.engine import PlacementEngine\n"
        "targets, known = bench.fleet(20)\n"
        "PlacementEngine().decide(bench.GPU_TASK, targets, known, bench.OPTIONS)\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_the_nearest_miss_is_the_fewest_misses_then_the_easiest_to_fix() -> None:
    """Counted on columns: one hard miss (another OS) beats two easier ones (CPU and a
    runtime limit); among equal counts the easier wins; the first target breaks a tie."""
    linux = Capabilities(cpu=8, memory_gb=32, os="linux", tools=("git",), network=True)
    fleet = [
        SshTarget(
            id="two-easy",
            host="a",
            capabilities=linux.model_copy(update={"cpu": 2, "max_runtime_minutes": 30}),
        ),
        SshTarget(id="one-hard", host="b", capabilities=linux.model_copy(update={"os": "macos"})),
        SshTarget(id="one-easy", host="c", capabilities=linux.model_copy(update={"cpu": 1})),
        SshTarget(id="one-easy-later", host="d", capabilities=linux.model_copy(update={"cpu": 1})),
    ]
    task = TaskRequirements(cpu=4, os="linux", max_runtime_minutes=60)
    for targets, nearest in ((fleet, "one-easy"), (fleet[:2], "one-hard")):
        known = [Known(t.capabilities or Capabilities()) for t in targets]
        fast = PlacementEngine(compile_from=0).decide(task, targets, known, OPTIONS)
        slow = PlacementEngine().decide(task, targets, known, OPTIONS, reference=True)
        assert fast.failure_message == slow.failure_message
        assert f"closest: {nearest}," in (fast.failure_message or "")


@pytest.mark.parametrize("compile_from", [0, 10**6])
def test_capabilities_must_match_the_targets_one_for_one(compile_from: int) -> None:
    targets, known = bench.fleet(60)
    engine = PlacementEngine(compile_from=compile_from)
    engine.decide(bench.GPU_TASK, targets, known, OPTIONS)
    with pytest.raises(ValueError, match="60 targets but 59 capabilities"):
        engine.decide(bench.GPU_TASK, targets, known[:-1], OPTIONS)


def test_an_empty_fleet_on_columns_says_there_is_nothing_to_consider() -> None:
    result = PlacementEngine(compile_from=0).decide(bench.GPU_TASK, [], [], OPTIONS)
    assert not result.success and result.failure_message == "no targets to consider"
    assert len(result.all_scores) == 0


def test_a_result_keeps_explaining_the_fleet_it_decided_on() -> None:
    """Ruled-out targets are made when read: from the lists as they were."""
    targets, known = bench.fleet(100)
    result = PlacementEngine().decide(bench.GPU_TASK, targets, known, OPTIONS)
    out = next(i for i in range(100) if i not in {ts.index for ts in result.ranked})
    before = targets[out]
    targets[out] = SshTarget(id="replaced", host="elsewhere")
    known[out] = Known(Capabilities())
    assert result.all_scores[out].target is before


_FLEET, _KNOWN = bench.fleet(120)
_ONE_ENGINE = PlacementEngine(compile_from=0)  # one compiled fleet across the examples


@SETTINGS
@given(every_rule, every_option, st.integers(0, 3))
def test_cause_counts_kept_per_task_shape_are_the_checks_counts(
    req: TaskRequirements, opts: PlacementOptions, unknown: int
) -> None:
    """The cause counts a compiled fleet keeps for a task shape (what the metrics and
    the log of every placement read) are what every target's checks count, in the
    same order, however many shapes came before on the same columns."""
    known = list(_KNOWN)
    for index in range(0, unknown * 37, 37):  # a few targets whose discovery failed
        known[index] = Known(
            known[index].capabilities, DiscoveryStatus.UNREACHABLE, "down", known=False
        )
    fast = _ONE_ENGINE.decide(req, _FLEET, known, opts)
    reference = _ONE_ENGINE.decide(req, _FLEET, known, opts, reference=True)
    expected = list(explain.cause_counts(reference.all_scores).items())
    assert list(explain.cause_counts(fast.all_scores).items()) == expected
    again = _ONE_ENGINE.decide(req, _FLEET, known, opts)  # from what the columns kept
    assert list(explain.cause_counts(again.all_scores).items()) == expected


def test_small_fleets_count_their_causes_once_per_inputs() -> None:
    """Below compile_from the causes come from the checks; for the very same inputs
    they are counted once and kept, and other inputs are counted anew."""
    from acode_placement import explain

    targets, known = bench.fleet(20)
    engine = PlacementEngine()  # 20 < compile_from: no columns
    impossible, cpu = TaskRequirements(cpu=10_000), TaskRequirements(cpu=1, tools=["nope"])
    first = engine.decide(impossible, targets, known, OPTIONS)
    counted = explain.misses(first.all_scores)
    again = engine.decide(impossible, targets, known, OPTIONS)
    assert explain.misses(again.all_scores) is counted  # kept, not counted again
    other = engine.decide(cpu, targets, known, OPTIONS)
    assert explain.cause_counts(other.all_scores) == explain.cause_counts(
        engine.decide(cpu, targets, known, OPTIONS, reference=True).all_scores
    )
    assert dict(counted.causes) == {"not enough CPU": 20}
    # equal but not the same requirements: counted anew, the same answer
    twin = engine.decide(TaskRequirements(cpu=10_000), targets, known, OPTIONS)
    assert explain.misses(twin.all_scores) is not counted
    assert explain.misses(twin.all_scores) == counted

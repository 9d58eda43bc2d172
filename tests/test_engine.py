"""The engine: strategies, registry, hand-over, events, fallback, discovery deadline."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from acode_placement import (
    AcquireError,
    Capabilities,
    DuplicateStrategyError,
    Ec2Target,
    PlacementCompleted,
    PlacementEngine,
    PlacementFailed,
    PlacementOptions,
    PlacementStarted,
    Reason,
    SshTarget,
    StrategyError,
    StrategyRegistry,
    TaskRequirements,
    UnknownNameError,
    load_targets,
)
from acode_placement.models import AnyTarget, Mode
from tests.conftest import FLEET

FLEET_TARGETS = load_targets(FLEET)
NO_DISCOVERY = PlacementOptions(discovery_enabled=False)


def place(req: TaskRequirements, targets: list[AnyTarget] | None = None, **options: Any) -> Any:
    engine = PlacementEngine()
    opts = PlacementOptions(discovery_enabled=False, **options)
    return asyncio.run(engine.place(req, targets or FLEET_TARGETS, opts))


def ssh(id_: str, cpu: float, rate: float | None = None, **labels: str) -> SshTarget:
    return SshTarget(
        id=id_,
        host=id_,
        hourly_rate=rate,
        labels=labels,
        capabilities=Capabilities(cpu=cpu, os="linux"),
    )


class BigFirst:
    """A plug-in: the most CPUs wins; it only handles tasks that state cpu."""

    name = "big-first"

    def score(self, target: AnyTarget, requirements: TaskRequirements, caps: Capabilities) -> float:
        return min((caps.cpu or 0) / 256, 1.0) or 0.001

    def can_handle(self, requirements: TaskRequirements) -> bool:
        return requirements.cpu is not None


class TestRegistry:
    def test_builtins(self) -> None:
        assert StrategyRegistry.with_builtins().names() == [
            "auto",
            "local-first",
            "cloud-first",
            "cost-optimized",
            "performance",
        ]

    def test_duplicate_names_are_refused(self) -> None:
        engine = PlacementEngine()
        engine.register_strategy(BigFirst())
        with pytest.raises(DuplicateStrategyError, match="'big-first' is already registered"):
            engine.register_strategy(BigFirst())
        with pytest.raises(DuplicateStrategyError):
            engine.register_strategy(type("Auto", (BigFirst,), {"name": "auto"})())

    def test_not_a_strategy_is_refused(self) -> None:
        with pytest.raises(TypeError, match="not a strategy"):
            PlacementEngine().register_strategy(object())  # type: ignore[arg-type]

    def test_unknown_name_lists_the_available(self) -> None:
        with pytest.raises(UnknownNameError) as info:
            place(TaskRequirements(), strategy="cheapest")
        assert str(info.value) == (
            "unknown strategy 'cheapest'; available: auto, cloud-first, cost-optimized,"
            " local-first, performance"
        )

    def test_entry_point_plugins(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "my_plugin.py").write_text(
            textwrap.dedent("""
            class Newest:
                name = "newest"
                def score(self, target, requirements, capabilities):
                    return 0.5
                def can_handle(self, requirements):
                    return True
            class Clash(Newest):
                name = "auto"
            """)
        )
        dist = tmp_path / "my_plugin-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(
            "[acode_placement.strategies]\nnewest = my_plugin:Newest\nclash = my_plugin:Clash\n"
            "gone = my_plugin:Missing\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        registry = StrategyRegistry.default()
        assert "newest" in registry
        assert dict(registry)["newest"].origin == "entry point my_plugin:Newest"
        assert set(registry.broken) == {"clash", "gone"}
        assert "already registered" in registry.broken["clash"]
        sys.modules.pop("my_plugin", None)


class TestPlacement:
    def test_plugin_strategy_is_used(self) -> None:
        engine = PlacementEngine()
        engine.register_strategy(BigFirst())
        result = asyncio.run(
            engine.place(
                TaskRequirements(cpu=1),
                FLEET_TARGETS,
                PlacementOptions(strategy="big-first", discovery_enabled=False),
            )
        )
        assert (result.selected_target.id, result.strategy, result.reason) == (
            "aws-p5-48xlarge",
            "big-first",
            Reason.HIGHEST_SCORE,
        )
        assert result.handed_over_from is None

    def test_strategy_that_cannot_handle_hands_over_to_auto(self) -> None:
        engine = PlacementEngine()
        engine.register_strategy(BigFirst())
        result = asyncio.run(
            engine.place(
                TaskRequirements(os="linux"),
                FLEET_TARGETS,
                PlacementOptions(strategy="big-first", discovery_enabled=False),
            )
        )
        assert (result.strategy, result.handed_over_from) == ("auto", "big-first")
        assert result.selected_target.id == "laptop"

    @pytest.mark.parametrize("bad", [0.0, 1.5, float("nan"), -1.0])
    def test_plugin_scores_outside_the_range_are_an_error(self, bad: float) -> None:
        broken = type("Broken", (BigFirst,), {"name": "broken", "score": lambda *a: bad})()
        engine = PlacementEngine()
        engine.register_strategy(broken)
        events: list[Any] = []
        engine.subscribe(events.append)
        with pytest.raises(StrategyError, match=r"scores must be in \(0, 1\]"):
            asyncio.run(
                engine.place(
                    TaskRequirements(cpu=1),
                    FLEET_TARGETS,
                    PlacementOptions(strategy="broken", discovery_enabled=False),
                )
            )
        assert [type(e) for e in events] == [PlacementStarted, PlacementFailed]

    def test_ranking_alternatives_and_max_candidates(self) -> None:
        req = TaskRequirements(gpu={"type": "nvidia", "min_vram": 16})
        full = place(req, strategy="cost-optimized")
        assert [t.id for t in full.ranked] == [
            "gpu-box",
            "aws-g4dn-xlarge",
            "aws-g5-xlarge",
            "aws-p4d-24xlarge",
            "aws-p5-48xlarge",
        ]
        cut = place(req, strategy="cost-optimized", max_candidates=2)
        assert [t.id for t in cut.ranked] == ["gpu-box", "aws-g4dn-xlarge"]
        assert len(cut.all_scores) == len(FLEET_TARGETS)

    def test_tie_breaker(self) -> None:
        twins = [ssh("zeta", 4), ssh("alpha", 4), ssh("mid", 4)]
        assert place(TaskRequirements(), twins).selected_target.id == "zeta"
        assert place(TaskRequirements(), twins, tie_breaker="id").selected_target.id == "alpha"

    def test_preference_decides_between_equals_under_every_strategy(self) -> None:
        twins = [ssh("plain", 8), ssh("tagged", 8, pool="fast")]
        req = TaskRequirements(preferences={"affinity": ["pool=fast"]})
        for name in StrategyRegistry.with_builtins().names():
            result = place(req, twins, strategy=name)
            assert result.selected_target.id == "tagged", name
            plain, tagged = result.all_scores
            assert tagged.score > plain.score, name

    def test_cost_optimized_prefers_cheaper_over_preferences(self) -> None:
        cheap = Ec2Target(
            id="cheap",
            instance_type="m7i.large",
            hourly_rate=1.00,
            capabilities=Capabilities(cpu=4),
        )
        dear = Ec2Target(
            id="dear",
            instance_type="m7i.xlarge",
            hourly_rate=1.01,
            labels={"pool": "fast"},
            capabilities=Capabilities(cpu=4),
        )
        req = TaskRequirements(preferences={"affinity": ["pool=fast"]})
        assert place(req, [dear, cheap], strategy="cost-optimized").selected_target.id == "cheap"

    def test_empty_fleet(self) -> None:
        result = place(TaskRequirements(), [ssh("x", 1)], mode=Mode.LOCAL_ONLY)
        assert result.reason is Reason.MODE_RESTRICTED
        empty = asyncio.run(PlacementEngine().place(TaskRequirements(), [], NO_DISCOVERY))
        assert (empty.success, empty.reason, empty.failure_message) == (
            False,
            Reason.NO_VALID_TARGET,
            "no targets to consider",
        )

    def test_evaluate_all_keeps_file_order(self) -> None:
        scores = asyncio.run(
            PlacementEngine().evaluate_all(
                TaskRequirements(os="windows"), FLEET_TARGETS, NO_DISCOVERY
            )
        )
        assert [s.id for s in scores] == [t.id for t in FLEET_TARGETS]
        assert [s.id for s in scores if s.eligible] == ["win-builder"]
        assert all(s.score == 0 for s in scores if not s.eligible)


class TestEvents:
    def test_started_then_completed(self) -> None:
        engine = PlacementEngine()
        events: list[Any] = []
        engine.subscribe(events.append)
        result = asyncio.run(
            engine.place(TaskRequirements(cpu=2), FLEET_TARGETS, NO_DISCOVERY, task_name="t")
        )
        started, completed = events
        assert isinstance(started, PlacementStarted) and isinstance(completed, PlacementCompleted)
        assert started.request_id == completed.request_id == result.request_id
        assert (started.task_name, started.target_count) == ("t", len(FLEET_TARGETS))
        assert (completed.target_id, completed.reason) == ("laptop", Reason.LOCAL_PREFERRED)
        assert completed.alternatives == tuple(t.id for t in result.alternatives)

    def test_failed_event_and_broken_subscriber(self) -> None:
        engine = PlacementEngine()
        events: list[Any] = []

        def explode(event: Any) -> None:
            raise RuntimeError("subscriber bug")

        engine.subscribe(explode)
        unsubscribe = engine.subscribe(events.append)
        result = asyncio.run(
            engine.place(TaskRequirements(cpu=10_000), FLEET_TARGETS, NO_DISCOVERY)
        )
        assert not result.success
        assert isinstance(events[-1], PlacementFailed)
        assert events[-1].failure_message == result.failure_message
        unsubscribe()
        asyncio.run(engine.place(TaskRequirements(), FLEET_TARGETS, NO_DISCOVERY))
        assert len(events) == 2


class TestAcquire:
    def run(self, failures: dict[str, AcquireError], fallback: bool = True) -> Any:
        engine = PlacementEngine()
        req = TaskRequirements(gpu={"type": "nvidia", "min_vram": 16})
        result = asyncio.run(
            engine.place(
                req,
                FLEET_TARGETS,
                PlacementOptions(
                    strategy="cost-optimized", discovery_enabled=False, fallback_enabled=fallback
                ),
            )
        )

        async def acquirer(target: AnyTarget) -> str:
            if target.id in failures:
                raise failures[target.id]
            return f"handle:{target.id}"

        return asyncio.run(engine.acquire(result, acquirer))

    def test_first_choice(self) -> None:
        got = self.run({})
        assert (got.handle, got.acquired) == ("handle:gpu-box", True)
        assert [(a.target_id, a.ok) for a in got.result.attempts] == [("gpu-box", True)]

    def test_retryable_failures_fall_back_in_rank_order(self) -> None:
        got = self.run(
            {
                "gpu-box": AcquireError("unreachable"),
                "aws-g4dn-xlarge": AcquireError("InsufficientInstanceCapacity"),
            }
        )
        assert got.handle == "handle:aws-g5-xlarge"
        assert got.result.selected_target.id == "aws-g5-xlarge"
        assert [t.id for t in got.result.alternatives] == ["aws-p4d-24xlarge", "aws-p5-48xlarge"]
        assert [(a.target_id, a.ok, a.error) for a in got.result.attempts] == [
            ("gpu-box", False, "unreachable"),
            ("aws-g4dn-xlarge", False, "InsufficientInstanceCapacity"),
            ("aws-g5-xlarge", True, None),
        ]

    def test_fatal_failure_stops(self) -> None:
        got = self.run({"gpu-box": AcquireError("bad credentials", retryable=False)})
        assert (got.handle, got.acquired, len(got.result.attempts)) == (None, False, 1)

    def test_no_fallback_when_disabled(self) -> None:
        got = self.run({"gpu-box": AcquireError("unreachable")}, fallback=False)
        assert (got.acquired, [a.target_id for a in got.result.attempts]) == (False, ["gpu-box"])

    def test_every_target_fails(self) -> None:
        failures = {
            t: AcquireError("down")
            for t in [
                "gpu-box",
                "aws-g4dn-xlarge",
                "aws-g5-xlarge",
                "aws-p4d-24xlarge",
                "aws-p5-48xlarge",
            ]
        }
        got = self.run(failures)
        assert not got.acquired and len(got.result.attempts) == 5


@pytest.mark.parametrize("compile_from", [0, 10**6], ids=["columns", "checks"])
def test_unknown_capabilities_are_their_own_cause_counted_once(compile_from: int) -> None:
    """A target whose discovery failed with nothing declared is counted under
    "capabilities unknown" alone, explained by that alone, and never named the
    nearest miss while a known target misses."""
    from acode_placement import explain
    from acode_placement.models import CheckKind, DiscoveryStatus, Known

    down = SshTarget(id="down", host="down.example")
    small = SshTarget(id="small", host="small", capabilities=Capabilities(cpu=2, memory_gb=4))
    gpu_box = SshTarget(
        id="gpu",
        host="gpu",
        capabilities=Capabilities(cpu=8, memory_gb=64, gpu={"type": "nvidia", "count": 1}),
    )
    targets: list[AnyTarget] = [down, small, gpu_box]
    known = [
        Known(Capabilities(), DiscoveryStatus.UNREACHABLE, "connection refused", known=False),
        Known(small.capabilities or Capabilities()),
        Known(gpu_box.capabilities or Capabilities()),
    ]
    req = TaskRequirements(cpu=4, gpu={"type": "nvidia"}, tools=["docker"])
    engine = PlacementEngine(compile_from=compile_from)
    result = engine.decide(req, targets, known, NO_DISCOVERY)
    assert not result.success
    causes = explain.cause_counts(result.all_scores)
    assert causes["capabilities unknown (discovery failed)"] == 1
    assert causes["no GPU"] == 1 and causes["missing tools"] == 2  # small; small and gpu
    lost = result.all_scores[0]
    assert [c.kind for c in lost.mismatches] == [CheckKind.DISCOVERY] and not lost.matches
    assert "capabilities unknown" in explain.check_text(lost.mismatches[0])
    message = result.failure_message or ""
    assert message.startswith("0/3 targets eligible") and "closest: gpu," in message
    reference = engine.decide(req, targets, known, NO_DISCOVERY, reference=True)
    assert explain.result_json(reference) | {"decisionMs": 0, "requestId": ""} == (
        explain.result_json(result) | {"decisionMs": 0, "requestId": ""}
    )


def test_counting_causes_builds_no_eligible_targets_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The causes every placement counts (metrics, the answer) come from the ruled-out
    targets' checks alone: an eligible target misses nothing, and its checks are
    built only when an explanation reads them."""
    from acode_placement import explain, ranking

    built: list[str] = []
    real = ranking.evaluate

    def counted(target: AnyTarget, *args: Any, **kwargs: Any) -> Any:
        built.append(target.id)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(ranking, "evaluate", counted)
    fleet = [ssh("small", 1), ssh("big", 16), ssh("bigger", 32), ssh("tiny", 0.5)]
    requirements = TaskRequirements(cpu=8)  # a new object: no memo of its causes
    engine = PlacementEngine()
    declared = asyncio.run(engine.discover(fleet))  # no discovery: the declared values
    result = engine.decide(requirements, fleet, declared, NO_DISCOVERY)
    assert explain.cause_counts(result.all_scores) == {"not enough CPU": 2}
    assert sorted(built) == ["small", "tiny"]
    explain.result_json(result)  # the explanation reads every target's checks
    assert sorted(built) == ["big", "bigger", "small", "tiny"]


def test_the_outcome_is_made_once_and_a_changed_result_makes_its_own() -> None:
    """The history record and the answer share one rendering of a result's outcome;
    each caller gets its own dict, and a result made by `replace` (an acquisition's
    attempts, a lease) is rendered again."""
    from dataclasses import replace

    from acode_placement import explain
    from acode_placement.models import Attempt

    fleet = [ssh(f"box-{n}", 4 + n) for n in range(14)]
    result = place(TaskRequirements(cpu=2), fleet)
    first = explain.outcome_json(result)
    first["why"] = "changed by a caller"
    first["alternatives"].clear()
    first["target"]["id"] = "changed"
    first["causes"]["changed"] = 1
    again = explain.outcome_json(result)
    assert again["why"] != "changed by a caller" and len(again["alternatives"]) == 13
    assert again["target"]["id"] == result.selected.id and "changed" not in again["causes"]
    kept = explain.outcome_json(result, kept=3)
    assert kept["alternatives"] == again["alternatives"][:3]
    assert kept["alternativeScores"] == [round(ts.score, 6) for ts in result.alternatives[:3]]
    assert kept["alternativesTotal"] == 13
    assert {k: v for k, v in kept.items() if not k.startswith("alternative")} == {
        k: v for k, v in again.items() if k != "alternatives"
    }
    tried = replace(result, attempts=(Attempt(result.selected.id, False, "refused", True),))
    assert explain.outcome_json(tried)["attempts"] == [
        {"target": result.selected.id, "ok": False, "error": "refused", "retryable": True}
    ]
    assert explain.outcome_json(result)["attempts"] == []

"""The rule table: each requirement kind declared once, every path derived from it.

A test-only rule (a minimum CPU clock) is declared here and nowhere else: the check
builder (the reference), the fast path (`quick_eligible`), the fleet's columns and
the words of an explanation all follow from its one declaration.
"""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acode_placement import explain, rules
from acode_placement.columns import FleetColumns
from acode_placement.engine import PlacementEngine
from acode_placement.explain import cause_counts, check_text, result_json
from acode_placement.matching import estimated_cost, evaluate, quick_eligible, runtime_minutes
from acode_placement.models import (
    Capabilities,
    Check,
    CheckKind,
    Known,
    PlacementOptions,
    Preferences,
    SshTarget,
    TaskRequirements,
)
from acode_placement.rules import Compare, Kind, Values
from tests.test_properties import SETTINGS

OPTIONS = PlacementOptions(discovery_enabled=False)


# ---------------------------------------------------------------- the test-only kind
class ClockCaps(Capabilities):
    cpu_ghz: float | None = None


class ClockPrefs(Preferences):
    cpu_ghz: float | None = None


class ClockTask(TaskRequirements):
    min_cpu_ghz: float | None = None
    preferences: ClockPrefs | None = None


def _clock_words(check: Check) -> str:
    if check.offered is None:
        return f"cpu clock unknown (needs >= {check.wanted} GHz)"
    return f"cpu clock {check.offered} GHz {'>=' if check.ok else '<'} {check.wanted} GHz"


CLOCK = Kind("cpuClockGhz", _clock_words, "CPU too slow", severity=1)


def clock_rule(values: Values | None = Values.NUMBER) -> Compare:
    """The whole declaration: where wanted and offered are read, and the comparison."""
    return Compare(
        CLOCK,
        wanted=lambda req, options: getattr(req, "min_cpu_ghz", None),
        wished=lambda prefs: getattr(prefs, "cpu_ghz", None),
        offered=lambda target, caps, cost: getattr(caps, "cpu_ghz", None),
        test=operator.ge,
        values=values,
    )


def box(name: str, ghz: float | None, cpu: int = 8) -> SshTarget:
    return SshTarget(
        id=name, host=f"{name}.lan", capabilities=ClockCaps(cpu=cpu, os="linux", cpu_ghz=ghz)
    )


def _json(result: Any) -> dict[str, Any]:
    data = result_json(result)
    data.pop("decisionMs")
    return data


def _decide_three_ways(
    req: TaskRequirements, targets: list[SshTarget], opts: PlacementOptions = OPTIONS
) -> list[Any]:
    known = [Known(t.capabilities or Capabilities()) for t in targets]
    loop = PlacementEngine(compile_from=10**6).decide(req, targets, known, opts, request_id="r")
    columns = PlacementEngine(compile_from=0).decide(req, targets, known, opts, request_id="r")
    reference = PlacementEngine().decide(req, targets, known, opts, request_id="r", reference=True)
    return [loop, columns, reference]


@pytest.mark.parametrize("values", [Values.NUMBER, Values.CATEGORY, Values.ROWS, None])
def test_a_new_kind_is_enforced_by_every_path_and_explained(values: Values | None) -> None:
    targets = [box("slow", 2.1), box("unknown", None), box("fast", 3.5), box("small", 4.0, 2)]
    task = ClockTask(cpu=4, min_cpu_ghz=3.0)
    assert all(
        r.eligible for r in [evaluate(t, t.capabilities, task, OPTIONS) for t in targets[:3]]
    )

    with rules.registered(clock_rule(values)):
        # the reference: one check per target, with the numbers and the declared words
        verdicts = [evaluate(t, t.capabilities, task, OPTIONS) for t in targets]
        assert [v.eligible for v in verdicts] == [False, False, True, False]
        slow = verdicts[0].mismatches
        assert [(c.kind, c.wanted, c.offered) for c in slow] == [("cpuClockGhz", 3.0, 2.1)]
        assert check_text(slow[0]) == "cpu clock 2.1 GHz < 3.0 GHz"
        assert check_text(verdicts[1].mismatches[0]) == "cpu clock unknown (needs >= 3.0 GHz)"
        assert "cpu clock 3.5 GHz >= 3.0 GHz" in [check_text(c) for c in verdicts[2].matches]
        # the fast path, decided without a check
        minutes = runtime_minutes(task, OPTIONS)
        quick = [
            quick_eligible(t, t.capabilities, task, OPTIONS, estimated_cost(t, minutes))
            for t in targets
        ]
        assert quick == [False, False, True, False]
        # the columns: a mask for the new kind, and survivors alone decide when it has one
        fleet = FleetColumns(targets, [t.capabilities for t in targets])
        failing = fleet.failing(task, OPTIONS, minutes)
        clock = [entry for entry in failing if entry[0] == "cpuClockGhz"]
        if values is None:
            assert not clock and not FleetColumns.exact(task)
        else:
            assert [list(entry[3]) for entry in clock] == [[True, True, False, False]]
            assert FleetColumns.exact(task)
            assert fleet.survivors(failing) == [2]
        # the engine, three ways, the same answer, counted and explained alike
        loop, columns, reference = _decide_three_ways(task, targets)
        assert reference.selected.id == "fast"
        assert _json(loop) == _json(reference) == _json(columns)
        impossible = ClockTask(min_cpu_ghz=9.0)
        results = _decide_three_ways(impossible, targets)
        messages = {r.failure_message for r in results}
        assert messages == {
            "0/4 targets eligible: 4 CPU too slow; "
            "closest: slow, fails only cpu clock 2.1 GHz < 9.0 GHz"
        }
        assert [list(cause_counts(r.all_scores).items()) for r in results] == [
            [("CPU too slow", 4)]
        ] * 3
        # a wish counts toward the preferences met
        wish = ClockTask(preferences=ClockPrefs(cpu_ghz=3.0))
        shares = [evaluate(t, t.capabilities, wish, OPTIONS).preference_share for t in targets]
        assert shares == [0.0, 0.0, 1.0, 1.0]

    # gone with its declaration: nothing else was touched
    assert evaluate(targets[0], targets[0].capabilities, task, OPTIONS).eligible
    with pytest.raises(LookupError):
        rules.kind_of("cpuClockGhz")


@SETTINGS
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.sampled_from([1.8, 2.4, 3.0, 3.6])), st.integers(1, 16)),
        min_size=1,
        max_size=12,
    ),
    st.one_of(st.none(), st.sampled_from([1.0, 2.4, 3.0, 5.0])),
    st.one_of(st.none(), st.integers(1, 16)),
    st.one_of(st.none(), st.sampled_from([2.4, 3.6])),
)
def test_a_new_kind_decides_alike_on_every_path(
    boxes: list[tuple[float | None, int]],
    ghz: float | None,
    cpu: int | None,
    wish: float | None,
) -> None:
    targets = [box(f"t{i}", clock, cores) for i, (clock, cores) in enumerate(boxes)]
    task = ClockTask(
        cpu=cpu,
        min_cpu_ghz=ghz,
        preferences=None if wish is None else ClockPrefs(cpu_ghz=wish),
    )
    with rules.registered(clock_rule()):
        results = _decide_three_ways(task, targets)
        every = [_json(r) for r in results]
        assert every[0] == every[2] and every[1] == every[2]
        counted = [list(cause_counts(r.all_scores).items()) for r in results]
        assert counted[0] == counted[2] and counted[1] == counted[2]
        for target, result in zip(targets, results[2].all_scores, strict=True):
            clock = target.capabilities.cpu_ghz  # type: ignore[union-attr]
            if ghz is not None and (clock is None or clock < ghz):
                assert not result.eligible


def test_every_check_kind_has_declared_words_and_a_cause() -> None:
    for kind in CheckKind:
        declared = rules.kind_of(kind)
        assert declared.name == kind
        assert declared.cause_of(None, None)


def test_a_kind_name_is_declared_once() -> None:
    with pytest.raises(ValueError, match="already declared"):
        rules.register(
            Compare(
                Kind("cpu", _clock_words, "x"),
                wanted=lambda r, o: None,
                offered=lambda t, c, cost: None,
                test=operator.ge,
            )
        )
    assert explain.cause_name(CheckKind.CPU, 4, None) == "not enough CPU"

"""Invariants over generated fleets and tasks (hypothesis)."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acode_placement import (
    Capabilities,
    Ec2Target,
    LocalTarget,
    PlacementEngine,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from acode_placement.explain.format import num
from acode_placement.models import AnyTarget, GpuInfo, TieBreaker

STRATEGIES = ["auto", "local-first", "cloud-first", "cost-optimized", "performance"]
MODES = ["burst", "local-only", "airgapped"]
TOOLS = ["git", "docker", "python3", "make"]
ENGINE = PlacementEngine()
# The core properties hold on both fast paths: a Python loop (small fleets) and
# compiled columns (from 48 targets; here from the first).
ENGINES = st.sampled_from([ENGINE, PlacementEngine(compile_from=0)])

gpus = st.one_of(
    st.none(),
    st.builds(
        GpuInfo,
        type=st.sampled_from(["nvidia", "amd"]),
        model=st.sampled_from(["T4", "A10G", "A100-80GB", "H100", "Radeon Pro V520"]),
        vram_gb=st.sampled_from([8, 16, 24, 40, 80]),
        count=st.sampled_from([0.125, 1, 2, 8]),
        compute_capability=st.sampled_from([None, 7.5, 8.0, 9.0]),
        driver=st.sampled_from([None, "525.60.13", "550.54.15", "580.159.04"]),
        cuda=st.sampled_from([None, "12.0", "12.4", "13.0"]),
    ),
)
capabilities = st.builds(
    Capabilities,
    cpu=st.one_of(st.none(), st.integers(1, 128)),
    # several kinds of GPU device (MIG instances, mixed cards), seen pooled per task
    gpus=st.one_of(
        st.just(()), st.lists(gpus.filter(lambda g: g is not None), min_size=2, max_size=3)
    ).map(tuple),
    memory_gb=st.one_of(st.none(), st.sampled_from([2, 8, 16, 64, 512])),
    disk_gb=st.one_of(st.none(), st.sampled_from([10, 100, 1000])),
    gpu=gpus,
    tools=st.lists(st.sampled_from(TOOLS), unique=True).map(tuple),
    tool_versions=st.dictionaries(
        st.sampled_from(TOOLS), st.sampled_from(["3.9.18", "3.11.7", "4.3"]), max_size=2
    ),
    os=st.sampled_from(["linux", "linux", "macos", "windows"]),
    arch=st.sampled_from(["x64", "arm64"]),
    network=st.booleans(),
    max_runtime_minutes=st.one_of(st.none(), st.sampled_from([30, 120, 480])),
)
rates = st.one_of(st.none(), st.sampled_from([0.0, 0.2, 0.526, 1.006, 3.5, 21.96]))
labels = st.dictionaries(
    st.sampled_from(["pool", "zone", "cuda"]),
    st.sampled_from(["a", "b", "11.8", "12.4", "12"]),
    max_size=3,
)
# Custom requirements and wishes: equality, and each operator.
CONDITIONS = [
    {},
    {"pool": "a"},
    {"zone": {"in": ["a", "b"]}},
    {"pool": {"notIn": ["a"]}},
    {"zone": {"exists": False}},
    {"pool": {"exists": True}},
    {"cuda": {"version": ">=12.1"}},
    {"cuda": {"gte": 12}},
    {"cuda": {"lt": 12.4}},
    {"pool": {"regex": "[ab]"}},
    {"cuda": {"version": ">=12.1"}, "zone": {"notIn": ["b"]}},
]


@st.composite
def fleets(draw: Any, smallest: int = 1, largest: int = 12) -> list[AnyTarget]:
    count = draw(st.integers(smallest, largest))
    targets: list[AnyTarget] = []
    for i in range(count):
        kind = draw(st.sampled_from(["local", "ssh", "ssh", "ec2", "ec2"]))
        common = {
            "id": f"t{i}",
            "capabilities": draw(capabilities),
            "labels": draw(labels),
            "hourly_rate": draw(rates),
        }
        if kind == "local":
            targets.append(LocalTarget(**common))
        elif kind == "ssh":
            targets.append(SshTarget(host=f"h{i}", **common))
        else:
            targets.append(Ec2Target(instance_type="m.x", **common))
    return targets


requirements = st.builds(
    TaskRequirements,
    cpu=st.one_of(st.none(), st.integers(1, 64)),
    memory_gb=st.one_of(st.none(), st.sampled_from([1, 8, 32])),
    gpu=st.one_of(
        st.none(),
        st.builds(
            dict,
            type=st.sampled_from(["any", "nvidia", "amd"]),
            min_vram=st.one_of(st.none(), st.sampled_from([8, 16, 40])),
        ),
    ),
    tools=st.lists(st.sampled_from(TOOLS), max_size=2, unique=True).map(tuple),
    os=st.one_of(st.none(), st.just("linux")),
    network=st.one_of(st.none(), st.booleans()),
    max_runtime_minutes=st.one_of(st.none(), st.sampled_from([20, 60, 240])),
    max_cost=st.one_of(st.none(), st.sampled_from([0.5, 5.0, 50.0])),
    allow_cloud=st.booleans(),
    custom=st.one_of(st.just({}), st.just({"pool": "a"})),
    preferences=st.one_of(
        st.none(),
        st.builds(
            dict,
            memory_gb=st.one_of(st.none(), st.just(64)),
            tools=st.lists(st.sampled_from(TOOLS), max_size=2, unique=True),
            affinity=st.one_of(st.just([]), st.just(["zone=b"])),
        ),
    ),
)
options = st.builds(
    PlacementOptions,
    strategy=st.sampled_from(STRATEGIES),
    mode=st.sampled_from(MODES),
    tie_breaker=st.sampled_from(["first", "id"]),
    discovery_enabled=st.just(False),
)
# Every rule the fast paths restate, for the test that holds them to the reference.
every_rule = st.builds(
    TaskRequirements,
    cpu=st.one_of(st.none(), st.integers(1, 64)),
    memory_gb=st.one_of(st.none(), st.sampled_from([1, 8, 32])),
    disk_gb=st.one_of(st.none(), st.sampled_from([50, 500])),
    gpu=st.one_of(
        st.none(),
        st.builds(
            dict,
            type=st.sampled_from(["any", "nvidia", "amd"]),
            count=st.sampled_from([0.125, 1, 2]),
            model=st.sampled_from([[], [], [], ["A100"], ["T4", "H100"]]),
            min_vram=st.one_of(st.none(), st.sampled_from([8, 16, 40])),
            required=st.booleans(),
            min_compute_capability=st.sampled_from([None, None, 8.0, 9.0]),
            driver=st.sampled_from([None, None, ">=535", ">=550,<580"]),
            cuda=st.sampled_from([None, None, ">=12.1", "<13"]),
        ),
    ),
    tools=st.lists(
        st.one_of(
            st.sampled_from(TOOLS),
            st.builds(dict, name=st.sampled_from(TOOLS), version=st.sampled_from([">=3.11", "<4"])),
        ),
        max_size=2,
        unique_by=lambda tool: tool if isinstance(tool, str) else tool["name"],
    ).map(tuple),
    os=st.one_of(st.none(), st.sampled_from(["linux", "macos"])),
    arch=st.one_of(st.none(), st.sampled_from(["x64", "arm64"])),
    network=st.one_of(st.none(), st.booleans()),
    max_runtime_minutes=st.one_of(st.none(), st.sampled_from([20, 60, 240])),
    max_cost=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 5.0, 50.0])),
    allow_cloud=st.booleans(),
    custom=st.sampled_from(CONDITIONS),
    affinity=st.one_of(st.just([]), st.just(["zone=b"]), st.just(["t1", "t3"])),
    anti_affinity=st.one_of(st.just([]), st.just(["pool=a"]), st.just(["t0"])),
    preferences=st.one_of(
        st.none(),
        st.builds(
            dict,
            cpu=st.one_of(st.none(), st.just(16)),
            tools=st.lists(st.sampled_from(TOOLS), max_size=2, unique=True),
            custom=st.sampled_from(CONDITIONS),
            affinity=st.one_of(st.just([]), st.just(["zone=b"])),
        ),
    ),
)
every_option = st.builds(
    PlacementOptions,
    strategy=st.sampled_from(STRATEGIES),
    mode=st.sampled_from(["burst", "burst", "burst", "local-only", "airgapped"]),
    tie_breaker=st.sampled_from(["first", "id"]),
    include_local=st.booleans(),
    include_cloud=st.booleans(),
    default_runtime_minutes=st.sampled_from([1, 30, 90]),
    discovery_enabled=st.just(False),
)
# PROPERTY_EXAMPLES=1500 for a deeper run than CI's.
SETTINGS = settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# The speed-ups are held to the reference on thousands of fleets, in CI too.
FAST_PATH_SETTINGS = settings(
    SETTINGS, max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "150")) * 10
)


def place(
    req: TaskRequirements,
    targets: list[AnyTarget],
    opts: PlacementOptions,
    engine: PlacementEngine = ENGINE,
) -> Any:
    return asyncio.run(engine.place(req, targets, opts))


def violations(req: TaskRequirements, target: AnyTarget, opts: PlacementOptions) -> list[str]:
    """An oracle written apart from `matching`: the contract's hard rules, plainly."""
    caps = target.capabilities or Capabilities()
    bad = []
    for name in ("cpu", "memory_gb", "disk_gb"):
        wanted = getattr(req, name)
        if wanted is not None and (getattr(caps, name) is None or getattr(caps, name) < wanted):
            bad.append(name)
    if req.gpu is not None and req.gpu.required:
        # N GPUs: N devices, each of the type and memory asked, of whatever kinds fit
        kinds = caps.gpus if len(caps.gpus) > 1 else ((caps.gpu,) if caps.gpu else ())
        wanted_type, vram = req.gpu.type.value, req.gpu.min_vram
        fitting = [
            kind
            for kind in kinds
            if (wanted_type == "any" or kind.type.value == wanted_type)
            and (vram is None or (kind.vram_gb or 0) >= vram)
        ]
        if sum(kind.count for kind in fitting) < req.gpu.count:
            bad.append("gpu")
    bad += [f"tool {t}" for t in req.tools if t not in caps.tools]
    if req.os is not None and caps.os != req.os:
        bad.append("os")
    if req.network and caps.network is not True:
        bad.append("network")
    runtime = req.max_runtime_minutes
    if runtime and caps.max_runtime_minutes and runtime > caps.max_runtime_minutes:
        bad.append("runtime")
    if req.max_cost is not None:
        rate = (
            target.hourly_rate
            if target.hourly_rate is not None
            else (None if target.is_cloud else 0.0)
        )
        minutes = runtime or opts.default_runtime_minutes
        if rate is None or rate * minutes / 60 > req.max_cost:
            bad.append("cost")
    if not req.allow_cloud and target.is_cloud:
        bad.append("allowCloud")
    if opts.mode.value != "burst" and not target.is_local:
        bad.append("mode")
    if opts.mode.value == "airgapped" and req.network:
        bad.append("airgapped network")
    bad += [f"custom {k}" for k, v in req.custom.items() if target.labels.get(k) != v]
    return bad


@SETTINGS
@given(fleets(), requirements, options, ENGINES)
def test_chosen_target_never_violates_a_hard_requirement(
    targets: list[AnyTarget], req: TaskRequirements, opts: PlacementOptions, engine: Any
) -> None:
    result = place(req, targets, opts, engine)
    eligible = {t.id for t in targets if not violations(req, t, opts)}
    assert {s.id for s in result.all_scores if s.eligible} == eligible
    if result.success:
        assert violations(req, result.selected_target, opts) == []
        assert 0 < result.selected.score <= 1
        assert result.selected.score == max(s.score for s in result.all_scores)
    else:
        assert not eligible and result.failure_message


@SETTINGS
@given(fleets(), requirements, options, ENGINES)
def test_same_input_same_choice(
    targets: list[AnyTarget], req: TaskRequirements, opts: PlacementOptions, engine: Any
) -> None:
    first, second = place(req, targets, opts, engine), place(req, targets, opts, engine)
    assert [t.id for t in first.ranked] == [t.id for t in second.ranked]
    assert [s.score for s in first.all_scores] == [s.score for s in second.all_scores]
    assert first.reason == second.reason


@SETTINGS
@given(fleets(), requirements, options, st.randoms(use_true_random=False), ENGINES)
def test_tie_breaker_id_makes_file_order_irrelevant(
    targets: list[AnyTarget],
    req: TaskRequirements,
    opts: PlacementOptions,
    rng: random.Random,
    engine: Any,
) -> None:
    opts = opts.model_copy(update={"tie_breaker": TieBreaker.ID})
    shuffled = targets[:]
    rng.shuffle(shuffled)
    assert [t.id for t in place(req, targets, opts, engine).ranked] == [
        t.id for t in place(req, shuffled, opts, engine).ranked
    ]


@SETTINGS
@given(fleets(), requirements, options, st.data(), ENGINES)
def test_meeting_a_preference_never_lowers_a_score(
    targets: list[AnyTarget],
    req: TaskRequirements,
    opts: PlacementOptions,
    data: st.DataObject,
    engine: Any,
) -> None:
    """Give one target a label the task prefers: its score never drops, others' never move."""
    index = data.draw(st.integers(0, len(targets) - 1))
    prefs = req.preferences.model_dump() if req.preferences else {}
    wish = {**prefs, "affinity": ["favourite=yes"]}
    req = req.model_copy(
        update={"preferences": type(req).model_validate({"preferences": wish}).preferences}
    )
    before = place(req, targets, opts, engine).all_scores
    changed = targets[:]
    changed[index] = targets[index].model_copy(
        update={"labels": {**targets[index].labels, "favourite": "yes"}}
    )
    after = place(req, changed, opts, engine).all_scores
    assert after[index].score >= before[index].score
    if before[index].eligible:
        assert after[index].score > before[index].score
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        if i != index:
            assert old.score == new.score


@FAST_PATH_SETTINGS
@given(fleets(), every_rule, every_option, st.data())
def test_the_fast_path_decides_exactly_like_the_reference(
    targets: list[AnyTarget], req: TaskRequirements, opts: PlacementOptions, data: st.DataObject
) -> None:
    """Both fast paths (a Python loop for small fleets, compiled columns for large
    ones) against the reference that builds every check; some targets' discovery
    failed."""
    from acode_placement.columns import FleetColumns
    from acode_placement.engine import PlacementEngine
    from acode_placement.explain import cause_counts, result_json
    from acode_placement.matching import estimated_cost, evaluate, quick_eligible, runtime_minutes
    from acode_placement.models import DiscoveryStatus, Known

    lost = data.draw(st.sets(st.integers(0, len(targets) - 1), max_size=2))
    known = [
        Known(Capabilities(), DiscoveryStatus.UNREACHABLE, cause="refused", known=False)
        if i in lost
        else Known(t.capabilities or Capabilities())
        for i, t in enumerate(targets)
    ]
    loop = PlacementEngine(compile_from=10**6).decide(req, targets, known, opts, request_id="r")
    columns = PlacementEngine(compile_from=0).decide(req, targets, known, opts, request_id="r")
    slow = ENGINE.decide(req, targets, known, opts, request_id="r", reference=True)
    minutes = runtime_minutes(req, opts)
    eligible = set()
    for index, (target, facts) in enumerate(zip(targets, known, strict=True)):
        caps = facts.capabilities
        expected = evaluate(target, caps, req, opts).eligible
        assert quick_eligible(target, caps, req, opts, estimated_cost(target, minutes)) is expected
        if expected and facts.known:
            eligible.add(index)
    fleet = FleetColumns(targets, [facts.capabilities for facts in known])
    survivors = set(fleet.survivors(fleet.failing(req, opts, minutes))) - lost
    assert survivors >= eligible  # never drops an eligible target
    if FleetColumns.exact(req):
        assert survivors == eligible  # and alone decides when no rule is left over
    assert fleet.costs(range(len(targets)), minutes) == [
        estimated_cost(t, minutes) for t in targets
    ]
    every = [result_json(r) for r in (loop, columns, slow)]
    for result in every:
        result.pop("decisionMs")
    assert every[0] == every[2]
    assert every[1] == every[2]
    # The causes counted on columns (metrics, logs), in the same order as from checks.
    counted = [list(cause_counts(r.all_scores).items()) for r in (columns, slow)]
    assert counted[0] == counted[1]
    # ...also when counted first, before anything ranked the nearest miss
    fresh = PlacementEngine(compile_from=0).decide(req, targets, known, opts, request_id="r")
    assert list(cause_counts(fresh.all_scores).items()) == counted[1]


@FAST_PATH_SETTINGS
@given(fleets(), every_rule, every_option, st.data())
def test_with_reservations_the_fast_path_decides_exactly_like_the_reference(
    targets: list[AnyTarget], req: TaskRequirements, opts: PlacementOptions, data: st.DataObject
) -> None:
    """Free capacity decides (`place --reserve`, `simulate`): the fast path, on what
    the reservations leave free, against the reference that builds every check with
    what each reservation holds; the explanation (every candidate's checks) alike."""
    from acode_placement.engine import PlacementEngine
    from acode_placement.explain import cause_counts, result_json
    from acode_placement.models import Known, Usage

    known = [Known(t.capabilities or Capabilities()) for t in targets]
    amounts = st.floats(0, 64, allow_nan=False) | st.sampled_from([0.0, 0.5, 1.0, 2.0])
    usage = [
        Usage(
            data.draw(amounts), data.draw(amounts), data.draw(amounts), data.draw(st.integers(0, 3))
        )
        for _ in targets
    ]
    fast = PlacementEngine().decide(req, targets, known, opts, request_id="r", usage=usage)
    slow = ENGINE.decide(req, targets, known, opts, request_id="r", usage=usage, reference=True)
    every = [result_json(r) for r in (fast, slow)]
    for result in every:
        result.pop("decisionMs")
    assert every[0] == every[1]
    assert list(cause_counts(fast.all_scores).items()) == list(
        cause_counts(slow.all_scores).items()
    )


@st.composite
def boundary_tasks(draw: Any, targets: list[AnyTarget]) -> TaskRequirements:
    """A task that asks exactly what one of the targets offers, rule by rule (or not)."""
    caps = draw(st.sampled_from(targets)).capabilities or Capabilities()

    def maybe(value: Any) -> Any:
        return value if draw(st.booleans()) else None

    gpu = None
    if caps.gpu is not None and draw(st.booleans()):
        gpu = {
            "type": caps.gpu.type.value,
            "count": caps.gpu.count or 1,
            "min_vram": maybe(caps.gpu.vram_gb),
        }
    return TaskRequirements(
        cpu=maybe(caps.cpu),
        memory_gb=maybe(caps.memory_gb),
        disk_gb=maybe(caps.disk_gb),
        gpu=gpu,
        tools=draw(st.lists(st.sampled_from(caps.tools), unique=True)) if caps.tools else (),
        os=maybe(caps.os),
        arch=maybe(caps.arch),
        network=maybe(caps.network),
        max_runtime_minutes=maybe(caps.max_runtime_minutes),
        max_cost=draw(st.sampled_from([None, 0.0, 0.526 * 60 / 60, 21.96])),
    )


@FAST_PATH_SETTINGS
@given(st.data(), fleets())
def test_the_columns_agree_with_the_rules_at_every_boundary(
    data: st.DataObject, targets: list[AnyTarget]
) -> None:
    """Tasks asking exactly what a target has: `>=` against `>` shows up here."""
    from acode_placement.columns import FleetColumns
    from acode_placement.matching import estimated_cost, quick_eligible, runtime_minutes

    req = data.draw(boundary_tasks(targets))
    opts = PlacementOptions(discovery_enabled=False)
    minutes = runtime_minutes(req, opts)
    caps = [t.capabilities or Capabilities() for t in targets]
    eligible = {
        index
        for index, (target, offered) in enumerate(zip(targets, caps, strict=True))
        if quick_eligible(target, offered, req, opts, estimated_cost(target, minutes))
    }
    assert FleetColumns.exact(req)
    fleet = FleetColumns(targets, caps)
    assert set(fleet.survivors(fleet.failing(req, opts, minutes))) == eligible


def _num_reference(value: object) -> str:
    """`explain.format.num` as first written: every value through isinstance."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


@given(
    st.one_of(
        st.floats(),
        st.integers(min_value=-(2**63), max_value=2**63),
        st.booleans(),
        st.none(),
        st.text(max_size=4),
    )
)
def test_numbers_are_written_as_the_reference_writes_them(value: object) -> None:
    """The words' numbers take a fast path for ints and floats (dozens per answer)."""
    assert num(value) == _num_reference(value)

"""Flexible matching (issue 20): operators on custom values, versions, compute
capability, and the versions discovery reports, through the real probe and CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from acode_placement.discovery.probes import LocalProbe
from acode_placement.ec2.catalog import Catalog
from acode_placement.ec2.types import compute_capability
from acode_placement.engine import PlacementEngine
from acode_placement.explain import cause_counts, check_text
from acode_placement.matching import evaluate
from acode_placement.models import (
    Capabilities,
    Condition,
    Known,
    LocalTarget,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from acode_placement.rules.conditions import holds, version_of
from tests.conftest import FIXTURES
from tests.hostile import SCRIPT

OPTIONS = PlacementOptions(discovery_enabled=False)
STANDIN = FIXTURES / "gpu" / "nvidia-smi-standin"


def box(labels: dict[str, str] | None = None, **custom: Any) -> SshTarget:
    return SshTarget(
        id="box", host="box", labels=labels or {}, capabilities=Capabilities(custom=custom)
    )


def custom_check(wanted: Any, target: SshTarget, key: str = "v") -> tuple[bool, str]:
    req = TaskRequirements(custom={key: wanted})
    verdict = evaluate(target, target.capabilities or Capabilities(), req, OPTIONS)
    (check,) = [c for c in (*verdict.matches, *verdict.mismatches) if c.kind == "custom"]
    return check.ok, check_text(check)


# Each operator: a match, a mismatch, a missing value, a value of the wrong kind.
OPERATORS = [
    (
        "in-match",
        {"in": ["eu-west-1", "eu-central-1"]},
        "eu-west-1",
        True,
        "v eu-west-1 in [eu-west-1, eu-central-1]",
    ),
    (
        "in-miss",
        {"in": ["eu-west-1", "eu-central-1"]},
        "eu-north-1",
        False,
        "v eu-north-1 not in [eu-west-1, eu-central-1]",
    ),
    ("in-missing", {"in": ["a"]}, None, False, "v not set (needs one of [a])"),
    ("in-as-text", {"in": [12, "x"]}, "12", True, "v 12 in [12, x]"),
    ("notIn-match", {"notIn": ["a"]}, "b", True, "v b not in [a]"),
    ("notIn-miss", {"notIn": ["a", "b"]}, "a", False, "v a excluded (notIn [a, b])"),
    ("notIn-missing", {"notIn": ["a"]}, None, True, "v not set"),
    ("exists-match", {"exists": True}, "x", True, "v set (x)"),
    ("exists-miss", {"exists": True}, None, False, "v not set (must be set)"),
    ("absent-match", {"exists": False}, None, True, "v not set"),
    ("absent-miss", {"exists": False}, "x", False, "v set (x), must not be"),
    ("gt-match", {"gt": 8}, 16, True, "v 16 > 8"),
    ("gt-equal", {"gt": 8}, 8, False, "v 8 not > 8"),
    ("gte-equal", {"gte": 8}, "8", True, "v 8 >= 8"),
    ("lt-match", {"lt": 2.5}, 2, True, "v 2 < 2.5"),
    ("lte-miss", {"lte": 2}, 2.5, False, "v 2.5 not <= 2"),
    ("gt-missing", {"gt": 1}, None, False, "v not set (needs > 1)"),
    ("gt-text", {"gt": 1}, "many", False, "v many is not a number (needs > 1)"),
    ("gt-bool", {"gt": 0}, True, False, "v true is not a number (needs > 0)"),
    ("version-match", {"version": ">=12.1,<13"}, "12.4", True, "v 12.4 satisfies >=12.1,<13"),
    ("version-miss", {"version": ">=12.1"}, "11.8", False, "v 11.8 does not satisfy >=12.1"),
    ("version-missing", {"version": ">=12.1"}, None, False, "v not set (needs >=12.1)"),
    ("version-text", {"version": ">=1"}, "latest", False, "v latest is not a version (needs >=1)"),
    (
        "regex-match",
        {"regex": "eu-(west|central)-[0-9]"},
        "eu-west-1",
        True,
        "v eu-west-1 matches 'eu-(west|central)-[0-9]'",
    ),
    ("regex-whole", {"regex": "eu"}, "eu-west-1", False, "v eu-west-1 does not match 'eu'"),
    ("regex-missing", {"regex": ".*"}, None, False, "v not set (needs a match of '.*')"),
]


@pytest.mark.parametrize(
    ("condition", "offered", "ok", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in OPERATORS],
)
def test_each_operator(condition: dict[str, Any], offered: Any, ok: bool, words: str) -> None:
    target = box() if offered is None else box(v=offered)
    assert custom_check(condition, target) == (ok, words)


def test_labels_are_matched_like_discovered_facts_and_win_over_them() -> None:
    target = box(labels={"region": "eu-west-1"}, region="us-east-1")
    assert custom_check({"in": ["eu-west-1"]}, target, "region")[0]


@pytest.mark.parametrize(
    ("offered", "spec", "ok"),
    [
        pytest.param("535.104.05", ">=535", True, id="driver-style"),
        pytest.param("525.60.13", ">=535", False, id="driver-older"),
        pytest.param("550.54.15", ">=535,<550", False, id="driver-upper"),
        pytest.param("12.4", ">=12.1", True, id="cuda"),
        pytest.param("12.10", ">12.9", True, id="cuda-minor-is-a-number"),
        pytest.param("5.15.0-91-generic", ">=5.15", True, id="kernel-leading-number"),
        pytest.param("6.0.2-115", "<6.1", True, id="rocm"),
        pytest.param("3.11.7", "~=3.11", True, id="pep440-compatible"),
        pytest.param("13.0rc1", ">=13.0rc1", True, id="pre-release"),
        pytest.param("v2.4", ">=2", True, id="v-prefix"),
        pytest.param("trunk", ">=0", False, id="not-a-version"),
    ],
)
def test_versions_compare_number_by_number(offered: str, spec: str, ok: bool) -> None:
    assert holds(Condition(version=spec), offered) is ok


def test_a_version_that_is_not_pep440_compares_by_its_leading_number() -> None:
    assert str(version_of("5.15.0-91-generic")) == "5.15.0"
    assert str(version_of("535.104.05")) == "535.104.5"
    assert version_of("none") is None


def test_a_pathological_pattern_on_a_long_value_returns_at_once() -> None:
    """(a+)+$ on 100,000 a's and a b: exponential for a backtracking engine."""
    target = box(v="a" * 100_000 + "b")
    started = time.perf_counter()
    assert custom_check({"regex": "(a+)+$"}, target)[0] is False
    assert time.perf_counter() - started < 1.0


def test_equal_values_of_other_types_are_not_confused_by_the_columns() -> None:
    """1, 1.0 and True are equal to Python; as custom values they are 1, 1 and true."""
    targets = [
        SshTarget(id=f"t{i}", host="h", capabilities=Capabilities(custom={"v": v}))
        for i, v in enumerate([1, True, "1", "true", 2] * 12)
    ]
    known = [Known(t.capabilities or Capabilities()) for t in targets]
    engine = PlacementEngine(compile_from=0)
    for wanted in (1, True, {"in": [1]}, {"in": [True]}, {"notIn": [True]}):
        req = TaskRequirements(custom={"v": wanted})
        fast = engine.decide(req, targets, known, OPTIONS)
        slow = engine.decide(req, targets, known, OPTIONS, reference=True)
        assert [ts.index for ts in fast.ranked] == [ts.index for ts in slow.ranked]
        assert fast.ranked


# ----------------------------------------------------------------------- GPU versions
def gpu_box(name: str, **gpu: Any) -> SshTarget:
    caps = Capabilities(cpu=8, gpu={"type": "nvidia", "model": name, "vram_gb": 16, **gpu})
    return SshTarget(id=name, host=name, capabilities=caps)


FLEET = [
    gpu_box("t4", compute_capability=7.5, driver="525.60.13", cuda="12.0"),
    gpu_box("a100", compute_capability=8.0, driver="550.54.15", cuda="12.4"),
    gpu_box("h100", compute_capability=9.0, driver="580.159.04", cuda="13.0"),
    gpu_box("v100"),  # nothing known of its versions
]


@pytest.mark.parametrize("compile_from", [0, 10**6])
@pytest.mark.parametrize(
    ("gpu", "chosen", "causes"),
    [
        ({"minComputeCapability": 8.0}, ["a100", "h100"], {}),
        ({"driver": ">=550"}, ["a100", "h100"], {}),
        ({"cuda": ">=12.1", "driver": "<580"}, ["a100"], {}),
        (
            {"cuda": ">=13.1"},
            [],
            {"CUDA too old": 3, "CUDA version unknown": 1},
        ),
        (
            {"minComputeCapability": 10.0},
            [],
            {"compute capability too low": 3, "compute capability unknown": 1},
        ),
        ({"driver": "<530"}, ["t4"], {}),
        (
            {"driver": "<500"},
            [],
            {"GPU driver version not accepted": 3, "GPU driver version unknown": 1},
        ),
    ],
)
def test_gpu_versions_as_requirements(
    gpu: dict[str, Any], chosen: list[str], causes: dict[str, int], compile_from: int
) -> None:
    req = TaskRequirements.model_validate({"gpu": {"type": "nvidia", **gpu}})
    known = [Known(t.capabilities or Capabilities()) for t in FLEET]
    result = PlacementEngine(compile_from=compile_from).decide(req, FLEET, known, OPTIONS)
    assert sorted(ts.id for ts in result.ranked) == chosen
    if causes:
        assert dict(cause_counts(result.all_scores)) == causes


def test_gpu_versions_as_wishes_and_their_words() -> None:
    req = TaskRequirements.model_validate(
        {"gpu": {"type": "nvidia"}, "preferences": {"gpu": {"cuda": ">=12.1"}}}
    )
    known = [Known(t.capabilities or Capabilities()) for t in FLEET]
    result = PlacementEngine().decide(req, FLEET, known, OPTIONS)
    met = {ts.id: ts.preference_share for ts in result.ranked}
    assert met == {"t4": 0.0, "a100": 1.0, "h100": 1.0, "v100": 0.0}
    t4 = evaluate(
        FLEET[0],
        FLEET[0].capabilities or Capabilities(),
        TaskRequirements.model_validate(
            {"gpu": {"cuda": ">=12.1", "driver": ">=535", "minComputeCapability": 8}}
        ),
        OPTIONS,
    )
    assert [check_text(c) for c in t4.mismatches] == [
        "compute capability 7.5 < 8.0",
        "driver 525.60.13 does not satisfy >=535",
        "cuda 12.0 does not satisfy >=12.1",
    ]


def test_every_nvidia_gpu_of_the_catalog_has_a_compute_capability() -> None:
    catalog = Catalog.shipped()
    models = {
        row.instance.accelerator
        for row in catalog
        if (row.instance.accelerator_maker or "").lower() == "nvidia"
    }
    assert models and all(compute_capability(m or "") is not None for m in models), models
    types = catalog.types("us-east-1")
    for name, expected in (("g5.xlarge", 8.6), ("p5.48xlarge", 9.0), ("g4dn.xlarge", 7.5)):
        gpu = types[name].capabilities().gpu
        assert gpu is not None and gpu.compute_capability == expected, name


# ---------------------------------------------------------------- discovery, for real
@pytest.fixture
def nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Put a stand-in `nvidia-smi` first on PATH: the recorded outputs per question."""

    def install(query: str, banner: str, cc: str, cc_status: int) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / "nvidia-smi"
        script.write_text(
            "#!/bin/sh\n"
            'case "$*" in\n'
            f"  *compute_cap*) cat '{cc}'; exit {cc_status} ;;\n"
            f"  *--query-gpu*) echo '{query}' ;;\n"
            f"  *) cat '{banner}' ;;\n"
            "esac\n"
        )
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    return install


def test_discovery_reads_driver_cuda_and_compute_capability(nvidia_smi: Any) -> None:
    nvidia_smi(
        (FIXTURES / "gpu" / "h100-device" / "nvidia-smi-query.csv").read_text().strip(),
        STANDIN / "h100-banner.txt",
        STANDIN / "h100-compute-cap.csv",
        0,
    )
    report = asyncio.run(LocalProbe(10.0).probe(LocalTarget(id="local"), frozenset()))
    gpu = report.capabilities.gpu
    assert gpu is not None
    assert (gpu.model, gpu.driver, gpu.cuda, gpu.compute_capability) == (
        "NVIDIA H100 80GB HBM3",
        "580.159.04",
        "13.0",
        9.0,
    )
    # the machine's own versions, as custom facts a task can match
    custom = report.capabilities.custom
    assert custom["kernel"] == os.uname().release
    libc = subprocess.run(
        ["getconf", "GNU_LIBC_VERSION"], capture_output=True, text=True, check=True
    )
    assert custom["glibc"] == libc.stdout.split()[1]


def test_a_driver_without_compute_capability_leaves_it_unknown_with_its_cause(
    nvidia_smi: Any,
) -> None:
    nvidia_smi(
        "0, Tesla T4, 15109, 470.256.02",
        STANDIN / "r470-banner.txt",
        STANDIN / "r470-compute-cap.txt",
        2,
    )
    report = asyncio.run(LocalProbe(10.0).probe(LocalTarget(id="local"), frozenset()))
    gpu = report.capabilities.gpu
    assert gpu is not None
    assert (gpu.driver, gpu.cuda, gpu.compute_capability) == ("470.256.02", "11.4", None)
    assert any("compute capability not reported (exit 2)" in note for note in report.notes)


# ------------------------------------------------------------------ bad input, the CLI
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{vesion: '>=12.1'}",
            "unknown operator 'vesion'; use in, notIn, exists, gt, gte, lt, lte, version,"
            " regex; did you mean version?",
        ),
        ("{version: '>=abc'}", "version: not a version specifier: '>=abc'"),
        ("{regex: '(a'}", "regex: not a pattern RE2 accepts: '(a'"),
        ('{regex: "(a)\\\\1"}', "regex: not a pattern RE2 accepts: '(a)\\\\1' (invalid escape"),
        ("{gt: many}", "gt: "),
        ("{gt: 1, lt: 2}", "give exactly one operator"),
        ("{in: []}", "in: "),
        ("{exists: 1}", "exists: "),
    ],
)
def test_a_bad_condition_is_one_line_naming_file_line_and_key(
    tmp_path: Path, value: str, message: str
) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("task:\n  name: t\n  requirements:\n    custom:\n      cuda: " + value + "\n")
    targets = tmp_path / "targets.yaml"
    targets.write_text("targets:\n  - {id: here, type: local}\n")
    done = subprocess.run(
        [SCRIPT, "place", str(task), "--targets", str(targets), "--no-discovery"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"acode-placement: error: {task}:5: requirements.custom.cuda: ")
    assert message in lines[0]
    assert "Traceback" not in done.stderr and "re2.cc" not in done.stderr


@pytest.mark.parametrize("strategy", ["auto", "cost-optimized", "performance"])
def test_the_operator_task_on_a_large_fleet_decides_like_the_reference(strategy: str) -> None:
    from acode_placement import bench
    from acode_placement.explain import result_json

    targets, known = bench.fleet(600)
    opts = PlacementOptions(strategy=strategy, discovery_enabled=False)
    engine = PlacementEngine()
    fast = engine.decide(bench.OPERATOR_TASK, targets, known, opts, request_id="r")
    slow = engine.decide(bench.OPERATOR_TASK, targets, known, opts, request_id="r", reference=True)
    assert engine._columns is not None and fast.selected is not None
    documents = [result_json(r) for r in (fast, slow)]
    for document in documents:
        document.pop("decisionMs")
    assert documents[0] == documents[1]
    assert list(cause_counts(fast.all_scores).items()) == list(
        cause_counts(slow.all_scores).items()
    )

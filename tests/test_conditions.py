"""Flexible matching (issue 20): operators on custom values, versions, compute
capability, and the versions discovery reports, through the real probe and CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Sequence
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
from tests.hostile import assert_refused, run

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
def nvidia_smi(stand_in: Callable[[str, str], Path]) -> Any:
    """Put a stand-in `nvidia-smi` first on PATH: the recorded outputs per question."""

    def install(query: str, banner: str, cc: str, cc_status: int) -> None:
        stand_in(
            "nvidia-smi",
            'case "$*" in\n'
            f"  *compute_cap*) cat '{cc}'; exit {cc_status} ;;\n"
            f"  *--query-gpu*) echo '{query}' ;;\n"
            f"  *) cat '{banner}' ;;\n"
            "esac",
        )

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
    line = refused(tmp_path, ["place", task], message)
    assert line.startswith(f"acode-placement: error: {task}:5: requirements.custom.cuda: ")
    assert "re2.cc" not in line


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


# -------------------------------------------------------------------- tool versions
def test_tool_versions_are_discovered_only_for_the_tools_a_task_names(
    stand_in: Callable[[str, str], Path],
) -> None:
    stand_in("pyfake", 'echo "Python 3.9.18"')
    stand_in("gitfake", 'echo "git version 2.39.2"')
    stand_in("mute", "exit 0")
    stand_in(
        "noisy",  # lines, escapes and a forged "end" must stay inside one value
        'printf "\\033[31mnoisy v7.2.1-rc1\\nend\\ntool docker 1\\n"; yes x | head -n 10000',
    )
    task = TaskRequirements.model_validate(
        {
            "tools": [
                {"name": "pyfake", "version": ">=3.11"},
                {"name": "gitfake", "version": ">=2.30"},
                {"name": "mute", "version": ">=1"},
                {"name": "noisy", "version": ">=7.2.0rc1"},
                {"name": "absent-tool", "version": ">=1"},
                "gitfake",
            ]
        }
    )
    asked = task.wanted_tools()
    assert "version:pyfake" in asked and "gitfake" in asked
    report = asyncio.run(LocalProbe(10.0).probe(LocalTarget(id="local"), asked, tools_only=True))
    caps = report.capabilities
    assert caps.tool_versions == {"pyfake": "3.9.18", "gitfake": "2.39.2", "noisy": "7.2.1-rc1"}
    assert {"pyfake", "gitfake", "mute", "noisy"} <= set(caps.tools)
    assert "absent-tool" not in caps.tools and not any(":" in t for t in caps.tools)

    here = LocalTarget(id="local", capabilities=caps)
    verdict = evaluate(here, caps, task, OPTIONS)
    assert [check_text(c) for c in verdict.mismatches] == [
        "pyfake 3.9.18 does not satisfy >=3.11",
        "mute version unknown (needs >=1)",
        "tool absent-tool missing",
    ]
    assert "gitfake 2.39.2 satisfies >=2.30" in [check_text(c) for c in verdict.matches]
    for engine in (PlacementEngine(), PlacementEngine(compile_from=0)):
        result = engine.decide(task, [here], [Known(caps)], OPTIONS)
        assert dict(cause_counts(result.all_scores)) == {
            "tool too old": 1,
            "tool version unknown": 1,
            "missing tools": 1,
        }


def test_a_tool_version_requirement_reads_from_the_task_file(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text(
        "task:\n  name: t\n  requirements:\n    tools:\n"
        "      - {name: python3, version: '>=3.0'}\n      - {name: git, versoin: '>=2'}\n"
    )
    line = refused(
        tmp_path, ["place", task], "versoin: unknown key (a tool is a name or {name, version})"
    )
    assert line.startswith(f"acode-placement: error: {task}:6: requirements.tools[1]: ")


# ----------------------------------------------------------- facts from the settings
def test_facts_named_in_the_settings_are_discovered_and_matched(
    stand_in: Callable[[str, str], Path],
) -> None:
    from acode_placement.models import FactSpec

    stand_in("nvcc-fake", 'echo "Cuda compilation tools, release 12.4, V12.4.131"')
    stand_in("silent", "exit 3")
    facts = {
        "cudaToolkit": FactSpec(command=["nvcc-fake", "--version"], pattern="release ([0-9.]+)"),
        "literal": FactSpec(
            command=["echo", "$(touch /tmp/acode-owned)", ";", "`id`"], pattern=".*"
        ),
        "quiet": FactSpec(command=["silent"], pattern="([0-9]+)"),
    }
    report = asyncio.run(LocalProbe(10.0, facts=facts).probe(LocalTarget(id="l"), frozenset()))
    custom = report.capabilities.custom
    assert custom["cudaToolkit"] == "12.4"
    assert custom["literal"] == "$(touch /tmp/acode-owned) ; `id`"
    assert not Path("/tmp/acode-owned").exists()
    assert "quiet" not in custom
    assert "fact quiet unknown: '([0-9]+)' found nothing in ''" in report.notes

    here = LocalTarget(id="l", capabilities=report.capabilities)
    task = TaskRequirements(custom={"cudaToolkit": {"version": ">=12.1"}})
    assert evaluate(here, report.capabilities, task, OPTIONS).eligible
    task = TaskRequirements(custom={"cudaToolkit": {"version": ">=12.6"}})
    (miss,) = evaluate(here, report.capabilities, task, OPTIONS).mismatches
    assert check_text(miss) == "cudaToolkit 12.4 does not satisfy >=12.6"


@pytest.mark.parametrize(
    ("fact", "message"),
    [
        ({"command": "nvcc --version", "pattern": "x"}, "facts.f.command"),
        ({"command": [], "pattern": "x"}, "facts.f.command"),
        ({"command": ["-rf"], "pattern": "x"}, "cannot start with '-'"),
        ({"command": ["a\nb"], "pattern": "x"}, "control characters"),
        ({"command": ["nvcc"], "pattern": "(x"}, "not a pattern RE2 accepts"),
        ({"command": ["nvcc"]}, "facts.f.pattern"),
    ],
)
def test_a_bad_fact_in_the_settings_is_one_line(
    tmp_path: Path, fact: dict[str, Any], message: str
) -> None:
    import yaml

    settings = tmp_path / "placement.yaml"
    settings.write_text(yaml.safe_dump({"placement": {"facts": {"f": fact}}}))
    task = tmp_path / "task.yaml"
    task.write_text("task:\n  name: t\n  requirements: {cpu: 1}\n")
    refused(tmp_path, ["place", task, "--config", settings], str(settings), message)


# ------------------------------------------------------------ fact probers (plug-ins)
async def gpu_clock_prober(target: Any, caps: Capabilities) -> dict[str, Any]:
    """A fact plug-in: what it answers joins the target's custom capabilities."""
    return {"gpuClockMhz": 1980 if caps.cpu else 0, "bad key!": 1, "nan": float("nan")}


async def broken_prober(target: Any, caps: Capabilities) -> dict[str, Any]:
    raise RuntimeError("no such device\nsecond line")


async def slow_prober(target: Any, caps: Capabilities) -> dict[str, Any]:
    await asyncio.sleep(30)
    return {}


def test_fact_plugins_complete_a_full_probe_and_never_break_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from importlib.metadata import EntryPoint

    from acode_placement.discovery import facts as facts_module
    from acode_placement.discovery.cache import CapabilityCache
    from acode_placement.discovery.service import Discovery
    from acode_placement.models import TargetKind

    group = facts_module.GROUP
    points = [
        EntryPoint("clock", "tests.test_conditions:gpu_clock_prober", group),
        EntryPoint("broken", "tests.test_conditions:broken_prober", group),
        EntryPoint("slow", "tests.test_conditions:slow_prober", group),
        EntryPoint("missing", "tests.no_such_module:prober", group),  # cannot load: left out
    ]
    monkeypatch.setattr(facts_module, "entry_points", lambda group: points)
    discovery = Discovery(
        {TargetKind.LOCAL: LocalProbe(10.0)},
        CapabilityCache(tmp_path / "cache.json"),
        fact_timeout=0.5,
    )
    started = time.perf_counter()
    (known,) = asyncio.run(discovery.lookup([LocalTarget(id="here")], timeout=20))
    assert time.perf_counter() - started < 10  # the slow plug-in was cut off
    assert known.known and known.capabilities.custom["gpuClockMhz"] == 1980
    assert "bad key!" not in known.capabilities.custom
    assert "nan" not in known.capabilities.custom
    notes = discovery.cache.get("here").notes  # type: ignore[union-attr]
    assert "fact prober broken failed: RuntimeError: no such device" in notes
    assert "fact prober slow gave no answer within 0.5 s" in notes
    assert "fact prober clock: 'bad key!' is not a fact's name" in notes
    assert "fact prober clock: nan is not text, a number or a flag" in notes
    assert [name for name, _ in discovery.fact_probers or []] == ["clock", "broken", "slow"]


def test_the_probe_output_carries_every_version() -> None:
    from acode_placement.discovery.parse import parse_probe

    text = "\n".join(
        [
            "acode-probe 1",
            "tool version:python3 1",
            "tool_version python3 Python 3.12.1",
            "tool version:java 1",
            'tool_version java openjdk version "17.0.9" 2023-10-17',
            "tool version:weird 1",
            "tool_version weird no digits here",
            "tool python3 1",
            "tool java 1",
            "tool weird 1",
            "os Linux",
            "arch aarch64",
            "kernel 6.8.0-1015-aws",
            "cpu 64",
            "mem_kb 527951360",
            "route 1",
            "glibc 2.39",
            "disk_kb 1000000000",
            "nvidia-smi-begin",
            "0, NVIDIA GH200 480GB, 97871, 560.35.03",
            "nvidia-smi-end 0",
            "nvidia-cc-begin",
            "0, 9.0",
            "nvidia-cc-end 0",
            "cuda_version 12.6",
            "rocm_version not-a-version!",
            "fact cudaToolkit Cuda compilation tools, release 12.6, V12.6.77",
            "end",
        ]
    )
    asked = frozenset(
        {"python3", "java", "weird", "version:python3", "version:java", "version:weird"}
    )
    report = parse_probe(text, asked=asked, tools_only=False)
    caps = report.capabilities
    assert caps.tool_versions == {"python3": "3.12.1", "java": "17.0.9"}
    assert caps.tools == ("java", "python3", "weird")
    assert caps.gpu is not None
    assert (caps.gpu.driver, caps.gpu.cuda, caps.gpu.compute_capability) == (
        "560.35.03",
        "12.6",
        9.0,
    )
    assert caps.custom == {"kernel": "6.8.0-1015-aws", "glibc": "2.39"}
    assert "rocm_version 'not-a-version!' is not a version" in report.notes
    assert report.facts == {"cudaToolkit": "Cuda compilation tools, release 12.6, V12.6.77"}


RECORDED = FIXTURES / "gpu" / "recorded-public"


def refused(home: Path, args: Sequence[str | Path], *mentions: str) -> str:
    """The command line `args` on a one-target fleet, refused as bad input: exit 2,
    one line naming each mention (`hostile.assert_refused`); that line."""
    targets = home / "targets.yaml"
    targets.write_text("targets:\n  - {id: here, type: local}\n")
    return assert_refused(run(home, *args, "--targets", targets, "--no-discovery"), *mentions)


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        pytest.param("triton-8070-query.csv", {0: 7.0, 1: 8.9}, id="two-gpus-any-column-order"),
        pytest.param("snaps-128-compute-cap.csv", {0: 8.9}, id="no-index-column"),
        pytest.param("snaps-128-refused.txt", {}, id="a-driver-without-the-field"),
    ],
)
def test_compute_capability_from_recorded_outputs(
    recording: str, expected: dict[int, float]
) -> None:
    from acode_placement.discovery.gpus import parse_compute_capabilities

    assert parse_compute_capabilities((RECORDED / recording).read_text()) == expected


@pytest.mark.parametrize(
    ("banner", "driver", "cuda"),
    [
        ("snaps-128-banner.txt", "570.133.07", "12.8"),
        ("dfdx-619-banner.txt", "525.89.02", "12.0"),
    ],
)
def test_the_cuda_version_from_recorded_banners(
    nvidia_smi: Any, banner: str, driver: str, cuda: str
) -> None:
    """The probe's own awk reads the banner nvidia-smi printed on those machines."""
    nvidia_smi(
        f"0, NVIDIA GeForce RTX 4090, 24564, {driver}",
        RECORDED / banner,
        RECORDED / "snaps-128-compute-cap.csv",
        0,
    )
    report = asyncio.run(LocalProbe(10.0).probe(LocalTarget(id="local"), frozenset()))
    gpu = report.capabilities.gpu
    assert gpu is not None
    assert (gpu.driver, gpu.cuda, gpu.compute_capability) == (driver, cuda, 8.9)


@pytest.mark.parametrize(
    ("gpu", "message"),
    [
        ({"cuda": ">=abc"}, "requirements.gpu.cuda: not a version specifier: '>=abc'"),
        ({"driver": "535"}, "requirements.gpu.driver: not a version specifier: '535'"),
        ({"minComputeCapability": -1}, "requirements.gpu.minComputeCapability: must be >= 0"),
        ({"minComputeCapability": True}, "requirements.gpu.minComputeCapability"),
    ],
)
def test_a_bad_gpu_version_requirement_is_one_line(
    tmp_path: Path, gpu: dict[str, Any], message: str
) -> None:
    import yaml

    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": {"gpu": gpu}}}))
    refused(tmp_path, ["place", task], str(task), message)


@pytest.mark.parametrize(
    ("gpu", "message"),
    [
        ({"type": "nvidia", "mig": "big"}, "capabilities.gpu.mig"),
        ({"type": "nvidia", "driver": "-rf"}, "capabilities.gpu.driver"),
        ({"type": "nvidia", "cuda": "12 4"}, "capabilities.gpu.cuda"),
        ({"type": "nvidia", "unified": 3}, "capabilities.gpu.unified"),
    ],
)
def test_bad_gpu_facts_in_a_targets_file_are_one_line(
    tmp_path: Path, gpu: dict[str, Any], message: str
) -> None:
    import yaml

    targets = tmp_path / "fleet.yaml"
    fleet = [{"id": "box", "type": "local", "capabilities": {"gpu": gpu}}]
    targets.write_text(yaml.safe_dump({"targets": fleet}))
    ran = run(tmp_path, "targets", "--targets", targets, "--no-discovery")
    assert_refused(ran, str(targets), message)


def test_lying_version_and_gpu_lines_in_a_probe_are_left_unknown() -> None:
    """A version token too long, a compute capability that is not one, a MIG listing
    of nonsense: each is left unknown, none breaks the probe's answer."""
    from acode_placement.discovery.parse import parse_probe

    text = "\n".join(
        [
            "acode-probe 1",
            "tool version:python3 1",
            "tool_version python3 Python 3." + "1" * 100,
            "tool python3 1",
            "os Linux",
            "arch x86_64",
            "cpu 4",
            "mem_kb 8000000",
            "route 0",
            "disk_kb 100000",
            "nvidia-smi-begin",
            "0, NVIDIA H100 80GB HBM3, 81559, 580.159.04",
            "nvidia-smi-end 0",
            "nvidia-cc-begin",
            "index, compute_cap",
            "0, 999.5",
            "nvidia-cc-end 0",
            "nvidia-list-begin",
            "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)",
            "  MIG 99g.huge     Device  0: (UUID: MIG-1)",
            "nvidia-list-end 0",
            "fact f \x1b]8;;x\x07text",
            "end",
        ]
    )
    report = parse_probe(text, asked=frozenset({"python3", "version:python3"}), tools_only=False)
    caps = report.capabilities
    assert caps.tool_versions == {}  # 102 characters: no version
    gpu = caps.gpu
    assert gpu is not None and (gpu.model, gpu.mig, gpu.compute_capability) == (
        "NVIDIA H100 80GB HBM3",
        None,
        None,
    )
    assert report.facts == {"f": "\x1b]8;;x\x07text"}  # kept as data; a pattern picks from it

"""Hard requirements against one target: typed checks with the numbers."""

from __future__ import annotations

from typing import Any

import pytest

from acode_placement.explain import check_text
from acode_placement.matching import evaluate, model_matches, selects
from acode_placement.models import (
    Capabilities,
    CheckKind,
    Ec2Target,
    LocalTarget,
    Mode,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)

BOX = SshTarget(
    id="gpu-box",
    host="h",
    labels={"pool": "gpu", "region": "eu-west-1"},
    capabilities=Capabilities(
        cpu=8,
        memory_gb=8,
        disk_gb=100,
        gpu={"type": "nvidia", "model": "NVIDIA A100-SXM4-40GB", "vram_gb": 16, "count": 2},
        tools=("git", "python3"),
        os="linux",
        arch="x64",
        network=True,
        max_runtime_minutes=120,
        custom={"cudaVersion": 12, "spot": False},
    ),
)
CLOUD = Ec2Target(
    id="fleet/g5.xlarge",
    instance_type="g5.xlarge",
    hourly_rate=2.013,
    capabilities=Capabilities(cpu=4),
)


def mismatches(requirements: dict[str, Any], target: Any = BOX, **options: Any) -> list[str]:
    req = TaskRequirements.model_validate(requirements)
    caps = target.capabilities or Capabilities()
    verdict = evaluate(target, caps, req, PlacementOptions(**options))
    return [check_text(c) for c in verdict.mismatches]


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        pytest.param({"cpu": 8}, [], id="cpu-equal-is-enough"),
        pytest.param({"cpu": 16}, ["cpu 8 < 16"], id="cpu"),
        pytest.param({"memoryGb": 16}, ["memoryGb 8 < 16"], id="memory"),
        pytest.param({"diskGb": 100.5}, ["diskGb 100 < 100.5"], id="disk-decimal"),
        pytest.param({"gpu": {"minVram": 20}}, ["gpu vram 16 < 20"], id="vram"),
        pytest.param({"gpu": {"count": 4}}, ["gpu count 2 < 4"], id="gpu-count"),
        pytest.param({"gpu": {"type": "amd"}}, ["gpu type nvidia, not amd"], id="gpu-type"),
        pytest.param({"gpu": {"model": "A100"}}, [], id="a100-prefix-model"),
        pytest.param({"gpu": {"model": ["H100", "a100"]}}, [], id="model-list-any-case"),
        pytest.param(
            {"gpu": {"model": "H100"}}, ["gpu model NVIDIA A100-SXM4-40GB, not H100"], id="model"
        ),
        pytest.param({"gpu": {"required": False, "model": "H100"}}, [], id="gpu-not-required"),
        pytest.param(
            {"tools": ["git", "docker", "make"]},
            ["tool docker missing", "tool make missing"],
            id="every-missing-tool",
        ),
        pytest.param({"os": "windows"}, ["os linux, not windows"], id="os"),
        pytest.param({"arch": "arm64"}, ["arch x64, not arm64"], id="arch"),
        pytest.param({"network": True}, [], id="network"),
        pytest.param({"maxRuntimeMinutes": 180}, ["maxRuntimeMinutes 180 > 120"], id="runtime"),
        pytest.param({"custom": {"region": "eu-west-1", "cudaVersion": "12"}}, [], id="custom"),
        pytest.param(
            {"custom": {"region": "us-east-1"}},
            ["region eu-west-1, not us-east-1"],
            id="custom-label-differs",
        ),
        pytest.param({"custom": {"spot": True}}, ["spot false, not true"], id="custom-bool"),
        pytest.param({"custom": {"rack": "a"}}, ["rack not set (needs a)"], id="custom-unset"),
        pytest.param({"affinity": ["pool=gpu"]}, [], id="affinity-label"),
        pytest.param(
            {"affinity": ["other", "pool=ci"]},
            ["not in affinity other, pool=ci"],
            id="affinity-miss",
        ),
        pytest.param(
            {"antiAffinity": ["gpu-box"]}, ["excluded by antiAffinity gpu-box"], id="anti-affinity"
        ),
        pytest.param({"maxCost": 0}, [], id="owned-costs-nothing"),
        pytest.param(
            {"cpu": 64, "memoryGb": 64, "gpu": {"minVram": 40}, "os": "macos"},
            ["cpu 8 < 64", "memoryGb 8 < 64", "gpu vram 16 < 40", "os linux, not macos"],
            id="all-mismatches-kept",
        ),
    ],
)
def test_requirement(requirements: dict[str, Any], expected: list[str]) -> None:
    assert mismatches(requirements) == expected


def test_unknown_capability_is_not_met() -> None:
    bare = LocalTarget(id="bare")
    assert mismatches({"cpu": 1, "os": "linux", "network": True, "gpu": {}}, bare) == [
        "cpu unknown (needs >= 1)",
        "no GPU",
        "os unknown (needs linux)",
        "network unknown",
    ]


def test_cost_from_rate_and_runtime() -> None:
    # 2.013 $/h for 90 minutes is 3.02.
    assert mismatches({"maxRuntimeMinutes": 90, "maxCost": 2}, CLOUD) == [
        "estimated cost 3.02 > maxCost 2.00"
    ]
    # Without maxRuntimeMinutes the default runtime prices the run.
    assert mismatches({"maxCost": 2}, CLOUD, default_runtime_minutes=30) == []


def test_cloud_without_rate_has_unknown_cost() -> None:
    unpriced = Ec2Target(id="x", instance_type="g5.xlarge")
    assert mismatches({"maxCost": 5}, unpriced) == [
        "estimated cost unknown (no hourlyRate) with maxCost 5.00"
    ]


@pytest.mark.parametrize(
    ("target", "mode", "requirements", "expected"),
    [
        (BOX, Mode.LOCAL_ONLY, {}, ["excluded by mode local-only"]),
        (BOX, Mode.AIRGAPPED, {}, ["excluded by mode airgapped"]),
        (
            LocalTarget(id="l"),
            Mode.AIRGAPPED,
            {"network": True},
            ["network unknown", "network needed but mode is airgapped"],
        ),
        (LocalTarget(id="l"), Mode.LOCAL_ONLY, {}, []),
        (CLOUD, Mode.BURST, {"allowCloud": False}, ["cloud not allowed (allowCloud: false)"]),
        (BOX, Mode.BURST, {"allowCloud": False}, []),
    ],
    ids=[
        "ssh-local-only",
        "ssh-airgapped",
        "airgapped-network",
        "local-only-local",
        "allow-cloud",
        "ssh-is-not-cloud",
    ],
)
def test_modes(target: Any, mode: Mode, requirements: dict[str, Any], expected: list[str]) -> None:
    assert mismatches(requirements, target, mode=mode) == expected


def test_include_options() -> None:
    assert mismatches({}, CLOUD, include_cloud=False) == ["excluded by option includeCloud=false"]
    assert mismatches({}, LocalTarget(id="l"), include_local=False) == [
        "excluded by option includeLocal=false"
    ]


def test_matches_carry_numbers_and_kinds() -> None:
    req = TaskRequirements(cpu=4, gpu={"min_vram": 8})
    verdict = evaluate(BOX, BOX.capabilities or Capabilities(), req, PlacementOptions())
    assert verdict.eligible
    cpu = next(c for c in verdict.matches if c.kind is CheckKind.CPU)
    assert (cpu.wanted, cpu.offered, check_text(cpu)) == (4, 8, "cpu 8 >= 4")


@pytest.mark.parametrize(
    ("wanted", "offered", "ok"),
    [
        ("A100", "A100", True),
        ("A100", "A100-80GB", True),
        ("A100", "NVIDIA A100-SXM4-40GB", True),
        ("a100", "nvidia a100 80gb pcie", True),
        ("A10", "A100", False),
        ("A10", "A10G", False),
        ("A10G", "NVIDIA A10G", True),
        ("L4", "L40S", False),
        ("RTX 4090", "NVIDIA GeForce RTX 4090", True),
        ("H100", "NVIDIA H100 80GB HBM3", True),
        ("NVIDIA H100", "H100", True),
        ("A100-80GB", "A100", False),
        ("V520", "Radeon Pro V520", True),
    ],
)
def test_gpu_model_names(wanted: str, offered: str, ok: bool) -> None:
    assert model_matches(wanted, offered) is ok


def test_selectors_name_ids_labels_and_fleets() -> None:
    assert selects(["gpu-box"], BOX)
    assert selects(["pool=gpu"], BOX)
    assert not selects(["pool=ci", "gpu"], BOX)
    assert selects(["fleet"], CLOUD)  # a fleet entry names all its instance types
    assert not selects(["flee"], CLOUD)

"""The scenario table: a 14-target fleet, tasks of every requirement kind, every
strategy and mode, run through `acode-placement place --json`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FLEET, Cli

SMALL = {"cpu": 2, "memoryGb": 4, "tools": ["python3"], "os": "linux"}
GPU16 = {"gpu": {"type": "nvidia", "minVram": 16}, "tools": ["python3"]}


@dataclass
class Case:
    id: str
    requirements: dict[str, Any]
    target: str | None
    reason: str
    strategy: str = "auto"
    mode: str = "burst"
    message: list[str] = field(default_factory=list)
    detail: tuple[str, str] | None = None  # (target id, a mismatch it must show)

    @property
    def exit(self) -> int:
        return 0 if self.target else 1


CASES = [
    # auto: local when it can, otherwise the balance of cost and speed
    Case("auto-local", SMALL, "laptop", "LocalPreferred"),
    Case("auto-gpu-owned-box", GPU16, "gpu-box", "HighestScore"),
    Case("auto-affinity-pool", {"cpu": 12, "affinity": ["pool=ci"]}, "flaky-host", "HighestScore"),
    Case(
        "auto-anti-affinity",
        {"cpu": 12, "affinity": ["pool=ci"], "antiAffinity": ["flaky-host"]},
        "build-box",
        "OnlyOption",
    ),
    # local-first
    Case("local-first-local", SMALL, "laptop", "LocalPreferred", strategy="local-first"),
    Case("local-first-cheapest-remote", GPU16, "gpu-box", "CostOptimal", strategy="local-first"),
    Case(
        "local-first-cheapest-cloud",
        {
            "arch": "x64",
            "cpu": 12,
            "allowCloud": True,
            "antiAffinity": ["pool=ci", "gpu-box", "amd-box"],
        },
        "aws-c6i-4xlarge",
        "CostOptimal",
        strategy="local-first",
    ),
    # cloud-first: cloud first, cheapest first; then ssh; then local
    Case(
        "cloud-first-cheapest-cloud", SMALL, "aws-g6f-large", "HighestScore", strategy="cloud-first"
    ),
    Case("cloud-first-gpu", GPU16, "aws-g4dn-xlarge", "HighestScore", strategy="cloud-first"),
    Case(
        "cloud-first-then-ssh",
        {**SMALL, "allowCloud": False},
        "build-box",
        "HighestScore",
        strategy="cloud-first",
    ),
    # cost-optimized: equal costs (owned machines) go to the tie-breaker: file order
    Case("cost-owned-first-in-file", SMALL, "laptop", "CostOptimal", strategy="cost-optimized"),
    Case(
        "cost-cheapest-cloud-gpu",
        {**GPU16, "allowCloud": True, "antiAffinity": ["gpu-box"]},
        "aws-g4dn-xlarge",
        "CostOptimal",
        strategy="cost-optimized",
    ),
    # performance: most capable for the request, start-up latency counted
    Case("performance-gpu", GPU16, "aws-p5-48xlarge", "CapabilityMatch", strategy="performance"),
    Case(
        "performance-owned-when-cloud-excluded",
        {"cpu": 4, "os": "linux", "allowCloud": False},
        "flaky-host",
        "CapabilityMatch",
        strategy="performance",
    ),
    # single-answer requirement kinds
    Case("gpu-model-a100", {"gpu": {"model": "A100"}}, "aws-p4d-24xlarge", "OnlyOption"),
    Case("gpu-amd", {"gpu": {"type": "amd"}}, "amd-box", "OnlyOption"),
    Case("windows", {"os": "windows", "tools": ["msbuild"]}, "win-builder", "OnlyOption"),
    Case("macos-arm64", {"os": "macos", "arch": "arm64"}, "mac-mini", "OnlyOption"),
    Case("linux-arm64", {"os": "linux", "arch": "arm64"}, "aws-m7g-2xlarge", "OnlyOption"),
    Case("custom-label", {"custom": {"region": "eu-west-1"}}, "build-box", "OnlyOption"),
    Case("rocm-tool", {"tools": ["rocm-smi"]}, "amd-box", "OnlyOption"),
    # modes and allowCloud
    Case("local-only", SMALL, "laptop", "OnlyOption", mode="local-only"),
    Case("airgapped-offline-task", SMALL, "laptop", "OnlyOption", mode="airgapped"),
    Case(
        "local-only-gpu",
        GPU16,
        None,
        "ModeRestricted",
        mode="local-only",
        message=["0/14 targets eligible", "excluded by mode local-only"],
    ),
    Case(
        "airgapped-network-task",
        {**SMALL, "network": True},
        None,
        "ModeRestricted",
        mode="airgapped",
        message=["14 network needed in mode airgapped"],
    ),
    Case(
        "no-cloud-arm64",
        {"os": "linux", "arch": "arm64", "allowCloud": False},
        None,
        "ModeRestricted",
        message=["7 cloud not allowed", "closest: aws-m7g-2xlarge, fails only cloud not allowed"],
    ),
    # failures with the nearest miss
    Case(
        "gpu-model-a10-is-not-a100-or-a10g",
        {"gpu": {"model": "A10"}},
        None,
        "NoValidTarget",
        message=["wrong GPU model"],
    ),
    Case(
        "fraction-of-a-gpu",
        {"gpu": {"type": "nvidia"}, "affinity": ["aws-g6f-large"]},
        None,
        "NoValidTarget",
        message=["13 not in affinity", "1 too few GPUs"],
        detail=("aws-g6f-large", "gpu count 0.125 < 1 (a fraction of one GPU)"),
    ),
    Case(
        "runtime-limit",
        {"gpu": {"type": "nvidia", "minVram": 20}, "maxRuntimeMinutes": 180, "maxCost": 2},
        None,
        "NoValidTarget",
        message=["closest: gpu-box, fails only maxRuntimeMinutes 180 > 120"],
        detail=("aws-g5-xlarge", "estimated cost 3.02 > maxCost 2.00"),
    ),
    Case(
        "over-max-cost",
        {"gpu": {"minVram": 40, "count": 8}, "maxRuntimeMinutes": 60, "maxCost": 2},
        None,
        "NoValidTarget",
        message=["2 over maxCost", "closest: aws-p4d-24xlarge, fails only estimated cost 21.96"],
        detail=("aws-p5-48xlarge", "estimated cost 55.04 > maxCost 2.00"),
    ),
    Case(
        "missing-tool",
        {"tools": ["kubectl"]},
        None,
        "NoValidTarget",
        message=["0/14 targets eligible: 14 missing tools", "tool kubectl missing"],
    ),
    Case(
        "unknown-disk-counts-as-unmet",
        {"diskGb": 9000},
        None,
        "NoValidTarget",
        message=["14 not enough disk"],
        detail=("aws-p5-48xlarge", "diskGb unknown (needs >= 9000)"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenario(case: Case, cli: Cli, write: Callable[[str, Any], Path]) -> None:
    task = write("task.yaml", {"task": {"name": case.id, "requirements": case.requirements}})
    code, out = cli.json(
        "place",
        task,
        "--targets",
        FLEET,
        "--no-discovery",
        "--strategy",
        case.strategy,
        "--mode",
        case.mode,
    )
    assert (code, out["reason"]) == (case.exit, case.reason), out.get("failureMessage")
    assert out["success"] is (case.target is not None)
    assert (out["target"] or {}).get("id") == case.target
    for part in case.message:
        assert part in out["failureMessage"]
    if case.detail:
        target, text = case.detail
        shown = {c["id"]: c["mismatches"] for c in out["candidates"]}
        assert text in shown[target]
    if case.target is None:
        assert out["failureMessage"].startswith("0/14 targets eligible: ")
        assert out["alternatives"] == []
    else:
        assert out["failureMessage"] is None
        eligible = [c for c in out["candidates"] if c["eligible"]]
        assert eligible[0]["id"] == case.target
        assert [c["id"] for c in eligible[1:]] == out["alternatives"]
        assert all(0 < c["score"] <= 1 for c in eligible)
        assert all(c["mismatches"] for c in out["candidates"] if not c["eligible"])

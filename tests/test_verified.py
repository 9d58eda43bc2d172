"""requireVerified (issue 16): only targets whose capabilities were confirmed for this
decision are eligible; every path agrees, the causes count them once, and the
command line and the settings turn it on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from acode_placement.engine import PlacementEngine
from acode_placement.explain import cause_counts, result_json, why
from acode_placement.models import (
    Capabilities,
    DiscoveryStatus,
    Known,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from tests.test_cli import EXAMPLES, Cli
from tests.test_properties import SETTINGS

STATUSES = list(DiscoveryStatus)
BIG = Capabilities(cpu=16, memory_gb=64, os="linux")


def decide_three_ways(
    req: TaskRequirements, targets: list[SshTarget], known: list[Known], opts: PlacementOptions
) -> list[Any]:
    results = [
        PlacementEngine(compile_from=10**6).decide(req, targets, known, opts, request_id="r"),
        PlacementEngine(compile_from=0).decide(req, targets, known, opts, request_id="r"),
        PlacementEngine().decide(req, targets, known, opts, request_id="r", reference=True),
    ]
    documents = [result_json(r) for r in results]
    for document in documents:
        document.pop("decisionMs")
    assert documents[0] == documents[2] and documents[1] == documents[2]
    counts = [list(cause_counts(r.all_scores).items()) for r in results]
    assert counts[0] == counts[2] and counts[1] == counts[2]
    return results


def test_only_confirmed_capabilities_are_eligible() -> None:
    targets = [SshTarget(id=status.value, host="h", capabilities=BIG) for status in STATUSES]
    known = [
        Known(BIG, status, cause="why" if status.value != "fresh" else None) for status in STATUSES
    ]
    req = TaskRequirements(cpu=8)
    opts = PlacementOptions(discovery_enabled=False, require_verified=True)
    result = decide_three_ways(req, targets, known, opts)[2]
    assert sorted(ts.id for ts in result.ranked) == ["cached", "catalog", "fresh"]
    assert dict(cause_counts(result.all_scores)) == {"capabilities not verified": 4}
    out = next(ts for ts in result.all_scores if ts.id == "unreachable")
    assert [c.kind for c in out.mismatches] == ["unverified"]
    assert "verified capabilities only (4 unverified left out)" in why(result)
    # off (the default): every target with known capabilities is eligible
    plain = decide_three_ways(req, targets, known, PlacementOptions(discovery_enabled=False))[2]
    assert len(plain.ranked) == len(STATUSES)


def test_an_unknown_target_stays_a_discovery_failure() -> None:
    targets = [SshTarget(id="gone", host="h"), SshTarget(id="ok", host="h", capabilities=BIG)]
    known = [
        Known(Capabilities(), DiscoveryStatus.UNREACHABLE, "refused", known=False),
        Known(BIG, DiscoveryStatus.DECLARED),
    ]
    opts = PlacementOptions(discovery_enabled=False, require_verified=True)
    result = decide_three_ways(TaskRequirements(), targets, known, opts)[2]
    assert dict(cause_counts(result.all_scores)) == {
        "capabilities unknown (discovery failed)": 1,
        "capabilities not verified": 1,
    }


@SETTINGS
@given(
    st.lists(
        st.tuples(st.sampled_from(STATUSES), st.integers(1, 32), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 32),
    st.booleans(),
)
def test_every_path_agrees_on_what_is_verified(
    rows: list[tuple[DiscoveryStatus, int, bool]], cpu: int, verified_only: bool
) -> None:
    targets = [
        SshTarget(id=f"t{i}", host="h", capabilities=Capabilities(cpu=cores))
        for i, (_, cores, _) in enumerate(rows)
    ]
    known = [
        Known(Capabilities(cpu=cores) if lives else Capabilities(), status, "c", known=lives)
        for status, cores, lives in rows
    ]
    opts = PlacementOptions(discovery_enabled=False, require_verified=verified_only)
    result = decide_three_ways(TaskRequirements(cpu=cpu), targets, known, opts)[2]
    for ts, (status, cores, lives) in zip(result.all_scores, rows, strict=True):
        confirmed = status in (
            DiscoveryStatus.FRESH,
            DiscoveryStatus.CACHED,
            DiscoveryStatus.CATALOG,
        )
        assert ts.eligible is (lives and cores >= cpu and (confirmed or not verified_only))


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_the_command_line_and_the_settings_turn_it_on(cli: Cli, tmp_path: Path, how: str) -> None:
    args: list[Any] = ["--require-verified"]
    if how == "setting":
        settings = tmp_path / "placement.yaml"
        settings.write_text(yaml.safe_dump({"placement": {"requireVerified": True}}))
        args = ["--config", settings]
    code, out = cli.json(
        "place",
        EXAMPLES / "tasks" / "cpu-tests.yaml",
        "--targets",
        EXAMPLES / "targets.yaml",
        "--no-discovery",
        *args,
    )
    # with declared values only, nothing is verified: no target, and the causes say so
    assert code == 1 and out["target"] is None
    assert "capabilities not verified" in out["failureMessage"]

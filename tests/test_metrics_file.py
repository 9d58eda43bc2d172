"""`--metrics-file` from short-lived commands: the counts add up across runs on one
file (N placements read N), concurrent runs lose nothing, gauges are the last
run's, a file that is not metrics is left alone, and promtool accepts the result."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from acode_placement.metrics import Metrics
from tests.conftest import EXAMPLES, FLEET

TASK = EXAMPLES / "tasks" / "cpu-tests.yaml"


def place(prom: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "acode_placement", "--metrics-file", str(prom), "place"),
            *(str(TASK), "--targets", str(FLEET), "--no-discovery", *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def samples(prom: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(prom.read_text()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def total(prom: Path, name: str) -> float:
    return sum(v for (n, _), v in samples(prom).items() if n == name)


def test_three_runs_read_three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    prom = tmp_path / "textfile" / "acode.prom"
    for n in (1, 2, 3):
        ran = place(prom)
        assert ran.returncode == 0, ran.stderr
        assert total(prom, "acode_placement_placements_total") == n
        assert total(prom, "acode_placement_decision_seconds_count") == n
        assert total(prom, "acode_placement_placements_started_total") == n
    # a histogram stays one: every bucket is cumulative and +Inf equals the count
    found = samples(prom)
    inf = [
        v for (n, labels), v in found.items() if n.endswith("_bucket") and ("le", "+Inf") in labels
    ]
    assert inf and all(v == 3 for v in inf if v)
    assert not any(n.endswith("_created") for n, _ in found)  # a start time does not add up


def test_concurrent_runs_lose_no_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    prom = tmp_path / "acode.prom"
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: place(prom, "--json"), range(6)))
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    assert total(prom, "acode_placement_placements_total") == 6


def test_counts_add_and_gauges_take_this_runs_value(tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    prom.write_text(
        "# HELP acode_placement_capability_cache_lookups_total lookups\n"
        "# TYPE acode_placement_capability_cache_lookups_total counter\n"
        'acode_placement_capability_cache_lookups_total{result="hit"} 40.0\n'
        "# HELP acode_placement_decisions_in_flight Decisions under way\n"
        "# TYPE acode_placement_decisions_in_flight gauge\n"
        "acode_placement_decisions_in_flight 7.0\n"
        "# HELP some_other_total kept though this run has none\n"
        "# TYPE some_other_total counter\n"
        "some_other_total 5.0\n"
    )
    metrics = Metrics()
    metrics.cache_lookups(hits=2, misses=1)
    metrics.add_to(prom)
    found = samples(prom)
    assert found[("acode_placement_capability_cache_lookups_total", (("result", "hit"),))] == 42
    assert found[("acode_placement_capability_cache_lookups_total", (("result", "miss"),))] == 1
    assert found[("acode_placement_decisions_in_flight", ())] == 0
    assert found[("some_other_total", ())] == 5


def test_a_file_that_is_not_metrics_is_left_as_it_is(tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    prom.write_text("my notes, not metrics {{{\n")
    ran = place(prom)
    assert ran.returncode == 0
    assert ran.stderr.strip().splitlines() == [
        f"acode-placement: warning: --metrics-file {prom}: not a Prometheus metrics file;"
        " left as it is"
    ]
    assert prom.read_text() == "my notes, not metrics {{{\n"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus)")
def test_promtool_accepts_the_accumulated_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    prom = tmp_path / "acode.prom"
    for _ in range(2):
        assert place(prom).returncode == 0
    checked = subprocess.run(
        ["promtool", "check", "metrics"],
        input=prom.read_text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""simulate: a hand-computed scenario asserted exactly in burst and local-only modes,
the real openb trace through every strategy (every job accounted for, no target
ever over its capacity, the same results twice), bad trace rows, the fleet
converter, and the plot."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from acode_placement import load_targets
from acode_placement.simulation import Fleet, read_trace, simulate
from acode_placement.simulation.openb import read_fleet, scaled, targets_document
from tests.hostile import assert_refused, run

TRACES = Path(__file__).parent.parent / "data" / "traces"
JOBS = TRACES / "alibaba-openb-2023-jobs.csv"
MACHINES = TRACES / "alibaba-openb-2023-fleet.csv"

FLEET = {
    "targets": [
        {"id": "local", "type": "local",
         "capabilities": {"cpu": 4, "memoryGb": 16, "os": "linux", "arch": "x64"}},
        {"id": "gpu-box", "type": "ssh", "host": "gpu-box.invalid",
         "capabilities": {"cpu": 8, "memoryGb": 32, "os": "linux", "arch": "x64",
                          "gpu": {"type": "nvidia", "model": "T4", "vramGb": 16, "count": 1}}},
        {"id": "cloud-cpu", "type": "ec2", "instanceType": "c6i.xlarge", "region": "us-east-1",
         "hourlyRate": 0.2},  # 4 vCPUs, 8 GiB
        {"id": "cloud-gpu", "type": "ec2", "instanceType": "g4dn.xlarge", "region": "us-east-1",
         "hourlyRate": 0.5},  # 4 vCPUs, 16 GiB, one T4
    ]
}  # fmt: skip
JOBS_CSV = """\
job_id,submit_s,duration_s,cpu,memory_gb,gpu_count
a,0,100,4,12,0
b,10,100,2,4,1
c,20,30,2,4,1
d,30,7200,4,6,0
e,40,10,64,1,0
f,50,,1,1,0
g,60,3600,4,10,0
"""


@pytest.fixture
def scenario(tmp_path: Path) -> tuple[Path, Path]:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(JOBS_CSV)
    return jobs, fleet


def test_the_hand_computed_scenario_in_burst_mode(scenario: tuple[Path, Path]) -> None:
    jobs, fleet = scenario
    result = simulate(read_trace(jobs), Fleet(load_targets(fleet)), "local-first", "burst")
    where = {job: fate.target for job, fate in result.fates.items()}
    # a: local. b: the GPU box. c: the box's GPU is b's, so it bursts to cloud-gpu,
    # 30 s billed as 60. d: local is a's, the box has 6 CPUs left. e: 64 CPUs nowhere.
    # f: never ran. g: local busy, the box has 2 CPUs left, cloud-cpu has 8 GB < 10.
    assert where == {"a": "local", "b": "gpu-box", "c": "cloud-gpu", "d": "gpu-box",
                     "e": None, "f": None, "g": "cloud-gpu"}  # fmt: skip
    assert (result.fates["e"].status, result.fates["e"].reason) == (
        "never-placeable",
        "not enough CPU",
    )
    assert result.fates["f"].status == "never-ran"
    s = result.summary()
    assert (s["jobs"], s["placed"], s["neverPlaceable"], s["neverRan"], s["waitingAtEnd"]) == (
        7, 5, 1, 1, 0)  # fmt: skip
    assert s["waited"] == 0 and s["bursts"] == 2
    assert result.cloud_cost == pytest.approx(0.5 * 60 / 3600 + 0.5 * 3600 / 3600)
    assert s["makespanS"] == 7230  # d: 30 + 7200
    # owned CPU-seconds: a 4 x 100, b 2 x 100, d 4 x 7200, over (4 + 8) CPUs x 7230 s
    assert s["cpuUtilisation"] == pytest.approx((400 + 200 + 28800) / (12 * 7230), abs=1e-6)
    assert s["gpuUtilisation"] == pytest.approx(100 / 7230, abs=1e-6)
    assert s["placementsByTargetType"] == {"ec2": 2, "local": 1, "ssh": 2}


def test_the_hand_computed_scenario_in_local_only_mode(scenario: tuple[Path, Path]) -> None:
    jobs, fleet = scenario
    result = simulate(read_trace(jobs), Fleet(load_targets(fleet)), "local-first", "local-only")
    # Only this machine may be used: b and c need a GPU it has not, e 64 CPUs.
    # a runs 0-100; d (t=30) and g (t=60) wait; at 100 d starts (waited 70) and runs
    # to 7300, when g starts (waited 7240) and runs to 10900.
    fates = result.fates
    assert [(j, fates[j].status, fates[j].start_s) for j in "adg"] == [
        ("a", "placed", 0), ("d", "placed", 100), ("g", "placed", 7300)]  # fmt: skip
    assert sorted(result.waits) == [70, 7240]
    assert result.never_placeable == {"excluded by mode local-only": 2, "not enough CPU": 1}
    s = result.summary()
    assert (s["placed"], s["bursts"], s["cloudCost"], s["waitMaxS"], s["makespanS"]) == (
        3, 0, 0, 7240, 10900)  # fmt: skip
    assert s["cpuUtilisation"] == 1.0  # the one usable machine was busy throughout


def test_bad_rows_are_one_line_naming_file_line_and_column(tmp_path: Path) -> None:
    head = "submit_s,duration_s,cpu,memory_gb,gpu_count"
    cases = {
        "submit_s,duration_s,cpu,memory_gb\n0,1,1,1\n": ":1: missing column(s) gpu_count",
        f"{head}\n0,1,many,1,0\n": ":2: column cpu:",
        f"{head}\n0,1,1,1,0\n-5,1,1,1,0\n": ":3: column submit_s",
        f"{head}\n0,nan,1,1,0\n": ":2: column duration_s",
        f"{head}\n0,1,1,1,1.5\n": ":2: column gpu_count",
        f"{head}\n0,1,1\n": ":2: 3 fields, the header has 5",
        f"{head},gpu_share\n0,1,1,1,2,0.5\n": ":2: column gpu_share",
    }  # fmt: skip
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    for n, (text, said) in enumerate(cases.items()):
        trace = tmp_path / f"t{n}.csv"
        trace.write_text(text)
        line = assert_refused(run(tmp_path, "simulate", trace, "--targets", fleet))
        assert f"{trace}{said}" in line, (text, line)


def test_the_command_compares_strategies_as_json(scenario: tuple[Path, Path]) -> None:
    jobs, fleet = scenario
    ran = run(jobs.parent, "simulate", jobs, "--targets", fleet, "--json",
              "--strategies", "local-first,cloud-first")  # fmt: skip
    assert ran.code == 0, ran.err
    out = json.loads(ran.out)
    assert [r["strategy"] for r in out["runs"]] == ["local-first", "cloud-first"]
    assert out["jobs"] == 7 and out["simulatedJobsPerSecond"] > 0
    cloud_first = out["runs"][1]
    assert cloud_first["bursts"] > out["runs"][0]["bursts"]
    ran = run(jobs.parent, "simulate", jobs, "--targets", fleet, "--strategies", "cheapest")
    assert "--strategies: unknown strategy 'cheapest'" in assert_refused(ran)


def test_the_openb_trace_through_every_strategy(tmp_path: Path) -> None:
    machines = scaled(read_fleet(MACHINES), 0.01)
    fleet = Fleet(load_targets(_write(tmp_path / "fleet.yaml", targets_document(machines))))
    jobs = read_trace(JOBS)
    assert len(jobs) == 8152
    summaries = []
    for strategy in ("auto", "local-first", "cloud-first", "cost-optimized", "performance"):
        result = simulate(jobs, fleet, strategy, "burst", check=True)  # capacity asserted
        s = result.summary()
        accounted = s["placed"] + s["waitingAtEnd"] + s["neverPlaceable"] + s["neverRan"]
        assert accounted == s["jobs"] == 8152, s
        assert s["neverRan"] == 897  # the trace's never-scheduled pods
        assert 0 < result.most_used <= 1.0
        assert len(result.fates) == 8152
        summaries.append(s)
    again = simulate(jobs, fleet, "auto", "burst").summary()
    assert again == summaries[0]  # deterministic
    # No cloud to burst into: the owned machines alone, so jobs queue for room.
    owned = Fleet(load_targets(_write(tmp_path / "owned.yaml", targets_document(machines, None))))
    alone = simulate(jobs, owned, "cost-optimized", "burst", check=True)
    s = alone.summary()
    assert s["bursts"] == 0 and s["cloudCost"] == 0 and s["waited"] > summaries[3]["waited"]
    parts = ("placed", "waitingAtEnd", "neverPlaceable", "neverRan")
    assert sum(s[p] for p in parts) == 8152
    assert alone.most_used == pytest.approx(1.0)  # full at some point, never above


def test_the_converter_keeps_the_gpu_mix() -> None:
    machines = read_fleet(MACHINES)
    assert len(machines) == 1523
    kept = scaled(machines, 0.01)
    models = {shape[0] for _, shape in kept if shape[1]}
    assert models == {"G2", "G3", "T4", "P100", "V100M16", "V100M32", "A10"}  # every one
    share = {m: sum(1 for _, s in kept if s[0] == m and s[1]) for m in ("G2", "T4")}
    assert abs(share["G2"] - 549 * 15 / 1523) < 1 and abs(share["T4"] - 404 * 15 / 1523) < 1
    document = targets_document(kept)
    ids = [t["id"] for t in document["targets"]]
    assert ids[-1] == "aws-burst" and len(ids) == len(kept) + 1
    assert all(t["host"].endswith(".invalid") for t in document["targets"][:-1])


def test_the_plot_is_a_png_with_something_drawn(
    scenario: tuple[Path, Path], tmp_path: Path
) -> None:
    jobs, fleet = scenario
    picture = tmp_path / "out" / "sim.png"
    ran = run(jobs.parent, "simulate", jobs, "--targets", fleet, "--plot", picture)
    assert ran.code == 0, ran.err
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 1200) and len(data) > 30_000
    assert f"plot: {picture}" in ran.out
    ran = run(jobs.parent, "simulate", jobs, "--targets", fleet, "--plot", tmp_path / "x.jpg")
    assert "--plot" in assert_refused(ran)


def _write(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


HEADER = "job_id,submit_s,duration_s,cpu,memory_gb,gpu_count\n"
HOSTILE_TRACES = {
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "fifo": (os.mkfifo, "not a regular file"),
    "binary": (lambda p: p.write_bytes(b"\xff\xfe\x00binary"), "not UTF-8 text"),
    "empty": (lambda p: p.write_text(""), "empty; a trace needs a header line"),
    "escape-in-id": (lambda p: p.write_text(HEADER + "\x1b[2Jx,0,1,1,1,0\n"), "column job_id"),
    "infinite-time": (lambda p: p.write_text(HEADER + "a,1e999,1,1,1,0\n"), "column submit_s"),
}


@pytest.mark.parametrize(("make", "said"), HOSTILE_TRACES.values(), ids=HOSTILE_TRACES.keys())
def test_a_hostile_trace_is_refused_in_one_line(tmp_path: Path, make: Any, said: str) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    trace = tmp_path / "trace.csv"
    make(trace)
    line = assert_refused(run(tmp_path, "simulate", trace, "--targets", fleet, timeout=30))
    assert said in line and "\x1b" not in line


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--mode", "offline"], "--mode: unknown mode 'offline'"),
        (["--strategies", ","], "--strategies: name at least one strategy"),
        (["--plot", "out.svg"], "--plot out.svg: give a file name ending in .png"),
    ],
    ids=["mode", "no-strategy", "plot-not-png"],
)
def test_bad_options_are_one_line(scenario: tuple[Path, Path], argv: list[str], said: str) -> None:
    jobs, fleet = scenario
    ran = run(jobs.parent, "simulate", jobs, "--targets", fleet, *argv)
    assert said in assert_refused(ran)

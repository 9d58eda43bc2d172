"""What a caller of the command line pays: `acode-placement place` as a process.

    .venv/bin/python -m benchmarks.cli [--sizes 10,100,1000,10000] [--runs 5] [--json]

A CI job or a coding agent that asks once per task runs the command, not the
library: every call starts Python, imports the package, reads the targets file,
decides and writes its record. For each size: the bench fleet (`bench.fleet`, the
same seeded targets `bench` decides on) written as a targets file as `service_wrk`
writes it, the bench's GPU task as a task file, and `place --json --no-discovery`
run `--runs` times with the history on (durable, SQLite, a fresh file per size).
Reports the wall time of each run (median and fastest), the size of the targets
file, and `--version`'s wall time (starting Python and the command line alone).
Checks that every run answered (exit 0, placed, or 1, nothing fits) with one JSON
object and left its record.
Nothing here leaves the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from acode_placement.bench_fleet import GPU_TASK
from acode_placement.history.store import HistoryStore
from benchmarks.service_wrk import fleet_file


def _files(folder: Path, size: int) -> tuple[Path, Path, Path]:
    fleet_path = fleet_file(folder, str(size))
    task = folder / "task.yaml"
    requirements = GPU_TASK.model_dump(mode="json", by_alias=True, exclude_none=True)
    task.write_text(yaml.safe_dump({"task": {"name": "bench-gpu", "requirements": requirements}}))
    history = folder / f"history-{size}.db"
    settings = folder / f"placement-{size}.yaml"
    settings.write_text(
        yaml.safe_dump(
            {"placement": {"history": f"sqlite:///{history}", "strategy": "cost-optimized"}}
        )
    )
    return fleet_path, task, settings


def _timed(
    command: list[str], env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(  # exit 1 (nothing fits) is an answer too: checked by the caller
        command, check=False, capture_output=True, text=True, env=env, timeout=600
    )
    return time.perf_counter() - started, done


def run(sizes: list[int], runs: int) -> dict[str, Any]:
    executable = [sys.executable, "-m", "acode_placement"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="acode-cli-bench-") as name:
        folder = Path(name)
        env = {**os.environ, "XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder)}
        startup = [_timed([*executable, "--version"], env)[0] for _ in range(runs)]
        for size in sizes:
            targets, task, settings = _files(folder, size)
            command = [*executable, "place", str(task), "--targets", str(targets)]
            command += ["--config", str(settings), "--no-discovery", "--json"]
            times = []
            for _ in range(runs):
                seconds, done = _timed(command, env)
                if done.returncode not in (0, 1) or "requestId" not in json.loads(done.stdout):
                    raise SystemExit(f"place on {size} targets failed: {done.stderr.strip()}")
                times.append(seconds)
            store = HistoryStore(f"sqlite:///{folder / f'history-{size}.db'}")
            records = store.count()
            store.close()
            if records != runs:
                raise SystemExit(f"{runs} runs on {size} targets left {records} records")
            rows.append(
                {
                    "targets": size,
                    "fileBytes": targets.stat().st_size,
                    "p50S": round(statistics.median(times), 3),
                    "minS": round(min(times), 3),
                    "records": records,
                }
            )
    return {"runs": runs, "versionP50S": round(statistics.median(startup), 3), "sizes": rows}


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.cli")
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run([int(s) for s in args.sizes.split(",")], args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"acode-placement place --json --no-discovery, history on (SQLite), {args.runs} runs"
        f" each; {os.cpu_count()} CPUs; `--version` alone: {result['versionP50S']:.2f} s"
    )
    print("  targets  targets file  p50 s  fastest s  records")
    for row in result["sizes"]:
        print(
            f"  {row['targets']:7d}  {row['fileBytes'] / 1e6:9.2f} MB  {row['p50S']:5.2f}"
            f"  {row['minS']:9.2f}  {row['records']:7d}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

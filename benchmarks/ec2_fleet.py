"""EC2 fleet benchmark: expand and place over every current-generation type of a region.

    .venv/bin/python -m benchmarks.ec2_fleet [--region us-east-1] [--runs 200] [--json]

Uses the shipped catalog (no AWS): the first placement expands the fleet, prices
and discovers every member; the following ones are served from the engine's
caches, which is what a worker calling it on every task sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from typing import Any

from acode_placement import Ec2Target, PlacementEngine, PlacementOptions, TaskRequirements
from acode_placement.models import AwsApi, PlacementSettings

TASKS = [
    TaskRequirements(cpu=4, memory_gb=16, gpu={"type": "nvidia", "min_vram": 16}),
    TaskRequirements(cpu=8, memory_gb=32),
    TaskRequirements(cpu=4, arch="arm64", max_cost=1, max_runtime_minutes=60),
    TaskRequirements(gpu={"type": "nvidia", "count": 8, "min_vram": 80}),
]


def measure(region: str, runs: int) -> dict[str, Any]:
    engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.OFF))
    fleet = [Ec2Target(id="all", instance_types="*", region=region)]
    options = PlacementOptions(strategy="cost-optimized")

    async def go() -> dict[str, Any]:
        started = time.perf_counter()
        first = await engine.place(TASKS[0], fleet, options)
        cold = time.perf_counter() - started
        latencies = []
        for n in range(runs):
            started = time.perf_counter()
            await engine.place(TASKS[n % len(TASKS)], fleet, options)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        return {
            "region": region,
            "candidates": len(first.all_scores),
            "firstPlacementMs": round(cold * 1000, 1),
            "warmP50Ms": round(statistics.median(latencies) * 1000, 2),
            "warmP99Ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 2),
            "choice": first.selected.id if first.selected else None,
        }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", action="append")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("XDG_DATA_HOME", "/tmp/acode-placement-bench")
    regions = args.region or ["us-east-1", "eu-central-1"]
    results = {
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
        },
        "results": [measure(region, args.runs) for region in regions],
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}")
    print("  region         candidates  first ms  warm p50 ms  warm p99 ms  choice (GPU task)")
    for row in results["results"]:
        print(
            f"  {row['region']:<13}  {row['candidates']:10d}  {row['firstPlacementMs']:8.1f}"
            f"  {row['warmP50Ms']:11.2f}  {row['warmP99Ms']:11.2f}  {row['choice']}"
        )


if __name__ == "__main__":
    main()

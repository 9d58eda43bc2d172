"""Discovery benchmark: 100 SSH targets against a real sshd, and the cache hit rate
of a 1,000-placement loop.

    .venv/bin/python -m benchmarks.discovery [--targets 100] [--json]

Starts OpenSSH's server on 127.0.0.1 (as the tests do), points N targets at it
(each its own cache entry, so each is a real connection, key exchange, login and
probe run), and times a cold discovery at several concurrency bounds. The server
shares this machine's CPUs with the client, so the wall time is an upper bound
for remote hosts; the client's own CPU time is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from acode_placement import (
    CapabilityCache,
    Discovery,
    LocalProbe,
    LocalTarget,
    PlacementEngine,
    PlacementOptions,
    SshProbe,
    SshTarget,
    TaskRequirements,
)
from acode_placement.models import AnyTarget, TargetKind
from tests.sshd import Sshd, running_sshd


def fleet(server: Sshd, size: int) -> list[AnyTarget]:
    targets: list[AnyTarget] = [LocalTarget(id="local")]
    for i in range(size):
        targets.append(
            SshTarget(
                id=f"host-{i:03d}",
                host="127.0.0.1",
                port=server.port,
                user=server.user,
                identity_file=str(server.key("good")),
            )
        )
    return targets


def discovery(server: Sshd, concurrency: int) -> Discovery:
    return Discovery(
        {TargetKind.LOCAL: LocalProbe(10), TargetKind.SSH: SshProbe(30, server.known_hosts)},
        CapabilityCache(),
        concurrency=concurrency,
    )


def cold(server: Sshd, size: int, concurrency: int) -> dict[str, Any]:
    d = discovery(server, concurrency)
    targets = fleet(server, size)[1:]
    cpu, wall = time.process_time(), time.perf_counter()
    known = asyncio.run(d.lookup(targets))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ok = sum(k.status == "fresh" for k in known)
    return {
        "targets": size,
        "concurrency": concurrency,
        "wallS": round(wall, 2),
        "clientCpuS": round(cpu, 2),
        "fresh": ok,
    }


TASKS = [
    TaskRequirements(cpu=1, tools=["git"]),
    TaskRequirements(cpu=2, memory_gb=1, tools=["python3", "make"]),
    TaskRequirements(tools=["docker"], network=True),
    TaskRequirements(tools=["bazel"]),  # not among the common tools: asked on demand once
    TaskRequirements(cpu=1, preferences={"tools": ["zig"]}),
]


def loop(server: Sshd, size: int, placements: int) -> dict[str, Any]:
    d = discovery(server, 32)
    engine = PlacementEngine(discovery=d)
    targets = fleet(server, size)
    options = PlacementOptions(decision_timeout=30)
    latencies: list[float] = []

    async def run() -> None:
        for n in range(placements):
            started = time.perf_counter()
            await engine.place(TASKS[n % len(TASKS)], targets, options)
            latencies.append(time.perf_counter() - started)

    asyncio.run(run())
    warm = sorted(latencies[len(TASKS) :])
    return {
        "placements": placements,
        "targets": len(targets),
        "hitRate": round(d.stats.hit_rate, 4),
        "hits": d.stats.hits,
        "misses": d.stats.misses,
        "probes": d.stats.probes,
        "firstPlacementS": round(latencies[0], 2),
        "warmP50Ms": round(statistics.median(warm) * 1000, 2),
        "warmP99Ms": round(warm[int(len(warm) * 0.99) - 1] * 1000, 2),
    }


def local_probe(runs: int = 20) -> dict[str, Any]:
    probe = LocalProbe(10)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        asyncio.run(probe.probe(LocalTarget(id="local"), frozenset({"git", "docker"})))
        times.append(time.perf_counter() - started)
    return {"runs": runs, "p50Ms": round(statistics.median(times) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100)
    parser.add_argument("--placements", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, running_sshd(Path(root)) as server:
        results = {
            "machine": {
                "cpus": len(os.sched_getaffinity(0)),
                "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            },
            "localProbe": local_probe(),
            "cold": [cold(server, args.targets, c) for c in (8, 16, 32, 64)],
            "loop": loop(server, args.targets, args.placements),
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    machine = results["machine"]
    print(f"machine: {machine['cpus']} CPUs, {machine['processor']}, Python {machine['python']}")
    print(f"local probe: p50 {results['localProbe']['p50Ms']} ms")
    print("cold discovery of SSH targets (one sshd on this machine):")
    print("  targets  concurrency  wall s  client cpu s  fresh")
    for row in results["cold"]:
        print(
            f"  {row['targets']:7d}  {row['concurrency']:11d}  {row['wallS']:6.2f}"
            f"  {row['clientCpuS']:12.2f}  {row['fresh']:5d}"
        )
    row = results["loop"]
    print(
        f"placement loop: {row['placements']} placements over {row['targets']} targets:"
        f" cache hit rate {row['hitRate']:.2%} ({row['hits']} hits, {row['misses']} misses,"
        f" {row['probes']} probes); first placement {row['firstPlacementS']} s;"
        f" warm p50 {row['warmP50Ms']} ms, p99 {row['warmP99Ms']} ms"
    )


if __name__ == "__main__":
    main()

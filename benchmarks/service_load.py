"""Service load run: N placement requests over C connections on loopback.

    .venv/bin/python -m benchmarks.service_load [--requests 10000] [--connections 50] [--json]

Starts `acode-placement serve` on a free loopback port (history in a fresh SQLite
file, the example fleet, declared capabilities), sends the requests with httpx,
prints throughput and latency, and fails unless the history holds exactly one new
record per request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from acode_placement.history.store import HistoryStore
from tests.serving import wait_until_up
from tests.sshd import free_port

ROOT = Path(__file__).parent.parent
TOKEN = "load-test-token-of-this-run"  # 16+ visible characters, as serve asks
TASKS = [
    {"name": "build", "requirements": {"cpu": 2, "tools": ["docker"]}},
    {"name": "train", "requirements": {"gpu": {"type": "nvidia", "minVram": 16}, "maxCost": 5}},
    {"name": "impossible", "requirements": {"cpu": 512}},
]


async def load(base: str, requests: int, connections: int) -> tuple[list[float], int]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    failures = 0
    gate = asyncio.Semaphore(connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def one(n: int) -> None:
            nonlocal failures
            async with gate:
                started = time.perf_counter()
                response = await c.post("/v1/placements", json={"task": TASKS[n % len(TASKS)]})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures += 1

        await asyncio.gather(*(one(n) for n in range(requests)))
    return latencies, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="acode-load-"))
    config = work / "placement.yaml"
    config.write_text("placement:\n  discoveryEnabled: false\n")
    port = free_port()
    env = {**os.environ, "ACODE_PLACEMENT_TOKEN": TOKEN, "XDG_DATA_HOME": str(work)}
    command = [
        sys.executable, "-m", "acode_placement", "serve", "--port", str(port),
        "--targets", str(ROOT / "examples" / "targets.yaml"), "--config", str(config),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    history = HistoryStore(f"sqlite:///{work / 'acode-placement' / 'history.db'}")
    try:
        wait_until_up(base, server, path="/readyz")
        before = history.count()
        started = time.perf_counter()
        latencies, failures = asyncio.run(load(base, args.requests, args.connections))
        elapsed = time.perf_counter() - started
        recorded = history.count() - before
    finally:
        server.terminate()
        server.wait(30)
    latencies.sort()
    result: dict[str, Any] = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "requests": args.requests,
        "connections": args.connections,
        "seconds": round(elapsed, 2),
        "perSecond": round(args.requests / elapsed, 1),
        "p50Ms": round(statistics.median(latencies) * 1000, 2),
        "p99Ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "failures": failures,
        "newHistoryRecords": recorded,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.requests} requests over {args.connections} connections in"
            f" {result['seconds']} s: {result['perSecond']}/s, p50 {result['p50Ms']} ms,"
            f" p99 {result['p99Ms']} ms; {failures} failed; {recorded} new history records"
        )
    if failures or recorded != args.requests:
        raise SystemExit(f"expected {args.requests} new records and no failure")


if __name__ == "__main__":
    main()

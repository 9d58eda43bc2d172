"""Reservation benchmark: reserve+release cycles per second on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.reservations [--seconds 3] [--json]

Clients are threads, each with its own connection from the store's pool, cycling
reserve-then-release of 1 CPU on one 8-CPU target (so clients contend for the
same lock, the worst case). PostgreSQL is a throwaway cluster on 127.0.0.1 (as
the tests start it; needs PostgreSQL installed, as ./scripts/test does).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from acode_placement.history.reservations import ReservationStore
from acode_placement.models import Capacity, Resources
from tests.postgres import running_postgres

POOL = Capacity(cpu=8)


def measure(url: str, clients: int, seconds: float) -> dict[str, Any]:
    store = ReservationStore(url)
    store.usage(["pool"])  # migrate first
    done = [0] * clients
    full = [0] * clients
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        while time.perf_counter() < stop:
            lease = store.reserve("pool", Resources(cpu=1), POOL, lease=timedelta(minutes=5))
            if lease is None:
                full[n] += 1
                continue
            store.release(lease.id)
            done[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    store.close()
    return {"clients": clients, "cyclesPerSecond": round(sum(done) / elapsed, 1), "full": sum(full)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "results": [],
    }
    work = Path(tempfile.mkdtemp(prefix="acode-bench-"))
    work.chmod(0o755)
    try:
        sqlite = f"sqlite:///{work / 'bench.db'}"
        for clients in (1, 4, 16):
            results["results"].append(
                {"database": "sqlite", **measure(sqlite, clients, args.seconds)}
            )
        with running_postgres(work / "pg") as postgres:
            for clients in (1, 4, 16):
                row = measure(postgres, clients, args.seconds)
                results["results"].append({"database": "postgresql", **row})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    machine = results["machine"]
    print(f"machine: {machine['cpus']} CPUs, Python {machine['python']}")
    print("  database    clients  reserve+release/s")
    for row in results["results"]:
        print(f"  {row['database']:<10}  {row['clients']:7d}  {row['cyclesPerSecond']:17.1f}")


if __name__ == "__main__":
    main()

"""Replicas under load: N `serve` processes (standing for N hosts) on one PostgreSQL,
each driven by its own wrk at once, against 1 replica driven the same way.

    .venv/bin/python -m benchmarks.replicas_wrk [--replicas 1,3] [--connections 16]
        [--seconds 10] [--json]

Starts a PostgreSQL server on loopback (initdb + pg_ctl, as the tests do; after
`./scripts/test` has installed it; fsync off, so commits are cheaper than on a
real server), the example fleet, history on and durable. For each replica count,
runs one wrk per replica in parallel (`POST /v1/placements`), sums the requests per
second, and checks that the database holds a record for every completed request.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.service_wrk import LUA, TASK, TOKEN, fleet_file, serving, wrk
from tests.postgres import running_postgres


def count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("placements"):
                return 0
            return int(connection.execute(sa.text("SELECT COUNT(*) FROM placements")).scalar())
    finally:
        engine.dispose()


def fresh_database(server: str, name: str) -> str:
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


def run(replicas: list[int], connections: int, seconds: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="acode-replicas-") as name:
        folder = Path(name)
        folder.chmod(0o755)  # the postgres user must reach its data directory
        (folder / "pg").mkdir()
        (folder / "pg").chmod(0o755)
        script = folder / "place.lua"
        script.write_text(LUA.format(body=json.dumps(TASK), token=TOKEN))
        targets = fleet_file(folder, "example")
        with running_postgres(folder / "pg") as server:
            for n in replicas:
                url = fresh_database(server, f"replicas{n}")
                with contextlib.ExitStack() as stack:
                    bases = [
                        stack.enter_context(serving(folder, targets, 1, url)) for _ in range(n)
                    ]
                    before = count(url)
                    with tempfile.TemporaryDirectory() as outputs:
                        runs = _parallel(bases, connections, seconds, script, Path(outputs))
                    time.sleep(1)  # what wrk left in flight is answered and recorded
                    records = count(url) - before
                completed = sum(r["requests"] for r in runs)
                rows.append(
                    {
                        "replicas": n,
                        "perSecond": round(sum(r["perSecond"] for r in runs), 1),
                        "p99Ms": max(r["p99Ms"] for r in runs),
                        "errors": sum(r["errors"] for r in runs),
                        "requests": completed,
                        "records": records,
                        "recordsMatch": completed <= records <= completed + n * connections,
                    }
                )
    return rows


def _parallel(
    bases: list[str], connections: int, seconds: int, script: Path, outputs: Path
) -> list[dict[str, Any]]:
    """One wrk per replica, all at once (threads: each waits on its own process)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(len(bases)) as pool:
        return list(
            pool.map(lambda base: wrk(f"{base}/v1/placements", connections, seconds, script), bases)
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.replicas_wrk")
    parser.add_argument("--replicas", default="1,3")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run([int(n) for n in args.replicas.split(",")], args.connections, args.seconds)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"one wrk -t2 -c{args.connections} -d{args.seconds}s per replica, PostgreSQL")
        print("  replicas  placements/s  worst p99 ms  errors  records")
        for r in rows:
            print(
                f"  {r['replicas']:8d}  {r['perSecond']:12.1f}  {r['p99Ms']:12.2f}"
                f"  {r['errors']:6d}  {r['records']} ({'ok' if r['recordsMatch'] else 'MISMATCH'})"
            )
    return 0 if all(r["recordsMatch"] and r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

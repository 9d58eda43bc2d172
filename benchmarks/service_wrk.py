"""Service load with a real load generator: wrk (Debian's package) against `serve`.

    .venv/bin/python -m benchmarks.service_wrk [--workers 1,2] [--fleets example,1000]
        [--answers full,lean] [--pin off,on] [--connections 32] [--seconds 10]
        [--warmup 2] [--json]

For each fleet, worker count and pinning (`--pin on`: `serve --pin-cpus`): starts
`acode-placement serve --workers N` on a free
loopback port (history on, durable, in a fresh SQLite file; declared capabilities),
drives `POST /v1/placements` (`full`: the `place --json` object; `lean`: with
`candidates: false`, every target's checks left out) with wrk (`--latency`, a Lua
script for the body and the token) after `--warmup` seconds of the same load (what a
server that has been running meets: its workers warm, its clients spread over them),
then `GET /healthz` the same way, and reads the
history: every completed request must have its record (wrk stops with up to one
request per connection in flight, which the server still answers and records). Needs `wrk` on PATH
(`apt-get install wrk`); nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from acode_placement.bench import fleet
from acode_placement.history.store import HistoryStore
from tests.serving import wait_until_up
from tests.sshd import free_port

ROOT = Path(__file__).parent.parent
TOKEN = "wrk-load-token-of-this-run"
TASK = {"task": {"name": "build", "requirements": {"cpu": 2, "tools": ["docker"]}}}
LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def fleet_file(folder: Path, name: str) -> Path:
    if name == "example":
        return ROOT / "examples" / "targets.yaml"
    targets, _ = fleet(int(name))
    path = folder / f"fleet-{name}.yaml"
    dumped = [t.model_dump(mode="json", exclude_none=True) for t in targets]
    path.write_text(yaml.safe_dump({"targets": dumped}))
    return path


@contextlib.contextmanager
def serving(
    folder: Path, targets: Path, workers: int, history: str, *, pin: bool = False
) -> Iterator[str]:
    """`serve --workers N` on a free port with the history at `history` (with `pin`,
    `--pin-cpus`); its base URL."""
    config = folder / f"placement-{free_port()}.yaml"
    config.write_text(
        yaml.safe_dump({"placement": {"discoveryEnabled": False, "history": history}})
    )
    port = free_port()
    env = {**os.environ, "ACODE_PLACEMENT_TOKEN": TOKEN, "XDG_DATA_HOME": str(folder)}
    command = [sys.executable, "-m", "acode_placement", "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--config", str(config), "--targets", str(targets)]
    command += ["--pin-cpus"] if pin else []
    server = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server, seconds=60)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(workers * 4):  # every worker opens its database and compiles
            httpx.post(f"{base}/v1/placements:explain", json=TASK, headers=headers, timeout=60)
        yield base
    finally:
        server.terminate()
        server.wait(60)


def wrk(url: str, connections: int, seconds: int, script: Path | None) -> dict[str, Any]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "perSecond": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50Ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99Ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "errors": int(errors.group(1)) if errors else 0,
        "socketErrors": socket_errors.group(1) if socket_errors else None,
    }


def _ms(text: str) -> float:
    number = float(re.sub(r"[a-z]+$", "", text))
    unit = re.sub(r"^[\d.]+", "", text)
    return round(number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit], 3)


def run(
    workers: list[int],
    fleets: list[str],
    answers: list[str],
    connections: int,
    seconds: int,
    *,
    warmup: int = 2,
    pins: tuple[bool, ...] = (False,),
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="acode-wrk-") as name:
        folder = Path(name)
        runs = itertools.product(fleets, workers, pins, answers)
        for fleet_name, count, pin, answer in runs:
            targets = fleet_file(folder, fleet_name)
            script = folder / f"place-{answer}.lua"
            body = {**TASK, "candidates": answer == "full"}
            script.write_text(LUA.format(body=json.dumps(body), token=TOKEN))
            database = folder / f"history-{count}-{pin}-{answer}-{targets.stem}.db"
            with serving(folder, targets, count, f"sqlite:///{database}", pin=pin) as base:
                store = HistoryStore(f"sqlite:///{database}")
                if warmup:  # the same load first: a running server's steady state
                    wrk(f"{base}/v1/placements", connections, warmup, script)
                    time.sleep(1)
                before = store.count()
                placing = wrk(f"{base}/v1/placements", connections, seconds, script)
                time.sleep(1)  # the requests wrk left in flight are answered
                records = store.count() - before
                health = wrk(f"{base}/healthz", connections, seconds, None)
                store.close()
            rows.append(
                {
                    "fleet": fleet_name,
                    "workers": count,
                    "pinned": pin,
                    "answer": answer,
                    "placements": placing,
                    "healthz": health,
                    "records": records,
                    "recordsMatch": placing["requests"]
                    <= records
                    <= placing["requests"] + connections,
                    "placementsVsHealthz": round(placing["perSecond"] / health["perSecond"], 3),
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.service_wrk")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--fleets", default="example,1000")
    parser.add_argument("--answers", default="full,lean")
    parser.add_argument(
        "--pin", default="off", help="off, on or off,on: serve with --pin-cpus or without"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the same load first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    rows = run(
        [int(w) for w in args.workers.split(",")],
        args.fleets.split(","),
        args.answers.split(","),
        args.connections,
        args.seconds,
        warmup=args.warmup,
        pins=tuple(p == "on" for p in args.pin.split(",")),
    )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"wrk -t2 -c{args.connections} -d{args.seconds}s (after {args.warmup} s of the same)"
            " on 127.0.0.1;"
            f" {os.cpu_count()} CPUs shared by server and load generator"
        )
        print(
            "  fleet     workers  pinned  answer  placements/s  p50 ms  p99 ms  errors  healthz/s"
            "  ratio  records"
        )
        for r in rows:
            p, h = r["placements"], r["healthz"]
            print(
                f"  {r['fleet']:8}  {r['workers']:7d}  {'yes' if r['pinned'] else 'no':6}"
                f"  {r['answer']:6}  {p['perSecond']:12.1f}"
                f"  {p['p50Ms']:6.2f}"
                f"  {p['p99Ms']:6.2f}  {p['errors']:6d}  {h['perSecond']:9.1f}"
                f"  {r['placementsVsHealthz']:5.2f}  {r['records']}"
                f" ({'ok' if r['recordsMatch'] else 'MISMATCH'})"
            )
    return 0 if all(r["recordsMatch"] and r["placements"]["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

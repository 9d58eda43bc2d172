"""Replicas: several `serve` processes (separate ports, standing for separate hosts)
on one PostgreSQL, under load from a client that spreads requests across them; one
is killed with SIGKILL midway. Read from the database afterwards: no target ever
over-committed, exactly one record per answered request, no committed record lost,
no lease without an end."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.serving import wait_until_up
from tests.sshd import free_port

TOKEN = "correct-horse-battery-staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CPUS = {"a": 4, "b": 6, "c": 8}


@contextlib.contextmanager
def replicas(
    home: Path, url: str, count: int
) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    config = home / "placement.yaml"
    config.write_text(yaml.safe_dump({"placement": {"discoveryEnabled": False, "history": url}}))
    fleet = home / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "targets": [
                    {
                        "id": name,
                        "type": "ssh",
                        "host": f"{name}.invalid",
                        "capabilities": {"cpu": cpu},
                    }
                    for name, cpu in CPUS.items()
                ]
            }
        )
    )
    env = {**os.environ, "ACODE_PLACEMENT_TOKEN": TOKEN, "XDG_DATA_HOME": str(home)}
    started = []
    for _ in range(count):
        port = free_port()
        command = [sys.executable, "-m", "acode_placement", "serve", "--port", str(port)]
        command += ["--config", str(config), "--targets", str(fleet)]
        started.append(
            (
                f"http://127.0.0.1:{port}",
                subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL),
            )
        )
    try:
        for base, process in started:
            wait_until_up(base, process, path="/readyz", seconds=60)
        yield started
    finally:
        for _, process in started:
            if process.poll() is None:
                process.terminate()
                process.wait(30)


@pytest.mark.parametrize("url", ["postgresql"], indirect=True)  # one server, shared
def test_three_replicas_one_killed_nothing_lost_nothing_over_committed(
    url: str, tmp_path: Path
) -> None:
    database = url
    answered: list[str] = []  # request ids of the placements a replica answered
    lock = threading.Lock()
    with replicas(tmp_path, database, 3) as running:
        bases = itertools.cycle([base for base, _ in running])
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(headers=AUTH, timeout=30) as http:
                while not stop.is_set():
                    with lock:
                        base = next(bases)
                    body = {
                        "task": {"name": "one", "requirements": {"cpu": 1}},
                        "reserve": True,
                        "owner": "replica-test",
                    }
                    try:
                        response = http.post(f"{base}/v1/placements", json=body)
                    except httpx.HTTPError:
                        continue  # the killed replica: no answer, nothing promised
                    if response.status_code == 200:
                        with lock:
                            answered.append(response.json()["requestId"])

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        running[1][1].send_signal(signal.SIGKILL)  # mid-load, mid-transaction perhaps
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join(60)

    assert len(answered) > 30
    engine = sa.create_engine(database)
    with engine.connect() as c:
        records = [r for (r,) in c.execute(sa.text("SELECT request_id FROM placements"))]
        leases = c.execute(
            sa.text(
                "SELECT target_id, SUM(cpu), COUNT(*) FROM reservations"
                " WHERE ended_at IS NULL GROUP BY target_id"
            )
        ).all()
        endless = c.execute(
            sa.text("SELECT COUNT(*) FROM reservations WHERE expires_at IS NULL")
        ).scalar()
    engine.dispose()
    assert len(records) == len(set(records))  # exactly one record per request
    assert set(answered) <= set(records)  # every answered placement is recorded
    for target, cpu, _count in leases:
        assert cpu <= CPUS[target], (target, cpu)  # never over-committed
    assert sum(count for _, _, count in leases) <= sum(CPUS.values())
    assert endless == 0

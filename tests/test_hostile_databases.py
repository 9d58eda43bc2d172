"""Hostile and failing databases: deleted, replaced or unusable under a running
process, garbage files, URLs that do not parse or carry secrets. A process never
writes into a file no one else sees, never over-commits a target, and never shows a
secret."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from acode_placement import server as guarded
from acode_placement.engine import PlacementEngine
from acode_placement.errors import StoreUnavailableError
from acode_placement.history.database import DatabaseFile, HistoryError
from acode_placement.history.reservations import ReservationStore
from acode_placement.history.store import HistoryStore
from acode_placement.models import (
    Capabilities,
    Capacity,
    LocalTarget,
    PlacementOptions,
    Resources,
)
from acode_placement.service import create_app
from tests.hostile import SCRIPT, assert_refused, environment, run
from tests.serving import wait_until_up
from tests.sshd import free_port

TOKEN = "correct-horse-battery-staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CPUS = 8
FLEET = {
    "targets": [
        {
            "id": "box",
            "type": "ssh",
            "host": "box.invalid",
            "capabilities": {"cpu": CPUS, "memoryGb": 64, "os": "linux"},
        }
    ]
}
ONE_CPU = {"name": "one", "requirements": {"cpu": 1, "maxRuntimeMinutes": 600}}


def active_cpus(path: Path) -> dict[str, float]:
    """Active leases (id -> cpu) as the database file at `path` holds them."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT id, cpu FROM reservations WHERE ended_at IS NULL AND target_id = 'box'"
        ).fetchall()
    return dict(rows)


def keep(path: Path, name: str) -> Path:
    """A second name for the database file and its WAL, so that it can still be read
    after `path` is deleted (the process that has it open sees no difference)."""
    kept = path.with_name(name)
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.link(source, f"{kept}{suffix}")
    return kept


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


@contextlib.contextmanager
def serving(home: Path) -> Iterator[str]:
    config = home / "placement.yaml"
    database = home / "history.db"
    config.write_text(
        yaml.safe_dump(
            {"placement": {"discoveryEnabled": False, "history": f"sqlite:///{database}"}}
        )
    )
    fleet = home / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port), "--config", config, "--targets", fleet],
        env=environment(home, ACODE_PLACEMENT_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
        assert "Traceback" not in err, err[-3000:]


class Clients:
    """Two clients reserving one CPU at a time, each in its own thread."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.granted: list[tuple[str, str]] = []  # (phase, lease id)
        self.refused: list[tuple[str, int]] = []
        self.phase = "before"
        self.lock = threading.Lock()

    def reserve(self, times: int) -> None:
        def worker() -> None:
            with httpx.Client(base_url=self.base, headers=AUTH, timeout=30) as client:
                for _ in range(times):
                    phase = self.phase
                    response = client.post(
                        "/v1/placements", json={"task": ONE_CPU, "reserve": True}
                    )
                    with self.lock:
                        answer = response.json()
                        if response.status_code == 200 and answer.get("reservation"):
                            self.granted.append((phase, answer["reservation"]["id"]))
                        else:
                            assert response.status_code in (200, 503), response.text
                            self.refused.append((phase, response.status_code))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)


def test_no_lease_in_a_file_no_one_sees(tmp_path: Path) -> None:
    """The database is deleted, then replaced, under a running serve while two
    clients reserve, and another process reserves in the file now at the path.
    Read from every database file involved, no target is ever over-committed, and
    the server grants nothing once its file is gone."""
    database = tmp_path / "history.db"
    with serving(tmp_path) as base:
        clients = Clients(base)
        clients.reserve(3)  # six leases, two CPUs left on the box
        assert len(clients.granted) == 6
        original = keep(database, "original.db")

        remove(database)  # deleted under the server
        clients.phase = "deleted"
        clients.reserve(3)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "not ready"}
        told = httpx.get(f"{base}/readyz", headers=AUTH).json()["detail"]
        assert "deleted" in told

        # Another process, knowing nothing of the lost file, fills the box in a new one.
        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"task": ONE_CPU}))
        for _ in range(CPUS):
            placed = run(
                tmp_path, "place", task, "--targets", tmp_path / "fleet.yaml", "--config",
                tmp_path / "placement.yaml", "--reserve",
            )  # fmt: skip
            assert placed.code == 0, placed.err
        clients.phase = "recreated"
        clients.reserve(3)

        # And an operator restores the original file over the path (a backup).
        remove(database)
        shutil.copyfile(original, database)
        for suffix in ("-wal", "-shm"):
            if Path(f"{original}{suffix}").exists():
                shutil.copyfile(f"{original}{suffix}", f"{database}{suffix}")
        clients.phase = "replaced"
        clients.reserve(3)
        assert httpx.get(f"{base}/readyz").status_code == 503

    after = [phase for phase, _ in clients.granted if phase != "before"]
    assert after == [], f"leases granted after the file was gone: {after}"
    assert {code for _, code in clients.refused} == {503}
    for path in (original, database):
        leases = active_cpus(path)
        assert sum(leases.values()) <= CPUS, (path, leases)
    server_leases = {lease_id for _, lease_id in clients.granted}
    assert server_leases <= set(active_cpus(original))  # all in the file others saw


class TestStoresNoticeTheirFile:
    def test_a_deleted_history_is_not_written(self, tmp_path: Path) -> None:
        database = tmp_path / "history.db"
        store = HistoryStore(f"sqlite:///{database}")
        assert store.count() == 0
        remove(database)
        with pytest.raises(HistoryError, match="deleted while this process had it open"):
            store.count()
        with pytest.raises(HistoryError, match="restart"):
            store.check()

    def test_a_replaced_history_is_not_written(self, tmp_path: Path) -> None:
        database = tmp_path / "history.db"
        store = HistoryStore(f"sqlite:///{database}")
        store.count()
        other = HistoryStore(f"sqlite:///{tmp_path / 'other.db'}")
        other.count()
        os.replace(tmp_path / "other.db", database)
        with pytest.raises(HistoryError, match="replaced"):
            store.check()

    def test_a_deleted_reservation_store_grants_nothing(self, tmp_path: Path) -> None:
        database = tmp_path / "history.db"
        store = ReservationStore(f"sqlite:///{database}")
        capacity = Capacity(cpu=8)
        lease = store.reserve("box", Resources(cpu=1), capacity, lease=_minutes(10))
        assert lease is not None
        kept = keep(database, "kept.db")
        remove(database)
        with pytest.raises(StoreUnavailableError, match="deleted"):
            store.reserve("box", Resources(cpu=1), capacity, lease=_minutes(10))
        assert list(active_cpus(kept)) == [lease.id]  # nothing written to the lost file

    def test_read_only_is_noticed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        database = tmp_path / "history.db"
        HistoryStore(f"sqlite:///{database}").count()
        found = DatabaseFile.of(f"sqlite:///{database}")
        assert found is not None and found.problem() is None
        # root may write anywhere; pretend to be anyone else
        monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
        assert found.problem() == "the database file (or its directory) became read-only"


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


URLS = {
    "not-a-url": ("not a url", "not a database URL"),
    "unknown-dialect": ("nosuchdb://host/db", "nosuchdb://host/db"),
    "missing-driver": (
        "mysql+nosuchdriver://topsecretuser:hunter2@127.0.0.1/db",
        "mysql+nosuchdriver://***@127.0.0.1/db",
    ),
    "unreachable-postgres": (
        "postgresql+psycopg://topsecretuser:hunter2@127.0.0.1:1/db?sslkey=/secret/key",
        "127.0.0.1",
    ),
    "password-in-query": (
        "postgresql+psycopg://127.0.0.1:1/db?password=hunter2&user=topsecretuser",
        "password=***",
    ),
    "unwritable-directory": ("sqlite:////proc/acode/history.db", "/proc/acode/history.db"),
    "directory-as-file": ("sqlite:///{home}", "unable to open"),
}


@pytest.mark.parametrize(("url", "mention"), URLS.values(), ids=URLS.keys())
@pytest.mark.parametrize("command", ["history", "place-reserve", "reservations"])
def test_bad_history_urls_are_one_line_without_secrets(
    tmp_path: Path, url: str, mention: str, command: str
) -> None:
    config = tmp_path / "placement.yaml"
    config.write_text(yaml.safe_dump({"placement": {"history": url.format(home=tmp_path)}}))
    task = tmp_path / "task.yaml"
    task.write_text(yaml.safe_dump({"task": ONE_CPU}))
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(FLEET))
    argv: list[str | Path] = {
        "history": ["history"],
        "reservations": ["reservations"],
        "place-reserve": ["place", task, "--targets", fleet, "--no-discovery", "--reserve"],
    }[command]
    ran = run(tmp_path, *argv, "--config", config, timeout=60)
    assert mention in assert_refused(ran)


@pytest.mark.parametrize(
    "content",
    [b"this is not a database" * 100, b"SQLite format 3\x00" + b"\xff" * 4096, b""],
    ids=["text", "corrupt-header", "empty"],
)
def test_a_garbage_database_file(tmp_path: Path, content: bytes) -> None:
    database = tmp_path / "history.db"
    database.write_bytes(content)
    config = tmp_path / "placement.yaml"
    config.write_text(yaml.safe_dump({"placement": {"history": f"sqlite:///{database}"}}))
    ran = run(tmp_path, "history", "--config", config)
    if content:
        assert "history" in assert_refused(ran)
        assert database.read_bytes() == content  # nothing already there is rewritten
    else:
        assert ran.code == 0  # an empty file is a new database


@pytest.fixture
def served(url: str) -> Iterator[str]:
    """The service, in this process but over real HTTP (the guarded uvicorn of
    `serve`), with its history and leases on `url` (SQLite, then PostgreSQL)."""
    engine = PlacementEngine(history=HistoryStore(url), reservations=ReservationStore(url))
    fleet = [LocalTarget(id="local", capabilities=Capabilities(cpu=4, memory_gb=8))]
    app = create_app(engine, fleet, TOKEN, defaults=PlacementOptions(discovery_enabled=False))
    port = free_port()
    server = uvicorn.Server(guarded.config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


NUL_REQUESTS = {
    "record-id": ("GET", "/v1/placements/a%00b", None, 404),
    "target-filter": ("GET", "/v1/placements?target=a%00b", None, 200),
    "reservation-id": ("DELETE", "/v1/reservations/a%00b", None, 404),
    "task-name": ("POST", "/v1/placements", {"task": {"name": "a\u0000b"}}, 422),
    "owner": ("POST", "/v1/placements", {"task": {"name": "t"}, "owner": "\u0000"}, 422),
    "custom-value": (
        "POST",
        "/v1/placements",
        {"task": {"name": "t", "requirements": {"custom": {"k": "a\u0000b"}}}},
        200,
    ),
}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"), NUL_REQUESTS.values(), ids=NUL_REQUESTS.keys()
)
def test_a_nul_never_reaches_the_database_as_an_error(
    served: str, method: str, path: str, body: dict[str, Any] | None, status: int
) -> None:
    """PostgreSQL refuses NUL in text: a NUL in an id or a name is a 404 or a 422
    there as on SQLite, never a 5xx."""
    response = httpx.request(method, served + path, json=body, headers=AUTH, timeout=30)
    assert response.status_code == status, response.text

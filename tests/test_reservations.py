"""Reservations: free capacity decides, leases are released on every way out,
expire and are reclaimed, and two processes never over-commit a target (SQLite and
a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from acode_placement import (
    Capabilities,
    GpuInfo,
    LocalTarget,
    PlacementEngine,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from acode_placement.history.reservations import ReservationError, ReservationStore
from acode_placement.models import Capacity, Resources
from tests.conftest import Cli

ROOT = Path(__file__).parent.parent
LOCAL = LocalTarget(
    id="local",
    capabilities=Capabilities(cpu=8, memory_gb=32, gpu=GpuInfo(type="nvidia", count=2)),
)
REMOTE = SshTarget(id="box", host="box", capabilities=Capabilities(cpu=16, memory_gb=64))
NO_DISCOVERY = PlacementOptions(discovery_enabled=False, strategy="local-first")


def engine_on(url: str, grace: timedelta = timedelta(minutes=60)) -> PlacementEngine:
    return PlacementEngine(reservations=ReservationStore(url), reservation_grace=grace)


def reserve(engine: PlacementEngine, req: TaskRequirements, **kw: Any) -> Any:
    return asyncio.run(engine.place(req, [LOCAL, REMOTE], NO_DISCOVERY, reserve=True, **kw))


class TestFreeCapacity:
    def test_local_fills_up_then_the_task_bursts_and_says_why(self, url: str) -> None:
        engine = engine_on(url)
        req = TaskRequirements(cpu=3)
        first, second, third = (reserve(engine, req) for _ in range(3))
        assert [r.selected.id for r in (first, second, third)] == ["local", "local", "box"]
        assert first.reservation.target_id == "local" and first.reservation.resources.cpu == 3
        local = next(ts for ts in third.all_scores if ts.id == "local")
        from acode_placement import explain

        assert [explain.check_text(c) for c in local.mismatches] == [
            "cpu 2 free of 8 (6 reserved by 2 tasks) < 3"
        ]
        assert (
            "local is full (cpu 2 free of 8 (6 reserved by 2 tasks) < 3), so the task bursts"
            in (explain.why(third))
        )
        assert third.failure_message is None
        # Releasing makes room again.
        engine.release(first.reservation.id)
        assert reserve(engine, req).selected.id == "local"

    def test_without_reserve_reservations_are_ignored(self, url: str) -> None:
        engine = engine_on(url)
        for _ in range(3):
            reserve(engine, TaskRequirements(cpu=3))
        plain = asyncio.run(engine.place(TaskRequirements(cpu=3), [LOCAL, REMOTE], NO_DISCOVERY))
        assert plain.selected.id == "local" and plain.reservation is None

    def test_gpus_and_max_concurrent_tasks(self, url: str) -> None:
        engine = engine_on(url)
        gpu = TaskRequirements(gpu={"type": "nvidia", "count": 1})
        assert [reserve(engine, gpu).selected.id for _ in range(2)] == ["local", "local"]
        full = reserve(engine, gpu)
        assert not full.success  # box has no GPU
        from acode_placement import explain

        local = full.all_scores[0]
        assert explain.check_text(local.mismatches[0]) == (
            "gpu count 0 free of 2 (2 reserved by 2 tasks) < 1"
        )
        limited = LOCAL.model_copy(update={"max_concurrent_tasks": 2, "id": "limited"})
        both = [limited]
        engine2 = engine_on(url)
        for _ in range(2):
            assert asyncio.run(
                engine2.place(TaskRequirements(), both, NO_DISCOVERY, reserve=True)
            ).success
        refused = asyncio.run(engine2.place(TaskRequirements(), both, NO_DISCOVERY, reserve=True))
        assert not refused.success
        assert explain.check_text(refused.all_scores[0].mismatches[0]) == (
            "2 reserved tasks at maxConcurrentTasks 2"
        )


class TestLeases:
    def test_the_context_manager_releases_on_every_way_out(self, url: str) -> None:
        engine = engine_on(url)
        store = engine.reservations
        assert store is not None

        async def normal() -> None:
            async with engine.reserve(TaskRequirements(cpu=8), [LOCAL]) as placement:
                assert placement.reservation is not None and len(store.active()) == 1

        async def failing() -> None:
            async with engine.reserve(TaskRequirements(cpu=8), [LOCAL]) as placement:
                assert placement.reservation is not None
                raise RuntimeError("the task failed")

        async def cancelled() -> None:
            async def hold() -> None:
                async with engine.reserve(TaskRequirements(cpu=8), [LOCAL]):
                    await asyncio.sleep(30)

            task = asyncio.ensure_future(hold())
            while not store.active():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(normal())
        assert store.active() == []
        with pytest.raises(RuntimeError, match="the task failed"):
            asyncio.run(failing())
        assert store.active() == []
        asyncio.run(cancelled())
        assert store.active() == []

    def test_release_renew_and_errors(self, url: str) -> None:
        engine = engine_on(url)
        lease = reserve(engine, TaskRequirements(cpu=1)).reservation
        renewed = engine.renew(lease.id, minutes=300)
        assert renewed.expires_at > lease.expires_at
        released = engine.release(lease.id)
        assert released.end_reason == "released"
        assert engine.release(lease.id).end_reason == "released"  # again: harmless
        with pytest.raises(ReservationError, match="no reservation 'nope'"):
            engine.release("nope")
        with pytest.raises(ReservationError, match="has ended"):
            engine.renew(lease.id)

    def test_expired_leases_are_reclaimed_and_counted(self, url: str) -> None:
        engine = engine_on(url, grace=timedelta(0))
        short = TaskRequirements(cpu=8, max_runtime_minutes=0.005)  # 0.3 s
        lease = reserve(engine, short).reservation
        assert lease.target_id == "local"
        assert reserve(engine, TaskRequirements(cpu=8)).selected.id == "box"
        time.sleep(0.4)
        again = reserve(engine, TaskRequirements(cpu=8))
        assert again.selected.id == "local"
        assert (
            engine.metrics.registry.get_sample_value("acode_placement_reservations_reclaimed_total")
            == 1
        )
        with pytest.raises(ReservationError, match=r"expired at .*reclaimed"):
            engine.release(lease.id)


def _max_reserved(url: str, stop: threading.Event, seen: list[float]) -> None:
    database = sa.create_engine(url)
    query = sa.text(
        "SELECT COALESCE(SUM(cpu), 0) FROM reservations"
        " WHERE target_id = 'pool' AND ended_at IS NULL"
    )
    while not stop.is_set():
        with database.connect() as c:
            seen.append(float(c.execute(query).scalar() or 0))
        time.sleep(0.002)
    database.dispose()


def worker(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reservation_worker", url, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


class TestAcrossProcesses:
    def test_two_processes_never_over_commit_eight_cpus(self, url: str) -> None:
        store = ReservationStore(url)
        store.usage(["pool"])  # create the schema before the race
        stop, seen = threading.Event(), []
        monitor = threading.Thread(target=_max_reserved, args=(url, stop, seen))
        monitor.start()
        try:
            workers = [worker(url, "500", "3"), worker(url, "500", "3")]
            outputs = [w.communicate(timeout=300)[0] for w in workers]
        finally:
            stop.set()
            monitor.join()
        assert all(w.returncode == 0 for w in workers)
        taken = sum(int(out.split()[-1]) for out in outputs)
        assert taken > 100  # they did run into each other and still got work done
        assert len(seen) > 10 and max(seen) <= 8
        assert store.active() == [] and store.usage(["pool"])["pool"].cpu == 0

    def test_a_killed_holder_gives_its_capacity_back_after_expiry(self, url: str) -> None:
        store = ReservationStore(url)
        holder = worker(url, "0", "8", "hold")
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        pool = Capacity(cpu=8)
        assert store.reserve("pool", Resources(cpu=1), pool, lease=timedelta(minutes=1)) is None
        time.sleep(2.2)
        taken = store.reserve("pool", Resources(cpu=8), pool, lease=timedelta(minutes=1))
        assert taken is not None and store.reclaimed == 1


class TestCommands:
    def test_place_reserve_reservations_release(self, cli: Cli, tmp_path: Path) -> None:
        targets = tmp_path / "targets.yaml"
        targets.write_text("targets:\n  - id: here\n    type: local\n    capabilities: {cpu: 4}\n")
        task = tmp_path / "task.yaml"
        task.write_text("task:\n  name: t\n  requirements: {cpu: 3}\n")
        code, out = cli.json(
            "place", task, "--targets", targets, "--no-discovery", "--reserve", "--owner", "ci-7"
        )
        assert code == 0
        lease = out["reservation"]
        assert (lease["target"], lease["cpu"], lease["owner"]) == ("here", 3.0, "ci-7")
        code, full = cli.json("place", task, "--targets", targets, "--no-discovery", "--reserve")
        assert code == 1 and "1 full (reserved)" in full["failureMessage"]
        code, listed = cli.json("reservations")
        assert [r["id"] for r in listed["reservations"]] == [lease["id"]]
        code, text, _ = cli("release", lease["id"])
        assert code == 0 and text.strip() == f"released {lease['id']} on here"
        code, text, _ = cli("release", lease["id"])
        assert code == 0  # again: harmless
        code, _, err = cli("release", "nope")
        assert code == 2 and err.strip() == "acode-placement: error: no reservation 'nope'"
        assert cli.json("reservations")[1] == {"reservations": []}

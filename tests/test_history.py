"""The history (real SQLite files and a real PostgreSQL server), metrics, events and
logs: every decision recorded once, nothing lost, nothing leaked."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from acode_placement import (
    AcquireError,
    Capabilities,
    Ec2Target,
    LocalTarget,
    PlacementEngine,
    PlacementOptions,
    SshTarget,
    StrategyRegistry,
    TaskRequirements,
    explain,
)
from acode_placement.errors import InputError
from acode_placement.events import CapabilitiesChanged, Change, event_json
from acode_placement.history.database import HEAD, HistoryError, json_text
from acode_placement.history.replay import explanation, replay
from acode_placement.history.reservations import ReservationStore
from acode_placement.history.store import KEPT_ALTERNATIVES, HistoryStore
from acode_placement.models import AnyTarget, Attempt
from tests.conftest import Cli
from tests.test_properties import SETTINGS, every_option, every_rule, fleets

ROOT = Path(__file__).parent.parent
FLEET = [
    SshTarget(id="big", host="big", capabilities=Capabilities(cpu=16, memory_gb=64, os="linux")),
    SshTarget(id="small", host="small", capabilities=Capabilities(cpu=2, memory_gb=4)),
    Ec2Target(id="cloud", instance_type="m7i.2xlarge", capabilities=Capabilities(cpu=8)),
]
NO_DISCOVERY = PlacementOptions(discovery_enabled=False)


def engine_with(url: str, **kw: Any) -> PlacementEngine:
    return PlacementEngine(history=HistoryStore(url, **kw))


def place(engine: PlacementEngine, req: TaskRequirements | None = None, **kw: Any) -> Any:
    return asyncio.run(
        engine.place(req or TaskRequirements(cpu=4), FLEET, NO_DISCOVERY, task_name="t", **kw)
    )


class TestRecords:
    def test_a_decision_is_recorded_with_its_inputs_and_explanation(self, url: str) -> None:
        engine = engine_with(url)
        result = place(engine, TaskRequirements(cpu=4, tools=["git"], max_cost=5))
        record = engine.history.get(result.request_id)  # type: ignore[union-attr]
        assert record is not None
        assert (record.task_name, record.strategy, record.mode) == ("t", "auto", "burst")
        assert record.requirements == {
            "cpu": 4.0,
            "tools": ["git"],
            "maxCost": 5.0,
            "allowCloud": True,
            "custom": {},
            "affinity": [],
            "antiAffinity": [],
        }
        assert record.options["discoveryEnabled"] is False
        assert record.success is False and record.reason == "NoValidTarget"
        assert [c["target"]["id"] for c in record.candidates] == ["big", "small", "cloud"]
        assert record.snapshot is not None and "candidates" not in record.result  # compact
        shown = explanation(engine, record)  # rebuilt from the snapshot, as place printed it
        assert shown == explain.result_json(result)
        assert shown["candidates"][0]["mismatches"] == ["tool git missing"]
        assert record.result["failureMessage"] == result.failure_message
        assert record.duration_ms > 0 and record.engine_version == "0.1.0"

    def test_a_success_keeps_target_score_cost_and_price_source(self, url: str) -> None:
        engine = engine_with(url)
        req = TaskRequirements(cpu=8)
        result = asyncio.run(
            engine.place(
                req, FLEET, PlacementOptions(discovery_enabled=False, strategy="cloud-first")
            )
        )
        record = engine.history.get(result.request_id[:12])  # type: ignore[union-attr]
        assert record is not None and record.success
        assert (record.target_id, record.target_type) == ("cloud", "ec2")
        assert record.score == pytest.approx(result.selected.score)
        assert record.estimated_cost == pytest.approx(0.4032)  # catalog m7i.2xlarge, 60 min
        assert record.price_source is not None and record.price_source.startswith("catalog 20")

    def test_aborted_and_cancelled_decisions_are_recorded_once(self, url: str) -> None:
        class Raising:
            name = "raising"

            def can_handle(self, requirements: TaskRequirements) -> bool:
                return True

            def score(self, *args: Any) -> float:
                raise RuntimeError("strategy bug")

        engine = engine_with(url)
        engine.register_strategy(Raising())
        with pytest.raises(Exception, match="strategy bug"):
            asyncio.run(
                engine.place(
                    TaskRequirements(),
                    FLEET,
                    PlacementOptions(strategy="raising", discovery_enabled=False),
                )
            )

        async def cancelled() -> None:
            never = asyncio.Event()

            async def slow(*_: Any) -> tuple[Any, ...]:
                await never.wait()
                return ()

            # place()'s first step, resolving the targets, never ends
            engine._candidates = slow  # type: ignore[method-assign]
            task = asyncio.ensure_future(engine.place(TaskRequirements(), FLEET, NO_DISCOVERY))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancelled())
        records = engine.history.list()  # type: ignore[union-attr]
        assert len(records) == 2 and not any(r.success for r in records)
        messages = sorted(r.failure_message or "" for r in records)
        assert messages[0].startswith("placement aborted: CancelledError")
        assert messages[1].startswith("placement aborted: StrategyError")
        assert engine.metrics.registry.get_sample_value("acode_placement_decisions_in_flight") == 0

    def test_fallback_attempts_are_appended(self, url: str) -> None:
        engine = engine_with(url)
        result = place(engine, TaskRequirements(cpu=2))

        async def acquire(target: Any) -> str:
            if target.id != result.ranked[-1].id:
                raise AcquireError(f"{target.id} is busy")
            return "ok"

        got = asyncio.run(engine.acquire(result, acquire))
        assert got.acquired
        record = engine.history.get(result.request_id)  # type: ignore[union-attr]
        assert [(a.target_id, a.ok) for a in record.attempts] == [
            (ts.id, ts is result.ranked[-1]) for ts in result.ranked
        ]

    def test_records_are_never_updated(self, url: str) -> None:
        engine = engine_with(url)
        place(engine)
        database = sa.create_engine(url)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), database.begin() as c:
            c.execute(sa.text("UPDATE placements SET task_name = 'forged'"))
        with database.connect() as c:
            assert c.execute(sa.text("SELECT task_name FROM placements")).scalar() == "t"
        database.dispose()

    def test_listing_filters(self, url: str) -> None:
        engine = engine_with(url)
        ok = place(engine, TaskRequirements(cpu=8))
        place(engine, TaskRequirements(cpu=99))
        store = engine.history
        assert store is not None
        assert [r.request_id for r in store.list(failed=True)] != [ok.request_id]
        assert [r.request_id for r in store.list(target=ok.selected.id)] == [ok.request_id]
        assert len(store.list(limit=1)) == 1
        assert store.list(since=datetime.now(UTC) + timedelta(seconds=1)) == []

    def test_retention_by_count(self, url: str) -> None:
        store = HistoryStore(url, retention_count=3)
        engine = PlacementEngine(history=store)
        for _ in range(5):
            place(engine)
        assert store.count() == 5
        assert store.prune() == 2 and store.count() == 3

    def test_retention_by_age_is_off_by_default(self, url: str) -> None:
        store = HistoryStore(url)
        place(PlacementEngine(history=store))
        assert store.prune() == 0 and store.count() == 1
        aged = HistoryStore(url, retention_days=0.000001)
        time.sleep(0.2)
        assert aged.prune() == 1 and aged.count() == 0

    def test_text_a_database_cannot_hold_never_costs_a_record(self, url: str) -> None:
        """A JSON body's "\\udc80" is a string UTF-8 cannot encode, and its "\\u0000"
        one PostgreSQL cannot hold. A custom requirement can carry either into the
        requirements and the failure message, and a task name and an owner a
        surrogate into a lease; each is stored escaped where it must be (NUL only on
        PostgreSQL), and the record and the lease are kept."""
        engine = PlacementEngine(history=HistoryStore(url), reservations=ReservationStore(url))
        custom = {"note": "caf\u00e9 \u2028 \U0001f680", "odd": "\udc80", "nul": "a\x00b"}
        failed = place(engine, TaskRequirements(cpu=1, custom=custom))
        record = engine.history.get(failed.request_id)  # type: ignore[union-attr]
        assert record is not None
        nul = "a\\x00b" if url.startswith("postgresql") else "a\x00b"  # SQLite keeps NUL
        assert record.requirements["custom"] == {
            "note": "caf\u00e9 \u2028 \U0001f680",
            "odd": "\\udc80",
            "nul": nul,
        }
        assert record.failure_message is not None and "\\udc80" in record.failure_message
        assert nul in record.failure_message
        leased = asyncio.run(
            engine.place(
                TaskRequirements(cpu=1),
                FLEET,
                NO_DISCOVERY,
                task_name="t\udc80",
                reserve=True,
                owner="me\udcff",
            )
        )
        assert leased.reservation is not None
        record = engine.history.get(leased.request_id)  # type: ignore[union-attr]
        assert record is not None and record.task_name == "t\\udc80"
        (lease,) = engine.reservations.active()  # type: ignore[union-attr]
        assert (lease.task_name, lease.owner) == ("t\\udc80", "me\\udcff")

    def test_a_name_the_record_cannot_hold_is_refused_before_deciding(self, url: str) -> None:
        """The library takes any string as a task name or owner; PostgreSQL's columns
        hold 256 characters, so a longer one lost the record there. The longest that
        fits as stored (NUL and lone surrogates escaped) is kept whole; one longer is
        refused, and nothing decided."""
        engine = engine_with(url)
        longest = "n" * 256
        req = TaskRequirements(cpu=1)
        kept = asyncio.run(engine.place(req, FLEET, NO_DISCOVERY, task_name=longest))
        record = engine.history.get(kept.request_id)  # type: ignore[union-attr]
        assert record is not None and record.task_name == longest
        too_long = (({"task_name": "n" * 257}, "task_name"), ({"owner": "\x00" * 65}, "owner"))
        for named, label in too_long:
            with pytest.raises(InputError, match=rf"^{label}: at most 256 characters as stored"):
                asyncio.run(engine.place(req, FLEET, NO_DISCOVERY, **named))
        assert engine.history.count() == 1  # type: ignore[union-attr]


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_json_text_reads_back_as_json_dumps_does(value: Any) -> None:
    """The history's JSON encoder gives back the values Python's gave (NUL included,
    which SQLite keeps)."""
    assert json.loads(json_text(value)) == json.loads(json.dumps(value)) == value


def test_json_text_escapes_only_what_the_database_cannot_hold() -> None:
    value = {"k\ud800": ["\udc80", "caf\u00e9", 1.5, None], "ok": "\U0001f680", "n": "a\x00b"}
    for nul in (False, True):  # SQLite; PostgreSQL, whose jsonb refuses \u0000
        text = json_text(value, nul=nul)
        text.encode()  # UTF-8 holds it, as a database must
        assert ("\\u0000" in text) is not nul
        assert json.loads(text) == {
            "k\\ud800": ["\\udc80", "caf\u00e9", 1.5, None],
            "ok": "\U0001f680",
            "n": "a\\x00b" if nul else "a\x00b",
        }
    literal = {"k": "a\\u0000"}  # the six characters, not NUL: kept as they are
    assert json.loads(json_text(literal, nul=True)) == literal


def test_the_code_knows_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option(
        "script_location", str(ROOT / "src" / "acode_placement" / "history" / "migrations")
    )
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


class TestCompactRecords:
    def test_an_unchanged_fleet_is_stored_once(self, url: str) -> None:
        engine = engine_with(url)
        ids = [place(engine, TaskRequirements(cpu=n)).request_id for n in (1, 2, 4, 99)]
        database = sa.create_engine(url)
        with database.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM snapshots")).scalar() == 1
        database.dispose()
        for request_id in ids:  # each decision is explained again, whole
            record = engine.history.get(request_id)  # type: ignore[union-attr]
            assert record is not None
            assert explanation(engine, record)["candidates"]

    def test_another_engine_version_shows_the_stored_outcome_and_says_so(self, url: str) -> None:
        engine = engine_with(url)
        result = place(engine, TaskRequirements(cpu=4))
        record = engine.history.get(result.request_id)  # type: ignore[union-attr]
        assert record is not None
        older = dataclasses.replace(record, engine_version="0.0.9")
        shown = explanation(engine, older)
        assert shown["explained"] is False and "engine 0.0.9" in shown["note"]
        assert shown["target"] == explain.result_json(result)["target"]
        assert shown["candidates"] == []

    def test_a_record_names_a_few_alternatives_and_show_gives_them_all(self, url: str) -> None:
        """A record stays small on a big fleet: the first KEPT_ALTERNATIVES with their
        scores and their number; `history show` decides again and gives every one."""
        engine = engine_with(url)
        fleet = [
            SshTarget(id=f"box-{n:02d}", host="h", capabilities=Capabilities(cpu=4 + n))
            for n in range(3 * KEPT_ALTERNATIVES)
        ]
        opts = PlacementOptions(discovery_enabled=False, strategy="performance")
        result = asyncio.run(engine.place(TaskRequirements(cpu=2), fleet, opts))
        record = engine.history.get(result.request_id)  # type: ignore[union-attr]
        assert record is not None
        stored = record.result
        others = result.alternatives
        assert len(others) == 3 * KEPT_ALTERNATIVES - 1
        assert stored["alternatives"] == [ts.id for ts in others[:KEPT_ALTERNATIVES]]
        assert stored["alternativeScores"] == [
            round(ts.score, 6) for ts in others[:KEPT_ALTERNATIVES]
        ]
        assert stored["alternativesTotal"] == len(others)
        assert explanation(engine, record) == explain.result_json(result)
        # Without the engine that wrote it, the stored outcome says what it leaves out.
        shown = explanation(engine, dataclasses.replace(record, engine_version="0.0.9"))
        assert f"the first {KEPT_ALTERNATIVES} of {len(others)} alternatives" in shown["note"]
        # A record whose alternatives were altered is not explained as if it were true.
        for key, value in (
            ("alternatives", [*stored["alternatives"][1:], stored["alternatives"][0]]),
            ("alternativeScores", [0.5] * KEPT_ALTERNATIVES),
            ("alternativesTotal", len(others) + 1),
        ):
            forged = dataclasses.replace(record, result={**stored, key: value})
            shown = explanation(engine, forged)
            assert shown["explained"] is False and key in shown["note"], key

    def test_a_changed_outcome_shows_the_stored_one_and_says_so(self, url: str) -> None:
        engine = engine_with(url)
        result = place(engine, TaskRequirements(cpu=4))
        record = engine.history.get(result.request_id)  # type: ignore[union-attr]
        assert record is not None
        forged = dataclasses.replace(record, result={**record.result, "score": 0.123})
        shown = explanation(engine, forged)
        assert shown["explained"] is False and "score" in shown["note"]

    def test_a_database_of_the_previous_revision_is_migrated_and_read(self, tmp_path: Path) -> None:
        """A record written whole (as before compact records), in a database taken
        back to revision 0002, reads the same once the store migrates it forward."""
        from alembic import command
        from alembic.config import Config

        url = f"sqlite:///{tmp_path / 'old.db'}"
        store = HistoryStore(url)
        result = asyncio.run(
            PlacementEngine().place(TaskRequirements(cpu=4), FLEET, NO_DISCOVERY, record=False)
        )
        store.record(result, TaskRequirements(cpu=4))  # no inputs: the whole explanation
        store.close()
        config = Config()
        config.set_main_option(
            "script_location", str(ROOT / "src" / "acode_placement" / "history" / "migrations")
        )
        database = sa.create_engine(url)
        with database.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        with database.connect() as c:
            columns = {row[1] for row in c.execute(sa.text("PRAGMA table_info(placements)"))}
            assert "snapshot" not in columns
        database.dispose()
        again = HistoryStore(url)
        record = again.get(result.request_id)
        assert record is not None and record.snapshot is None
        assert explanation(PlacementEngine(), record) == explain.result_json(result)
        assert replay(PlacementEngine(), record).selected.id == result.selected.id  # type: ignore[union-attr]


class TestGroupCommit:
    def test_records_that_wait_share_one_transaction(self, url: str) -> None:
        store = HistoryStore(url)
        store.count()
        gate, entered = threading.Event(), threading.Event()

        def held(connection: sa.Connection) -> None:
            entered.set()
            gate.wait(10)

        first = store.writer.submit(held)
        assert entered.wait(10)  # the writer is now inside the first transaction
        waiting = [store.writer.submit(lambda connection: None) for _ in range(20)]
        gate.set()
        for future in [first, *waiting]:
            future.result(10)
        assert store.writer.transactions == 2

    def test_one_bad_record_never_loses_the_others(self, url: str) -> None:
        store = HistoryStore(url)
        store.count()
        engine = PlacementEngine()
        decided = [
            asyncio.run(engine.place(TaskRequirements(cpu=n), FLEET, NO_DISCOVERY, record=False))
            for n in (1, 2, 3)
        ]
        known = asyncio.run(engine.capabilities(FLEET, TaskRequirements(), NO_DISCOVERY))
        gate, entered = threading.Event(), threading.Event()

        def held(connection: sa.Connection) -> None:
            entered.set()
            gate.wait(10)

        def broken(connection: sa.Connection) -> None:
            raise ValueError("a record that cannot be written")

        store.writer.submit(held)
        assert entered.wait(10)
        # all four wait behind the first transaction, so they are committed together
        bad = store.writer.submit(broken)
        good = [store.submit(r, TaskRequirements(), (FLEET, known, None)) for r in decided]
        gate.set()
        with pytest.raises(ValueError, match="cannot be written"):
            bad.result(10)
        for future in good:
            future.result(10)
        assert {r.request_id for r in store.list()} == {r.request_id for r in decided}
        assert store.writer.transactions == 1 + 3  # the first; then each good one alone

    def test_the_writer_keeps_its_connection_and_survives_losing_it(self, url: str) -> None:
        """Records are committed on the writer's own connection, kept from one
        transaction to the next; once the server drops it (PostgreSQL: the backend
        terminated), the record in flight is written again alone and the next ones on a
        new connection. Nothing is lost either way."""
        engine = engine_with(url)
        store = engine.history
        assert store is not None
        first = [place(engine).request_id for _ in range(3)]
        assert store.writer.transactions == 3
        if url.startswith("postgresql"):
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                gone = connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            admin.dispose()
            assert gone  # the writer's connection at least
        later = [place(engine).request_id for _ in range(3)]
        assert {r.request_id for r in store.list(limit=10)} == {*first, *later}
        assert store.count() == 6

    def test_a_deleted_file_is_never_made_again_by_a_new_connection(self, tmp_path: Path) -> None:
        """The writer keeps one connection checked out, so readers at once make new
        ones: a new connection opens the file that is there and never creates an empty
        one at the path, so the store keeps saying what happened."""
        path = tmp_path / "history.db"
        engine = engine_with(f"sqlite:///{path}")
        store = engine.history
        assert store is not None
        place(engine)
        path.unlink()
        opened = store._opened()
        held: list[sa.Connection] = []

        def connect_many() -> None:  # more than the pool keeps idle: then a new one is made
            for _ in range(8):
                held.append(opened.connect())

        with pytest.raises(sa.exc.OperationalError, match="unable to open database file"):
            connect_many()
        for connection in held:
            connection.close()
        assert not path.exists()
        with pytest.raises(HistoryError, match="deleted while this process had it open"):
            store.count()
        with pytest.raises(HistoryError, match="deleted"):
            store.check()
        assert not path.exists()

    def test_async_durability_answers_first_and_records_soon_after(self, url: str) -> None:
        engine = PlacementEngine(history=HistoryStore(url, durable=False))
        for n in range(20):
            place(engine, TaskRequirements(cpu=n % 5))
        store = engine.history
        assert store is not None
        deadline = time.monotonic() + 10
        while store.count() < 20:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def test_a_process_that_exits_leaves_its_async_records(self, url: str) -> None:
        """async answers before committing, but a process that ends normally waits
        for its writer (atexit): a command line loses nothing."""
        script = (
            "import asyncio, sys\n"
            "from acode_placement import *\n"
            "from acode_placement.history.store import HistoryStore\n"
            "engine = PlacementEngine(history=HistoryStore(sys.argv[1], durable=False))\n"
            "fleet = [SshTarget(id='a', host='a', capabilities=Capabilities(cpu=8))]\n"
            "off = PlacementOptions(discovery_enabled=False)\n"
            "async def main():\n"
            "    for _ in range(50):\n"
            "        await engine.place(TaskRequirements(cpu=1), fleet, off)\n"
            "asyncio.run(main())\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, url], cwd=ROOT, timeout=60, check=False
        )
        assert done.returncode == 0
        assert HistoryStore(url).count() == 50

    def test_processes_opening_a_new_database_at_once_migrate_it_once(self, url: str) -> None:
        script = "import sys; from acode_placement.history.store import HistoryStore as H; "
        script += "print(H(sys.argv[1]).count())"
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", script, url],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        outcomes = [p.communicate(timeout=60) for p in openers]
        assert [p.returncode for p in openers] == [0] * 6, [err for _, err in outcomes]
        assert [out.strip() for out, _ in outcomes] == ["0"] * 6

    def test_killed_during_group_commit_keeps_every_answered_record(self, url: str) -> None:
        """SIGKILL while concurrent durable placements commit together: every
        placement that answered (its id printed) is in the database."""
        HistoryStore(url).count()
        process = writer(url, -1, "--concurrent")
        assert process.stdout is not None
        answered = [process.stdout.readline().strip() for _ in range(200)]
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
        answered += [line for line in rest.splitlines() if line.strip()]
        stored = {r.request_id for r in HistoryStore(url).list(limit=1_000_000)}
        assert set(answered) <= stored
        assert len(answered) >= 200


def writer(url: str, count: int, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.history_writer", url, str(count), *flags],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


class TestConcurrencyAndCrashes:
    def test_two_processes_a_thousand_decisions_each_lose_nothing(self, url: str) -> None:
        HistoryStore(url).count()  # migrate once, before the race
        processes = [writer(url, 1000), writer(url, 1000)]
        for process in processes:
            assert process.wait(timeout=240) == 0
        store = HistoryStore(url)
        assert store.count() == 2000
        database = sa.create_engine(url)
        with database.connect() as c:
            distinct = c.execute(sa.text("SELECT COUNT(DISTINCT request_id) FROM placements"))
            assert distinct.scalar() == 2000
        database.dispose()

    def test_a_writer_killed_mid_run_leaves_every_committed_record(self, url: str) -> None:
        HistoryStore(url).count()
        process = writer(url, -1)
        assert process.stdout is not None and process.stdout.readline().strip() == "running"
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        store = HistoryStore(url)
        records = store.list(limit=100_000)
        assert len(records) >= 50 and len(records) == store.count()
        assert all(r.result["requestId"] == r.request_id for r in records)
        # every compact record's snapshot was committed with it
        database = sa.create_engine(url)
        with database.connect() as c:
            dangling = c.execute(
                sa.text(
                    "SELECT COUNT(*) FROM placements WHERE snapshot IS NULL"
                    " OR snapshot NOT IN (SELECT digest FROM snapshots)"
                )
            )
            assert dangling.scalar() == 0
        database.dispose()
        newest = store.get(records[0].request_id)
        assert newest is not None and newest.candidates
        if url.startswith("sqlite"):
            with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
                assert c.execute("PRAGMA integrity_check").fetchone() == ("ok",)


class TestBrokenDatabases:
    def test_a_corrupt_file_never_blocks_a_decision(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "history.db"
        path.write_bytes(b"this is not a database" * 100)
        engine = engine_with(f"sqlite:///{path}")
        result = place(engine, TaskRequirements(cpu=2))
        assert result.success
        assert (
            engine.metrics.registry.get_sample_value("acode_placement_history_failures_total") == 1
        )
        assert any(
            isinstance(r.msg, dict) and r.msg.get("event") == "history.write_failed"
            for r in caplog.records
        )
        with pytest.raises(
            HistoryError, match=r"history sqlite:///.*history\.db: file is not a database"
        ):
            HistoryStore(f"sqlite:///{path}").list()

    def test_a_read_only_database_never_blocks_a_decision(self, tmp_path: Path) -> None:
        path = tmp_path / "history.db"
        place(engine_with(f"sqlite:///{path}"))
        read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
        engine = engine_with(read_only)
        assert place(engine, TaskRequirements(cpu=2)).success
        assert (
            engine.metrics.registry.get_sample_value("acode_placement_history_failures_total") == 1
        )
        with pytest.raises(HistoryError, match="readonly database"):
            HistoryStore(read_only).record(place(PlacementEngine()), TaskRequirements())

    def test_the_command_says_so_in_one_line(
        self, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "history.db"
        path.write_bytes(b"garbage" * 1000)
        monkeypatch.setenv("ACODE_PLACEMENT_HISTORY", f"sqlite:///{path}")
        code, _, err = cli("history")
        assert code == 2
        assert err.count("\n") == 1 and "file is not a database" in err


class TestMetrics:
    def test_the_placement_counts_read_as_prometheus_clients_own(self) -> None:
        """What `_Placements` keeps (plain counts, one lock a placement) renders the
        same samples as prometheus_client's Counter and Histogram fed the same
        placements, bucket edges included; from several threads nothing is lost."""
        from prometheus_client import CollectorRegistry
        from prometheus_client import Counter as PromCounter
        from prometheus_client import Histogram as PromHistogram

        from acode_placement.metrics import DECISION_BUCKETS, Metrics

        metrics, reference = Metrics(), CollectorRegistry()
        ended = PromCounter(
            "acode_placement_placements",
            "Placements ended, by outcome (placed, no_target, error)",
            ["strategy", "outcome", "reason", "target_type"],
            registry=reference,
        )
        seconds = PromHistogram(
            "acode_placement_decision_seconds",
            "Time to decide, discovery included",
            ["strategy"],
            buckets=DECISION_BUCKETS,
            registry=reference,
        )
        # every bucket edge exactly, a hair either side, below the first, above the last
        durations = [d * f for d in DECISION_BUCKETS for f in (0.999, 1.0, 1.001)] + [0.0, 9.0]

        def feed(strategy: str) -> None:
            for n, duration in enumerate(durations):
                metrics.placement_started(strategy)
                if n % 3 == 0:
                    metrics.placement_aborted(strategy, duration)
                else:
                    metrics.decisions.ended(
                        (strategy, "placed", "HighestScore", "ssh"), duration, 2, {"no GPU": 1}
                    )

        threads = [threading.Thread(target=feed, args=(s,)) for s in ("auto", "auto", "perf")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for strategy in ("auto", "auto", "perf"):
            for n, duration in enumerate(durations):
                outcome = ("error", "NoValidTarget", "none") if n % 3 == 0 else None
                labels = outcome or ("placed", "HighestScore", "ssh")
                ended.labels(strategy, *labels).inc()
                seconds.labels(strategy).observe(duration)

        def samples(text: str, family: str) -> dict[tuple[str, tuple[Any, ...]], float]:
            return {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(text)
                if f.name == family
                for s in f.samples
                if not s.name.endswith("_created")
            }

        from prometheus_client import generate_latest

        theirs = generate_latest(reference).decode()
        for family in ("acode_placement_placements", "acode_placement_decision_seconds"):
            ours = samples(metrics.text(), family)
            assert ours == pytest.approx(samples(theirs, family)), family
        registry = metrics.registry
        assert registry.get_sample_value("acode_placement_decisions_in_flight") == 0
        placed = len([n for n in range(len(durations)) if n % 3])  # by each thread
        assert (
            registry.get_sample_value("acode_placement_mismatches_total", {"cause": "no GPU"})
            == 3 * placed
        )
        assert registry.get_sample_value(
            "acode_placement_placements_started_total", {"strategy": "auto"}
        ) == 2 * len(durations)

    def test_ten_thousand_decisions_with_injected_failures_balance(self) -> None:
        class Flaky:
            name = "flaky"
            calls = 0

            def can_handle(self, requirements: TaskRequirements) -> bool:
                return True

            def score(self, *args: Any) -> float:
                Flaky.calls += 1
                if Flaky.calls % 7 == 0:
                    raise RuntimeError("injected")
                return 0.5

        engine = PlacementEngine(StrategyRegistry.with_builtins())
        engine.register_strategy(Flaky())
        fleet = [LocalTarget(id="here", capabilities=Capabilities(cpu=4))]
        options = PlacementOptions(strategy="flaky", discovery_enabled=False)
        ok = failed = 0
        events: Counter[str] = Counter()
        engine.subscribe(lambda e: events.update([e.name]))

        async def run() -> None:
            nonlocal ok, failed
            for n in range(10_000):
                req = TaskRequirements(cpu=8 if n % 5 == 0 else 2)
                try:
                    await engine.place(req, fleet, options)
                    ok += 1
                except Exception:
                    failed += 1

        asyncio.run(run())
        families = {f.name: f for f in text_string_to_metric_families(engine.metrics.text())}
        started = sum(
            s.value
            for s in families["acode_placement_placements_started"].samples
            if s.name.endswith("_total")
        )
        ended = {
            outcome: sum(
                s.value
                for s in families["acode_placement_placements"].samples
                if s.name.endswith("_total") and s.labels["outcome"] == outcome
            )
            for outcome in ("placed", "no_target", "error")
        }
        assert started == 10_000 == sum(ended.values())
        assert events["PlacementStarted"] == 10_000
        assert events["PlacementCompleted"] + events["PlacementFailed"] == 10_000
        assert events["PlacementFailed"] == failed + ended["no_target"]
        assert ended["error"] == failed and ended["placed"] + ended["no_target"] == ok
        assert ended["no_target"] == 2000
        assert families["acode_placement_decisions_in_flight"].samples[0].value == 0
        count = next(
            s.value
            for s in families["acode_placement_decision_seconds"].samples
            if s.name.endswith("_count")
        )
        assert count == 10_000
        causes = {
            s.labels["cause"]: s.value
            for s in families["acode_placement_mismatches"].samples
            if s.name.endswith("_total")
        }
        assert causes == {"not enough CPU": 2000}

    def test_the_command_writes_a_textfile(self, cli: Cli, tmp_path: Path) -> None:
        task = tmp_path / "task.yaml"
        task.write_text("task:\n  name: t\n  requirements: {cpu: 1}\n")
        prom = tmp_path / "metrics" / "acode.prom"
        code, _, _ = cli(
            "--metrics-file",
            prom,
            "place",
            task,
            "--targets",
            ROOT / "examples" / "targets.yaml",
            "--no-discovery",
        )
        assert code == 0
        families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
        placed = [
            s for s in families["acode_placement_placements"].samples if s.name.endswith("_total")
        ]
        assert [(s.labels["outcome"], s.value) for s in placed] == [("placed", 1.0)]
        assert oct(prom.stat().st_mode & 0o777) == "0o644"

    def test_discovery_and_cache_are_counted(self) -> None:
        engine = PlacementEngine.default()
        asyncio.run(engine.place(TaskRequirements(), [LocalTarget(id="here")], record=False))
        asyncio.run(engine.place(TaskRequirements(), [LocalTarget(id="here")], record=False))
        families = {f.name: f for f in text_string_to_metric_families(engine.metrics.text())}
        lookups = {
            s.labels["result"]: s.value
            for s in families["acode_placement_capability_cache_lookups"].samples
            if s.name.endswith("_total")
        }
        assert lookups == {"miss": 1.0, "hit": 1.0}
        probes = [
            s
            for s in families["acode_placement_discovery_seconds"].samples
            if s.name.endswith("_count")
        ]
        assert [(s.labels["target_type"], s.value) for s in probes] == [("local", 1.0)]


class TestEvents:
    def test_sync_and_async_subscribers_and_json(self) -> None:
        engine = PlacementEngine()
        seen: list[str] = []
        late: list[dict[str, Any]] = []

        async def slow(event: Any) -> None:
            await asyncio.sleep(0)
            late.append(event_json(event))

        async def broken(event: Any) -> None:
            raise RuntimeError("async subscriber bug")

        engine.subscribe(lambda e: seen.append(e.name))
        engine.subscribe(slow)
        engine.subscribe(broken)

        async def run() -> Any:
            result = await engine.place(TaskRequirements(cpu=2), FLEET, NO_DISCOVERY)
            await asyncio.sleep(0.01)
            return result

        result = asyncio.run(run())
        assert result.success and seen == ["PlacementStarted", "PlacementCompleted"]
        assert [e["name"] for e in late] == ["PlacementStarted", "PlacementCompleted"]
        completed = late[1]
        assert completed["requestId"] == result.request_id and completed["targetId"] == "big"
        assert completed["reason"] == "HighestScore" and completed["targetType"] == "ssh"
        json.dumps(late)  # every field serialises

    def test_capability_changes_serialise(self) -> None:
        import datetime as dt

        event = CapabilitiesChanged(
            "box", (Change("cpu", 8, 4),), dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
        )
        assert event_json(event) == {
            "targetId": "box",
            "changes": [{"field": "cpu", "before": 8, "after": 4}],
            "timestamp": "2026-11-26T00:00:00+00:00",
            "name": "CapabilitiesChanged",
        }


class TestCommands:
    @pytest.fixture
    def recorded(self, cli: Cli, tmp_path: Path) -> tuple[Path, list[str]]:
        examples = ROOT / "examples"
        ids = []
        for task in ("cpu-tests", "impossible", "docker-build"):
            _, out = cli.json(
                "place",
                examples / "tasks" / f"{task}.yaml",
                "--targets",
                examples / "targets.yaml",
                "--no-discovery",
            )
            ids.append(out["requestId"])
        return examples, ids

    def test_list_show_and_replay(self, cli: Cli, recorded: tuple[Path, list[str]]) -> None:
        _, ids = recorded
        code, out = cli.json("history")
        assert code == 0 and [r["requestId"] for r in out["decisions"]] == ids[::-1]
        code, out = cli.json("history", "--failed")
        assert [r["requestId"] for r in out["decisions"]] == [ids[1]]
        code, out = cli.json("history", "--target", "build-box", "--since", "1h")
        assert [r["requestId"] for r in out["decisions"]] == [ids[2]]
        code, text, _ = cli("history", "show", ids[2][:8])
        assert code == 0 and "build-box (ssh)  [HighestScore]" in text and "why: " in text
        code, shown = cli.json("history", "show", ids[1])
        assert shown["result"]["failureMessage"].startswith("0/11 targets eligible")
        for request_id in ids:
            code, text, _ = cli("history", "replay", request_id)
            assert (code, text.split(":")[0]) == (0, "same decision")

    def test_a_changed_decision_is_reported(
        self, cli: Cli, recorded: tuple[Path, list[str]], tmp_path: Path
    ) -> None:
        store = HistoryStore()
        record = store.get(recorded[1][2])
        assert record is not None
        # The same inputs, but the record claims the runner-up won.
        forged = dict(record.result)
        forged["target"] = {"id": record.result["alternatives"][0], "type": "ssh"}
        database = sa.create_engine(store.url)
        with database.begin() as c:
            c.execute(sa.text("DROP TRIGGER placements_append_only"))
            c.execute(
                sa.text("UPDATE placements SET result = :r WHERE request_id = :id"),
                {"r": json.dumps(forged), "id": record.request_id},
            )
        database.dispose()
        code, text, _ = cli("history", "replay", record.request_id)
        assert code == 1 and text.startswith("different decision: recorded ")
        code, out = cli.json("history", "replay", record.request_id)
        assert out["same"] is False and out["now"]["target"] == "build-box"

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("history", "show", "nope"), "no recorded decision has the request id 'nope'"),
            (("history", "--since", "yesterday"), "--since: 'yesterday' is neither a date"),
        ],
    )
    def test_bad_input(self, cli: Cli, args: tuple[str, ...], message: str) -> None:
        code, _, err = cli(*args)
        assert code == 2 and message in err

    def test_console_logs_for_people(self, tmp_path: Path) -> None:
        task = tmp_path / "task.yaml"
        task.write_text("task:\n  name: t\n  requirements: {cpu: 1}\n")
        done = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "acode-placement"),
                "--log-level",
                "info",
                "--log-format",
                "console",
                "place",
                str(task),
                "--no-discovery",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
            check=False,
        )
        line = next(x for x in done.stderr.splitlines() if "placement.decided" in x)
        assert not line.startswith("{") and "strategy=auto" in line and "[info" in line


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> PlacementEngine:
    """One engine recording every example of the property into one history."""
    path = tmp_path_factory.mktemp("compact") / "history.db"
    return PlacementEngine(history=HistoryStore(f"sqlite:///{path}"))


class TestCompactRecordsShowWhatWasPrinted:
    """For random fleets, tasks and options: `history show` of a compact record is
    exactly what `place --json` printed for that decision, candidates and checks."""

    @SETTINGS
    @given(fleets(), every_rule, every_option)
    def test_show_equals_place(
        self,
        recording: PlacementEngine,
        targets: list[AnyTarget],
        req: TaskRequirements,
        opts: PlacementOptions,
    ) -> None:
        result = asyncio.run(recording.place(req, targets, opts, task_name="t"))
        printed = explain.result_json(result)
        record = recording.history.get(result.request_id)  # type: ignore[union-attr]
        assert record is not None and record.snapshot is not None
        assert explanation(recording, record) == printed
        again = explain.result_json(replay(recording, record))
        again["decisionMs"] = printed["decisionMs"]
        assert again == printed

    def test_a_reserving_decision_keeps_the_leases_it_saw(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'history.db'}"
        engine = PlacementEngine(history=HistoryStore(url), reservations=ReservationStore(url))
        fleet = [SshTarget(id="box", host="box", capabilities=Capabilities(cpu=8, memory_gb=8))]
        results = [
            asyncio.run(engine.place(TaskRequirements(cpu=3), fleet, NO_DISCOVERY, reserve=True))
            for _ in range(3)
        ]
        assert [r.success for r in results] == [True, True, False]  # 3 + 3, then no room
        for result in results:
            record = engine.history.get(result.request_id)  # type: ignore[union-attr]
            assert record is not None and record.usage is not None
            assert explanation(engine, record) == explain.result_json(result)


def test_writers_to_one_sqlite_file_take_turns_on_its_write_lock(tmp_path: Path) -> None:
    """A write waits while another process holds the lock file beside the database
    (`<file>.write-lock`, flock), then goes through as soon as it is released; the
    history and the leases of one process share the one lock."""
    url = f"sqlite:///{tmp_path / 'history.db'}"
    history, leases = HistoryStore(url), ReservationStore(url)
    history.record_attempts("first", [Attempt("local", ok=True)])  # opens, makes the lock
    lock = tmp_path / "history.db.write-lock"
    assert lock.exists()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\n"
         f"f = open({str(lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('held', flush=True); time.sleep(1.0)\n"
         "fcntl.flock(f, fcntl.LOCK_UN); print('released', flush=True)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    started = time.monotonic()
    done: list[float] = []
    writers = [
        threading.Thread(
            target=lambda: (
                history.record_attempts("second", [Attempt("local", ok=True)]),
                done.append(time.monotonic() - started),
            )
        ),
        threading.Thread(target=lambda: (leases.check(), done.append(time.monotonic() - started))),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
    assert holder.stdout.readline() == "released\n" and holder.wait(10) == 0
    assert len(done) == 2 and min(done) >= 0.8, done  # both waited for the other process
    record = history._read(lambda c: c.execute(sa.text("SELECT count(*) FROM attempts")).scalar())
    assert record == 2

    def lock_files_open() -> int:
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == str(lock.resolve())
                   for fd in os.listdir("/proc/self/fd"))  # fmt: skip

    assert lock_files_open() == 1  # one for the process, shared by both stores
    history = leases = None  # type: ignore[assignment]  (the stores go)
    gc.collect()
    assert lock_files_open() == 0  # closed with the stores that had it

"""The history store: every decision appended, never updated; listed, fetched,
pruned by retention.

SQLite by default (a file in the user data directory, WAL mode so readers never
wait for the writer and several processes can append), PostgreSQL or anything
SQLAlchemy speaks by URL. A compact record keeps the outcome and the digest of a
snapshot of the candidates (`snapshot`), from which `replay` explains it again.
The tables, opening and migrating are `database`'s; batches of records `batch`'s;
the group writer `writer`'s; a record as read `records`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from acode_placement import explain
from acode_placement.config import package_version
from acode_placement.history.batch import (
    CompactRecord,
    batch,
    on_driver,
    written,
)
from acode_placement.history.database import (
    RESTART,
    DatabaseFile,
    HistoryError,
    attempts,
    error_line,
    normalise_url,
    open_watched,
    placements,
    snapshots,
)
from acode_placement.history.held import HeldConnection
from acode_placement.history.records import (
    Record,
    candidate_row,
    record_of,
)
from acode_placement.history.snapshot import SnapshotMemo, decode
from acode_placement.history.writer import GroupWriter
from acode_placement.models import (
    AnyTarget,
    Attempt,
    Ec2Target,
    Known,
    PlacementResult,
    TaskRequirements,
    Usage,
)
from acode_placement.safe import mask_url

T = TypeVar("T")

# What a decision was made on: the candidates, their capabilities as known, and the
# reservations held on them when the decision reserved (else None).
Inputs = tuple[Sequence[AnyTarget], Sequence[Known], Sequence[Usage] | None]

# The ranked alternatives a compact record names with their scores (the first few
# are the fallback a reader looks at; deciding again gives them all), so a record
# stays a few KB whatever the fleet size.
KEPT_ALTERNATIVES = 10


class HistoryStore:
    """Appends decisions; lists and fetches them. Thread-safe; opened on first use."""

    def __init__(
        self,
        url: str | None = None,
        *,
        retention_days: float | None = None,
        retention_count: int | None = None,
        durable: bool = True,
    ) -> None:
        self.url = normalise_url(url)
        self.retention_days = retention_days
        self.retention_count = retention_count
        # durable: `place()` returns once its record is committed; else at once, and a
        # crash loses what the writer had not committed yet (at most one batch).
        self.durable = durable
        self.writer = GroupWriter(self._commit, self._write)
        self._held = HeldConnection()  # the writer's, for batches of compact records
        self._engine: Engine | None = None
        self._file: DatabaseFile | None = None
        self._lock = threading.Lock()
        self._snapshots = SnapshotMemo()

    # ------------------------------------------------------------------- writing

    def record(
        self,
        result: PlacementResult,
        requirements: TaskRequirements,
        *,
        failure: str | None = None,
        later: bool = False,
    ) -> Future[object] | None:
        """Append one decision (or, with `failure`, a decision that was aborted) with
        every candidate's explanation written out. `place()` writes compact records
        through `submit` instead. With `later`, the group writer commits it (the
        future is done then) and nothing waits here: what an event loop calls."""
        chosen = result.selected
        target = chosen.target if chosen else None
        price = target.price if isinstance(target, Ec2Target) else None
        # Each candidate is explained once, for the result and for its own row.
        explained = {ts.index: explain.candidate_json(ts) for ts in result.all_scores}
        row = _row(result, requirements, failure)
        row["result"] = explain.result_json(result, explained)
        row["candidates"] = [candidate_row(ts, explained[ts.index]) for ts in result.all_scores]
        if price is not None and price.note:
            row["result"]["priceNote"] = price.note

        def write(connection: sa.Connection) -> int:
            return connection.execute(placements.insert(), [row]).rowcount

        if later:
            return self.writer.submit(write)
        self._write(write)
        return None

    def submit(
        self, result: PlacementResult, requirements: TaskRequirements, inputs: Inputs
    ) -> Future[object]:
        """Append a compact record: the outcome, and a snapshot of `inputs` (the
        candidates, their capabilities as known, the reservations held) stored once per
        fleet state, from which `replay.explanation` rebuilds the whole explanation.
        The row is made now; the group writer commits it with the records of concurrent
        placements, in one transaction; the future is done once it is committed (or
        has failed)."""
        return self.writer.submit(self._compact(result, requirements, inputs))

    def awaited(
        self,
        result: PlacementResult,
        requirements: TaskRequirements,
        inputs: Inputs,
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Future[object]:
        """`submit` for a caller on `loop`, which is woken once per transaction for
        all its records (see `GroupWriter.awaited`)."""
        return self.writer.awaited(self._compact(result, requirements, inputs), loop)

    def _compact(
        self, result: PlacementResult, requirements: TaskRequirements, inputs: Inputs
    ) -> CompactRecord:
        snapshot = self._snapshots.get(*inputs)
        row = _row(result, requirements, None)
        outcome = explain.outcome_json(result, kept=KEPT_ALTERNATIVES)
        row.update(candidates=[], result=outcome, snapshot=snapshot.digest)
        kept = {
            "digest": snapshot.digest,
            "created_at": row["created_at"],
            "size": len(snapshot.data),
            "data": snapshot.data,
        }
        return CompactRecord(row, kept)

    def record_attempts(self, request_id: str, tried: Sequence[Attempt]) -> None:
        """Append the acquisition attempts of a decision (fallback, in order)."""
        if not tried:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "request_id": request_id,
                "created_at": now,
                "position": n,
                "target_id": a.target_id,
                "ok": a.ok,
                "error": a.error,
                "retryable": a.retryable,
            }
            for n, a in enumerate(tried)
        ]
        self._write(lambda connection: connection.execute(attempts.insert(), rows).rowcount)

    def prune(self, *, later: bool = False) -> int | Future[object]:
        """Delete records past the retention (by age, then count); returns how many.
        With `later`, the group writer does it; the future gives how many."""
        if self.retention_days is None and self.retention_count is None:
            if later:
                done: Future[object] = Future()
                done.set_result(0)
                return done
            return 0

        def delete(connection: sa.Connection) -> int:
            gone = 0
            if self.retention_days is not None:
                cutoff = datetime.now(UTC).timestamp() - self.retention_days * 86400
                old = sa.select(placements.c.request_id).where(
                    placements.c.created_at < datetime.fromtimestamp(cutoff, UTC)
                )
                gone += _delete(connection, old)
            if self.retention_count is not None:
                keep = (
                    sa.select(placements.c.id)
                    .order_by(placements.c.id.desc())
                    .limit(self.retention_count)
                )
                extra = sa.select(placements.c.request_id).where(placements.c.id.not_in(keep))
                gone += _delete(connection, extra)
            if gone:
                used = sa.select(placements.c.snapshot).where(placements.c.snapshot.is_not(None))
                connection.execute(snapshots.delete().where(snapshots.c.digest.not_in(used)))
            return gone

        if later:
            return self.writer.submit(delete)
        return self._write(delete)

    # ------------------------------------------------------------------- reading

    def list(
        self,
        *,
        limit: int = 20,
        since: datetime | None = None,
        target: str | None = None,
        failed: bool | None = None,
    ) -> list[Record]:
        """The newest records first."""
        if target is not None and "\x00" in target:
            return []  # no target id holds one, and PostgreSQL refuses it in a query
        query = sa.select(placements).order_by(placements.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(placements.c.created_at >= since)
        if target is not None:
            query = query.where(
                sa.or_(
                    placements.c.target_id == target,
                    placements.c.target_id.like(f"{_like_escaped(target)}/%", escape="\\"),
                )
            )
        if failed is not None:
            query = query.where(placements.c.success.is_(not failed))
        return self._read(lambda connection: [record_of(r) for r in connection.execute(query)])

    def get(self, request_id: str) -> Record | None:
        """One record with its attempts; a unique prefix of the id will do."""

        if "\x00" in request_id:
            return None  # no id holds one, and PostgreSQL refuses it in a query

        def fetch(connection: sa.Connection) -> Record | None:
            rows = connection.execute(
                sa.select(placements)
                .where(placements.c.request_id.like(f"{_like_escaped(request_id)}%", escape="\\"))
                .limit(2)
            ).all()
            if len(rows) != 1:
                return None
            tried = connection.execute(
                sa.select(attempts)
                .where(attempts.c.request_id == rows[0].request_id)
                .order_by(attempts.c.position, attempts.c.id)
            )
            steps = tuple(Attempt(a.target_id, a.ok, a.error, a.retryable) for a in tried)
            record = record_of(rows[0], steps)
            if record.snapshot is None:
                return record
            data = connection.execute(
                sa.select(snapshots.c.data).where(snapshots.c.digest == record.snapshot)
            ).scalar()
            if data is None:  # pruned meanwhile: the outcome alone is left
                return record
            kept = decode(data)
            return replace(record, candidates=kept["candidates"], usage=kept["usage"])

        return self._read(fetch)

    def check(self) -> None:
        """Raise HistoryError unless the database can be read and written now: it
        answers, and (SQLite) its file is still the one opened and writable."""
        self.count()
        self._guarded()

    def count(self) -> int:
        return self._read(
            lambda connection: int(
                connection.execute(sa.select(sa.func.count()).select_from(placements)).scalar_one()
            )
        )

    def snapshot_bytes(self) -> int:
        """The compressed size of every snapshot stored (what compact records share)."""
        return self._read(
            lambda c: int(c.execute(sa.select(sa.func.sum(snapshots.c.size))).scalar() or 0)
        )

    def checkpoint(self) -> None:
        """SQLite: move the write-ahead log into the database file (so that its size
        tells what the records take); nothing for other databases."""
        if sa.make_url(self.url).get_backend_name() == "sqlite":
            self._read(lambda c: c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").all())

    def close(self) -> None:
        self._held.close()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ----------------------------------------------------------------- internals

    def _commit(self, works: Sequence[Callable[[sa.Connection], object]]) -> int:
        """The group writer's batch in one transaction: on its held driver connection
        when every work is a compact record (or other driver work), else through
        SQLAlchemy. Returns the records written."""
        opened = self._opened()
        if not on_driver(opened.dialect, works):
            return self._write(lambda connection: batch(connection, works))
        with (
            self._errors(),
            DatabaseFile.writing_to(self._file),
            self._held.transaction(opened) as driver,
        ):
            done = written(driver, opened.dialect, works)
            self._guarded()  # as in `_write`: never committed into a lost file
            return done

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        with self._errors():
            opened = self._opened()
            with DatabaseFile.writing_to(self._file), opened.begin() as connection:
                done = work(connection)
                # Just before the commit, never into a lost file: whatever `work` wrote
                # to one that was deleted or replaced is rolled back.
                self._guarded()
                return done

    def _read(self, work: Callable[[sa.Connection], T]) -> T:
        with self._errors(), self._opened().connect() as connection:
            self._guarded()
            return work(connection)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLAlchemy's errors as the history's, in one line. A file lost or made
        read-only meanwhile is said as such, not as what the driver said on finding
        out (a failed write, a new connection that could not open it)."""
        try:
            yield
        except SQLAlchemyError as exc:
            self._guarded()
            raise HistoryError(f"history {self._where()}: {error_line(exc)}") from None

    def _guarded(self) -> None:
        problem = self._file.problem() if self._file is not None else None
        if problem is not None:
            raise HistoryError(f"history {self._where()}: {problem}{RESTART}")

    def _where(self) -> str:
        return mask_url(self.url)

    def _opened(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine, self._file = open_watched(self.url)
            return self._engine


def _delete(connection: sa.Connection, request_ids: sa.Select[Any]) -> int:
    ids = [r for (r,) in connection.execute(request_ids)]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        connection.execute(attempts.delete().where(attempts.c.request_id.in_(chunk)))
        connection.execute(placements.delete().where(placements.c.request_id.in_(chunk)))
    return len(ids)


def _row(
    result: PlacementResult, requirements: TaskRequirements, failure: str | None
) -> dict[str, Any]:
    """A record's columns but its explanation (`result`, `candidates`)."""
    chosen = result.selected
    target = chosen.target if chosen else None
    return {
        "request_id": result.request_id,
        "created_at": datetime.now(UTC),
        "task_name": result.task_name,
        "success": result.success and failure is None,
        "strategy": result.strategy,
        "mode": result.mode.value,
        "target_id": chosen.id if chosen else None,
        "target_type": chosen.type.value if chosen else None,
        "reason": result.reason.value,
        "score": chosen.score if chosen else 0.0,
        "estimated_cost": chosen.estimated_cost if chosen else None,
        "price_source": explain.price_source(target) if isinstance(target, Ec2Target) else None,
        "duration_ms": round(result.decision_duration * 1000, 3),
        "failure_message": failure or result.failure_message,
        "requirements": requirements.model_dump(mode="json", exclude_none=True),
        "options": result.options.model_dump(mode="json"),
        "engine_version": package_version(),
    }


def _like_escaped(text: str) -> str:
    """`text` matched literally by LIKE: its `%`, `_` and `\\` escaped with `\\`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

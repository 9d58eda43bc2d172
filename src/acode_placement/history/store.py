"""The history store: every decision appended, never updated, through SQLAlchemy.

SQLite by default (a file in the user data directory, WAL mode so readers never
wait for the writer and several processes can append), PostgreSQL or anything
SQLAlchemy speaks by URL. The schema is versioned with Alembic; a database at the
current version opens without importing Alembic at all.

A record holds the decision's inputs (requirements, options, every candidate's
target and the capabilities it had) and its outcome as `place --json` printed it,
so `history show` can repeat the explanation as it was and `history replay` can
feed the same inputs to today's engine.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import platformdirs
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from acode_placement import explain
from acode_placement.config import package_version
from acode_placement.errors import PlacementError
from acode_placement.history.snapshot import SnapshotMemo, decode
from acode_placement.history.writer import GroupWriter
from acode_placement.models import (
    AnyTarget,
    Attempt,
    CheckKind,
    Ec2Target,
    Known,
    PlacementResult,
    TaskRequirements,
    Usage,
)
from acode_placement.safe import mask_url

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes migrate without a lock
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
# What a decision was made on: the candidates, their capabilities as known, and the
# reservations held on them when the decision reserved (else None).
Inputs = tuple[Sequence[AnyTarget], Sequence[Known], Sequence[Usage] | None]
HEAD = "0003"  # the newest migration; a test keeps it equal to Alembic's head
# The ranked alternatives a compact record names with their scores (the first few
# are the fallback a reader looks at; deciding again gives them all), so a record
# stays a few KB whatever the fleet size.
KEPT_ALTERNATIVES = 10
_metadata = sa.MetaData()
placements = sa.Table(
    "placements",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("task_name", sa.String(256)),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("target_id", sa.String(256)),
    sa.Column("target_type", sa.String(16)),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("estimated_cost", sa.Float),
    sa.Column("price_source", sa.String(128)),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("failure_message", sa.Text),
    sa.Column("requirements", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("candidates", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("engine_version", sa.String(32), nullable=False),
    sa.Column("snapshot", sa.String(64)),  # compact records: the candidates decided on
)
snapshots = sa.Table(
    "snapshots",
    _metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
attempts = sa.Table(
    "attempts",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("target_id", sa.String(256), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("retryable", sa.Boolean, nullable=False),
)


class HistoryError(PlacementError):
    """The history database cannot be opened, read or written; the message says why."""


def default_url() -> str:
    path = Path(platformdirs.user_data_dir("acode-placement")) / "history.db"
    return f"sqlite:///{path}"


def normalise_url(url: str | None) -> str:
    """`~` expanded in SQLite paths; None is the default file."""
    if not url:
        return default_url()
    if url.startswith("sqlite:///~"):
        return "sqlite:///" + str(Path(url[len("sqlite:///") :]).expanduser())
    return url


@dataclass(frozen=True, slots=True)
class DatabaseFile:
    """The SQLite file a process opened, by identity (device and inode), so that a
    file deleted, replaced or made read-only under the process is noticed: SQLite
    would otherwise go on writing to the unlinked file, which no other process sees."""

    path: Path
    device: int
    inode: int

    @classmethod
    def of(cls, url_text: str) -> DatabaseFile | None:
        """The file behind a SQLite URL, once it exists; None for other databases."""
        url = sa.make_url(url_text)
        name = url.database
        if url.get_backend_name() != "sqlite" or not name or name == ":memory:":
            return None
        if name.startswith("file:"):
            return None  # a URI filename: SQLite's own parsing decides the path
        path = Path(name)
        found = os.stat(path)
        return cls(path, found.st_dev, found.st_ino)

    def problem(self) -> str | None:
        """Why this file can no longer be trusted, or None while it is the same file."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return "the database file was deleted while this process had it open"
        except OSError as exc:
            return f"the database file cannot be checked: {exc.strerror}"
        if (now.st_dev, now.st_ino) != (self.device, self.inode):
            return "the database file was replaced while this process had it open"
        if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
            return "the database file (or its directory) became read-only"
        return None


RESTART = "; restart the process to open the database now at that path"


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded decision, as stored."""

    request_id: str
    created_at: datetime
    task_name: str | None
    success: bool
    strategy: str
    mode: str
    target_id: str | None
    target_type: str | None
    reason: str
    score: float
    estimated_cost: float | None
    price_source: str | None
    duration_ms: float
    failure_message: str | None
    requirements: dict[str, Any]
    options: dict[str, Any]
    candidates: list[dict[str, Any]]
    result: dict[str, Any]
    engine_version: str
    attempts: tuple[Attempt, ...] = ()
    snapshot: str | None = None  # compact: `result` holds the outcome, not the candidates
    usage: list[list[float]] | None = None  # the reservations held then, when reserving

    def summary_json(self) -> dict[str, Any]:
        """The listing's fields (`history --json`, `GET /v1/placements`)."""
        return {
            "requestId": self.request_id,
            "time": self.created_at.isoformat(),
            "taskName": self.task_name,
            "success": self.success,
            "target": self.target_id,
            "targetType": self.target_type,
            "reason": self.reason,
            "score": self.score,
            "strategy": self.strategy,
            "mode": self.mode,
            "estimatedCost": self.estimated_cost,
            "priceSource": self.price_source,
            "decisionMs": self.duration_ms,
            "failureMessage": self.failure_message,
        }


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
        self.writer = GroupWriter(self._write, _Compact.batch)
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
        row["candidates"] = [_candidate(ts, explained[ts.index]) for ts in result.all_scores]
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
        return self.writer.submit(_Compact(row, kept))

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
        return self._read(lambda connection: [_record(r) for r in connection.execute(query)])

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
            record = _record(rows[0], steps)
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
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ----------------------------------------------------------------- internals

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        try:
            with self._opened().begin() as connection:
                self._guarded()
                done = work(connection)
                self._guarded()  # again just before the commit: never into a lost file
                return done
        except SQLAlchemyError as exc:
            raise HistoryError(f"history {self._where()}: {_reason(exc)}") from None

    def _read(self, work: Callable[[sa.Connection], T]) -> T:
        try:
            with self._opened().connect() as connection:
                self._guarded()
                return work(connection)
        except SQLAlchemyError as exc:
            raise HistoryError(f"history {self._where()}: {_reason(exc)}") from None

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


def open_watched(url_text: str, *, immediate: bool = False) -> tuple[Engine, DatabaseFile | None]:
    """`open_database`, and the SQLite file it opened (see `DatabaseFile`)."""
    engine = open_database(url_text, immediate=immediate)
    try:
        return engine, DatabaseFile.of(url_text)
    except OSError as exc:
        engine.dispose()
        raise HistoryError(f"history {mask_url(url_text)}: {exc.strerror}") from None


def open_database(url_text: str, *, immediate: bool = False) -> Engine:
    """An engine on the database, migrated to HEAD.

    With `immediate`, every SQLite transaction starts with BEGIN IMMEDIATE (the write
    lock first), so that a read-then-write such as check-and-reserve is atomic across
    processes.
    """
    try:
        url = sa.make_url(url_text)
    except (sa.exc.ArgumentError, ValueError):
        raise HistoryError(
            f"history {mask_url(url_text)}: not a database URL"
            " (e.g. sqlite:///path/history.db or postgresql+psycopg://host/db)"
        ) from None
    where = mask_url(url_text)
    options: dict[str, Any] = {}
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            try:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"history {where}: {exc.strerror}") from None
        options["connect_args"] = {"timeout": 30}
    try:
        engine = sa.create_engine(url, **options)
    except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise HistoryError(f"history {where}: {_reason(exc)}") from None
    if sqlite:
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        if immediate:
            sa.event.listen(engine, "connect", _driver_autocommit)
            sa.event.listen(engine, "begin", _begin_immediate)
    try:
        _migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise HistoryError(f"history {where}: {_reason(exc)}") from None
    return engine


def _driver_autocommit(connection: Any, _: Any) -> None:
    connection.isolation_level = None  # SQLAlchemy, not the driver, begins transactions


def _begin_immediate(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint, fast commits
    cursor.execute("PRAGMA busy_timeout=30000")  # wait for another process's commit
    cursor.close()


def _migrate(engine: Engine) -> None:
    """Bring the schema to HEAD; Alembic is imported only when that is needed.

    Processes that open a new database at once (`serve --workers`, commands run in
    parallel) migrate one at a time: the first takes a lock (a lock file beside a
    SQLite database, an advisory lock on PostgreSQL), the others wait for it and
    then find the schema at HEAD.
    """
    if _at_head(engine):
        return
    with _migration_lock(engine):
        if _at_head(engine):
            return  # another process migrated it meanwhile
        # Alembic costs a quarter second to import: only a database to migrate pays it.
        from alembic import command  # noqa: PLC0415
        from alembic.config import Config  # noqa: PLC0415

        config = Config()
        location = resources.files("acode_placement.history").joinpath("migrations")
        config.set_main_option("script_location", str(location))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def _at_head(engine: Engine) -> bool:
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return False
        current = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        return bool(current.scalar() == HEAD)


_MIGRATION_LOCK = 0x6163_6F64_6570  # PostgreSQL advisory lock key: "acodep"


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    url = engine.url
    if url.get_backend_name() == "postgresql":
        with engine.connect() as holder:
            holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                yield
            finally:
                holder.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                holder.commit()
        return
    name = url.database or ""
    local = url.get_backend_name() == "sqlite" and name not in ("", ":memory:")
    if not local or name.startswith("file:") or fcntl is None:
        yield
        return
    try:
        lock = open(f"{name}.migrate-lock", "a")  # noqa: SIM115  (held across the yield)
    except OSError:  # an unwritable directory: SQLite will say so itself
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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


class _Compact:
    """A compact record waiting for the group writer: its row and its snapshot.

    Written straight through the driver's cursor, with the statement SQLAlchemy
    compiles for the dialect and the values its column types bind: a busy service
    writes hundreds of records a second, and SQLAlchemy's per-statement work costs
    more than the insert. A batch is one executemany per table."""

    __slots__ = ("row", "snapshot")

    def __init__(self, row: dict[str, Any], snapshot: dict[str, Any]) -> None:
        self.row = row
        self.snapshot = snapshot

    def __call__(self, connection: sa.Connection) -> int:
        return _Compact.batch(connection, [self])

    @staticmethod
    def batch(connection: sa.Connection, works: Sequence[Callable[[sa.Connection], object]]) -> int:
        """Write these works in order in this transaction: the compact records among
        them with one statement per table; anything else by calling it."""
        written = 0
        run: list[_Compact] = []
        for work in [*works, None]:
            if isinstance(work, _Compact):
                run.append(work)
                continue
            if run:
                kept = {c.snapshot["digest"]: c.snapshot for c in run}  # each once
                _Insert.of(snapshots, connection, ignore=True).many(connection, kept.values())
                _Insert.of(placements, connection).many(connection, [c.row for c in run])
                written += len(run)
                run = []
            if work is not None:
                work(connection)
        return written


class _Insert:
    """An INSERT as SQLAlchemy compiles it for a dialect (with `ignore`: one that
    skips a row whose key is there already), run by the driver's own executemany
    with the values each column's type binds."""

    _made: ClassVar[dict[tuple[str, str, str, bool], _Insert]] = {}

    def __init__(self, table: sa.Table, dialect: sa.Dialect, ignore: bool) -> None:
        statement: sa.Insert = table.insert()
        if ignore and dialect.name in ("sqlite", "postgresql"):
            module = importlib.import_module(f"sqlalchemy.dialects.{dialect.name}")
            statement = module.insert(table).on_conflict_do_nothing()
        self.ignore = ignore and dialect.name not in ("sqlite", "postgresql")
        self.table = table
        keys = [c.name for c in table.columns if c.name != "id"]  # id: the database's
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        self.keys = keys
        self.processors = [
            (c.name, c.type.dialect_impl(dialect).bind_processor(dialect))
            for c in table.columns
            if c.name in keys
        ]

    @classmethod
    def of(cls, table: sa.Table, connection: sa.Connection, *, ignore: bool = False) -> _Insert:
        dialect = connection.dialect
        key = (table.name, dialect.name, dialect.driver, ignore)
        made = cls._made.get(key)
        if made is None:
            made = cls._made[key] = cls(table, dialect, ignore)
        return made

    def many(self, connection: sa.Connection, rows: Iterable[dict[str, Any]]) -> None:
        if self.ignore:  # no INSERT ... ON CONFLICT here: look first
            for row in rows:
                key = self.table.c.digest
                if connection.execute(sa.select(key).where(key == row["digest"])).first() is None:
                    connection.execute(self.table.insert(), [row])
            return
        values: list[Any] = [self._bound(row) for row in rows]
        driver = connection.connection.dbapi_connection
        assert driver is not None  # a connection in a transaction holds one
        cursor = driver.cursor()
        try:
            cursor.executemany(self.sql, values)
        except connection.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                self.sql, None, exc, connection.dialect.loaded_dbapi.Error
            ) from None
        finally:
            cursor.close()

    def _bound(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        bound = {
            name: row[name] if process is None else process(row[name])
            for name, process in self.processors
        }
        return tuple(bound[name] for name in self.order) if self.order is not None else bound


def _candidate(ts: Any, explained: dict[str, Any]) -> dict[str, Any]:
    data = dict(explained)
    target = ts.target.model_dump(mode="json", exclude_none=True)
    target.pop("identityFile", None)  # a key path stays in the targets file
    data["target"] = target
    data["capabilities"] = ts.capabilities.model_dump(mode="json", exclude_none=True)
    data["known"] = not any(c.kind is CheckKind.DISCOVERY for c in ts.mismatches)
    return data


def _record(row: Any, steps: tuple[Attempt, ...] = ()) -> Record:
    created = row.created_at
    if created.tzinfo is None:  # SQLite keeps no zone; what is stored is UTC
        created = created.replace(tzinfo=UTC)
    return Record(
        request_id=row.request_id,
        created_at=created,
        task_name=row.task_name,
        success=bool(row.success),
        strategy=row.strategy,
        mode=row.mode,
        target_id=row.target_id,
        target_type=row.target_type,
        reason=row.reason,
        score=row.score,
        estimated_cost=row.estimated_cost,
        price_source=row.price_source,
        duration_ms=row.duration_ms,
        failure_message=row.failure_message,
        requirements=row.requirements,
        options=row.options,
        candidates=row.candidates,
        result=row.result,
        engine_version=row.engine_version,
        attempts=steps,
        snapshot=row.snapshot,
    )


def _like_escaped(text: str) -> str:
    """`text` matched literally by LIKE: its `%`, `_` and `\\` escaped with `\\`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]+""")


def _reason(exc: BaseException) -> str:
    """The driver's first line, with any URL in it masked (a parse error quotes it)."""
    original = getattr(exc, "orig", None)
    lines = str(original or exc).strip().splitlines()
    text = _URL.sub(lambda m: mask_url(m.group()), lines[0] if lines else type(exc).__name__)
    return text[:300]

"""Compact records written a batch at a time: the rows the group writer commits
together, inserted through the driver's own executemany, in a transaction on the
writer's own driver connection (`held.HeldConnection`) where the dialect allows.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from acode_placement.history.database import (
    placements,
    snapshots,
)

# Dialects with INSERT ... ON CONFLICT DO NOTHING: a batch of compact records needs
# nothing of SQLAlchemy's there, so it can run on the driver's connection alone.
UPSERTS = ("sqlite", "postgresql")


class DriverWork:
    """Work the group writer can do on the driver's connection alone, without a
    SQLAlchemy transaction (see `HeldConnection`); called with a SQLAlchemy
    connection, it does the same in that connection's transaction."""

    __slots__ = ()

    def __call__(self, connection: sa.Connection) -> int:
        return batch(connection, [self])


class CompactRecord(DriverWork):
    """A compact record waiting for the group writer: its row and its snapshot.

    Written straight through the driver's cursor, with the statement SQLAlchemy
    compiles for the dialect and the values its column types bind: a busy service
    writes hundreds of records a second, and SQLAlchemy's per-statement work costs
    more than the insert. A batch is one executemany per table."""

    __slots__ = ("row", "snapshot")

    def __init__(self, row: dict[str, Any], snapshot: dict[str, Any]) -> None:
        self.row = row
        self.snapshot = snapshot


class DriverStatement(DriverWork):
    """One SQL statement without parameters, run by the driver (the benchmark's
    cheapest durable transaction: one page written and committed)."""

    __slots__ = ("sql",)

    def __init__(self, sql: str) -> None:
        self.sql = sql


def on_driver(dialect: sa.Dialect, works: Sequence[object]) -> bool:
    """Whether these works can be written on the driver's connection alone."""
    return dialect.name in UPSERTS and all(isinstance(work, DriverWork) for work in works)


def batch(connection: sa.Connection, works: Sequence[Callable[[sa.Connection], object]]) -> int:
    """`written` in SQLAlchemy's transaction on `connection`."""
    return written(_driver_of(connection), connection.dialect, works, connection)


def written(
    driver: Any,
    dialect: sa.Dialect,
    works: Sequence[Callable[[sa.Connection], object]],
    connection: sa.Connection | None = None,
) -> int:
    """Write these works in order in the transaction open on `driver` (a DBAPI
    connection): the compact records among them with one statement per table,
    driver statements by the driver, anything else by calling it with `connection`
    (SQLAlchemy's, whose transaction this is then). Returns the records written."""
    count = 0
    run: list[CompactRecord] = []
    for work in [*works, None]:
        if isinstance(work, CompactRecord):
            run.append(work)
            continue
        if run:
            kept = {c.snapshot["digest"]: c.snapshot for c in run}  # each once
            DriverInsert.of(snapshots, dialect, ignore=True).many(
                driver, dialect, kept.values(), connection
            )
            DriverInsert.of(placements, dialect).many(
                driver, dialect, [c.row for c in run], connection
            )
            count += len(run)
            run = []
        if isinstance(work, DriverStatement):
            with driver_errors(dialect, work.sql):
                cursor = driver.cursor()
                try:
                    cursor.execute(work.sql)
                finally:
                    cursor.close()
        elif work is not None:
            assert connection is not None, "only driver work outside a SQLAlchemy transaction"
            work(connection)
    return count


class DriverInsert:
    """An INSERT as SQLAlchemy compiles it for a dialect (with `ignore`: one that
    skips a row whose key is there already), run by the driver's own executemany
    with the values each column's type binds."""

    _made: ClassVar[dict[tuple[str, str, str, bool], DriverInsert]] = {}

    def __init__(self, table: sa.Table, dialect: sa.Dialect, ignore: bool) -> None:
        statement: sa.Insert = table.insert()
        upserts = dialect.name in UPSERTS
        if ignore and upserts:
            module = importlib.import_module(f"sqlalchemy.dialects.{dialect.name}")
            statement = module.insert(table).on_conflict_do_nothing()
        self.ignore = ignore and not upserts
        self.table = table
        columns = [c for c in table.columns if c.name != "id"]  # id: the database's
        compiled = statement.compile(dialect=dialect, column_keys=[c.name for c in columns])
        self.sql = str(compiled)
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        processors = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns}
        # In the order the statement takes its values (by position, or by name).
        self.processors = [(name, processors[name]) for name in self.order or processors]

    @classmethod
    def of(cls, table: sa.Table, dialect: sa.Dialect, *, ignore: bool = False) -> DriverInsert:
        key = (table.name, dialect.name, dialect.driver, ignore)
        made = cls._made.get(key)
        if made is None:
            made = cls._made[key] = cls(table, dialect, ignore)
        return made

    def many(
        self,
        driver: Any,
        dialect: sa.Dialect,
        rows: Iterable[dict[str, Any]],
        connection: sa.Connection | None,
    ) -> None:
        if self.ignore:  # no INSERT ... ON CONFLICT here: look first (SQLAlchemy's)
            assert connection is not None, "a dialect without upserts writes through SQLAlchemy"
            for row in rows:
                key = self.table.c.digest
                if connection.execute(sa.select(key).where(key == row["digest"])).first() is None:
                    connection.execute(self.table.insert(), [row])
            return
        values: list[Any] = [self._bound(row) for row in rows]
        with driver_errors(dialect, self.sql):
            cursor = driver.cursor()
            try:
                cursor.executemany(self.sql, values)
            finally:
                cursor.close()

    def _bound(self, row: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = [row[name] if bind is None else bind(row[name]) for name, bind in self.processors]
        if self.order is not None:
            return tuple(values)
        return {name: value for (name, _), value in zip(self.processors, values, strict=True)}


@contextlib.contextmanager
def driver_errors(dialect: sa.Dialect, sql: str | None = None) -> Iterator[None]:
    """The driver's errors raised as SQLAlchemy's (`DBAPIError` and its kinds), as
    they would be through a SQLAlchemy connection."""
    error = dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise sa.exc.DBAPIError.instance(sql, None, exc, error) from None


def _driver_of(connection: sa.Connection) -> Any:
    driver = connection.connection.dbapi_connection
    assert driver is not None  # a connection in a transaction holds one
    return driver

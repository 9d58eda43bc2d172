"""Compact records written a batch at a time: the rows the group writer commits
together, inserted through the driver's own executemany.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import sqlalchemy as sa

from acode_placement.history.database import (
    placements,
    snapshots,
)


class CompactRecord:
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
        return CompactRecord.batch(connection, [self])

    @staticmethod
    def batch(connection: sa.Connection, works: Sequence[Callable[[sa.Connection], object]]) -> int:
        """Write these works in order in this transaction: the compact records among
        them with one statement per table; anything else by calling it."""
        written = 0
        run: list[CompactRecord] = []
        for work in [*works, None]:
            if isinstance(work, CompactRecord):
                run.append(work)
                continue
            if run:
                kept = {c.snapshot["digest"]: c.snapshot for c in run}  # each once
                DriverInsert.of(snapshots, connection, ignore=True).many(connection, kept.values())
                DriverInsert.of(placements, connection).many(connection, [c.row for c in run])
                written += len(run)
                run = []
            if work is not None:
                work(connection)
        return written


class DriverInsert:
    """An INSERT as SQLAlchemy compiles it for a dialect (with `ignore`: one that
    skips a row whose key is there already), run by the driver's own executemany
    with the values each column's type binds."""

    _made: ClassVar[dict[tuple[str, str, str, bool], DriverInsert]] = {}

    def __init__(self, table: sa.Table, dialect: sa.Dialect, ignore: bool) -> None:
        statement: sa.Insert = table.insert()
        upserts = dialect.name in ("sqlite", "postgresql")  # INSERT ... ON CONFLICT
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
        self.processors = [
            (c.name, c.type.dialect_impl(dialect).bind_processor(dialect)) for c in columns
        ]

    @classmethod
    def of(
        cls, table: sa.Table, connection: sa.Connection, *, ignore: bool = False
    ) -> DriverInsert:
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

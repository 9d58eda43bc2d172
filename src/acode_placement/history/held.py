"""The group writer's own connection, kept from one transaction to the next.

A transaction through SQLAlchemy (the pool's check-out and check-in, its
Connection, its begin) cost about five times SQLite's own commit of a record, so
the writer keeps one pooled connection and writes a batch through the driver.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from acode_placement.history.batch import driver_errors


class HeldConnection:
    """The group writer's own connection from the pool, kept from one transaction to
    the next and used through the driver: a transaction through SQLAlchemy (the
    pool's check-out and check-in, its Connection, its begin) cost about five times
    SQLite's own commit of a record. One thread writes through it at a time (the
    writer's); `close` may come from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._pooled: Any = None  # the pool's proxy of the DBAPI connection
        self._pid = 0

    @contextlib.contextmanager
    def transaction(self, engine: Engine) -> Iterator[Any]:
        """A transaction on the held DBAPI connection to `engine`'s database: begun by
        the driver with the first statement, committed when the block ends, rolled
        back when it raises. The connection is given up only when the database is gone
        from it (a lost file is the store's to report: a new connection would make a
        new, empty file at the path)."""
        with self._lock:
            pooled = self._checked_out(engine)
            try:
                yield pooled.dbapi_connection
                with driver_errors(engine.dialect, "COMMIT"):
                    pooled.commit()
            except BaseException as exc:
                self._rolled_back(engine, exc)
                raise

    def close(self) -> None:
        """Back to the pool (before the engine is disposed of)."""
        with self._lock:
            if self._pid == os.getpid():
                self._returned()
            self._pooled, self._engine = None, None

    def _checked_out(self, engine: Engine) -> Any:
        if self._pid != os.getpid():  # a forked child: the parent's connection is not ours
            self._pooled, self._engine, self._pid = None, None, os.getpid()
        if self._engine is not engine:  # the store opened its database again
            self._returned()
            self._pooled, self._engine = engine.raw_connection(), engine
        return self._pooled

    def _returned(self) -> None:
        """The held connection back to the pool."""
        if self._pooled is not None:
            with contextlib.suppress(Exception):
                self._pooled.close()

    def _rolled_back(self, engine: Engine, exc: BaseException) -> None:
        pooled = self._pooled
        try:
            pooled.rollback()
            lost = (
                isinstance(exc, sa.exc.DBAPIError)
                and isinstance(exc.orig, engine.dialect.loaded_dbapi.Error)
                and engine.dialect.is_disconnect(exc.orig, pooled.dbapi_connection, None)
            )
        except Exception:
            lost = True
        if lost:  # as SQLAlchemy does on a disconnect: the pool's others are stale too
            self._pooled, self._engine = None, None
            with contextlib.suppress(Exception):
                pooled.invalidate()  # closed and never handed out again
            engine.dispose()  # the next check-out makes a new connection

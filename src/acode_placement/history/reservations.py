"""Reservations: leases on targets' capacity, shared through the history database.

A lease holds cpu, memory and GPUs of one target for one task until it is
released or expires. Check-and-reserve is one transaction that first takes the
target's lock (BEGIN IMMEDIATE on SQLite, a row lock on PostgreSQL), so processes
on one machine and engine replicas on several never over-commit a target.
Expired leases are reclaimed (ended with reason `expired`) by the next
transaction that looks at their target, and counted.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from acode_placement.errors import PlacementError, ReservationError, StoreUnavailableError
from acode_placement.history.database import (
    RESTART,
    DatabaseFile,
    UserText,
    error_line,
    metadata,
    normalise_url,
    open_watched,
)
from acode_placement.ids import new_id
from acode_placement.models import Capacity, Reservation, Resources, Usage
from acode_placement.safe import mask_url

T = TypeVar("T")
_RETRIES = 8

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", UserText(64), primary_key=True),
    sa.Column("target_id", sa.String(256), nullable=False),
    sa.Column("request_id", sa.String(64)),
    sa.Column("task_name", UserText(256)),
    sa.Column("owner", UserText(256), nullable=False),
    sa.Column("cpu", sa.Float, nullable=False),
    sa.Column("memory_gb", sa.Float, nullable=False),
    sa.Column("gpus", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("end_reason", sa.String(16)),
)
capacity_locks = sa.Table(
    "capacity_locks", metadata, sa.Column("target_id", sa.String(256), primary_key=True)
)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class ReservationStore:
    """Leases in a SQLAlchemy database. Thread-safe; opened on first use."""

    def __init__(self, url: str | None = None) -> None:
        self.url = normalise_url(url)
        self.reclaimed = 0  # expired leases this store ended
        self.on_reclaim: Callable[[int], None] | None = None
        self._engine: Engine | None = None
        self._file: DatabaseFile | None = None
        self._opening = threading.Lock()

    # -------------------------------------------------------------------- leases

    def reserve(
        self,
        target_id: str,
        wanted: Resources,
        capacity: Capacity,
        *,
        lease: timedelta,
        owner: str | None = None,
        request_id: str | None = None,
        task_name: str | None = None,
    ) -> Reservation | None:
        """Take a lease if the target has room now; None when it has not."""

        def attempt(connection: sa.Connection) -> Reservation | None:
            self._lock(connection, target_id)
            now = datetime.now(UTC)
            self._reclaim(connection, [target_id], now)
            if not self._usage(connection, [target_id], now)[target_id].fits(wanted, capacity):
                return None
            made = Reservation(
                id=new_id(),
                target_id=target_id,
                resources=wanted,
                owner=owner or default_owner(),
                created_at=now,
                expires_at=now + lease,
                request_id=request_id,
                task_name=task_name,
            )
            connection.execute(
                reservations.insert(),
                [
                    {
                        "id": made.id,
                        "target_id": target_id,
                        "request_id": request_id,
                        "task_name": task_name,
                        "owner": made.owner,
                        "cpu": wanted.cpu,
                        "memory_gb": wanted.memory_gb,
                        "gpus": wanted.gpus,
                        "created_at": now,
                        "expires_at": made.expires_at,
                    }
                ],
            )
            return made

        return self._transaction(attempt)

    def release(self, reservation_id: str) -> Reservation:
        """End a lease. Releasing it again is harmless; an expired or unknown id is an error."""

        if "\x00" in reservation_id:
            raise ReservationError(f"no reservation {reservation_id!r}")

        def end(connection: sa.Connection) -> Reservation:
            found = self._get(connection, reservation_id)
            if found is None:
                raise ReservationError(f"no reservation {reservation_id!r}")
            if found.ended_at is not None and found.end_reason == "released":
                return found  # a second release changes nothing
            now = datetime.now(UTC)
            if found.ended_at is not None or found.expires_at <= now:
                self._reclaim(connection, [found.target_id], now)
                raise ReservationError(
                    f"reservation {reservation_id} expired at"
                    f" {found.expires_at.isoformat(timespec='seconds')}; its capacity was reclaimed"
                )
            connection.execute(
                reservations.update()
                .where(reservations.c.id == reservation_id)
                .values(ended_at=now, end_reason="released")
            )
            return self._get(connection, reservation_id) or found

        return self._transaction(end)

    def renew(self, reservation_id: str, lease: timedelta) -> Reservation:
        """Extend an active lease to now + `lease`."""

        def extend(connection: sa.Connection) -> Reservation:
            found = self._get(connection, reservation_id)
            now = datetime.now(UTC)
            if found is None:
                raise ReservationError(f"no reservation {reservation_id!r}")
            if found.ended_at is not None or found.expires_at <= now:
                raise ReservationError(f"reservation {reservation_id} has ended; take a new one")
            connection.execute(
                reservations.update()
                .where(reservations.c.id == reservation_id)
                .values(expires_at=now + lease)
            )
            return self._get(connection, reservation_id) or found

        return self._transaction(extend)

    # ------------------------------------------------------------------- reading

    def usage(self, target_ids: Iterable[str]) -> dict[str, Usage]:
        """What active leases hold on each target (expired leases are reclaimed first)."""
        ids = list(dict.fromkeys(target_ids))
        if not ids:
            return {}

        def read(connection: sa.Connection) -> dict[str, Usage]:
            now = datetime.now(UTC)
            self._reclaim(connection, ids, now)
            return self._usage(connection, ids, now)

        return self._transaction(read)

    def active(self) -> list[Reservation]:
        def read(connection: sa.Connection) -> list[Reservation]:
            now = datetime.now(UTC)
            query = (
                sa.select(reservations)
                .where(reservations.c.ended_at.is_(None), reservations.c.expires_at > now)
                .order_by(reservations.c.created_at)
            )
            return [_reservation(r) for r in connection.execute(query)]

        return self._transaction(read)

    def get(self, reservation_id: str) -> Reservation | None:
        return self._transaction(lambda connection: self._get(connection, reservation_id))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # ----------------------------------------------------------------- internals

    def check(self) -> None:
        """Raise ReservationError unless leases can be taken now (see `DatabaseFile`)."""
        self._transaction(lambda connection: None)

    def _transaction(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` in one transaction, retried when the database says conflict.

        A SQLite file deleted, replaced or made read-only under this process stops
        every transaction (before its work and again before its commit): a lease
        granted in a file no other process sees would over-commit the target.
        """
        for attempt in range(_RETRIES):
            try:
                opened = self._opened()
                with DatabaseFile.writing_to(self._file), opened.begin() as connection:
                    self._guarded()
                    done = work(connection)
                    self._guarded()
                    return done
            except sa.exc.DBAPIError as exc:  # locked, deadlock, serialisation: try again
                if attempt == _RETRIES - 1 or not _retryable(exc):
                    self._guarded()  # a file lost: say that, not that it cannot be opened
                    raise StoreUnavailableError(f"reservations: {error_line(exc)}") from None
            except SQLAlchemyError as exc:
                self._guarded()
                raise StoreUnavailableError(f"reservations: {error_line(exc)}") from None
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _guarded(self) -> None:
        problem = self._file.problem() if self._file is not None else None
        if problem is not None:
            raise StoreUnavailableError(f"reservations {mask_url(self.url)}: {problem}{RESTART}")

    def _opened(self) -> Engine:
        with self._opening:
            if self._engine is None:
                try:
                    self._engine, self._file = open_watched(self.url, immediate=True)
                except PlacementError as exc:
                    text = str(exc).replace("history ", "reservations ", 1)
                    raise StoreUnavailableError(text) from None
            return self._engine

    def _lock(self, connection: sa.Connection, target_id: str) -> None:
        """Serialise check-and-reserve per target (SQLite: the IMMEDIATE write lock)."""
        if connection.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert  # noqa: PLC0415

            connection.execute(
                insert(capacity_locks).values(target_id=target_id).on_conflict_do_nothing()
            )
            connection.execute(
                sa.select(capacity_locks)
                .where(capacity_locks.c.target_id == target_id)
                .with_for_update()
            )

    def _reclaim(self, connection: sa.Connection, target_ids: list[str], now: datetime) -> None:
        ended = connection.execute(
            reservations.update()
            .where(
                reservations.c.target_id.in_(target_ids),
                reservations.c.ended_at.is_(None),
                reservations.c.expires_at <= now,
            )
            .values(ended_at=now, end_reason="expired")
        ).rowcount
        if ended:
            self.reclaimed += ended
            if self.on_reclaim is not None:
                self.on_reclaim(ended)

    def _usage(
        self, connection: sa.Connection, target_ids: list[str], now: datetime
    ) -> dict[str, Usage]:
        query = (
            sa.select(
                reservations.c.target_id,
                sa.func.sum(reservations.c.cpu),
                sa.func.sum(reservations.c.memory_gb),
                sa.func.sum(reservations.c.gpus),
                sa.func.count(),
            )
            .where(
                reservations.c.target_id.in_(target_ids),
                reservations.c.ended_at.is_(None),
                reservations.c.expires_at > now,
            )
            .group_by(reservations.c.target_id)
        )
        found = {t: Usage() for t in target_ids}
        for target_id, cpu, memory, gpus, tasks in connection.execute(query):
            found[target_id] = Usage(float(cpu or 0), float(memory or 0), float(gpus or 0), tasks)
        return found

    def _get(self, connection: sa.Connection, reservation_id: str) -> Reservation | None:
        row = connection.execute(
            sa.select(reservations).where(reservations.c.id == reservation_id)
        ).first()
        return _reservation(row) if row is not None else None


def _retryable(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig or exc).lower()
    return any(
        word in text
        for word in ("database is locked", "deadlock", "could not serialize", "busy", "lock")
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps no zone


def _reservation(row: Any) -> Reservation:
    return Reservation(
        id=row.id,
        target_id=row.target_id,
        resources=Resources(row.cpu, row.memory_gb, row.gpus),
        owner=row.owner,
        created_at=_utc(row.created_at),
        expires_at=_utc(row.expires_at),
        request_id=row.request_id,
        task_name=row.task_name,
        ended_at=_utc(row.ended_at) if row.ended_at is not None else None,
        end_reason=row.end_reason,
    )

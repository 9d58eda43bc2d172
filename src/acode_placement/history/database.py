"""The history's database: its tables, opening it (SQLite pragmas, PostgreSQL),
migrating it to HEAD one process at a time, and watching a SQLite file that could
be deleted or replaced under a running process.

Shared by the history (`store`) and the leases (`reservations`); what is written
to it is theirs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import platformdirs
import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from acode_placement.errors import PlacementError
from acode_placement.safe import mask_url, storable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes migrate without a lock
    fcntl = None  # type: ignore[assignment]


class UserText(sa.TypeDecorator[str]):
    """A text column that holds what a user or their code supplied (a task name, an
    owner, a failure message that quotes a requirement), or is looked up by what a
    user typed (a request id, a target id): written and compared as `storable` makes
    it, so that a lone surrogate never costs the row it is in, nor fails a lookup."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> str | None:
        return None if value is None else storable(value, nul=dialect.name == "postgresql")


HEAD = "0003"  # the newest migration; a test keeps it equal to Alembic's head
metadata = sa.MetaData()
placements = sa.Table(
    "placements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", UserText(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("task_name", UserText(256)),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("strategy", sa.String(128), nullable=False),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("target_id", UserText(256)),
    sa.Column("target_type", sa.String(16)),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("estimated_cost", sa.Float),
    sa.Column("price_source", sa.String(128)),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("failure_message", UserText()),
    sa.Column("requirements", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("candidates", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("engine_version", sa.String(32), nullable=False),
    sa.Column("snapshot", sa.String(64)),  # compact records: the candidates decided on
)
snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("target_id", sa.String(256), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", UserText()),
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
    lock: _WriteLock | None = field(default=None, compare=False, repr=False)

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
        return cls(path, found.st_dev, found.st_ino, _WriteLock.of(path))

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

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held around each write transaction: one writer at a time across the
        processes on this file (see `_WriteLock`)."""
        return self.lock if self.lock is not None else contextlib.nullcontext()

    @staticmethod
    def writing_to(file: DatabaseFile | None) -> contextlib.AbstractContextManager[None]:
        """`writing` of the file a store opened; nothing to hold for other databases."""
        return file.writing() if file is not None else contextlib.nullcontext()


class _WriteLock:
    """Writers to one SQLite file take turns on a lock file beside it (flock), and
    the threads of one process on a lock: the kernel hands a released flock to the
    next waiter at once, where SQLite's own busy handler polls, sleeping 1, 2, 5,
    10... up to 100 ms between tries. With `serve --workers 2` on one file that
    polling set the p99 (470-740 ms against 29 ms with one worker). Where no lock
    file can be made (a read-only directory, Windows), SQLite's locking alone
    serialises the writers, as before. One per file in a process while a store has
    it open (the history and the leases share it); its lock file closes with it."""

    _made: ClassVar[weakref.WeakValueDictionary[str, _WriteLock]] = weakref.WeakValueDictionary()
    _making = threading.Lock()

    def __init__(self, path: Path) -> None:
        self._thread = threading.Lock()
        self._fd: int | None = None
        if fcntl is not None:
            with contextlib.suppress(OSError):
                self._fd = os.open(f"{path}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)
                # Closed when the lock is collected, or at exit before the modules are
                # torn down (a `__del__` run then found `contextlib` gone and printed
                # "Exception ignored" after the command's own error).
                weakref.finalize(self, _closed, self._fd)

    @classmethod
    def of(cls, path: Path) -> _WriteLock:
        key = os.path.realpath(path)
        with cls._making:
            made = cls._made.get(key)
            if made is None:
                made = cls._made[key] = cls(path)
            return made

    def __enter__(self) -> None:
        self._thread.acquire()
        if self._fd is not None:
            with contextlib.suppress(OSError):  # SQLite's own locking serialises them then
                fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread.release()


def _closed(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


RESTART = "; restart the process to open the database now at that path"


def open_watched(url_text: str, *, immediate: bool = False) -> tuple[Engine, DatabaseFile | None]:
    """`open_database`, and the SQLite file it opened (see `DatabaseFile`)."""
    engine = open_database(url_text, immediate=immediate)
    try:
        file = DatabaseFile.of(url_text)
    except OSError as exc:
        engine.dispose()
        raise HistoryError(f"history {mask_url(url_text)}: {exc.strerror}") from None
    if file is not None:
        sa.event.listen(engine, "do_connect", _existing_only)
    return engine, file


def _existing_only(_: Any, __: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
    """A connection the pool makes later opens the file that is there, never creates
    one: once the watched file is deleted, a new connection would otherwise make a
    new, empty database at the path, and the store would report it replaced."""
    cargs[0] = f"{Path(os.path.abspath(cargs[0])).as_uri()}?mode=rw"
    cparams["uri"] = True


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
    if sqlite:
        options["json_serializer"] = json_text
    elif url.get_backend_name() == "postgresql":
        options["json_serializer"] = functools.partial(json_text, nul=True)
    try:
        engine = sa.create_engine(url, **options)
    except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise HistoryError(f"history {where}: {error_line(exc)}") from None
    if sqlite:
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        if immediate:
            sa.event.listen(engine, "connect", _driver_autocommit)
            sa.event.listen(engine, "begin", _begin_immediate)
    try:
        _migrate(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise HistoryError(f"history {where}: {error_line(exc)}") from None
    return engine


def json_text(value: Any, *, nul: bool = False) -> str:
    """A JSON column's text: pydantic-core's encoder, about four times as fast as
    `json.dumps` on a record's columns (the group writer encodes four per record),
    with the same values read back. A value with a lone surrogate in a string (a
    request's custom requirement can carry one), which the encoder refuses, and
    with `nul` (PostgreSQL, whose jsonb refuses `\\u0000`) one with NUL, is written
    with each string as `storable` makes it."""
    try:
        text: str | None = pydantic_core.to_json(value).decode()
    except pydantic_core.PydanticSerializationError:  # a lone surrogate
        text = None
    if text is None or (nul and "\\u0000" in text):
        text = pydantic_core.to_json(_storable(value, nul)).decode()
    return text


def _storable(value: Any, nul: bool) -> Any:
    if isinstance(value, str):
        return storable(value, nul=nul)
    if isinstance(value, dict):
        return {_storable(k, nul): _storable(v, nul) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v, nul) for v in value]
    return value


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


_URL = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]+""")


def error_line(exc: BaseException) -> str:
    """The driver's first line, with any URL in it masked (a parse error quotes it)."""
    original = getattr(exc, "orig", None)
    lines = str(original or exc).strip().splitlines()
    text = _URL.sub(lambda m: mask_url(m.group()), lines[0] if lines else type(exc).__name__)
    return text[:300]

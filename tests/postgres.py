"""A real PostgreSQL server on 127.0.0.1 for the tests: a throwaway cluster made with
initdb and started with pg_ctl (as the `postgres` user when the tests run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.sshd import free_port


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL not found: install it (./scripts/test does it with apt-get install postgresql)"
    )


def _as_owner(argv: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *argv] if owner else argv


@contextlib.contextmanager
def running_postgres(root: Path) -> Iterator[str]:
    """Yields a SQLAlchemy URL of an empty database on a free loopback port."""
    bin_dir = _binaries()
    owner = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        owner = "postgres"
        pwd.getpwnam(owner)
    data, sockets = root / "data", root / "sockets"
    for directory in (root, data, sockets):
        directory.mkdir(exist_ok=True)
        if owner:
            shutil.chown(directory, owner, owner)
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
            ],
            owner,
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = root / "postgres.log"
    if owner:
        log.touch()
        shutil.chown(log, owner, owner)
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(log),
                "-w",
                "start",
            ],
            owner,
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], owner),
            check=False,
            capture_output=True,
        )

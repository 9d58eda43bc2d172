from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from acode_placement.cli import app
from tests.postgres import running_postgres

FIXTURES = Path(__file__).parent / "fixtures"
FLEET = FIXTURES / "fleet.yaml"
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the developer's own settings, targets, cache or environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config-home")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
    for name in list(os.environ):
        if name.startswith(("ACODE_PLACEMENT_", "AWS_")):
            monkeypatch.delenv(name)
    # A command run in-process leaves no detached refresh behind (each would start a
    # Python of its own); tests/test_background_refresh.py runs the console script,
    # whose environment (tests.hostile.environment) does not carry this.
    monkeypatch.setenv("ACODE_PLACEMENT_BACKGROUND_REFRESH", "false")
    # No test may reach AWS or the instance-metadata address, whatever the machine has.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, Any], Path]:
    """Write a YAML document (or raw text) to a file under tmp_path."""

    def _write(name: str, content: Any) -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return _write


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str | Path) -> tuple[int, str, str]:
        result = self.runner.invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    def json(self, *args: str | Path) -> tuple[int, dict[str, Any]]:
        code, out, err = self(*args, "--json")
        assert out, f"no output; stderr: {err}"
        return code, json.loads(out)


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="acode-pg-"))
    root.chmod(0o755)  # the postgres user must reach it
    try:
        with running_postgres(root) as url:
            yield url
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then a database on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    name = f"h{os.getpid()}_{time.monotonic_ns()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    yield base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """Put an executable `name` with shell `body` first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def make(name: str, body: str) -> Path:
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path

    return make

"""A command answers with what is known and exits at once; the probes it did not wait
for finish in a detached `discover`, which fills the cache for the next run (the
console script run as a user runs it, against hosts on 127.0.0.1)."""

from __future__ import annotations

import fcntl
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.hostile import assert_refused, run
from tests.sshd import free_port

DECLARED = {"cpu": 4, "memoryGb": 8, "os": "linux", "arch": "x64", "tools": ["sh"]}


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never says a word (an SSH server hung
    before its banner): a probe of it takes the whole probe timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def files(home: Path, port: int, probe_timeout: float = 3) -> tuple[Path, Path, Path]:
    targets = home / "targets.yaml"
    host = {"id": "box", "type": "ssh", "host": "127.0.0.1", "port": port}
    targets.write_text(yaml.safe_dump({"targets": [{**host, "capabilities": DECLARED}]}))
    task = home / "task.yaml"
    task.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": {"cpu": 2}}}))
    config = home / "placement.yaml"
    config.write_text(yaml.safe_dump({"placement": {"probeTimeout": probe_timeout}}))
    return targets, task, config


def cache(home: Path) -> dict[str, Any]:
    path = home / "data" / "acode-placement" / "capabilities.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def failure_of(home: Path, target: str, within: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = cache(home).get("failures", {}).get(target)
        if found:
            return dict(found)
        time.sleep(0.1)
    return None


def discovery_of(out: str) -> dict[str, Any]:
    (candidate,) = json.loads(out)["candidates"]
    return dict(candidate["discovery"])


def test_a_command_exits_at_once_and_a_detached_refresh_fills_the_cache(
    tmp_path: Path, silent: int
) -> None:
    targets, task, config = files(tmp_path, silent, probe_timeout=8)
    argv = ("place", task, "--targets", targets, "--config", config, "--json")
    started = time.monotonic()
    first = run(tmp_path, *argv, ACODE_PLACEMENT_BACKGROUND_REFRESH="true")
    took = time.monotonic() - started
    assert first.code == 0, first.err
    assert discovery_of(first.out) == {
        "status": "declared",
        "cause": "not probed yet; probing in the background",
    }
    assert took < 6, "the command waited for a probe it did not need"
    # The probe goes on without the command, and its failure is kept for the next run.
    failure = failure_of(tmp_path, "box", within=30)
    assert failure is not None, "no background refresh saved the probe's outcome"
    assert failure["status"] == "unreachable"
    assert failure["cause"] == f"127.0.0.1:{silent}: no SSH answer within 8 s"
    again = run(tmp_path, *argv)
    assert again.code == 0
    assert discovery_of(again.out) == {"status": "unreachable", "cause": failure["cause"]}


def test_without_background_refresh_the_probes_stop_with_the_command(
    tmp_path: Path, silent: int
) -> None:
    targets, task, config = files(tmp_path, silent, probe_timeout=1)
    ran = run(
        tmp_path,
        "place", task, "--targets", targets, "--config", config,
        ACODE_PLACEMENT_BACKGROUND_REFRESH="false",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert "box declared (not probed yet; probing in the background)" in ran.out
    # A refresh would have saved "no SSH answer within 1 s" well within this.
    assert failure_of(tmp_path, "box", within=5) is None


def test_one_refresh_at_a_time(tmp_path: Path) -> None:
    port = free_port()
    targets, _, config = files(tmp_path, port)
    lock = tmp_path / "data" / "acode-placement" / ".capabilities.json.refresh.lock"
    lock.parent.mkdir(parents=True)
    refresh = ("discover", "--in-background", "--targets", targets, "--config", config, "--", "box")
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another refresh is at it
        ran = run(tmp_path, *refresh)
        assert (ran.code, ran.out) == (0, "")
        assert failure_of(tmp_path, "box", within=0.5) is None
    ran = run(tmp_path, *refresh)
    assert (ran.code, ran.out) == (0, "")
    failure = failure_of(tmp_path, "box", within=1)
    assert failure is not None and failure["cause"] == f"127.0.0.1:{port}: connection refused"


@pytest.mark.parametrize("where", ["file", "environment"])
def test_a_bad_background_refresh_setting_is_one_line(tmp_path: Path, where: str) -> None:
    targets, task, config = files(tmp_path, free_port())
    env = {}
    if where == "file":
        config.write_text(yaml.safe_dump({"placement": {"backgroundRefresh": "sometimes"}}))
    else:
        env["ACODE_PLACEMENT_BACKGROUND_REFRESH"] = "sometimes"
    ran = run(tmp_path, "place", task, "--targets", targets, "--config", config, **env)
    named = (
        f"{config}:2: backgroundRefresh"
        if where == "file"
        else ("environment ACODE_PLACEMENT_BACKGROUND_REFRESH")
    )
    assert_refused(ran, f"{named}: input should be a valid boolean", "got 'sometimes'")

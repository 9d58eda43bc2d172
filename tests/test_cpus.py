"""`serve --pin-cpus`: each worker on a CPU of its own, found by a lock it holds while
it lives in a folder every `serve` of the user shares (`cpus.claim`), checked on
real processes through /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from acode_placement import cpus
from acode_placement.errors import InputError
from tests.hostile import SCRIPT, assert_refused, environment, run
from tests.serving import wait_until_up
from tests.sshd import free_port
from tests.test_service import _workers


def _can_pin() -> bool:
    try:
        os.sched_setaffinity(0, os.sched_getaffinity(0))  # (what this process has)
    except (AttributeError, OSError):  # no such call, or a sandbox refuses it
        return False
    return True


pytestmark = pytest.mark.skipif(not _can_pin(), reason="no CPU pinning on this system")
USABLE = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def test_workers_take_every_cpu_once_before_any_twice(tmp_path: Path) -> None:
    held = [cpus.claim(tmp_path, [3, 5, 7]) for _ in range(5)]
    try:
        assert [cpu for cpu, _ in held] == [3, 5, 7, 3, 5]
        os.close(held[1][1])  # the worker on 5 ends: the kernel lets go of its lock
        again = cpus.claim(tmp_path, [3, 5, 7])
        held[1] = again
        assert again[0] == 5
        held.append(cpus.claim(tmp_path, [3, 5, 7]))
        assert held[-1][0] == 7
    finally:
        for _, handle in held:
            os.close(handle)


def test_a_lock_another_process_holds_is_taken(tmp_path: Path) -> None:
    """The locks are the kernel's (flock), so they hold between processes, and go
    with the process that held them."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from acode_placement import cpus\n"
            f"print(cpus.claim(pathlib.Path({str(tmp_path)!r}), [0, 1])[0], flush=True)\n"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "0"
    cpu, handle = cpus.claim(tmp_path, [0, 1])
    os.close(handle)
    assert cpu == 1
    child.stdin.close()
    child.wait(30)
    cpu, handle = cpus.claim(tmp_path, [0, 1])
    os.close(handle)
    assert cpu == 0


def test_a_system_that_cannot_pin_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")
    with pytest.raises(InputError, match=r"^--pin-cpus: this system cannot pin a process"):
        cpus.usable()


def _allowed(pid: int) -> set[int]:
    return os.sched_getaffinity(pid)


@contextmanager
def _serving(
    home: Path, *args: str, only: int | None = None, **env: str
) -> Iterator[subprocess.Popen[str]]:
    """`serve` with these arguments; with `only`, started on that one CPU (what
    `taskset -c` does); its cache (and so the CPU locks) under `home` unless `env`
    says where."""
    config = home / "placement.yaml"
    config.write_text(yaml.safe_dump({"placement": {"discoveryEnabled": False}}))
    port = free_port()
    server = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port), "--config", str(config), *args],
        env=environment(home, **{"XDG_CACHE_HOME": str(home / "cache"), **env}),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, {only})) if only is not None else None,  # noqa: PLW1509
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server)
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def test_one_worker_is_pinned_to_the_first_cpu_it_may_use(tmp_path: Path) -> None:
    last = USABLE[-1]
    with _serving(tmp_path, "--pin-cpus", only=last) as server:
        assert _allowed(server.pid) == {last}
    with _serving(tmp_path, "--pin-cpus") as server:
        assert _allowed(server.pid) == {USABLE[0]}
    with _serving(tmp_path) as server:  # without the flag: where the kernel likes
        assert _allowed(server.pid) == set(USABLE)


def _pinned_workers(server: subprocess.Popen[str], count: int) -> dict[int, set[int]]:
    """The workers' pids and CPUs, once `count` of them are up and pinned."""
    deadline = time.monotonic() + 60
    while True:
        found = {}
        for pid in _workers(server.pid):
            try:
                found[pid] = _allowed(pid)
            except OSError:
                continue  # ended meanwhile
        if len(found) == count and all(len(allowed) == 1 for allowed in found.values()):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_workers_spread_over_cpus_and_a_replacement_takes_the_free_one(
    tmp_path: Path,
) -> None:
    count = 3
    with _serving(tmp_path, "--pin-cpus", "--workers", str(count)) as server:
        pinned = _pinned_workers(server, count)
        taken = sorted(next(iter(cpu)) for cpu in pinned.values())
        assert taken == sorted(USABLE[n % len(USABLE)] for n in range(count))
        victim, victims_cpu = min(pinned.items())
        os.kill(victim, signal.SIGKILL)  # uvicorn starts another in its place
        deadline = time.monotonic() + 60
        while victim in _workers(server.pid) or len(_workers(server.pid)) < count:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        again = _pinned_workers(server, count)
        assert victim not in again
        assert sorted(next(iter(cpu)) for cpu in again.values()) == taken
        (replacement,) = set(again) - set(pinned)
        assert again[replacement] == victims_cpu
    # Its workers' locks went with them: the first CPU is free again.
    cpu, handle = cpus.claim(tmp_path / "cache" / "acode-placement" / "cpus", USABLE)
    os.close(handle)
    assert cpu == USABLE[0]


@pytest.mark.skipif(len(USABLE) < 2, reason="needs two CPUs")
def test_two_services_on_one_machine_take_different_cpus(tmp_path: Path) -> None:
    """Every pinned worker of the user's services shares the locks, so a second
    `serve --pin-cpus` does not pile onto the first one's CPU."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shared = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    with (
        _serving(tmp_path / "a", "--pin-cpus", **shared) as first,
        _serving(tmp_path / "b", "--pin-cpus", **shared) as second,
    ):
        assert _allowed(first.pid) == {USABLE[0]}
        assert _allowed(second.pid) == {USABLE[1]}


def test_no_folder_for_the_locks_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ran = run(
        tmp_path, "serve", "--port", str(free_port()), "--pin-cpus", XDG_CACHE_HOME=str(blocker)
    )
    assert "--pin-cpus: cannot make" in assert_refused(ran)

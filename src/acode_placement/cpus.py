"""`serve --pin-cpus`: each worker process kept on one CPU of its own.

A worker's event loop and its history writer are two threads that take turns on
one interpreter lock: a record goes to the writer, the commit comes back, and the
lock changes hands several times for each batch. Left to the kernel, the two
threads often run on different CPUs, so each hand-over wakes a thread on another
CPU, which on a virtual machine is the slow part. On one CPU they share its cache
and hand over in place: on the README's 2-CPU VM, one worker answered 3,390-3,690
lean placements a second pinned against 3,060-3,280 free.

A worker finds its CPU without being told which worker it is (uvicorn starts and
restarts them alike): it takes the first free lock file in a folder of the user's
cache, the first holder of each CPU before any second, and keeps it while it
lives, so the kernel frees it for the worker started in its place. Every pinned
worker of every `serve` this user runs on the machine shares the folder, so two
services spread over the CPUs instead of piling onto the first.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import platformdirs

from acode_placement.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no CPU pinning either
    fcntl = None  # type: ignore[assignment]


def usable() -> list[int]:
    """The CPUs this process may run on (as `taskset` or a cgroup set them), in
    order. InputError where the system cannot pin a process to a CPU."""
    if not hasattr(os, "sched_getaffinity") or fcntl is None:
        raise InputError("--pin-cpus: this system cannot pin a process to a CPU")
    return sorted(os.sched_getaffinity(0))


def folder() -> Path:
    """Where the workers' lock files are: the user's cache (one per user, so that
    nobody else's process can hold or plant them). InputError if it cannot be made."""
    path = Path(platformdirs.user_cache_dir("acode-placement")) / "cpus"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--pin-cpus: cannot make {path}: {exc.strerror}") from None
    return path


def claim(where: Path, cpus: list[int]) -> tuple[int, int]:
    """The CPU for this worker (the first of `cpus` that no live worker holds, else
    the first held by one only, and so on) and the lock that holds it: a file
    descriptor, to keep open while the worker lives. OSError if a lock file
    cannot be opened or locked (a file system without locks)."""
    assert fcntl is not None  # `usable` refused already where there is none
    for holders in itertools.count():
        for cpu in cpus:
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            handle = os.open(where / f"cpu-{cpu}-{holders}", flags, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            except OSError:
                os.close(handle)
                raise
            return cpu, handle
    raise AssertionError("unreachable")  # pragma: no cover


def pin(cpus: list[int]) -> int:
    """Keep this process (every thread it has and will start) on a CPU of `cpus`
    that `claim` finds for it; that CPU. The lock stays held, and the CPU this
    worker's, for as long as the process lives. InputError in one line when the
    lock or the system refuses."""
    try:
        cpu, _ = claim(folder(), cpus)
    except OSError as exc:
        raise InputError(f"--pin-cpus: cannot take a CPU: {exc.strerror}") from None
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        raise InputError(f"--pin-cpus: cannot pin to CPU {cpu}: {exc.strerror}") from None
    return cpu

"""`serve --pin-cpus`: each worker process kept on one CPU of its own.

A worker's event loop and its history writer are two threads that take turns on
one interpreter lock: a record goes to the writer, the commit comes back, and the
lock changes hands several times for each batch. Left to the kernel, the two
threads often run on different CPUs, so each hand-over wakes a thread on another
CPU, which on a virtual machine is the slow part. On one CPU they share its cache
and hand over in place: on the README's 2-CPU VM, one worker answered 3,360 lean
placements a second pinned against 3,000 free, and a lone durable placement took
368 us against 475.

A worker finds its CPU without being told which worker it is (uvicorn starts and
restarts them alike): it takes the first free lock file of a folder `serve` made
for the run, the first holder of each CPU before any second, and keeps it while
it lives, so the kernel frees it for the worker started in its place.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

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


def pin(cpu: int) -> None:
    """Keep this process (every thread it has and will start) on `cpu`.
    InputError in one line when the system refuses."""
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        raise InputError(f"--pin-cpus: cannot pin to CPU {cpu}: {exc.strerror}") from None


def claim(folder: Path, cpus: list[int]) -> tuple[int, int]:
    """The CPU for this worker (the first of `cpus` that no live worker holds, else
    the first held by one only, and so on) and the lock that holds it: a file
    descriptor, to keep open while the worker lives."""
    assert fcntl is not None  # `usable` refused already where there is none
    for holders in itertools.count():
        for cpu in cpus:
            handle = os.open(folder / f"cpu-{cpu}-{holders}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            return cpu, handle
    raise AssertionError("unreachable")  # pragma: no cover

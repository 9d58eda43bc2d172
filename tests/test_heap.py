"""The garbage collector's settings a process of ours runs with (`heap.settle`):
checked in child processes, since freezing the test process's heap would keep
everything the tests made alive."""

from __future__ import annotations

import json
import subprocess
import sys

from acode_placement import heap

PROBE = """
import gc, json, sys
{setup}
print(json.dumps({{"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
                   "enabled": gc.isenabled()}}))
"""


def _state(setup: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    state: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return state


def test_a_command_runs_with_the_settled_heap() -> None:
    state = _state(
        "from acode_placement.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass"
    )
    assert state["threshold"] == list(heap._THRESHOLDS)
    assert isinstance(state["frozen"], int)
    assert state["frozen"] > 0  # the modules imported so far
    assert state["enabled"] is True


def test_a_plain_python_process_is_left_alone() -> None:
    """Importing the package (a library user's process) changes nothing: only a
    command or a service worker settles the heap."""
    state = _state("import acode_placement, acode_placement.cli")
    assert state["threshold"] != list(heap._THRESHOLDS)
    assert state["frozen"] == 0


def test_bench_times_with_the_collector_a_library_caller_has() -> None:
    """`bench` says what a caller of the library pays: the command's settled heap
    must not make its figures better than a caller's process would see."""
    state = _state(
        "from acode_placement import bench, heap\n"
        "default = gc.get_threshold()\n"
        "heap.settle(collect=False)\n"
        "bench.measure = lambda size, runs: {}\n"
        "bench.run([10], 1)\n"
        "assert gc.get_threshold() == default, gc.get_threshold()"
    )
    assert state["frozen"] == 0
    assert state["threshold"] != list(heap._THRESHOLDS)

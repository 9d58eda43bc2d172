"""The garbage collector's settings for a process of ours (`serve`'s workers, a
command), made once everything it keeps is built; and the collector paused while a
file is read.

A placement allocates and frees thousands of objects, and the collector's default
first threshold (700) runs it several times a placement; every third run or so
reaches the older generations, which hold the whole web stack and fleet. In the
service those pauses set the p99 (69 ms against 27 ms on the example fleet); in a
command on 10,000 targets they took about a second of six.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_THRESHOLDS = (10_000, 50, 50)
_DEFAULTS = gc.get_threshold()  # the interpreter's, as this module is first imported


def settle(*, collect: bool = True) -> None:
    """Move what is alive now (modules, the app, the fleet) out of the collector's
    sight for good, first collecting what is garbage already (`collect`: worth it
    for a long-lived service, not for a command), and collect the young generation
    less often."""
    if collect:
        gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)


def unsettle() -> None:
    """The interpreter's own settings back (nothing frozen, the default thresholds):
    what a library caller's process runs with, for `bench` to time what they pay."""
    gc.unfreeze()
    gc.set_threshold(*_DEFAULTS)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a burst of allocation that makes no
    garbage, and left as it was found. Reading a file allocates a node, then a
    value, per scalar and container, and none of them is garbage until the read
    ends, so the collector's runs (each a walk over every object alive, the growing
    tree included) would find nothing: a 10,000-target file took 3.0 s to compose
    with them and 0.7 s without. (A recursive alias, the one way YAML makes a cycle,
    is refused before any value is made; its nodes are collected once the collector
    is back.)"""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()

"""The garbage collector's settings for a process of ours (`serve`'s workers, a
command), made once everything it keeps is built.

A placement allocates and frees thousands of objects, and the collector's default
first threshold (700) runs it several times a placement; every third run or so
reaches the older generations, which hold the whole web stack and fleet. In the
service those pauses set the p99 (69 ms against 27 ms on the example fleet); in a
command on 10,000 targets they took about a second of six.
"""

from __future__ import annotations

import gc

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

"""The `acode-placement` command: thin typer commands over the engine and `explain`
(see `commands/`, one module per group); this module loads them in the order `--help`
lists them and runs the app.

Exit status: 0 placed (or done), 1 no valid target, 2 bad input or usage.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from acode_placement import heap
from acode_placement.commands.common import app

# Each module registers its commands on `app` when imported: in this order, the
# order `--help` lists them.
# isort: off
from acode_placement.commands import (
    placing,
    fleet,
    leases,
    serving,
    info,
    history,
    onboarding,
    simulating,
)
# isort: on

COMMANDS = (placing, fleet, leases, serving, info, history, onboarding, simulating)


def _terminated(signum: int, _: object) -> None:
    """SIGTERM unwinds like an interrupt: asyncio cancels the running probes, whose
    cleanup kills their process groups, and the command exits 128 + 15."""
    raise SystemExit(128 + signum)


# The options of the whole program, which take a value: accepted after the command
# too (`place task.yaml --metrics-file m.prom`), as kubectl and gh accept theirs.
GLOBAL_OPTIONS = ("--log-level", "--log-format", "--metrics-file")


def globals_first(args: Sequence[str]) -> list[str]:
    """`args` with the program's own options moved before the command, each with its
    value; nothing after `--` is touched."""
    front: list[str] = []
    rest: list[str] = []
    words = list(args)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            rest += words[i:]
            break
        name = word.split("=", 1)[0]
        if name in GLOBAL_OPTIONS and rest:
            if "=" in word:
                front.append(word)
            else:
                front += words[i : i + 2]
                i += 1
        else:
            rest.append(word)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> None:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _terminated)
    heap.settle(collect=False)  # the modules stay; a command's per-target garbage is young
    args = globals_first(sys.argv[1:] if argv is None else argv)
    app(args=args, prog_name="acode-placement")

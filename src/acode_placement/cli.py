"""The `acode-placement` command: thin typer commands over the engine and `explain`
(see `commands/`, one module per group); this module loads them in the order `--help`
lists them and runs the app.

Exit status: 0 placed (or done), 1 no valid target, 2 bad input or usage.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from acode_placement.commands.common import app

# Each module registers its commands on `app` when imported: in this order, the
# order `--help` lists them.
# isort: off
from acode_placement.commands import placing, fleet, leases, serving, info, history
# isort: on

COMMANDS = (placing, fleet, leases, serving, info, history)


def _terminated(signum: int, _: object) -> None:
    """SIGTERM unwinds like an interrupt: asyncio cancels the running probes, whose
    cleanup kills their process groups, and the command exits 128 + 15."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _terminated)
    app(args=list(argv) if argv is not None else None, prog_name="acode-placement")

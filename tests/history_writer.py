"""A process that places decisions into a history, for the concurrency and crash tests.

    python -m tests.history_writer URL COUNT    (COUNT < 0: until killed)

Prints "running" once 50 decisions are recorded.
"""

from __future__ import annotations

import asyncio
import sys

from acode_placement import (
    Capabilities,
    PlacementEngine,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from acode_placement.history.store import HistoryStore


async def main(url: str, count: int) -> None:
    engine = PlacementEngine(history=HistoryStore(url))
    fleet = [
        SshTarget(id=f"h{i}", host=f"h{i}", capabilities=Capabilities(cpu=i)) for i in range(1, 6)
    ]
    options = PlacementOptions(discovery_enabled=False)
    n = 0
    while count < 0 or n < count:
        await engine.place(TaskRequirements(cpu=n % 7), fleet, options)
        n += 1
        if n == 50:
            print("running", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

"""A process that places decisions into a history, for the concurrency and crash tests.

    python -m tests.history_writer URL COUNT [--concurrent]   (COUNT < 0: until killed)

Prints "running" once 50 decisions are recorded. With --concurrent, places 20 at a
time (so that the group writer commits them together) and prints each request id
once its place() has returned: durable, so each printed id must be in the database.
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


async def main(url: str, count: int, concurrent: bool = False) -> None:
    engine = PlacementEngine(history=HistoryStore(url))
    fleet = [
        SshTarget(id=f"h{i}", host=f"h{i}", capabilities=Capabilities(cpu=i)) for i in range(1, 6)
    ]
    options = PlacementOptions(discovery_enabled=False)
    n = 0
    while count < 0 or n < count:
        if concurrent:
            tasks = [TaskRequirements(cpu=(n + i) % 7) for i in range(20)]
            for result in await asyncio.gather(*(engine.place(t, fleet, options) for t in tasks)):
                print(result.request_id, flush=True)
            n += 20
            continue
        await engine.place(TaskRequirements(cpu=n % 7), fleet, options)
        n += 1
        if n == 50:
            print("running", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), "--concurrent" in sys.argv[3:]))

"""A process that reserves and releases, for the concurrency and crash tests.

    python -m tests.reservation_worker URL CYCLES CPU [hold]

Runs CYCLES reserve/release cycles of CPU cpus on the target `pool` (8 CPUs),
several at once; prints "reserved N" per success and "held" once it holds a
lease in `hold` mode (then sleeps until killed).
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

from acode_placement.history.reservations import ReservationStore
from acode_placement.models import Capacity, Resources

POOL = Capacity(cpu=8)


def main(url: str, cycles: int, cpu: float, mode: str) -> None:
    store = ReservationStore(url)
    if mode == "hold":
        lease = store.reserve("pool", Resources(cpu=cpu), POOL, lease=timedelta(seconds=2))
        print("held" if lease else "full", flush=True)
        time.sleep(3600)
        return
    taken = 0

    async def one() -> None:
        nonlocal taken
        lease = await asyncio.to_thread(
            store.reserve, "pool", Resources(cpu=cpu), POOL, lease=timedelta(minutes=5)
        )
        if lease is not None:
            taken += 1
            await asyncio.sleep(0.001)
            await asyncio.to_thread(store.release, lease.id)

    async def run() -> None:
        for start in range(0, cycles, 4):
            await asyncio.gather(*(one() for _ in range(min(4, cycles - start))))

    asyncio.run(run())
    print(f"reserved {taken}", flush=True)


if __name__ == "__main__":
    main(
        sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else ""
    )

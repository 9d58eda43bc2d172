"""The history's writer: one thread committing the records of concurrent placements
together (group commit), so that no database call runs on the event loop."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import sqlalchemy as sa

Work = Callable[[sa.Connection], object]
_Done = Future[object] | asyncio.Future[object]
_Pending = tuple[Work, _Done]
_Outcome = tuple[_Done, object, BaseException | None]


class GroupWriter:
    """One thread that commits the records of concurrent placements together: the
    records that arrive while a transaction commits go into the next one (at most
    `most` per transaction), so a busy service pays one commit for many placements
    and no database call runs on the event loop. A batch that fails is committed
    again record by record, so that one bad record never loses the others."""

    def __init__(
        self,
        commit: Callable[[Sequence[Work]], object],
        write: Callable[[Work], object],
    ) -> None:
        """`commit(works)` does them all in one transaction (what calling each in turn
        would do); `write(work)` does one in a transaction of its own."""
        self._together = commit
        self._write = write
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.most = 256
        self.transactions = 0  # committed, for the tests and the benchmark

    def submit(self, work: Callable[[sa.Connection], object]) -> Future[object]:
        """`work` for the next transaction; the future is done once it is committed."""
        future: Future[object] = Future()
        self._enqueue(work, future)
        return future

    def awaited(
        self, work: Callable[[sa.Connection], object], loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[object]:
        """`submit` for a caller on `loop` (called from that loop): the loop is woken
        once per committed transaction for all its callers, not once per record as
        `asyncio.wrap_future` of each would (a wake-up is a write to the loop's pipe)."""
        future: asyncio.Future[object] = loop.create_future()
        self._enqueue(work, future)
        return future

    def _enqueue(self, work: Callable[[sa.Connection], object], future: _Done) -> None:
        self._queue.put((work, future))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="acode-placement-history", daemon=True
                )
                self._thread.start()
                atexit.register(self.drain)  # what async placements left, before exit

    def drain(self, timeout: float = 10.0) -> None:
        """Wait (at most `timeout` seconds) until what was submitted is committed."""
        if self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.submit(lambda connection: None).result(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.most:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            self._together([work for work, _ in batch])
        except Exception:
            outcomes: list[_Outcome] = []
            for work, future in batch:  # alone, each record stands or falls by itself
                try:
                    outcomes.append((future, self._write(work), None))
                    self.transactions += 1
                except Exception as exc:
                    outcomes.append((future, None, exc))
            _settle(outcomes)
            return
        self.transactions += 1
        _settle([(future, None, None) for _, future in batch])


def _settle(outcomes: list[_Outcome]) -> None:
    """Each future done with its outcome: thread futures here, a loop's futures in
    that loop, all of them in one call."""
    on_loops: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        future, value, error = outcome
        if isinstance(future, asyncio.Future):
            on_loops.setdefault(future.get_loop(), []).append(outcome)
        elif future.cancelled():  # its waiter gave up (the write stands)
            continue
        elif error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    for loop, settled in on_loops.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(_settled, settled)


def _settled(outcomes: list[_Outcome]) -> None:
    for future, value, error in outcomes:
        if future.done():  # cancelled while it was written
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)

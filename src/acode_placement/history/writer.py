"""The history's writer: one thread committing the records of concurrent placements
together (group commit), so that no database call runs on the event loop."""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import sqlalchemy as sa

Work = Callable[[sa.Connection], object]
_Pending = tuple[Work, Future[object]]


class GroupWriter:
    """One thread that commits the records of concurrent placements together: the
    records that arrive while a transaction commits go into the next one (at most
    `most` per transaction), so a busy service pays one commit for many placements
    and no database call runs on the event loop. A batch that fails is committed
    again record by record, so that one bad record never loses the others."""

    def __init__(
        self,
        write: Callable[[Work], object],
        batch: Callable[[sa.Connection, Sequence[Work]], object] | None = None,
    ) -> None:
        """`write(work)` runs `work` in one transaction; `batch(connection, works)`, when
        given, does in a transaction what calling each work would (an executemany)."""
        self._write = write
        self._batch = batch
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.most = 256
        self.transactions = 0  # committed, for the tests and the benchmark

    def submit(self, work: Callable[[sa.Connection], object]) -> Future[object]:
        future: Future[object] = Future()
        self._queue.put((work, future))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="acode-placement-history", daemon=True
                )
                self._thread.start()
                atexit.register(self.drain)  # what async placements left, before exit
        return future

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
        works = [work for work, _ in batch]
        together = self._batch
        try:
            if together is not None and len(works) > 1:
                self._write(lambda connection: together(connection, works))
            else:
                self._write(lambda connection: [work(connection) for work in works])
        except Exception:
            for work, future in batch:  # alone, each record stands or falls by itself
                try:
                    future.set_result(self._write(work))
                    self.transactions += 1
                except Exception as exc:
                    future.set_exception(exc)
            return
        self.transactions += 1
        for _, future in batch:
            future.set_result(None)

"""Recording decisions in the history without ever blocking one.

`Recorder` hands compact records to the history's group writer (waiting for the
commit when the history is durable), writes aborted decisions and acquisition
attempts off the event loop, applies retention now and then, and counts and logs
what could not be written. What a record holds is `history/`'s business; when a
decision is made is the engine's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import TYPE_CHECKING

from acode_placement.metrics import Metrics
from acode_placement.models import Attempt, PlacementResult, TaskRequirements
from acode_placement.telemetry import get_logger

if TYPE_CHECKING:
    from acode_placement.history.store import HistoryStore, Inputs

_log = get_logger("acode_placement.engine")
_PRUNE_EVERY = 1000  # apply the history's retention on the first write, then every N


class Recorder:
    """The engine's link to its history (None: nothing is recorded)."""

    def __init__(self, history: HistoryStore | None, metrics: Metrics) -> None:
        self.history = history
        self.metrics = metrics
        self._recorded = 0

    def aborted(
        self, result: PlacementResult, requirements: TaskRequirements, failure: str | None = None
    ) -> concurrent.futures.Future[object] | None:
        """A decision aborted before it had candidates, written whole (it is small) by
        the group writer, so that no database call runs on this loop; the future is
        done once it is committed (None: no history, or already failed), and waited
        for when the history is durable."""
        history = self.history
        if history is None:
            return None
        try:
            committed = history.record(result, requirements, failure=failure, later=True)
            assert committed is not None
            committed.add_done_callback(lambda f: self._written(result.request_id, f))
            self._recorded += 1
            if self._recorded % _PRUNE_EVERY == 1:
                history.prune(later=True)
        except Exception as exc:  # the history never blocks a decision
            self._write_failed(result.request_id, exc)
            return None
        return committed if history.durable else None

    async def committed(
        self, result: PlacementResult, requirements: TaskRequirements, inputs: Inputs
    ) -> None:
        """A compact record through the history's group writer: awaited until it is
        committed when the history is durable; never a database call on this loop."""
        history = self.history
        if history is None:
            return
        try:
            if history.durable:
                loop = asyncio.get_running_loop()
                await history.awaited(result, requirements, inputs, loop)
            else:
                committed = history.submit(result, requirements, inputs)
                committed.add_done_callback(lambda f: self._written(result.request_id, f))
            self._recorded += 1
            if self._recorded % _PRUNE_EVERY == 1:
                await asyncio.to_thread(history.prune)
        except Exception as exc:  # the history never blocks a decision
            self._write_failed(result.request_id, exc)

    def _written(self, request_id: str, future: concurrent.futures.Future[object]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._write_failed(request_id, future.exception())

    def _write_failed(self, request_id: str, exc: BaseException | None) -> None:
        self.metrics.history_failures.inc()
        _log.warning("history.write_failed", request_id=request_id, error=str(exc))

    def attempts(self, request_id: str, attempts: Sequence[Attempt]) -> None:
        if self.history is None:
            return
        try:
            self.history.record_attempts(request_id, attempts)
        except Exception as exc:
            self.metrics.history_failures.inc()
            _log.warning("history.write_failed", request_id=request_id, error=str(exc))

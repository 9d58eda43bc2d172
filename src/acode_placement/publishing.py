"""Publishing events: subscribers hear every placement start, end (completed or
failed) and every capability change, in order; a coroutine subscriber is scheduled
on the running loop. A subscriber that raises is logged and never breaks a
placement. What each event holds is `events`'; when one happens is the engine's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from acode_placement import explain
from acode_placement.events import PlacementCompleted, PlacementEvent, PlacementFailed
from acode_placement.models import PlacementResult, TargetScore
from acode_placement.telemetry import get_logger

_log = get_logger("acode_placement.engine")
# Whether a decision is logged, asked of the standard logger underneath (structlog's
# lazy proxy binds a new logger on every attribute read).
_stdlib_log = logging.getLogger("acode_placement.engine")
Subscriber = Callable[[PlacementEvent], object]


def now() -> datetime:
    return datetime.now(UTC)


class Publisher:
    """The subscribers of one engine, and the coroutine subscribers still running."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self._pending: set[asyncio.Future[object]] = set()

    @property
    def heard(self) -> bool:
        """Whether anyone listens (an event is made only then)."""
        return bool(self.subscribers)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self.subscribers.append(subscriber)
        return lambda: self.subscribers.remove(subscriber)

    def ended(self, result: PlacementResult) -> None:
        """The decision's log line (at info) and its PlacementCompleted or
        PlacementFailed event (if anyone listens)."""
        ms = result.decision_duration * 1000
        chosen = result.selected
        if _stdlib_log.isEnabledFor(logging.INFO):  # its fields cost more than the check
            _log_decided(result, chosen, ms)
        if not self.subscribers:
            return
        if chosen is None:
            event: PlacementEvent = PlacementFailed(
                result.request_id,
                result.task_name,
                result.reason,
                result.failure_message or "",
                ms,
                now(),
            )
        else:
            event = PlacementCompleted(
                result.request_id,
                result.task_name,
                chosen.id,
                chosen.type,
                result.reason,
                chosen.score,
                chosen.estimated_cost,
                ms,
                tuple(ts.id for ts in result.alternatives),
                now(),
            )
        self.publish(event)

    def publish(self, event: PlacementEvent) -> None:
        for subscriber in list(self.subscribers):
            try:
                outcome = subscriber(event)
                if inspect.isawaitable(outcome):
                    self._schedule(outcome, event)
            except Exception:  # a subscriber must never break a placement
                _log.exception("event.subscriber_failed", event_name=event.name)

    def _schedule(self, awaitable: Awaitable[object], event: PlacementEvent) -> None:
        future = asyncio.ensure_future(awaitable)
        self._pending.add(future)

        def done(finished: asyncio.Future[object]) -> None:
            self._pending.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                _log.error(
                    "event.subscriber_failed",
                    event_name=event.name,
                    error=repr(finished.exception()),
                )

        future.add_done_callback(done)


def _log_decided(result: PlacementResult, chosen: TargetScore | None, ms: float) -> None:
    _log.info(
        "placement.decided",
        request_id=result.request_id,
        task=result.task_name,
        strategy=result.strategy,
        mode=result.mode.value,
        target=chosen.id if chosen else None,
        target_type=chosen.type.value if chosen else None,
        reason=result.reason.value,
        score=chosen.score if chosen else 0.0,
        candidates=len(result.all_scores),
        eligible=len(result.ranked),
        mismatch_causes=dict(explain.cause_counts(result.all_scores)),
        duration_ms=round(ms, 3),
    )

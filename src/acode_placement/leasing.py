"""Taking what a placement chose, in rank order: leasing its room before anyone else
(`lease_best`), or acquiring it with a caller's acquirer, falling back down the
ranking (`acquire_ranked`).

The check-and-reserve transaction itself is `history/reservations`' (the database
decides); what a target's capacity is and what a task takes of it is `capacity`'s.
No decision is made here: the ranking is the engine's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from acode_placement import capacity
from acode_placement.errors import AcquireError
from acode_placement.models import AnyTarget, Attempt, PlacementResult, TaskRequirements
from acode_placement.recording import Recorder
from acode_placement.telemetry import get_logger

if TYPE_CHECKING:
    from acode_placement.history.reservations import ReservationStore

T = TypeVar("T")
_log = get_logger("acode_placement.engine")


async def lease_best(
    store: ReservationStore,
    result: PlacementResult,
    requirements: TaskRequirements,
    owner: str | None,
    grace: timedelta,
) -> PlacementResult:
    """Lease the best ranked target that still has room, in rank order: each try is
    one check-and-reserve transaction in `store` (off the event loop), for the task's
    runtime plus `grace`. The result names the target leased and its lease; when every
    eligible target filled up meanwhile, it says so and names none."""
    runtime = requirements.max_runtime_minutes or result.options.default_runtime_minutes
    lease = timedelta(minutes=runtime) + grace
    ranked = result.ranked
    for position, candidate in enumerate(ranked):
        total = capacity.capacity_of(candidate.target, candidate.capabilities)
        if candidate.usage is not None:
            # the candidate's capabilities are already the free part: add it back
            total = capacity.capacity_of(
                candidate.target, capacity.unfree(candidate.capabilities, candidate.usage)
            )
        lease_taken = await asyncio.to_thread(
            store.reserve,
            candidate.id,
            capacity.wanted(requirements),
            total,
            lease=lease,
            owner=owner,
            request_id=result.request_id,
            task_name=result.task_name,
        )
        if lease_taken is not None:
            return replace(
                result,
                selected=candidate,
                alternatives=ranked[position + 1 :],
                reservation=lease_taken,
            )
    if not ranked:
        return result
    message = (
        f"{len(ranked)} eligible target(s) filled up while reserving:"
        f" {', '.join(ts.id for ts in ranked)}"
    )
    return replace(result, success=False, selected=None, alternatives=(), failure_message=message)


@dataclass(frozen=True, slots=True)
class Acquisition(Generic[T]):
    """What `PlacementEngine.acquire` got: the handle, and the result with its attempts."""

    result: PlacementResult
    handle: T | None

    @property
    def acquired(self) -> bool:
        return any(a.ok for a in self.result.attempts)


async def acquire_ranked(
    result: PlacementResult,
    acquirer: Callable[[AnyTarget], Awaitable[T]],
    recorder: Recorder,
) -> Acquisition[T]:
    """`PlacementEngine.acquire`: down the ranking until `acquirer` succeeds (or a
    failure is fatal, or fallback is off); every try is an attempt, recorded."""
    attempts: list[Attempt] = []
    ranked = result.ranked
    for position, candidate in enumerate(ranked):
        try:
            handle = await acquirer(candidate.target)
        except AcquireError as exc:
            attempts.append(Attempt(candidate.id, False, str(exc), exc.retryable))
            _log.warning("placement.acquire_failed", target=candidate.id, error=str(exc))
            if exc.retryable and result.options.fallback_enabled:
                continue
            break
        attempts.append(Attempt(candidate.id, True))
        won = replace(
            result,
            selected=candidate,
            alternatives=ranked[position + 1 :],
            attempts=tuple(attempts),
        )
        await asyncio.to_thread(recorder.attempts, result.request_id, attempts)
        return Acquisition(won, handle)
    await asyncio.to_thread(recorder.attempts, result.request_id, attempts)
    return Acquisition(replace(result, attempts=tuple(attempts)), None)

"""The engine: one placement from start to end, and the decision at its heart.

`place` orchestrates: resolve fleets -> capabilities (discovery, within the
decision timeout) -> `decide` -> lease (with `reserve`) -> metrics, record, events.
`decide` is pure: the ranking (`ranking`) of targets whose capabilities are known.
What must not live here: matching rules (`matching`, `columns`), scores
(`strategies`), prose (`explain`), leasing and acquisition (`leasing`), history
writes (`recording`), event delivery and the decision log (`publishing`), wiring
from settings (`assembly`). The engine does no I/O of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from acode_placement import explain
from acode_placement.discovery.service import Discovery
from acode_placement.ec2.catalog import Catalog
from acode_placement.ec2.fleet import Ec2Resolver
from acode_placement.errors import InputError, ReservationError
from acode_placement.events import (
    PlacementFailed,
    PlacementStarted,
)
from acode_placement.ids import new_id
from acode_placement.leasing import Acquisition, acquire_ranked, lease_best
from acode_placement.memo import IdentityMemo
from acode_placement.metrics import Metrics
from acode_placement.models import (
    MAX_NAME,
    AnyTarget,
    Capabilities,
    Ec2Target,
    Known,
    Misses,
    PlacementOptions,
    PlacementResult,
    PlacementSettings,
    Reason,
    Reservation,
    Scores,
    TargetScore,
    TaskRequirements,
    Usage,
)
from acode_placement.publishing import Publisher, Subscriber, now
from acode_placement.ranking import decision_reason, rank, score_all
from acode_placement.recording import Recorder
from acode_placement.safe import storable
from acode_placement.strategies import Strategy, StrategyRegistry
from acode_placement.telemetry import get_logger

if TYPE_CHECKING:
    from acode_placement.columns import ColumnCache, FleetColumns
    from acode_placement.history.reservations import ReservationStore
    from acode_placement.history.store import HistoryStore

T = TypeVar("T")

_log = get_logger("acode_placement.engine")
# From this many targets a decision filters on compiled columns (see `columns`);
# below it a Python loop is faster than building them, and numpy is never imported.
COMPILE_FROM = 48


class PlacementEngine:
    """Decides where a task runs. Safe to share; keeps no per-decision state."""

    def __init__(
        self,
        registry: StrategyRegistry | None = None,
        discovery: Discovery | None = None,
        ec2: Ec2Resolver | None = None,
        *,
        history: HistoryStore | None = None,
        metrics: Metrics | None = None,
        reservations: ReservationStore | None = None,
        reservation_grace: timedelta = timedelta(minutes=60),
        compile_from: int = COMPILE_FROM,
    ) -> None:
        self.registry = registry or StrategyRegistry.with_builtins()
        self.discovery = discovery
        self.metrics = metrics or Metrics()
        self.recorder = Recorder(history, self.metrics)
        # Per list of targets (by identity): fleets expanded and priced, declared facts.
        # Both keep tuples, handed out as they are: the next step's memo finds the very
        # tuple it kept at the cost of one comparison, whatever the fleet's size.
        self._resolved: IdentityMemo[AnyTarget, tuple[AnyTarget, ...]] = IdentityMemo()
        self._declared: IdentityMemo[AnyTarget, tuple[Known, ...]] = IdentityMemo()
        # Below `compile_from`, a placement's causes come from every ruled-out target's
        # checks: kept for the last inputs seen (see `Scores.counted_once_per`).
        self._small_misses: IdentityMemo[object, Misses] = IdentityMemo()
        self.reservations = reservations
        self.reservation_grace = reservation_grace
        if reservations is not None:
            reservations.on_reclaim = self.metrics.reservations_reclaimed.inc
        self._ec2 = ec2
        self.compile_from = compile_from
        self._columns: ColumnCache | None = None
        self.publisher = Publisher()
        if discovery is not None:
            discovery.subscribe(self.publisher.publish)
            discovery.observers.append(self.metrics)

    @property
    def history(self) -> HistoryStore | None:
        """Where decisions are recorded (None: nowhere)."""
        return self.recorder.history

    @property
    def ec2(self) -> Ec2Resolver:
        """Expands fleets and prices ec2 targets (the shipped catalog unless given)."""
        if self._ec2 is None:
            self._ec2 = Ec2Resolver(None, Catalog.shipped())
        return self._ec2

    @classmethod
    def default(cls, settings: PlacementSettings | None = None) -> PlacementEngine:
        """Built-in and plug-in strategies; this machine and SSH hosts discovered by
        probing, with the capability cache kept in the user's data directory."""
        from acode_placement.assembly import default_engine  # noqa: PLC0415

        return default_engine(cls, settings)

    def register_strategy(self, strategy: Strategy) -> None:
        """Add a strategy; a name already taken raises `DuplicateStrategyError`."""
        self.registry.register(strategy)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every event; returns a function that unsubscribes.

        A subscriber may be a coroutine function: it is then scheduled on the running
        loop and never awaited by the placement. Whatever a subscriber raises is
        logged and never reaches the placement.
        """
        return self.publisher.subscribe(subscriber)

    # ------------------------------------------------------------------ public API

    async def capabilities(
        self,
        targets: Sequence[AnyTarget],
        requirements: TaskRequirements,
        options: PlacementOptions,
    ) -> list[Known]:
        """Declared capabilities, refreshed by discovery where it can probe.

        What is known is used at once and refreshed in the background (an expired
        entry is stale, a target never probed is declared); a target of which nothing
        usable is known is waited for, `options.decision_timeout` seconds at most. A
        target whose discovery is late or fails keeps its last known (or declared)
        capabilities, and its `Known.status` says so. With `require_verified`, stale
        and declared values would rule a target out, so their probes are waited for.
        """
        return list(await self._known(targets, requirements, options))

    async def _known(
        self,
        targets: Sequence[AnyTarget],
        requirements: TaskRequirements,
        options: PlacementOptions,
    ) -> Sequence[Known]:
        """`capabilities`, as the memo keeps them when nothing is probed."""
        if not options.discovery_enabled or self.discovery is None:
            return self._declared.get(targets, _declared)
        return await self.discovery.lookup(
            targets,
            requirements.wanted_tools(),
            timeout=options.decision_timeout,
            background=not options.require_verified,
        )

    async def settle(self, timeout: float | None = None) -> None:
        """Let discovery's background probes finish (`timeout` seconds at most) and
        save what they found; see `Discovery.settle`."""
        if self.discovery is not None:
            await self.discovery.settle(timeout)

    async def resolve(self, targets: Sequence[AnyTarget]) -> list[AnyTarget]:
        """The targets as candidates: each ec2 fleet expanded into one target per
        instance type, and every ec2 target priced (see `Ec2Target.price`)."""
        return list(await self._candidates(targets))

    async def _candidates(self, targets: Sequence[AnyTarget]) -> tuple[AnyTarget, ...]:
        """`resolve`, as the memo keeps it: the same tuple while the same targets come."""
        hit = self._resolved.find(targets)
        if hit is not None:
            return hit
        if any(isinstance(t, Ec2Target) for t in targets):
            resolved = tuple(await self.ec2.resolve(targets))
        else:
            resolved = tuple(targets)
        self._resolved.keep(targets, resolved)
        return resolved

    async def discover(
        self,
        targets: Sequence[AnyTarget],
        tools: frozenset[str] = frozenset(),
        *,
        refresh: bool = False,
        timeout: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Known]:
        """Discover targets now (`refresh` ignores the cache); declared only without
        discovery. Give resolved targets (see `resolve`) to discover fleet members.
        `progress(done, total)` is told of each probe as it ends."""
        if self.discovery is None:
            return [Known(t.capabilities or Capabilities()) for t in targets]
        return await self.discovery.lookup(
            targets, tools, refresh=refresh, timeout=timeout, progress=progress
        )

    async def evaluate_all(
        self,
        requirements: TaskRequirements,
        targets: Sequence[AnyTarget],
        options: PlacementOptions | None = None,
    ) -> list[TargetScore]:
        """Every target's score, matches and mismatches, in the order given."""
        options = options or PlacementOptions()
        strategy, _ = self._strategy(options.strategy, requirements)
        targets = await self.resolve(targets)
        known = await self.capabilities(targets, requirements, options)
        return list(score_all(strategy, requirements, targets, known, options))

    async def place(
        self,
        requirements: TaskRequirements,
        targets: Sequence[AnyTarget],
        options: PlacementOptions | None = None,
        *,
        task_name: str | None = None,
        record: bool = True,
        reserve: bool = False,
        owner: str | None = None,
    ) -> PlacementResult:
        """Choose a target. Raises `UnknownNameError` for an unknown strategy name, and
        `InputError` for a task name or owner the history cannot hold (over 256
        characters as stored: a NUL or a lone surrogate is stored escaped).

        Every placement started ends in exactly one PlacementCompleted or
        PlacementFailed event and (with `record` and a history) one history record,
        whatever happens: a strategy that raises, a cancelled decision, a failing
        subscriber. A history that cannot be written is logged, never raised.

        With `reserve`, eligibility and scores use free capacity (capacity less
        active reservations), and the chosen target is leased in one transaction
        that checks again; if another process took the room meanwhile, the next
        ranked target is tried. `result.reservation` is the lease (None when
        nothing could be reserved); release it with `release`, or use `reserve()`.
        """
        if reserve and self.reservations is None:
            raise ReservationError("this engine has no reservation store")
        for label, name in (("task_name", task_name), ("owner", owner)):
            stored = len(storable(name, nul=True)) if name is not None else 0
            if stored > MAX_NAME:  # the record's and the lease's column would refuse it
                raise InputError(f"{label}: at most {MAX_NAME} characters as stored, not {stored}")
        options = options or PlacementOptions()
        self.registry.get(options.strategy)  # fail on a bad name before starting
        started = time.perf_counter()
        request_id = new_id()
        self.metrics.placement_started(options.strategy)
        try:
            if self.publisher.heard:  # an event costs its clock and fields: made only if heard
                self.publisher.publish(
                    PlacementStarted(
                        request_id, task_name, options.strategy, options.mode, len(targets), now()
                    )
                )
            candidates = await self._candidates(targets)
            known = await self._known(candidates, requirements, options)
            usage = None
            if reserve:
                assert self.reservations is not None
                held = await asyncio.to_thread(self.reservations.usage, [t.id for t in candidates])
                usage = [held[t.id] for t in candidates]
            result = self.decide(
                requirements,
                candidates,
                known,
                options,
                task_name=task_name,
                request_id=request_id,
                usage=usage,
                since=started,
            )
            if reserve:
                assert self.reservations is not None
                result = await lease_best(
                    self.reservations, result, requirements, owner, self.reservation_grace
                )
        except BaseException as exc:
            elapsed = time.perf_counter() - started
            message = f"placement aborted: {type(exc).__name__}: {exc}"
            self.metrics.placement_aborted(options.strategy, elapsed)
            aborted = PlacementResult(
                request_id=request_id,
                task_name=task_name,
                success=False,
                selected=None,
                reason=Reason.NO_VALID_TARGET,
                all_scores=(),
                alternatives=(),
                strategy=options.strategy,
                mode=options.mode,
                failure_message=message,
                decision_duration=elapsed,
                options=options,
            )
            if record:
                committed = self.recorder.aborted(aborted, requirements, failure=message)
                if committed is not None and isinstance(exc, Exception | asyncio.CancelledError):
                    # durable: the record is there once place() raises. A second
                    # cancellation stops the wait, not the write.
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.wrap_future(committed)
            self.publisher.publish(
                PlacementFailed(
                    request_id, task_name, Reason.NO_VALID_TARGET, message, elapsed * 1000, now()
                )
            )
            raise
        if reserve:  # the lease's transaction counts too
            result = replace(result, decision_duration=time.perf_counter() - started)
        self.metrics.placement_ended(result)
        if record:
            await self.recorder.committed(result, requirements, (candidates, known, usage))
        self.publisher.ended(result)
        return result

    def decide(
        self,
        requirements: TaskRequirements,
        targets: Sequence[AnyTarget],
        known: Sequence[Known],
        options: PlacementOptions,
        *,
        task_name: str | None = None,
        request_id: str | None = None,
        usage: Sequence[Usage] | None = None,
        reference: bool = False,
        since: float | None = None,
    ) -> PlacementResult:
        """The decision itself, from capabilities already known: pure and synchronous.
        With `usage` (active reservations per target), free capacity decides.
        `reference` builds every check up front instead of taking the fast path.
        `since` (a `time.perf_counter()` reading) is when the placement began, so that
        `decision_duration` counts what came before (`place()`: resolve, discovery)."""
        started = time.perf_counter() if since is None else since
        if len(known) != len(targets):
            raise ValueError(f"{len(targets)} targets but {len(known)} capabilities")
        strategy, handed_over_from = self._strategy(options.strategy, requirements)
        columns = None
        if not reference and usage is None and len(targets) >= self.compile_from:
            columns = self._compiled(targets, known)
        scores = score_all(
            strategy,
            requirements,
            targets,
            known,
            options,
            usage=usage,
            fast=not reference,
            columns=columns,
        )
        if columns is None and usage is None and isinstance(scores, Scores):
            # no columns to count causes on: count them from the checks once per inputs
            inputs = (requirements, options, *targets, *known)
            scores.counted_once_per(self._small_misses, inputs)
        if isinstance(scores, Scores) and scores.ranked:  # ranked on the columns
            ranked = list(scores.eligible)
        else:
            ranked = rank(scores.eligible if isinstance(scores, Scores) else scores,
                          options.tie_breaker)  # fmt: skip
        kept = ranked[: options.max_candidates] if options.max_candidates else ranked
        chosen = kept[0] if kept else None
        return PlacementResult(
            request_id=request_id or new_id(),
            task_name=task_name,
            success=chosen is not None,
            selected=chosen,
            reason=decision_reason(strategy, ranked, scores),
            all_scores=scores,
            alternatives=tuple(kept[1:]),
            strategy=strategy.name,
            mode=options.mode,
            failure_message=None if chosen else explain.failure_message(scores),
            decision_duration=time.perf_counter() - started,
            handed_over_from=handed_over_from,
            options=options,
        )

    async def acquire(
        self,
        result: PlacementResult,
        acquirer: Callable[[AnyTarget], Awaitable[T]],
    ) -> Acquisition[T]:
        """Acquire the chosen target, falling back down the ranking.

        `acquirer` returns a handle or raises `AcquireError`. A retryable failure
        moves on to the next ranked target when `fallbackEnabled`; a fatal one, or
        any failure with fallback off, stops at once. Every try is recorded in
        `result.attempts`; the returned result's `selected` is the target acquired.
        Other exceptions propagate unchanged.
        """
        return await acquire_ranked(result, acquirer, self.recorder)

    @contextlib.asynccontextmanager
    async def reserve(
        self,
        requirements: TaskRequirements,
        targets: Sequence[AnyTarget],
        options: PlacementOptions | None = None,
        *,
        task_name: str | None = None,
        owner: str | None = None,
    ) -> AsyncIterator[PlacementResult]:
        """`async with engine.reserve(req, targets) as placement:` a placement whose
        lease is released on every way out (return, exception, cancellation).
        `placement.reservation` is None when nothing had room."""
        result = await self.place(
            requirements, targets, options, task_name=task_name, reserve=True, owner=owner
        )
        try:
            yield result
        finally:
            if result.reservation is not None:
                try:
                    self.release(result.reservation.id)
                except ReservationError as exc:  # expired meanwhile: already reclaimed
                    _log.warning("reservation.release_failed", error=str(exc))

    def release(self, reservation_id: str) -> Reservation:
        """End a lease; again is harmless; unknown or expired is a `ReservationError`."""
        if self.reservations is None:
            raise ReservationError("this engine has no reservation store")
        return self.reservations.release(reservation_id)

    def renew(self, reservation_id: str, minutes: float | None = None) -> Reservation:
        """Extend a lease by `minutes` from now (default: the grace period)."""
        if self.reservations is None:
            raise ReservationError("this engine has no reservation store")
        lease = timedelta(minutes=minutes) if minutes is not None else self.reservation_grace
        return self.reservations.renew(reservation_id, lease)

    # ------------------------------------------------------------------- internals

    def _compiled(self, targets: Sequence[AnyTarget], known: Sequence[Known]) -> FleetColumns:
        """The fleet's columns, compiled on first sight and reused while the same
        target and capability objects come back."""
        if self._columns is None:
            from acode_placement.columns import ColumnCache  # noqa: PLC0415  (imports numpy)

            self._columns = ColumnCache()
        return self._columns.get(targets, known)

    def _strategy(self, name: str, requirements: TaskRequirements) -> tuple[Strategy, str | None]:
        strategy = self.registry.get(name)
        if strategy.can_handle(requirements):
            return strategy, None
        return self.registry.get("auto"), strategy.name


def _declared(targets: Sequence[AnyTarget]) -> tuple[Known, ...]:
    return tuple(Known(t.capabilities or Capabilities()) for t in targets)

"""The engine: capabilities -> filter -> score -> select -> explain -> publish.

It does no I/O of its own: capabilities come from sources (see `targets/`), and
the decision itself (`decide`) is a pure function of its inputs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from acode_placement import capacity, explain
from acode_placement.discovery.cache import CapabilityCache
from acode_placement.discovery.cache import default_path as default_cache_path
from acode_placement.discovery.probes import DeferredProber, LocalProbe, Prober
from acode_placement.discovery.service import Discovery
from acode_placement.ec2.catalog import Catalog
from acode_placement.ec2.fleet import Ec2Prober, Ec2Resolver
from acode_placement.errors import AcquireError, ReservationError, StrategyError
from acode_placement.events import (
    PlacementCompleted,
    PlacementEvent,
    PlacementFailed,
    PlacementStarted,
)
from acode_placement.matching import (
    QuickFacts,
    Verdict,
    estimated_cost,
    evaluate,
    quick_eligible,
    quick_preference_share,
    runtime_minutes,
)
from acode_placement.memo import IdentityMemo
from acode_placement.metrics import Metrics
from acode_placement.models import (
    AnyTarget,
    Attempt,
    Capabilities,
    Check,
    CheckKind,
    CheckSets,
    Ec2Target,
    HistoryDurability,
    Known,
    LazyChecks,
    Misses,
    PlacementOptions,
    PlacementResult,
    PlacementSettings,
    Reason,
    Reservation,
    Scores,
    TargetKind,
    TargetScore,
    TaskRequirements,
    TieBreaker,
    Usage,
)
from acode_placement.strategies import BuiltinStrategy, Strategy, StrategyRegistry
from acode_placement.telemetry import get_logger

if TYPE_CHECKING:
    from acode_placement.columns import ColumnCache, FleetColumns
    from acode_placement.history.reservations import ReservationStore
    from acode_placement.history.store import HistoryStore, Inputs

T = TypeVar("T")
Subscriber = Callable[[PlacementEvent], object]

_log = get_logger("acode_placement.engine")
# Whether a decision is logged, asked of the standard logger underneath (structlog's
# lazy proxy binds a new logger on every attribute read).
_stdlib_log = logging.getLogger("acode_placement.engine")
_PRUNE_EVERY = 1000  # apply the history's retention on the first write, then every N
# From this many targets a decision filters on compiled columns (see `columns`);
# below it a Python loop is faster than building them, and numpy is never imported.
COMPILE_FROM = 48


@dataclass(frozen=True, slots=True)
class Acquisition(Generic[T]):
    """What `PlacementEngine.acquire` got: the handle, and the result with its attempts."""

    result: PlacementResult
    handle: T | None

    @property
    def acquired(self) -> bool:
        return any(a.ok for a in self.result.attempts)


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
        self.history = history
        self.metrics = metrics or Metrics()
        # Per list of targets (by identity): fleets expanded and priced, declared facts.
        self._resolved: IdentityMemo[AnyTarget, list[AnyTarget]] = IdentityMemo()
        self._declared: IdentityMemo[AnyTarget, list[Known]] = IdentityMemo()
        self.reservations = reservations
        self.reservation_grace = reservation_grace
        if reservations is not None:
            reservations.on_reclaim = self.metrics.reservations_reclaimed.inc
        self._ec2 = ec2
        self.compile_from = compile_from
        self._columns: ColumnCache | None = None
        self._subscribers: list[Subscriber] = []
        self._pending: set[asyncio.Future[object]] = set()
        self._recorded = 0
        if discovery is not None:
            discovery.subscribe(self._publish)
            discovery.observers.append(self.metrics)

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
        # SQLAlchemy loads here, not on import; asyncssh and boto3 on first use.
        from acode_placement.ec2.api import Ec2Api  # noqa: PLC0415
        from acode_placement.history.reservations import ReservationStore  # noqa: PLC0415
        from acode_placement.history.store import HistoryStore  # noqa: PLC0415

        settings = settings or PlacementSettings()
        api = Ec2Api(settings.ec2_api, settings.probe_timeout)
        catalog = Catalog.shipped()
        probers: dict[TargetKind, Prober] = {
            TargetKind.EC2: Ec2Prober(api, catalog),
            TargetKind.LOCAL: LocalProbe(settings.probe_timeout),
            TargetKind.SSH: DeferredProber(lambda: _ssh_prober(settings)),
        }
        discovery = Discovery(
            probers,
            CapabilityCache(default_cache_path()),
            ttl=timedelta(minutes=settings.cache_minutes),
            concurrency=settings.discovery_concurrency,
        )
        history = None
        if settings.history_enabled:
            history = HistoryStore(
                settings.history,
                retention_days=settings.history_retention_days,
                retention_count=settings.history_retention_count,
                durable=settings.history_durability is HistoryDurability.DURABLE,
            )
        return cls(
            StrategyRegistry.default(),
            discovery,
            Ec2Resolver(api, catalog),
            history=history,
            reservations=ReservationStore(settings.history),
            reservation_grace=timedelta(minutes=settings.reservation_grace_minutes),
        )

    def register_strategy(self, strategy: Strategy) -> None:
        """Add a strategy; a name already taken raises `DuplicateStrategyError`."""
        self.registry.register(strategy)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every event; returns a function that unsubscribes.

        A subscriber may be a coroutine function: it is then scheduled on the running
        loop and never awaited by the placement. Whatever a subscriber raises is
        logged and never reaches the placement.
        """
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    # ------------------------------------------------------------------ public API

    async def capabilities(
        self,
        targets: Sequence[AnyTarget],
        requirements: TaskRequirements,
        options: PlacementOptions,
    ) -> list[Known]:
        """Declared capabilities, refreshed by discovery where it can probe.

        Waits at most `options.decision_timeout` seconds: a target whose discovery
        is late or fails keeps its last known (or declared) capabilities, and its
        `Known.status` says so.
        """
        if not options.discovery_enabled or self.discovery is None:
            return list(self._declared.get(targets, _declared))
        return await self.discovery.lookup(
            targets, requirements.wanted_tools(), timeout=options.decision_timeout
        )

    async def resolve(self, targets: Sequence[AnyTarget]) -> list[AnyTarget]:
        """The targets as candidates: each ec2 fleet expanded into one target per
        instance type, and every ec2 target priced (see `Ec2Target.price`)."""
        hit = self._resolved.find(targets)
        if hit is not None:
            return list(hit)
        if not any(isinstance(t, Ec2Target) for t in targets):
            return list(targets)
        resolved = await self.ec2.resolve(targets)
        self._resolved.keep(targets, resolved)
        return list(resolved)

    async def discover(
        self,
        targets: Sequence[AnyTarget],
        tools: frozenset[str] = frozenset(),
        *,
        refresh: bool = False,
        timeout: float | None = None,
    ) -> list[Known]:
        """Discover targets now (`refresh` ignores the cache); declared only without
        discovery. Give resolved targets (see `resolve`) to discover fleet members."""
        if self.discovery is None:
            return [Known(t.capabilities or Capabilities()) for t in targets]
        return await self.discovery.lookup(targets, tools, refresh=refresh, timeout=timeout)

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
        """Choose a target. Raises `UnknownNameError` for an unknown strategy name.

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
        options = options or PlacementOptions()
        self.registry.get(options.strategy)  # fail on a bad name before starting
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        self.metrics.placement_started(options.strategy)
        try:
            if self._subscribers:  # an event costs its clock and fields: made only if heard
                self._publish(
                    PlacementStarted(
                        request_id, task_name, options.strategy, options.mode, len(targets), _now()
                    )
                )
            candidates = await self.resolve(targets)
            known = await self.capabilities(candidates, requirements, options)
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
                result = await self._lease(result, requirements, owner)
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
                committed = self._record(aborted, requirements, failure=message)
                if committed is not None and isinstance(exc, Exception | asyncio.CancelledError):
                    # durable: the record is there once place() raises. A second
                    # cancellation stops the wait, not the write.
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.wrap_future(committed)
            self._publish(
                PlacementFailed(
                    request_id, task_name, Reason.NO_VALID_TARGET, message, elapsed * 1000, _now()
                )
            )
            raise
        if reserve:  # the lease's transaction counts too
            result = replace(result, decision_duration=time.perf_counter() - started)
        self.metrics.placement_ended(result)
        if record:
            await self._record_committed(result, requirements, (candidates, known, usage))
        self._finish(result)
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
        eligible = scores.eligible if isinstance(scores, Scores) else scores
        ranked = rank(eligible, options.tie_breaker)
        kept = ranked[: options.max_candidates] if options.max_candidates else ranked
        chosen = kept[0] if kept else None
        return PlacementResult(
            request_id=request_id or str(uuid.uuid4()),
            task_name=task_name,
            success=chosen is not None,
            selected=chosen,
            reason=_reason(strategy, ranked, scores),
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
            await asyncio.to_thread(self._record_attempts, result.request_id, attempts)
            return Acquisition(won, handle)
        await asyncio.to_thread(self._record_attempts, result.request_id, attempts)
        return Acquisition(replace(result, attempts=tuple(attempts)), None)

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

    async def _lease(
        self, result: PlacementResult, requirements: TaskRequirements, owner: str | None
    ) -> PlacementResult:
        """Lease the best ranked target that still has room, in rank order."""
        assert self.reservations is not None
        runtime = requirements.max_runtime_minutes or result.options.default_runtime_minutes
        lease = timedelta(minutes=runtime) + self.reservation_grace
        ranked = result.ranked
        for position, candidate in enumerate(ranked):
            total = capacity.capacity_of(candidate.target, candidate.capabilities)
            if candidate.usage is not None:
                # the candidate's capabilities are already the free part: add it back
                total = capacity.capacity_of(
                    candidate.target, capacity.unfree(candidate.capabilities, candidate.usage)
                )
            lease_taken = await asyncio.to_thread(
                self.reservations.reserve,
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
        return replace(
            result, success=False, selected=None, alternatives=(), failure_message=message
        )

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

    def _finish(self, result: PlacementResult) -> None:
        ms = result.decision_duration * 1000
        chosen = result.selected
        if _stdlib_log.isEnabledFor(logging.INFO):  # its fields cost more than the check
            self._log_decided(result, chosen, ms)
        if not self._subscribers:
            return
        if chosen is None:
            event: PlacementEvent = PlacementFailed(
                result.request_id,
                result.task_name,
                result.reason,
                result.failure_message or "",
                ms,
                _now(),
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
                _now(),
            )
        self._publish(event)

    def _log_decided(self, result: PlacementResult, chosen: TargetScore | None, ms: float) -> None:
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

    def _publish(self, event: PlacementEvent) -> None:
        for subscriber in list(self._subscribers):
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

    def _record(
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

    async def _record_committed(
        self, result: PlacementResult, requirements: TaskRequirements, inputs: Inputs
    ) -> None:
        """A compact record through the history's group writer: awaited until it is
        committed when the history is durable; never a database call on this loop."""
        history = self.history
        if history is None:
            return
        try:
            committed = history.submit(result, requirements, inputs)
            if history.durable:
                await asyncio.wrap_future(committed)
            else:
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

    def _record_attempts(self, request_id: str, attempts: Sequence[Attempt]) -> None:
        if self.history is None:
            return
        try:
            self.history.record_attempts(request_id, attempts)
        except Exception as exc:
            self.metrics.history_failures.inc()
            _log.warning("history.write_failed", request_id=request_id, error=str(exc))


def score_all(
    strategy: Strategy,
    requirements: TaskRequirements,
    targets: Sequence[AnyTarget],
    known: Sequence[Known],
    options: PlacementOptions,
    *,
    usage: Sequence[Usage] | None = None,
    fast: bool = True,
    columns: FleetColumns | None = None,
) -> Sequence[TargetScore]:
    """Each target's verdict and score (0 when ineligible), in the order given.

    With `usage`, each target offers its free capacity. `fast` decides with
    `quick_eligible` (after the `columns` prefilter, when given) and returns
    `Scores`: a ruled-out target's TargetScore, and any target's checks, are made
    only when read. Without it every check is built up front (the reference the
    property tests compare against).
    """
    if fast and usage is None:
        return _quick_scores(strategy, requirements, targets, known, options, columns=columns)
    return [
        _evaluated(
            strategy,
            requirements,
            options,
            target,
            facts,
            index=index,
            held=usage[index] if usage is not None else None,
        )
        for index, (target, facts) in enumerate(zip(targets, known, strict=True))
    ]


def _quick_scores(
    strategy: Strategy,
    requirements: TaskRequirements,
    targets: Sequence[AnyTarget],
    known: Sequence[Known],
    options: PlacementOptions,
    *,
    columns: FleetColumns | None,
) -> Scores:
    # What the scores made later read: the lists as they are now, whatever the caller
    # does with them afterwards.
    targets, known = tuple(targets), tuple(known)
    builtin = strategy if isinstance(strategy, BuiltinStrategy) else None
    minutes = runtime_minutes(requirements, options)
    deferred = _Deferred(requirements, options)
    misses: Callable[[], Misses] | None = None
    causes: Callable[[], Counter[str]] | None = None
    if columns is None:
        candidates: Sequence[int] = range(len(targets))
        costs: Sequence[float | None] | None = None
        exact = False
    else:
        failing = columns.failing(requirements, options, minutes)
        candidates = columns.survivors(failing)
        costs = columns.costs(candidates, minutes)
        exact = columns.exact(requirements)
        if exact:
            fleet = columns

            def misses() -> Misses:
                return fleet.misses(failing, [not facts.known for facts in known])

            def causes() -> Counter[str]:
                return fleet.causes(failing, [not facts.known for facts in known], minutes)

    prefs = requirements.preferences
    eligible: dict[int, TargetScore] = {}
    for position, index in enumerate(candidates):
        facts = known[index]
        if not facts.known:
            continue
        target = targets[index]
        caps = facts.capabilities
        cost = estimated_cost(target, minutes) if costs is None else costs[position]
        if not exact and not quick_eligible(target, caps, requirements, options, cost):
            continue
        share = 0.0 if prefs is None else quick_preference_share(prefs, target, caps)
        if builtin is not None:
            score = builtin.rate(target, requirements, caps, QuickFacts(cost, minutes, share))
        else:
            score = _plugin_score(strategy, target, requirements, caps)
        eligible[index] = TargetScore(
            target=target,
            capabilities=caps,
            eligible=True,
            score=score,
            checks=deferred,
            estimated_cost=cost,
            index=index,
            status=facts.status,
            cause=facts.cause,
            preference_share=share,
        )

    def ruled_out(index: int) -> TargetScore:
        facts = known[index]
        target = targets[index]
        if not facts.known:  # its checks carry the discovery failure: build them now
            return _evaluated(
                strategy, requirements, options, target, facts, index=index, held=None
            )
        return TargetScore(
            target=target,
            capabilities=facts.capabilities,
            eligible=False,
            score=0.0,
            checks=deferred,
            estimated_cost=estimated_cost(target, minutes),
            index=index,
            status=facts.status,
            cause=facts.cause,
        )

    return Scores(len(targets), eligible, ruled_out, misses, causes)


def _evaluated(
    strategy: Strategy,
    requirements: TaskRequirements,
    options: PlacementOptions,
    target: AnyTarget,
    facts: Known,
    *,
    index: int,
    held: Usage | None,
) -> TargetScore:
    """One target's score with every check built (free capacity with `held`)."""
    caps = facts.capabilities
    if held is not None:
        total = capacity.capacity_of(target, caps)
        caps = capacity.free(caps, total, held)
        verdict = capacity.annotate(evaluate(target, caps, requirements, options), total, held)
    else:
        verdict = evaluate(target, caps, requirements, options)
    if not facts.known:  # discovery failed and nothing is declared: never a guess
        unknown = Check(CheckKind.DISCOVERY, False, key=facts.cause or facts.status.value)
        verdict = replace(verdict, mismatches=(unknown, *verdict.mismatches))
    score = 0.0
    if verdict.eligible:
        if isinstance(strategy, BuiltinStrategy):
            score = strategy.rate(target, requirements, caps, verdict)
        else:
            score = _plugin_score(strategy, target, requirements, caps)
    return TargetScore(
        target=target,
        capabilities=caps,
        eligible=verdict.eligible,
        score=score,
        checks=LazyChecks(_sets(verdict)),
        estimated_cost=verdict.estimated_cost,
        index=index,
        status=facts.status,
        cause=facts.cause,
        usage=held,
        preference_share=verdict.preference_share,
    )


class _Deferred(LazyChecks):
    """The checks of every target the fast path decided, built when first read.

    One per decision, shared by its scores (one object per target would cost as
    much as ruling the target out)."""

    __slots__ = ("_built", "_options", "_requirements")

    def __init__(self, requirements: TaskRequirements, options: PlacementOptions) -> None:
        super().__init__(value=((), (), ()))
        self._requirements = requirements
        self._options = options
        self._built: dict[int, CheckSets] = {}

    def get(self, score: TargetScore | None = None) -> CheckSets:
        if score is None:
            raise TypeError("the checks of a decision are read through its TargetScore")
        built = self._built.get(score.index)
        if built is None:
            verdict = evaluate(score.target, score.capabilities, self._requirements, self._options)
            built = self._built[score.index] = _sets(verdict)
        return built


def _ssh_prober(settings: PlacementSettings) -> Prober:
    from acode_placement.discovery.ssh import SshProbe  # noqa: PLC0415  (imports asyncssh)

    return SshProbe(
        settings.probe_timeout,
        Path(settings.known_hosts).expanduser(),
        settings.accept_new_host_keys,
    )


def _sets(verdict: Verdict) -> CheckSets:
    return verdict.matches, verdict.mismatches, verdict.preferences


def _plugin_score(
    strategy: Strategy, target: AnyTarget, requirements: TaskRequirements, caps: Capabilities
) -> float:
    try:
        score = float(strategy.score(target, requirements, caps))
    except Exception as exc:
        raise StrategyError(f"strategy {strategy.name!r} failed on {target.id}: {exc}") from exc
    if not (math.isfinite(score) and 0.0 < score <= 1.0):
        raise StrategyError(
            f"strategy {strategy.name!r} scored {target.id} {score}; scores must be in (0, 1]"
        )
    return score


def rank(scores: Sequence[TargetScore], tie_breaker: TieBreaker) -> list[TargetScore]:
    """Eligible targets, best first: score, then preferences met, then the tie-breaker."""
    eligible = [ts for ts in scores if ts.eligible]
    if tie_breaker == TieBreaker.ID:
        return sorted(
            eligible, key=lambda ts: (-ts.score, -ts.preference_fraction, ts.id, ts.index)
        )
    return sorted(eligible, key=lambda ts: (-ts.score, -ts.preference_fraction, ts.index))


def _reason(
    strategy: Strategy, ranked: Sequence[TargetScore], scores: Sequence[TargetScore]
) -> Reason:
    if not ranked:
        return failure_reason(scores)
    if len(ranked) == 1:
        return Reason.ONLY_OPTION
    if isinstance(strategy, BuiltinStrategy):
        return strategy.reason(ranked[0])
    return Reason.HIGHEST_SCORE


def failure_reason(scores: Sequence[TargetScore]) -> Reason:
    """ModeRestricted when some target failed only on where the task may run."""
    if explain.misses(scores).only_where:
        return Reason.MODE_RESTRICTED
    return Reason.NO_VALID_TARGET


def _declared(targets: Sequence[AnyTarget]) -> list[Known]:
    return [Known(t.capabilities or Capabilities()) for t in targets]


def _now() -> datetime:
    return datetime.now(UTC)

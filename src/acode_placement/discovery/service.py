"""Discovery: cached, concurrent, bounded in time, and never fatal.

`Discovery.lookup` answers for a list of targets at once. A target probed within
the cache's time-to-live, with every tool the task names already asked about, is
a cache hit and costs no I/O. Otherwise it is probed (only the unknown tools, when
the hardware is still fresh), at most `concurrency` targets at a time, one probe
per target in flight however many decisions ask. A decision uses what is known
at once (an expired entry, marked stale; declared values, marked declared) and
refreshes it in the background; it waits, `timeout` seconds at most, only for
targets of which nothing usable is known, and never again for a probe that missed
a deadline. A probe still running finishes in the background and fills the cache
for the next decision.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from acode_placement.discovery.cache import (
    CapabilityCache,
    Entry,
    Failure,
    age_words,
    fingerprint,
)
from acode_placement.discovery.compare import changes
from acode_placement.discovery.facts import FactProber, coded_facts, load_fact_probers
from acode_placement.discovery.parse import ProbeReport
from acode_placement.discovery.probes import ProbeError, Prober
from acode_placement.events import CapabilitiesChanged
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    DiscoveryStatus,
    Known,
    TargetKind,
)
from acode_placement.telemetry import get_logger

_log = get_logger("acode_placement.discovery")
# The kinds whose full probes the fact plug-ins complete (EC2 types have no host yet).
_FACT_KINDS = frozenset({TargetKind.LOCAL, TargetKind.SSH})

# Asked about on every full probe, so that most tasks find their tools cached.
COMMON_TOOLS = frozenset(
    {
        "aws",
        "cargo",
        "docker",
        "gcc",
        "git",
        "go",
        "helm",
        "java",
        "kubectl",
        "make",
        "node",
        "nvidia-smi",
        "podman",
        "python3",
        "terraform",
    }
)

Listener = Callable[[CapabilitiesChanged], None]
MAX_BACKOFF = timedelta(minutes=15)


class Observer(Protocol):
    """Told of every lookup and probe (the engine's metrics implement it)."""

    def cache_lookups(self, hits: int, misses: int) -> None: ...

    def probed(self, target_type: str, seconds: float) -> None: ...

    def probe_failed(self, target_id: str, status: str) -> None: ...


@dataclass(slots=True)
class Stats:
    """Lookups answered without I/O (hits: a fresh entry that knows every tool asked
    about, or a failure too recent to retry) and with a probe (misses); probes run,
    and probes failed."""

    hits: int = 0
    misses: int = 0
    probes: int = 0
    failures: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass(frozen=True, slots=True)
class _Job:
    key: tuple[str, str, bool, frozenset[str]]
    target: AnyTarget
    tools: frozenset[str]
    tools_only: bool


class Discovery:
    """Finds targets' capabilities through probers, one per target kind."""

    def __init__(
        self,
        probers: Mapping[TargetKind, Prober],
        cache: CapabilityCache | None = None,
        *,
        ttl: timedelta = timedelta(minutes=5),
        concurrency: int = 32,
        retry_after: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fact_probers: Sequence[tuple[str, FactProber]] | None = None,
        fact_timeout: float = 3.0,
    ) -> None:
        self.probers = dict(probers)
        # Plug-ins that add facts after a full probe of a local or SSH target; None:
        # those installed (`acode_placement.facts` entry points), found on first use.
        self.fact_probers = None if fact_probers is None else list(fact_probers)
        self.fact_timeout = fact_timeout
        self.cache = cache or CapabilityCache()
        self.ttl = ttl
        self.concurrency = concurrency
        # A target that just failed is not probed again before this; each failure in a
        # row doubles the wait, up to MAX_BACKOFF (an unreadable key or a host that is
        # down must not be retried, and logged, on every decision). Failures are kept
        # in the cache file, so the wait holds across command runs too.
        self.retry_after = min(retry_after, ttl)
        self.stats = Stats()
        self._clock = clock
        self._listeners: list[Listener] = []
        self.observers: list[Observer] = []
        # Probes running, by what they ask (`_Job.key`), with the job they run.
        self._inflight: dict[
            tuple[str, str, bool, frozenset[str]], tuple[_Job, asyncio.Task[ProbeReport]]
        ] = {}
        # Probes that missed a decision's deadline and still run: no decision waits again.
        self._late: weakref.WeakSet[asyncio.Task[ProbeReport]] = weakref.WeakSet()
        self._limit: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        # Merging discovered over declared values is costly; it is kept per target until
        # either side changes (entries and declared capabilities are immutable).
        self._merged: dict[str, tuple[Entry, Capabilities | None, Capabilities]] = {}

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` whenever a target's capabilities change."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def handles(self, target: AnyTarget) -> bool:
        return target.kind in self.probers

    async def lookup(
        self,
        targets: Sequence[AnyTarget],
        tools: frozenset[str] = frozenset(),
        *,
        refresh: bool = False,
        timeout: float | None = None,
        background: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Known]:
        """Each target's capabilities, as fresh as `timeout` seconds allow.

        With a `timeout` and `background`, what is already known is answered at once
        and refreshed in the background: an expired entry that knows the tools asked
        about (status stale), or the declared capabilities of a target never probed
        that declare them (status declared). Only a target of which nothing usable is
        known is waited for, `timeout` seconds at most, and never a probe that
        already missed an earlier decision's deadline. Without a `timeout` (or with
        `refresh`) every probe started is waited for. `progress(done, total)` is
        told of each probe waited for as it ends.
        """
        now = self._clock()
        known: list[Known | None] = [None] * len(targets)
        waiting: dict[int, asyncio.Task[ProbeReport]] = {}
        hits = started = 0
        early = background and timeout is not None and not refresh
        for i, target in enumerate(targets):
            if not self.handles(target):
                known[i] = Known(target.capabilities or Capabilities())
                continue
            entry = self._entry(target)
            fresh = entry is not None and not refresh and entry.age(now) < self.ttl.total_seconds()
            if fresh and entry is not None and entry.knows(tools):
                hits += 1
                known[i] = self._known(target, entry, DiscoveryStatus.CACHED)
                continue
            failed = None if refresh or fresh else self._recent_failure(target, now)
            if failed is not None:  # known to fail: no new probe on every decision
                hits += 1
                known[i] = self._degraded(target, failed.status, failed.cause)
                continue
            if fresh and entry is not None:
                job = self._job(target, tools - entry.tools_checked, tools_only=True)
            else:
                previously = entry.tools_checked if entry else frozenset()
                job = self._job(target, tools | previously | COMMON_TOOLS, tools_only=False)
            task = self._start(job)
            started += 1
            now_known = self._meanwhile(target, entry, tools, now, task) if early else None
            if now_known is not None:
                known[i] = now_known
            else:
                waiting[i] = task
        self._counted(hits, started)
        if waiting:
            if progress is not None:
                _count(set(waiting.values()), progress)
            await asyncio.wait(set(waiting.values()), timeout=timeout)
            for i, task in waiting.items():
                if not task.done():
                    self._late.add(task)
                known[i] = self._outcome(targets[i], task, timeout)
            self.cache.flush()
        return [k for k in known if k is not None]

    def _meanwhile(
        self,
        target: AnyTarget,
        entry: Entry | None,
        tools: frozenset[str],
        now: datetime,
        task: asyncio.Task[ProbeReport],
    ) -> Known | None:
        """What a decision uses while `task` refreshes the target in the background;
        None: nothing usable is known, so the decision waits for the probe."""
        if entry is not None and entry.knows(tools) and entry.age(now) < math.inf:
            cause = f"last probed {age_words(entry.age(now))} ago; refreshing in the background"
            return self._known(target, entry, DiscoveryStatus.STALE, cause)
        failed = self._failure(target) if entry is None else None
        if failed is not None:  # its back-off is over, but it failed last time
            cause = f"{failed.cause}; retrying in the background"
            return self._degraded(target, failed.status, cause)
        quick = getattr(self.probers[target.kind], "at_once", None)  # see `Prober`
        report: ProbeReport | None = quick(target) if entry is None and quick else None
        if report is not None:  # dated facts known without I/O (an EC2 type's catalog row)
            found = Entry(
                fingerprint(target),
                report.capabilities,
                report.tools_checked,
                now,
                report.notes,
                report.source,
            )
            return self._known(
                target, found, DiscoveryStatus.CATALOG, next(iter(report.notes), None)
            )
        declared = target.capabilities
        if entry is None and declared is not None and tools <= set(declared.tools):
            cause = "not probed yet; probing in the background"
            return Known(declared, DiscoveryStatus.DECLARED, cause)
        if task in self._late:  # it missed a deadline already: no decision waits again
            cause = "still probing after missing an earlier decision's deadline"
            return self._degraded(target, DiscoveryStatus.UNVERIFIED, cause)
        return None

    def pending(self) -> list[AnyTarget]:
        """The targets whose probes are still running (each once)."""
        running = (job for job, task in self._inflight.values() if not task.done())
        return list({job.target.id: job.target for job in running}.values())

    async def settle(self, timeout: float | None = None) -> None:
        """Wait, `timeout` seconds at most, for the probes still running in the
        background, and save what they found: a one-shot command calls this after
        printing its answer, so that the next run finds the cache filled."""
        running = [task for _, task in self._inflight.values() if not task.done()]
        if running:
            await asyncio.wait(running, timeout=timeout)
        self.cache.flush()

    def _counted(self, hits: int, misses: int) -> None:
        self.stats.hits += hits
        self.stats.misses += misses
        for observer in self.observers:  # once per lookup: a counter costs microseconds
            observer.cache_lookups(hits, misses)

    def _recent_failure(self, target: AnyTarget, now: datetime) -> Failure | None:
        failed = self._failure(target)
        if failed is None:
            return None
        wait = min(
            self.retry_after * 2 ** min(failed.in_a_row - 1, 20),
            max(MAX_BACKOFF, self.retry_after),
        )
        return None if now - failed.at >= wait else failed

    def _failure(self, target: AnyTarget) -> Failure | None:
        """The target's last failure (this process's or another's), if about this machine."""
        failed = self.cache.failure(target.id)
        return failed if failed is not None and failed.fingerprint == fingerprint(target) else None

    # ------------------------------------------------------------------- internals

    def _entry(self, target: AnyTarget) -> Entry | None:
        entry = self.cache.get(target.id)
        if entry is None or entry.fingerprint != fingerprint(target):
            return None
        return entry

    def _job(self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool) -> _Job:
        return _Job((target.id, fingerprint(target), tools_only, tools), target, tools, tools_only)

    def _start(self, job: _Job) -> asyncio.Task[ProbeReport]:
        running = self._inflight.get(job.key)
        if running is not None and not running[1].done():
            return running[1]  # one probe per target and question, however many ask
        task = asyncio.ensure_future(self._run(job))
        self._inflight[job.key] = (job, task)
        task.add_done_callback(lambda t: self._finished(job, t))
        return task

    async def _run(self, job: _Job) -> ProbeReport:
        async with self._semaphore():
            self.stats.probes += 1
            started = time.perf_counter()
            try:
                report = await self._probe(job)
            except ProbeError as exc:
                self.stats.failures += 1
                before = self._failure(job.target)
                failed = Failure(
                    fingerprint(job.target),
                    exc.status,
                    exc.cause,
                    self._clock(),
                    before.in_a_row + 1 if before else 1,
                )
                self.cache.put_failure(job.target.id, failed)
                for observer in self.observers:
                    observer.probed(job.target.kind.value, time.perf_counter() - started)
                    observer.probe_failed(job.target.id, exc.status.value)
                _log.info(
                    "discovery.failed",
                    target=job.target.id,
                    status=exc.status.value,
                    cause=exc.cause,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )
                raise
        for observer in self.observers:
            observer.probed(job.target.kind.value, time.perf_counter() - started)
        self._store(job, report)
        _log.info(
            "discovery.probed",
            target=job.target.id,
            tools_only=job.tools_only,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return report

    async def _probe(self, job: _Job) -> ProbeReport:
        """The prober's report; any failure of it (a plug-in's bug included) as ProbeError."""
        try:
            report = await self.probers[job.target.kind].probe(
                job.target, job.tools, tools_only=job.tools_only
            )
            if job.target.kind in _FACT_KINDS and not job.tools_only:
                if self.fact_probers is None:
                    self.fact_probers = load_fact_probers()
                report = await coded_facts(self.fact_probers, job.target, report, self.fact_timeout)
            return report
        except ProbeError:
            raise
        except Exception as exc:  # a prober must never break discovery
            first = (str(exc).strip().splitlines() or [""])[0]
            cause = f"discovery failed: {type(exc).__name__}: {first}"
            raise ProbeError(DiscoveryStatus.UNVERIFIED, cause[:300]) from None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._limit is None or self._limit[0] is not loop:
            self._limit = (loop, asyncio.Semaphore(self.concurrency))
        return self._limit[1]

    def _finished(self, job: _Job, task: asyncio.Task[ProbeReport]) -> None:
        running = self._inflight.get(job.key)
        if running is not None and running[1] is task:
            del self._inflight[job.key]
        if not task.cancelled():
            task.exception()  # looked at: a failure is kept in the cache, not lost to asyncio
            # a probe that outlived its decision still saves its answer or its failure
            self.cache.flush()

    def _store(self, job: _Job, report: ProbeReport) -> None:
        target = job.target
        before = self._entry(target)
        at = self._clock()  # one clock for ages, whatever the prober stamped
        if job.tools_only:
            if before is None:
                return  # the hardware entry vanished meanwhile; the next probe redoes it
            entry = before.with_tools(
                report.capabilities.tools,
                report.tools_checked,
                report.capabilities.tool_versions,
            )
        else:
            caps = report.capabilities.model_copy(update={"discovered_at": at})
            entry = Entry(
                fingerprint(target), caps, report.tools_checked, at, report.notes, report.source
            )
        self.cache.put(target.id, entry)
        if before is None:
            return
        looked = before.tools_checked & report.tools_checked if report.source == "probe" else set()
        found = changes(before.capabilities, entry.capabilities, frozenset(looked))
        if found:
            event = CapabilitiesChanged(target.id, tuple(found), at)
            _log.info(
                "discovery.changed",
                target=target.id,
                changes=[f"{c.field}: {c.before} -> {c.after}" for c in found],
            )
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception:  # a listener must never break discovery
                    _log.exception("event.subscriber_failed", event_name=event.name)

    def _outcome(
        self, target: AnyTarget, task: asyncio.Task[ProbeReport], timeout: float | None
    ) -> Known:
        if task.done() and not task.cancelled() and task.exception() is None:
            entry = self._entry(target)
            if entry is not None:
                return self._known(target, entry, DiscoveryStatus.FRESH)
        if not task.done():
            cause = f"no answer within the decision timeout ({timeout or 0:g} s)"
            return self._degraded(target, DiscoveryStatus.UNVERIFIED, cause)
        error = None if task.cancelled() else task.exception()
        if isinstance(error, ProbeError):
            return self._degraded(target, error.status, error.cause)
        _log.error("discovery.crashed", target=target.id, error=repr(error))
        return self._degraded(target, DiscoveryStatus.UNVERIFIED, f"discovery failed: {error!r}")

    def _degraded(self, target: AnyTarget, status: DiscoveryStatus, cause: str) -> Known:
        """Discovery did not answer: the last known values, else the declared ones."""
        entry = self._entry(target)
        if entry is not None:
            return self._known(target, entry, DiscoveryStatus.STALE, f"{status.value}: {cause}")
        declared = target.capabilities
        return Known(declared or Capabilities(), status, cause, known=declared is not None)

    def _known(
        self,
        target: AnyTarget,
        entry: Entry,
        status: DiscoveryStatus,
        cause: str | None = None,
    ) -> Known:
        if entry.source == "catalog" and status in (DiscoveryStatus.FRESH, DiscoveryStatus.CACHED):
            # dated data, not what anything reported: say so, and from when
            status, cause = DiscoveryStatus.CATALOG, cause or next(iter(entry.notes), None)
        declared = target.capabilities
        memo = self._merged.get(target.id)
        if memo is not None and memo[0] is entry and memo[1] is declared:
            merged = memo[2]
        else:
            merged = entry.capabilities.merged_over(declared)
            self._merged[target.id] = (entry, declared, merged)
        return Known(merged, status, cause, discovered=entry.capabilities, notes=entry.notes)


def _count(tasks: set[asyncio.Task[ProbeReport]], progress: Callable[[int, int], None]) -> None:
    """Call `progress(done, total)` as each of `tasks` ends (a progress bar)."""
    done = 0

    def ended(_: object) -> None:
        nonlocal done
        done += 1
        progress(done, len(tasks))

    progress(0, len(tasks))
    for task in tasks:
        task.add_done_callback(ended)

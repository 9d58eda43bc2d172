"""Replaying a trace through the real engine, in simulated time.

Semantics (the README's Simulate section says the same):

- Events are taken in time order. At one instant, completions come first (their
  capacity is free again), then the waiting jobs are tried again, then arrivals, in
  `submit_s` order (ties in file order).
- Each arrival is decided by the engine's own `decide` with the targets' usage (what
  `place --reserve` decides on: free capacity), and leased on the chosen target in an
  in-memory store: owned targets (local, ssh) have their cpu, memory, GPUs and
  `maxConcurrentTasks`; an ec2 placement starts a new instance of its type for the
  job, billed per second at its hourly rate, at least 60 s. An owned target with an
  `hourlyRate` costs that times the job's duration.
- A job no target could run even on an empty fleet is "never placeable", counted
  under the cause that rules out most targets. A job that fits the fleet but finds
  no room waits in a queue; at each completion the waiting jobs are tried again in
  arrival order and each is placed when it fits (a later job may start first).
- A job without a duration never ran in the trace: counted, not replayed.
"""

from __future__ import annotations

import asyncio
import heapq
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from acode_placement import capacity
from acode_placement.discovery.service import Discovery
from acode_placement.ec2.catalog import Catalog
from acode_placement.ec2.fleet import Ec2Prober, Ec2Resolver
from acode_placement.engine import PlacementEngine
from acode_placement.explain import cause_counts
from acode_placement.models import (
    AnyTarget,
    Capacity,
    Known,
    Mode,
    PlacementOptions,
    PlacementResult,
    TargetKind,
    TaskRequirements,
    Usage,
)
from acode_placement.simulation.trace import Job

MIN_BILLED_S = 60.0
CURVE_POINTS = 2000  # at most this many points per curve kept for plots


@dataclass(slots=True)
class Fate:
    """What happened to one job: placed (where, when, why), waiting, never placeable
    (and why), or never ran."""

    status: str  # placed | waiting | never-placeable | never-ran
    target: str | None = None
    reason: str | None = None  # the engine's reason, or the cause that ruled it out
    start_s: float | None = None
    wait_s: float = 0.0
    cost: float = 0.0


@dataclass
class Run:
    """One strategy's replay of a trace in one mode."""

    strategy: str
    mode: str
    jobs: int = 0
    placed: int = 0
    never_ran: int = 0
    waiting_at_end: int = 0
    never_placeable: Counter[str] = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)  # of the jobs that waited
    by_type: Counter[str] = field(default_factory=Counter)
    by_target: Counter[str] = field(default_factory=Counter)
    bursts: int = 0
    cloud_cost: float = 0.0
    owned_cost: float = 0.0
    unpriced: int = 0  # cloud placements on a type without a price
    cpu_hours_used: float = 0.0
    cpu_hours_available: float = 0.0
    gpu_hours_used: float = 0.0
    gpu_hours_available: float = 0.0
    start_s: float = 0.0
    end_s: float = 0.0
    decisions: int = 0
    cost_curve: list[tuple[float, float]] = field(default_factory=list)
    queue_curve: list[tuple[float, int]] = field(default_factory=list)
    fates: dict[str, Fate] = field(default_factory=dict)
    most_used: float = 0.0  # the highest share of any owned capacity ever held

    @property
    def waited(self) -> int:
        return len(self.waits)

    @property
    def makespan_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def cpu_utilisation(self) -> float:
        """Owned CPU-hours used over those available (see `_owned_available`)."""
        return _share(self.cpu_hours_used, self.cpu_hours_available)

    @property
    def gpu_utilisation(self) -> float:
        return _share(self.gpu_hours_used, self.gpu_hours_available)

    def wait_percentile(self, share: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> dict[str, object]:
        """The figures, for tables and `--json`."""
        return {
            "strategy": self.strategy,
            "mode": self.mode,
            "jobs": self.jobs,
            "placed": self.placed,
            "neverPlaceable": sum(self.never_placeable.values()),
            "neverPlaceableByCause": dict(sorted(self.never_placeable.items())),
            "neverRan": self.never_ran,
            "waitingAtEnd": self.waiting_at_end,
            "waited": self.waited,
            "waitP50S": self.wait_percentile(0.5),
            "waitP95S": self.wait_percentile(0.95),
            "waitMaxS": max(self.waits, default=0.0),
            "waitMeanS": statistics.fmean(self.waits) if self.waits else 0.0,
            "placementsByTargetType": dict(sorted(self.by_type.items())),
            "placementsByTarget": dict(sorted(self.by_target.items())),
            "bursts": self.bursts,
            "cloudCost": round(self.cloud_cost, 4),
            "ownedCost": round(self.owned_cost, 4),
            "unpricedCloudPlacements": self.unpriced,
            "cpuUtilisation": self.cpu_utilisation,
            "gpuUtilisation": self.gpu_utilisation,
            "cpuHoursUsed": round(self.cpu_hours_used, 3),
            "gpuHoursUsed": round(self.gpu_hours_used, 3),
            "makespanS": self.makespan_s,
            "decisions": self.decisions,
        }


def _share(used: float, available: float) -> float:
    return round(used / available, 6) if available else 0.0


class Fleet:
    """The targets as candidates (EC2 fleets expanded and priced from the shipped
    catalog) with what each offers: declared, or the catalog's for an EC2 type. No
    machine is probed and no AWS API is asked."""

    def __init__(self, targets: Sequence[AnyTarget]) -> None:
        catalog = Catalog.shipped()
        self.engine = PlacementEngine(
            discovery=Discovery({TargetKind.EC2: Ec2Prober(None, catalog)}),
            ec2=Ec2Resolver(None, catalog),
        )

        async def resolve() -> tuple[list[AnyTarget], list[Known]]:
            resolved = await self.engine.resolve(list(targets))
            return resolved, await self.engine.discover(resolved)

        self.targets, self.known = asyncio.run(resolve())
        self.capacities = [
            capacity.capacity_of(t, k.capabilities)
            for t, k in zip(self.targets, self.known, strict=True)
        ]
        self.owned = [i for i, t in enumerate(self.targets) if not t.is_cloud]


def simulate(
    jobs: Sequence[Job],
    fleet: Fleet,
    strategy: str,
    mode: Mode | str = Mode.BURST,
    *,
    check: bool = False,
) -> Run:
    """Replay `jobs` on `fleet` with one strategy in one mode (see the module's
    semantics). With `check`, every event asserts that no owned target holds more
    than its capacity (a test's guard; the lease already refuses it)."""
    mode = Mode(mode)
    return _Replay(jobs, fleet, strategy, mode, check).run()


class _Replay:
    def __init__(
        self, jobs: Sequence[Job], fleet: Fleet, strategy: str, mode: Mode, check: bool
    ) -> None:
        self.fleet = fleet
        self.options = PlacementOptions(
            strategy=strategy, mode=mode, discovery_enabled=False, fallback_enabled=False
        )
        self.check = check
        self.usage = [Usage() for _ in fleet.targets]
        self.empty = list(self.usage)
        self.result = Run(strategy=strategy, mode=mode.value, jobs=len(jobs))
        self.order = sorted(jobs, key=lambda j: (j.submit_s, j.line))
        self.queue: list[Job] = []
        self.events: list[tuple[float, int, int, Job, int]] = []  # time, kind, seq, job, target
        # per job shape: the cause when nothing could run it, and the targets that could
        self.static: dict[tuple[object, ...], tuple[str | None, tuple[int, ...]]] = {}
        self.subsets: dict[tuple[int, ...], tuple[list[AnyTarget], list[Known]]] = {}
        self.now = 0.0

    def run(self) -> Run:
        result = self.result
        for seq, job in enumerate(self.order):
            heapq.heappush(self.events, (job.submit_s, 1, seq, job, -1))
        if self.order:
            result.start_s = self.order[0].submit_s
            result.end_s = result.start_s
        seq = len(self.order)
        while self.events:
            self.now, kind, _, job, target = heapq.heappop(self.events)
            if kind == 0:
                self._free(job, target)
                seq = self._retry(seq)
            else:
                seq = self._arrive(job, seq)
            if self.check:
                self._assert_within_capacity()
        result.waiting_at_end = len(self.queue)
        for job in self.queue:
            result.fates[job.id] = Fate("waiting", reason="no room until the end")
        self._owned_available()
        _thin(result.cost_curve)
        _thin(result.queue_curve)
        return result

    # ------------------------------------------------------------------ events

    def _arrive(self, job: Job, seq: int) -> int:
        result = self.result
        if job.duration_s is None:
            result.never_ran += 1
            result.fates[job.id] = Fate("never-ran")
            return seq
        placed = self._place(job) if self._room_for(job) else None
        if placed is not None:
            return self._started(job, placed, seq)
        cause, _ = self._static(job)
        if cause is not None:
            result.never_placeable[cause] += 1
            result.fates[job.id] = Fate("never-placeable", reason=cause)
            return seq
        self.queue.append(job)
        result.queue_curve.append((self.now, len(self.queue)))
        return seq

    def _retry(self, seq: int) -> int:
        waiting, self.queue = self.queue, []
        for job in waiting:
            placed = self._place(job) if self._room_for(job) else None
            if placed is None:
                self.queue.append(job)
            else:
                seq = self._started(job, placed, seq)
        if len(waiting) != len(self.queue):
            self.result.queue_curve.append((self.now, len(self.queue)))
        return seq

    def _free(self, job: Job, target: int) -> None:
        held = self.usage[target]
        wanted = capacity.wanted(job.requirements)
        tasks = held.tasks - 1
        # sums rounded to a nanounit, and an idle target exactly idle: float drift
        # (8 - 1e-14 GPUs) must never keep a job from a machine that is free
        self.usage[target] = Usage() if tasks <= 0 else Usage(
            max(0.0, round(held.cpu - wanted.cpu, 9)),
            max(0.0, round(held.memory_gb - wanted.memory_gb, 9)),
            max(0.0, round(held.gpus - wanted.gpus, 9)),
            tasks,
        )  # fmt: skip
        self.result.end_s = max(self.result.end_s, self.now)

    # --------------------------------------------------------------- decisions

    def _place(self, job: Job) -> tuple[int, PlacementResult] | None:
        """The engine's decision on free capacity, and the lease of its choice (in
        rank order, the first with room, as `place --reserve` takes it).

        The engine is asked about the targets that could run the job on an empty
        fleet (see `_static`): the others fail a rule that no reservation changes,
        and a target's score does not depend on the others, so the ranking, the
        choice and its reason are those of the whole fleet; only the failure's words
        would differ, and a job without room is queued, not explained."""
        _, fitting = self._static(job)
        targets, known = self.subsets[fitting]
        self.result.decisions += 1
        decided = self.fleet.engine.decide(
            job.requirements, targets, known, self.options,
            task_name=job.id, request_id=job.id, usage=[self.usage[i] for i in fitting],
        )  # fmt: skip
        wanted = capacity.wanted(job.requirements)
        for candidate in decided.ranked:
            i = fitting[candidate.index]
            if self.usage[i].fits(wanted, self.fleet.capacities[i]):
                held = self.usage[i]
                self.usage[i] = Usage(
                    round(held.cpu + wanted.cpu, 9),
                    round(held.memory_gb + wanted.memory_gb, 9),
                    round(held.gpus + wanted.gpus, 9),
                    held.tasks + 1,
                )
                return i, decided
        return None

    def _room_for(self, job: Job) -> bool:
        """A cheap necessary condition before asking the engine: a target that could
        run the job on an empty fleet has the cpu, memory, GPUs and task slot free."""
        _, fitting = self._static(job)
        wanted = capacity.wanted(job.requirements)
        return any(self.usage[i].fits(wanted, self.fleet.capacities[i]) for i in fitting)

    def _static(self, job: Job) -> tuple[str | None, tuple[int, ...]]:
        """What an empty fleet says of the job's shape: the cause that rules out most
        targets when none could run it (else None), and the targets that could."""
        shape = job.shape()
        known = self.static.get(shape)
        if known is None:
            decided = self.fleet.engine.decide(
                job.requirements, self.fleet.targets, self.fleet.known, self.options,
                usage=self.empty,
            )  # fmt: skip
            cause = None
            if not decided.success:
                counts = cause_counts(decided.all_scores)
                cause = min(counts, key=lambda c: (-counts[c], c)) if counts else "no targets"
            fitting = tuple(sorted(ts.index for ts in decided.ranked))
            known = self.static[shape] = (cause, fitting)
            if fitting not in self.subsets:
                self.subsets[fitting] = (
                    [self.fleet.targets[i] for i in fitting],
                    [self.fleet.known[i] for i in fitting],
                )
        return known

    def _started(self, job: Job, placed: tuple[int, PlacementResult], seq: int) -> int:
        index, decided = placed
        target = self.fleet.targets[index]
        duration = job.duration_s or 0.0
        result = self.result
        result.placed += 1
        result.by_type[target.kind.value] += 1
        result.by_target[target.id] += 1
        wait = self.now - job.submit_s
        if wait > 0:
            result.waits.append(wait)
        cost = 0.0
        rate = target.hourly_rate
        if target.is_cloud:
            result.bursts += 1
            if rate is None:
                result.unpriced += 1
            else:
                cost = rate * max(MIN_BILLED_S, duration) / 3600.0
                result.cloud_cost += cost
        else:
            result.cpu_hours_used += job.cpu * duration / 3600.0
            result.gpu_hours_used += job.gpus * duration / 3600.0
            if rate is not None:
                cost = rate * duration / 3600.0
                result.owned_cost += cost
        if cost:  # the running total, cloud and owned
            result.cost_curve.append((self.now, result.cloud_cost + result.owned_cost))
        result.fates[job.id] = Fate(
            "placed", target.id, decided.reason.value, self.now, max(0.0, wait), cost
        )
        heapq.heappush(self.events, (self.now + duration, 0, seq, job, index))
        result.end_s = max(result.end_s, self.now + duration)
        return seq + 1

    # ----------------------------------------------------------------- figures

    def _owned_available(self) -> None:
        """Capacity over the makespan, of the owned targets this mode lets a task use
        (those a task asking nothing may run on: the mode's own rule decides)."""
        hours = self.result.makespan_s / 3600.0
        usable = self.fleet.engine.decide(
            TaskRequirements(), self.fleet.targets, self.fleet.known, self.options,
            usage=self.empty,
        ).ranked  # fmt: skip
        allowed = {ts.index for ts in usable}
        for i in self.fleet.owned:
            if i not in allowed:
                continue
            total = self.fleet.capacities[i]
            self.result.cpu_hours_available += (total.cpu or 0.0) * hours
            self.result.gpu_hours_available += (total.gpus or 0.0) * hours

    def _assert_within_capacity(self) -> None:
        for i in self.fleet.owned:
            held, total = self.usage[i], self.fleet.capacities[i]
            for used, most in (
                (held.cpu, total.cpu),
                (held.memory_gb, total.memory_gb),
                (held.gpus, total.gpus),
                (float(held.tasks), _tasks(total)),
            ):
                if most is not None:
                    if used > most + 1e-9:
                        raise AssertionError(
                            f"{self.fleet.targets[i].id} holds {used:g} of {most:g}"
                        )
                    if most:
                        self.result.most_used = max(self.result.most_used, used / most)


def _tasks(total: Capacity) -> float | None:
    return None if total.max_tasks is None else float(total.max_tasks)


def _thin(curve: list[Any]) -> None:
    """Keep at most CURVE_POINTS points, evenly spaced in the list, and the last."""
    if len(curve) > CURVE_POINTS:
        step = len(curve) / CURVE_POINTS
        curve[:] = [curve[int(k * step)] for k in range(CURVE_POINTS)] + [curve[-1]]

"""Prometheus metrics: placements, decision time, candidates, mismatch causes,
capability cache and discovery, decisions in flight.

Each engine has its own registry (so two engines in one process, or tests, never
mix counts); `text()` renders it in the Prometheus text format and the service
serves it. `add_to()` is for short-lived commands: it adds this process's counts
to a metrics file that node_exporter's textfile collector reads (under a lock,
atomically replaced), so that N runs read N.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from acode_placement import explain

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs that end at once may race
    fcntl = None  # type: ignore[assignment]
from acode_placement.models import PlacementResult

# Decisions take microseconds to milliseconds; discovery milliseconds to seconds.
DECISION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0
)  # fmt: skip
# The histogram's `le` labels, written as prometheus_client writes them.
_DECISION_BOUNDS = [*map(floatToGoString, DECISION_BUCKETS), "+Inf"]
DISCOVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The engine's metrics, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # What every placement counts is kept by `_Placements` (one lock per
        # placement, rendered when read), the rest by prometheus_client's own metrics.
        self.decisions = _Placements()
        r.register(self.decisions)
        self.cache = Counter(
            "acode_placement_capability_cache_lookups",
            "Capability lookups by result (hit: no probe needed, miss)",
            ["result"],
            registry=r,
        )
        self.discovery = Histogram(
            "acode_placement_discovery_seconds",
            "Time to probe one target",
            ["target_type"],
            buckets=DISCOVERY_BUCKETS,
            registry=r,
        )
        self.discovery_failures = Counter(
            "acode_placement_discovery_failures",
            "Probes that failed, by target and status",
            ["target", "status"],
            registry=r,
        )
        self.reservations_reclaimed = Counter(
            "acode_placement_reservations_reclaimed",
            "Expired reservations whose capacity was taken back",
            registry=r,
        )
        self.history_failures = Counter(
            "acode_placement_history_failures", "Decisions the history could not record", registry=r
        )

    # ---------------------------------------------------------------- recording

    def placement_started(self, strategy: str) -> None:
        self.decisions.started(strategy)

    def placement_ended(self, result: PlacementResult) -> None:
        chosen = result.selected
        self.decisions.ended(
            (
                result.strategy,
                "placed" if chosen else "no_target",
                result.reason.value,
                chosen.type.value if chosen else "none",
            ),
            result.decision_duration,
            len(result.all_scores),
            explain.cause_counts(result.all_scores),
        )

    def placement_aborted(self, strategy: str, seconds: float) -> None:
        self.decisions.ended((strategy, "error", "NoValidTarget", "none"), seconds, 0, {})

    def cache_lookups(self, hits: int, misses: int) -> None:
        if hits:
            self.cache.labels("hit").inc(hits)
        if misses:
            self.cache.labels("miss").inc(misses)

    def probed(self, target_type: str, seconds: float) -> None:
        self.discovery.labels(target_type).observe(seconds)

    def probe_failed(self, target_id: str, status: str) -> None:
        self.discovery_failures.labels(target_id, status).inc()

    # ------------------------------------------------------------------ output

    def text(self) -> str:
        return generate_latest(self.registry).decode("utf-8")

    def add_to(self, path: Path) -> None:
        """Add this registry's counts to the metrics file at `path`: counters and
        histograms add up with what earlier runs wrote there, gauges take this run's
        value. Runs that end at once take turns (a lock file beside it), and the file
        is replaced atomically, so node_exporter never reads half of it.

        Raises ValueError, leaving the file as it is, when it holds something that is
        not the Prometheus text format."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.parent / f".{path.name}.lock"):
            try:
                before = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                before = ""
            try:
                earlier = list(text_string_to_metric_families(before))
            except Exception as exc:  # the parser raises ValueError and worse on garbage
                raise ValueError("not a Prometheus metrics file; left as it is") from exc
            merged = _added(earlier, list(self.registry.collect()))
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(_rendered(merged))
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)


class _Placements(Collector):
    """Placements started and ended, decision time, candidates evaluated, mismatch
    causes and decisions in flight: plain counts under one lock taken once per
    placement (prometheus_client takes one per labelled update, a dozen a
    placement), turned into metric families when the registry is read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[str, int] = {}
        self._ended: dict[tuple[str, str, str, str], int] = {}
        self._durations: dict[str, list[float]] = {}  # per strategy: bucket counts, sum
        self._candidates = 0
        self._causes: dict[str, int] = {}
        self._in_flight = 0

    def started(self, strategy: str) -> None:
        with self._lock:
            self._started[strategy] = self._started.get(strategy, 0) + 1
            self._in_flight += 1

    def ended(
        self,
        labels: tuple[str, str, str, str],
        seconds: float,
        candidates: int,
        causes: Mapping[str, int],
    ) -> None:
        bucket = bisect.bisect_left(DECISION_BUCKETS, seconds)  # le: the first bound >= it
        with self._lock:
            self._ended[labels] = self._ended.get(labels, 0) + 1
            spread = self._durations.get(labels[0])
            if spread is None:
                spread = self._durations[labels[0]] = [0.0] * (len(DECISION_BUCKETS) + 2)
            spread[bucket] += 1  # the last bucket before the sum is +Inf
            spread[-1] += seconds
            self._candidates += candidates
            for cause, count in causes.items():
                self._causes[cause] = self._causes.get(cause, 0) + count
            self._in_flight -= 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = dict(self._started)
            ended = dict(self._ended)
            durations = {k: list(v) for k, v in self._durations.items()}
            candidates, causes, in_flight = self._candidates, dict(self._causes), self._in_flight
        family = CounterMetricFamily(
            "acode_placement_placements_started", "Placements started", labels=["strategy"]
        )
        for strategy, count in started.items():
            family.add_metric([strategy], count)
        yield family
        family = CounterMetricFamily(
            "acode_placement_placements",
            "Placements ended, by outcome (placed, no_target, error)",
            labels=["strategy", "outcome", "reason", "target_type"],
        )
        for labels, count in ended.items():
            family.add_metric(list(labels), count)
        yield family
        histogram = HistogramMetricFamily(
            "acode_placement_decision_seconds",
            "Time to decide, discovery included",
            labels=["strategy"],
        )
        bounds = _DECISION_BOUNDS
        for strategy, spread in durations.items():
            cumulative = list(itertools.accumulate(spread[:-1]))
            histogram.add_metric(
                [strategy], list(zip(bounds, cumulative, strict=True)), sum_value=spread[-1]
            )
        yield histogram
        yield CounterMetricFamily(
            "acode_placement_candidates_evaluated", "Targets evaluated", value=candidates
        )
        family = CounterMetricFamily(
            "acode_placement_mismatches", "Mismatches by cause", labels=["cause"]
        )
        for cause, count in causes.items():
            family.add_metric([cause], count)
        yield family
        yield GaugeMetricFamily(
            "acode_placement_decisions_in_flight", "Decisions under way", value=in_flight
        )


# Families whose samples add up across runs; the others (gauges) are this run's.
_ADDING = frozenset({"counter", "histogram", "summary"})


def _added(earlier: list[Metric], now: list[Metric]) -> list[Metric]:
    """`now`'s families with `earlier`'s counts added (sample by sample, labels and
    all), and `earlier`'s families that this run did not have, in first-seen order.
    `_created` samples are dropped: a run's start time means nothing in a sum."""
    families: dict[str, Metric] = {}
    for metric in earlier:
        families[metric.name] = metric
    for metric in now:
        before = families.get(metric.name)
        if before is None or metric.type not in _ADDING or before.type != metric.type:
            families[metric.name] = metric
            continue
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for sample in (*before.samples, *metric.samples):
            key = (sample.name, tuple(sorted(sample.labels.items())))
            totals[key] = totals.get(key, 0.0) + sample.value
        summed = Metric(metric.name, metric.documentation, metric.type)
        for (name, labels), value in totals.items():
            summed.add_sample(name, dict(labels), value)
        families[metric.name] = summed
    kept = []
    for metric in families.values():
        samples = [s for s in metric.samples if not s.name.endswith("_created")]
        if samples:
            metric.samples = samples
            kept.append(metric)
    return kept


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def _rendered(metrics: list[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))
    return generate_latest(registry).decode("utf-8")


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock` (created if needed) while in the block."""
    with open(lock, "a", encoding="utf-8") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)

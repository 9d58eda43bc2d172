"""Prometheus metrics: placements, decision time, candidates, mismatch causes,
capability cache and discovery, decisions in flight.

Each engine has its own registry (so two engines in one process, or tests, never
mix counts); `text()` renders it in the Prometheus text format, `write()` writes
it atomically for node_exporter's textfile collector, and the service serves it.
"""

from __future__ import annotations

import bisect
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
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from acode_placement import explain
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

    def write(self, path: Path) -> None:
        """Write the text format atomically (node_exporter's textfile collector)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(self.text())
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

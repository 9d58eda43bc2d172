"""Prometheus metrics: placements, decision time, candidates, mismatch causes,
capability cache and discovery, decisions in flight.

Each engine has its own registry (so two engines in one process, or tests, never
mix counts); `text()` renders it in the Prometheus text format, `write()` writes
it atomically for node_exporter's textfile collector, and the service serves it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from acode_placement import explain
from acode_placement.models import PlacementResult

# Decisions take microseconds to milliseconds; discovery milliseconds to seconds.
DECISION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0
)  # fmt: skip
DISCOVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The engine's metrics, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "acode_placement_placements_started", "Placements started", ["strategy"], registry=r
        )
        self.placements = Counter(
            "acode_placement_placements",
            "Placements ended, by outcome (placed, no_target, error)",
            ["strategy", "outcome", "reason", "target_type"],
            registry=r,
        )
        self.duration = Histogram(
            "acode_placement_decision_seconds",
            "Time to decide, discovery included",
            ["strategy"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.candidates = Counter(
            "acode_placement_candidates_evaluated", "Targets evaluated", registry=r
        )
        self.mismatches = Counter(
            "acode_placement_mismatches", "Mismatches by cause", ["cause"], registry=r
        )
        self.in_flight = Gauge(
            "acode_placement_decisions_in_flight", "Decisions under way", registry=r
        )
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
        self.started.labels(strategy).inc()
        self.in_flight.inc()

    def placement_ended(self, result: PlacementResult) -> None:
        chosen = result.selected
        outcome = "placed" if chosen else "no_target"
        target_type = chosen.type.value if chosen else "none"
        self.placements.labels(result.strategy, outcome, result.reason.value, target_type).inc()
        self.duration.labels(result.strategy).observe(result.decision_duration)
        self.candidates.inc(len(result.all_scores))
        for cause, count in explain.cause_counts(result.all_scores).items():
            self.mismatches.labels(cause).inc(count)
        self.in_flight.dec()

    def placement_aborted(self, strategy: str, seconds: float) -> None:
        self.placements.labels(strategy, "error", "NoValidTarget", "none").inc()
        self.duration.labels(strategy).observe(seconds)
        self.in_flight.dec()

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

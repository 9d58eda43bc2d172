"""Events published for every placement: started, then completed or failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from acode_placement.models import Mode, Reason, TargetKind


@dataclass(frozen=True, slots=True)
class PlacementStarted:
    request_id: str
    task_name: str | None
    strategy: str
    mode: Mode
    target_count: int
    timestamp: datetime
    name: str = field(default="PlacementStarted", init=False)


@dataclass(frozen=True, slots=True)
class PlacementCompleted:
    request_id: str
    task_name: str | None
    target_id: str
    target_type: TargetKind
    reason: Reason
    score: float
    estimated_cost: float | None
    duration_ms: float
    alternatives: tuple[str, ...]
    timestamp: datetime
    name: str = field(default="PlacementCompleted", init=False)


@dataclass(frozen=True, slots=True)
class PlacementFailed:
    request_id: str
    task_name: str | None
    reason: Reason
    failure_message: str
    duration_ms: float
    timestamp: datetime
    name: str = field(default="PlacementFailed", init=False)


PlacementEvent = PlacementStarted | PlacementCompleted | PlacementFailed

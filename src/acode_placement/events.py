"""Events: every placement is started, then completed or failed; discovery
publishes a change when a target turns out to offer something else than before."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True, slots=True)
class Change:
    """One capability that changed: `field` is its camelCase name (or `tool NAME`)."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class CapabilitiesChanged:
    target_id: str
    changes: tuple[Change, ...]
    timestamp: datetime
    name: str = field(default="CapabilitiesChanged", init=False)


PlacementEvent = PlacementStarted | PlacementCompleted | PlacementFailed | CapabilitiesChanged


def event_json(event: PlacementEvent) -> dict[str, Any]:
    """The event as JSON-ready camelCase keys (`requestId`, `timestamp` in ISO 8601)."""
    return {_camel(f.name): _plain(getattr(event, f.name)) for f in fields(event)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Change):
        return {"field": value.field, "before": value.before, "after": value.after}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value

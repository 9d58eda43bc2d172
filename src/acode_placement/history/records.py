"""A recorded decision as read back: `Record`, made from a row of `placements`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from acode_placement.models import (
    Attempt,
    CheckKind,
)


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded decision, as stored."""

    request_id: str
    created_at: datetime
    task_name: str | None
    success: bool
    strategy: str
    mode: str
    target_id: str | None
    target_type: str | None
    reason: str
    score: float
    estimated_cost: float | None
    price_source: str | None
    duration_ms: float
    failure_message: str | None
    requirements: dict[str, Any]
    options: dict[str, Any]
    candidates: list[dict[str, Any]]
    result: dict[str, Any]
    engine_version: str
    attempts: tuple[Attempt, ...] = ()
    snapshot: str | None = None  # compact: `result` holds the outcome, not the candidates
    usage: list[list[float]] | None = None  # the reservations held then, when reserving

    def summary_json(self) -> dict[str, Any]:
        """The listing's fields (`history --json`, `GET /v1/placements`)."""
        return {
            "requestId": self.request_id,
            "time": self.created_at.isoformat(),
            "taskName": self.task_name,
            "success": self.success,
            "target": self.target_id,
            "targetType": self.target_type,
            "reason": self.reason,
            "score": self.score,
            "strategy": self.strategy,
            "mode": self.mode,
            "estimatedCost": self.estimated_cost,
            "priceSource": self.price_source,
            "decisionMs": self.duration_ms,
            "failureMessage": self.failure_message,
        }


def candidate_row(ts: Any, explained: dict[str, Any]) -> dict[str, Any]:
    data = dict(explained)
    target = ts.target.model_dump(mode="json", exclude_none=True)
    target.pop("identityFile", None)  # a key path stays in the targets file
    data["target"] = target
    data["capabilities"] = ts.capabilities.model_dump(mode="json", exclude_none=True)
    data["known"] = not any(c.kind is CheckKind.DISCOVERY for c in ts.mismatches)
    return data


def record_of(row: Any, steps: tuple[Attempt, ...] = ()) -> Record:
    created = row.created_at
    if created.tzinfo is None:  # SQLite keeps no zone; what is stored is UTC
        created = created.replace(tzinfo=UTC)
    return Record(
        request_id=row.request_id,
        created_at=created,
        task_name=row.task_name,
        success=bool(row.success),
        strategy=row.strategy,
        mode=row.mode,
        target_id=row.target_id,
        target_type=row.target_type,
        reason=row.reason,
        score=row.score,
        estimated_cost=row.estimated_cost,
        price_source=row.price_source,
        duration_ms=row.duration_ms,
        failure_message=row.failure_message,
        requirements=row.requirements,
        options=row.options,
        candidates=row.candidates,
        result=row.result,
        engine_version=row.engine_version,
        attempts=steps,
        snapshot=row.snapshot,
    )

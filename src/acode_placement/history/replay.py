"""Replaying a recorded decision: the same inputs through today's engine."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from acode_placement.engine import PlacementEngine
from acode_placement.errors import InputError
from acode_placement.history.store import Record
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    DiscoveryStatus,
    Known,
    PlacementOptions,
    PlacementResult,
    Target,
    TaskRequirements,
)

_TARGET: TypeAdapter[AnyTarget] = TypeAdapter(Target)


def inputs(
    record: Record,
) -> tuple[TaskRequirements, list[AnyTarget], list[Known], PlacementOptions]:
    """The requirements, candidates, their capabilities as known then, and the options."""
    if not record.candidates:
        raise InputError(
            f"nothing to replay: {record.request_id} was aborted before a decision"
            f" ({record.failure_message})"
        )
    targets = [_TARGET.validate_python(c["target"]) for c in record.candidates]
    known = [_known(c) for c in record.candidates]
    requirements = TaskRequirements.model_validate(record.requirements)
    options = PlacementOptions.model_validate(record.options)
    return requirements, targets, known, options


def replay(engine: PlacementEngine, record: Record) -> PlacementResult:
    """Today's decision on the recorded inputs (no discovery, no history written)."""
    requirements, targets, known, options = inputs(record)
    return engine.decide(
        requirements,
        targets,
        known,
        options,
        task_name=record.task_name,
        request_id=record.request_id,
    )


def _known(candidate: dict[str, Any]) -> Known:
    discovery = candidate.get("discovery") or {}
    return Known(
        Capabilities.model_validate(candidate["capabilities"]),
        DiscoveryStatus(discovery.get("status", "declared")),
        discovery.get("cause"),
        known=candidate.get("known", True),
    )

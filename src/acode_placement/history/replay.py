"""Replaying a recorded decision: the same inputs through today's engine, and the
whole explanation of a compact record rebuilt from its snapshot."""

from __future__ import annotations

from typing import Any

from acode_placement import explain
from acode_placement.config import package_version
from acode_placement.engine import PlacementEngine
from acode_placement.errors import InputError
from acode_placement.history.records import Record
from acode_placement.history.snapshot import inputs as snapshot_inputs
from acode_placement.models import (
    AnyTarget,
    Known,
    PlacementOptions,
    PlacementResult,
    TaskRequirements,
    Usage,
)

# What the rebuilt decision must say again, word for word, to be shown as the record's.
OUTCOME = (
    "requestId",
    "success",
    "target",
    "reason",
    "score",
    "strategy",
    "mode",
    "estimatedCost",
    "alternatives",
    "failureMessage",
    "taskName",
    "why",
    "handedOverFrom",
)


def inputs(
    record: Record,
) -> tuple[TaskRequirements, list[AnyTarget], list[Known], PlacementOptions, list[Usage] | None]:
    """The requirements, candidates, their capabilities as known then, the options and
    the reservations held (None when the decision did not reserve)."""
    if not record.candidates:
        why = record.failure_message or "its snapshot is gone"
        raise InputError(f"nothing to replay: {record.request_id} has no candidates ({why})")
    targets, known, usage = snapshot_inputs(record.candidates, record.usage)
    requirements = TaskRequirements.model_validate(record.requirements)
    options = PlacementOptions.model_validate(record.options)
    return requirements, targets, known, options, usage


def replay(engine: PlacementEngine, record: Record) -> PlacementResult:
    """Today's decision on the recorded inputs (no discovery, no history written)."""
    requirements, targets, known, options, usage = inputs(record)
    return engine.decide(
        requirements,
        targets,
        known,
        options,
        task_name=record.task_name,
        request_id=record.request_id,
        usage=usage,
    )


def explanation(engine: PlacementEngine, record: Record) -> dict[str, Any]:
    """The `place --json` object of a recorded decision, as it was printed.

    A record written whole is returned as it is. A compact record is decided again
    from its snapshot; the rebuilt explanation is returned when this engine version
    wrote the record and says the same outcome again (target, reason, score,
    alternatives, failure message, why...). Otherwise the stored outcome is returned
    without candidates, with `explained: false` and a `note` saying why.
    """
    stored = record.result
    if record.snapshot is None:
        return stored
    if record.engine_version != package_version():
        return _unexplained(stored, f"written by engine {record.engine_version}")
    if not record.candidates:
        return _unexplained(stored, "its snapshot is no longer stored")
    replayed = replay(engine, record)
    rebuilt = explain.result_json(replayed)
    differing = _differing(stored, rebuilt, replayed)
    if differing:
        return _unexplained(stored, f"deciding again changed {', '.join(differing)}")
    for key in ("decisionMs", "attempts", "reservation"):  # what deciding again cannot know
        rebuilt[key] = stored.get(key)
    return rebuilt


def _differing(
    stored: dict[str, Any], rebuilt: dict[str, Any], replayed: PlacementResult
) -> list[str]:
    """The outcome's keys that deciding again does not say as they were stored. A
    record keeps the first few alternatives with their scores and their number;
    one written before that kept them all (`alternativesTotal` absent)."""
    if "alternativesTotal" not in stored:
        return [key for key in OUTCOME if rebuilt.get(key) != stored.get(key)]
    again = explain.outcome_json(replayed, kept=len(stored.get("alternatives") or ()))
    keys = (*OUTCOME, "alternativeScores", "alternativesTotal")
    return [key for key in keys if again.get(key) != stored.get(key)]


def _unexplained(stored: dict[str, Any], why: str) -> dict[str, Any]:
    named, total = len(stored.get("alternatives") or ()), stored.get("alternativesTotal")
    if isinstance(total, int) and total > named:
        why += f"; it names the first {named} of {total} alternatives"
    return {
        **stored,
        "candidates": [],
        "explained": False,
        "note": f"the stored outcome alone: {why}",
    }

"""Decisions as JSON: the `place --json` object and its parts (candidates with their
checks in words, prices with source and date, the compact outcome a record keeps,
leases). The words come from `words`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from acode_placement.explain.words import (
    cause_counts,
    check_text,
    why,
)
from acode_placement.models import (
    AnyTarget,
    Ec2Target,
    Known,
    PlacementResult,
    Reservation,
    TargetScore,
)


def price_json(target: Ec2Target) -> dict[str, Any]:
    quote = target.price
    return {
        "hourly": target.hourly_rate,
        "source": quote.source if quote else ("declared" if target.hourly_rate else "unknown"),
        "asOf": quote.as_of.isoformat() if quote and quote.as_of else None,
        "spot": target.spot,
        "note": quote.note if quote else None,
    }


def target_json(target: AnyTarget, known: Known) -> dict[str, Any]:
    """A target as `targets --json` and the service show it: never its key path."""
    data = target.model_dump(mode="json", exclude={"capabilities"}, exclude_none=True)
    data.pop("identityFile", None)  # a key path is nobody's business but ssh's
    data["capabilities"] = known.capabilities.model_dump(mode="json", exclude_none=True)
    data["discovery"] = {"status": known.status.value, "cause": known.cause}
    if isinstance(target, Ec2Target):
        data["price"] = price_json(target)
    return data


def candidate_json(ts: TargetScore) -> dict[str, Any]:
    extra = {"price": price_json(ts.target)} if isinstance(ts.target, Ec2Target) else {}
    return {
        "id": ts.id,
        "type": ts.type.value,
        "eligible": ts.eligible,
        "score": round(ts.score, 6),
        "estimatedCost": ts.estimated_cost,
        "matches": [check_text(c) for c in ts.matches],
        "mismatches": [check_text(c) for c in ts.mismatches],
        "preferences": {
            "met": [check_text(c) for c in ts.preferences if c.ok],
            "missed": [check_text(c) for c in ts.preferences if not c.ok],
        },
        "stale": ts.stale,
        "discovery": {"status": ts.status.value, "cause": ts.cause},
        **extra,
    }


def result_json(
    result: PlacementResult, explained: Mapping[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The contract's `place --json` object (section 5), plus a few extra keys.
    `explained` holds candidates already rendered by `candidate_json`, by index."""
    ranked_ids = {ts.id for ts in result.ranked}
    others = [ts for ts in result.all_scores if ts.id not in ranked_ids]
    candidates = [
        explained[ts.index] if explained is not None else candidate_json(ts)
        for ts in (*result.ranked, *others)
    ]
    outcome = outcome_json(result)
    keys = list(outcome)
    at = keys.index("failureMessage")  # where the contract puts them
    return {
        **{k: outcome[k] for k in keys[:at]},
        "candidates": candidates,
        **{k: outcome[k] for k in keys[at:]},
    }


def outcome_json(result: PlacementResult, *, kept: int | None = None) -> dict[str, Any]:
    """`result_json` without the candidates. With `kept` (what a compact history
    record keeps, bounded whatever the fleet size), the first `kept` alternatives
    with their scores (`alternativeScores`) and how many there were in all
    (`alternativesTotal`): deciding again from the snapshot gives the rest."""
    whole = result.rendered
    if whole is None:
        whole = _outcome(result)
        object.__setattr__(result, "rendered", whole)  # frozen: the same every time
    # Each caller gets containers of its own: the kept rendering never leaves here.
    # The alternatives' ids are made for each (a record keeps 10 of thousands).
    target, lease = whole["target"], whole["reservation"]
    others = result.alternatives if kept is None else result.alternatives[:kept]
    outcome = {
        **whole,
        "target": dict(target) if target is not None else None,
        "alternatives": [ts.target.id for ts in others],  # not ts.id: a call per target
        "attempts": [dict(attempt) for attempt in whole["attempts"]],
        "reservation": dict(lease) if lease is not None else None,
        "causes": dict(whole["causes"]),
    }
    if kept is not None:
        outcome["alternativeScores"] = [round(ts.score, 6) for ts in others]
        outcome["alternativesTotal"] = len(result.alternatives)
    return outcome


def _outcome(result: PlacementResult) -> dict[str, Any]:
    chosen = result.selected
    return {
        "requestId": result.request_id,
        "success": result.success,
        "target": {"id": chosen.id, "type": chosen.type.value} if chosen else None,
        "reason": result.reason.value,
        "score": round(chosen.score, 6) if chosen else 0.0,
        "strategy": result.strategy,
        "mode": result.mode.value,
        "estimatedCost": result.estimated_cost,
        "decisionMs": round(result.decision_duration * 1000, 3),
        "alternatives": None,  # (its place among the keys: `outcome_json` fills it)
        "failureMessage": result.failure_message,
        "taskName": result.task_name,
        "why": why(result),
        "handedOverFrom": result.handed_over_from,
        "attempts": [
            {"target": a.target_id, "ok": a.ok, "error": a.error, "retryable": a.retryable}
            for a in result.attempts
        ],
        "reservation": lease_json(result.reservation) if result.reservation else None,
        # how many ruled-out targets show each cause (a target once per cause)
        "causes": dict(cause_counts(result.all_scores).most_common()),
    }


def lease_json(lease: Reservation) -> dict[str, Any]:
    return {
        "id": lease.id,
        "target": lease.target_id,
        "cpu": lease.resources.cpu,
        "memoryGb": lease.resources.memory_gb,
        "gpus": lease.resources.gpus,
        "owner": lease.owner,
        "taskName": lease.task_name,
        "requestId": lease.request_id,
        "created": lease.created_at.isoformat(),
        "expires": lease.expires_at.isoformat(),
        "ended": lease.ended_at.isoformat() if lease.ended_at else None,
        "endReason": lease.end_reason,
    }

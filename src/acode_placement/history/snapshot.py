"""What a decision saw, stored once and shared by every record that saw the same.

The engine is deterministic: the candidates as decided (each target, its
capabilities with their discovery status, its price, the reservations held on it)
with the requirements and options give the same decision and the same explanation
again. A snapshot holds those candidates as canonical JSON, compressed; its digest
(SHA-256 of the JSON) names it, so an unchanged fleet is stored once however many
decisions see it. A record keeps the digest and the outcome; `history show`
decides again from the snapshot to give the whole explanation.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter, is_
from typing import Any

from pydantic import TypeAdapter

from acode_placement import explain
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    DiscoveryStatus,
    Ec2Target,
    Known,
    PriceQuote,
    Target,
    Usage,
)

FORMAT = 1
_TARGET: TypeAdapter[AnyTarget] = TypeAdapter(Target)
_CAPABILITIES = attrgetter("capabilities")
_STATE = attrgetter("status", "cause", "known")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The candidates of a decision: `digest` names `data` (zlib-compressed JSON)."""

    digest: str
    data: bytes


def candidate(target: AnyTarget, known: Known) -> dict[str, Any]:
    """One candidate as a snapshot (and an old record's `candidates`) holds it."""
    data = target.model_dump(mode="json", exclude_none=True)
    data.pop("identityFile", None)  # a key path stays in the targets file
    entry: dict[str, Any] = {
        "target": data,
        "capabilities": known.capabilities.model_dump(mode="json", exclude_none=True),
        "discovery": {"status": known.status.value, "cause": known.cause},
        "known": known.known,
    }
    if isinstance(target, Ec2Target):
        entry["price"] = explain.price_json(target)
    return entry


def encode(
    targets: Sequence[AnyTarget], known: Sequence[Known], usage: Sequence[Usage] | None
) -> Snapshot:
    document = {
        "format": FORMAT,
        "candidates": [candidate(t, k) for t, k in zip(targets, known, strict=True)],
        "usage": None if usage is None else [[u.cpu, u.memory_gb, u.gpus, u.tasks] for u in usage],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return Snapshot(hashlib.sha256(text).hexdigest(), zlib.compress(text, 6))


def decode(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(zlib.decompress(data))
    return document


def inputs(
    candidates: Sequence[dict[str, Any]], usage: Sequence[Sequence[float]] | None
) -> tuple[list[AnyTarget], list[Known], list[Usage] | None]:
    """The targets, their capabilities as known then, and the reservations held,
    from a snapshot's (or an old record's) candidates."""
    targets = [_priced(_TARGET.validate_python(c["target"]), c.get("price")) for c in candidates]
    known = [
        Known(
            Capabilities.model_validate(c["capabilities"]),
            DiscoveryStatus((c.get("discovery") or {}).get("status", "declared")),
            (c.get("discovery") or {}).get("cause"),
            known=c.get("known", True),
        )
        for c in candidates
    ]
    held = None if usage is None else [Usage(u[0], u[1], u[2], int(u[3])) for u in usage]
    return targets, known, held


def _priced(target: AnyTarget, price: dict[str, Any] | None) -> AnyTarget:
    """An ec2 target with the price quote it had (source, date, note) restored."""
    if not isinstance(target, Ec2Target) or not price:
        return target
    as_of = price.get("asOf")
    return target.priced(
        PriceQuote(
            hourly=price.get("hourly"),
            source=str(price.get("source", "unknown")),
            as_of=date.fromisoformat(as_of) if as_of else None,
            spot=bool(price.get("spot", False)),
            note=price.get("note"),
        )
    )


class SnapshotMemo:
    """The last snapshot made, found again while the fleet is the same: the same
    target and `Known` objects, or the same target and capability objects (identity:
    they are immutable) with the same discovery statuses; and the same reservations
    (equality). A worker deciding on an unchanged fleet pays for the comparison, not
    for the JSON."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: _Kept | None = None

    def get(
        self, targets: Sequence[AnyTarget], known: Sequence[Known], usage: Sequence[Usage] | None
    ) -> Snapshot:
        held = None if usage is None else tuple(usage)
        last = self._last
        if last is not None and last.same(targets, known, held):
            return last.snapshot
        made = encode(targets, known, usage)
        self._last = _Kept(tuple(targets), tuple(known), held, made)  # tuples: kept as given
        return made


@dataclass(frozen=True, slots=True)
class _Kept:
    targets: tuple[AnyTarget, ...]
    known: tuple[Known, ...]
    usage: tuple[Usage, ...] | None
    snapshot: Snapshot

    def same(
        self,
        targets: Sequence[AnyTarget],
        known: Sequence[Known],
        usage: tuple[Usage, ...] | None,
    ) -> bool:
        if len(targets) != len(self.targets) or usage != self.usage:
            return False
        if targets is not self.targets and not all(map(is_, targets, self.targets)):
            return False  # (the very tuple kept is immutable: nothing to compare)
        if known is self.known:
            return True
        if all(map(is_, known, self.known)):
            return True
        # new Known objects (a discovery lookup makes them) over the same facts
        return all(map(is_, map(_CAPABILITIES, known), map(_CAPABILITIES, self.known))) and (
            list(map(_STATE, known)) == list(map(_STATE, self.known))
        )

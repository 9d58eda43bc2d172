"""cloud-first: a cloud target if any, the cheapest first; then ssh; then local."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from acode_placement.matching import Facts
from acode_placement.models import AnyTarget, Capabilities, TargetKind, TaskRequirements
from acode_placement.strategies.base import BuiltinStrategy, banded, cost_metric

if TYPE_CHECKING:
    from acode_placement.strategies.vector import Batch

_TIER = {TargetKind.EC2: 3, TargetKind.SSH: 2, TargetKind.LOCAL: 1}


class CloudFirst(BuiltinStrategy):
    name: ClassVar[str] = "cloud-first"
    description: ClassVar[str] = "a cloud target if any, the cheapest first; then ssh; then local"

    def rate(
        self,
        target: AnyTarget,
        requirements: TaskRequirements,
        capabilities: Capabilities,
        verdict: Facts,
    ) -> float:
        metric = cost_metric(verdict.estimated_cost)
        return banded(_TIER[target.kind], len(_TIER), metric, verdict.preference_share)

    def rate_all(self, requirements: TaskRequirements, batch: Batch) -> Any:
        from acode_placement.strategies import vector  # noqa: PLC0415  (numpy: columns only)

        tiers = vector.column(_TIER[TargetKind(kind)] for kind in batch.fleet.kind)
        metric = vector.cost_metric_of(batch)
        return vector.banded_all(tiers, len(_TIER), metric, batch.shares)

"""cost-optimized: the lowest estimated cost of one run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from acode_placement.matching import Facts
from acode_placement.models import AnyTarget, Capabilities, Reason, TargetScore, TaskRequirements
from acode_placement.strategies.base import BuiltinStrategy, banded, cost_metric

if TYPE_CHECKING:
    from acode_placement.strategies.vector import Batch


class CostOptimized(BuiltinStrategy):
    name: ClassVar[str] = "cost-optimized"
    description: ClassVar[str] = "the lowest estimated cost (hourlyRate x runtime)"

    def rate(
        self,
        target: AnyTarget,
        requirements: TaskRequirements,
        capabilities: Capabilities,
        verdict: Facts,
    ) -> float:
        return banded(1, 1, cost_metric(verdict.estimated_cost), verdict.preference_share)

    def rate_all(self, requirements: TaskRequirements, batch: Batch) -> Any:
        from acode_placement.strategies import vector  # noqa: PLC0415  (numpy: columns only)

        return vector.banded_all(1, 1, vector.cost_metric_of(batch), batch.shares)

    def reason(self, selected: TargetScore) -> Reason:
        return Reason.COST_OPTIMAL

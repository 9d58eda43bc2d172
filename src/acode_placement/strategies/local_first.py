"""local-first: an eligible local target if any; otherwise the cheapest remote one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from acode_placement.matching import Facts
from acode_placement.models import AnyTarget, Capabilities, Reason, TargetScore, TaskRequirements
from acode_placement.strategies.base import (
    BuiltinStrategy,
    banded,
    cost_metric,
    performance_metric,
)

if TYPE_CHECKING:
    from acode_placement.strategies.vector import Batch


class LocalFirst(BuiltinStrategy):
    name: ClassVar[str] = "local-first"
    description: ClassVar[str] = "a local target if any; else the cheapest remote one"

    def rate(
        self,
        target: AnyTarget,
        requirements: TaskRequirements,
        capabilities: Capabilities,
        verdict: Facts,
    ) -> float:
        prefs = verdict.preference_share
        if target.is_local:
            return banded(
                2, 2, performance_metric(target, requirements, capabilities, verdict), prefs
            )
        return banded(1, 2, cost_metric(verdict.estimated_cost), prefs)

    def rate_all(self, requirements: TaskRequirements, batch: Batch) -> Any:
        from acode_placement.strategies import vector  # noqa: PLC0415  (numpy: columns only)

        speed = vector.performance_metric_all(batch, requirements)
        local = vector.banded_all(2, 2, speed, batch.shares)
        remote = vector.banded_all(1, 2, vector.cost_metric_of(batch), batch.shares)
        return vector.where(batch.fleet.local, local, remote)

    def reason(self, selected: TargetScore) -> Reason:
        return Reason.LOCAL_PREFERRED if selected.target.is_local else Reason.COST_OPTIMAL

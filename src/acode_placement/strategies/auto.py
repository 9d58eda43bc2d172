"""auto: an eligible local target if any; otherwise the best balance of cost and speed."""

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

# Among remote targets: cost and speed weigh alike; preferences count too.
_COST, _SPEED, _PREFERENCES = 0.45, 0.45, 0.10


class Auto(BuiltinStrategy):
    name: ClassVar[str] = "auto"
    description: ClassVar[str] = (
        "an eligible local target if any; otherwise the best balance of cost and performance"
    )

    def rate(
        self,
        target: AnyTarget,
        requirements: TaskRequirements,
        capabilities: Capabilities,
        verdict: Facts,
    ) -> float:
        prefs = verdict.preference_share
        speed = performance_metric(target, requirements, capabilities, verdict)
        if target.is_local:
            return banded(2, 2, speed, prefs)
        balance = (
            _COST * cost_metric(verdict.estimated_cost) + _SPEED * speed + _PREFERENCES * prefs
        )
        return banded(1, 2, balance, prefs)

    def rate_all(self, requirements: TaskRequirements, batch: Batch) -> Any:
        from acode_placement.strategies import vector  # noqa: PLC0415  (numpy: columns only)

        shares = batch.shares
        speed = vector.performance_metric_all(batch, requirements)
        cost = vector.cost_metric_of(batch)
        balance = _COST * cost + _SPEED * speed + _PREFERENCES * shares
        local = vector.banded_all(2, 2, speed, shares)
        return vector.where(batch.fleet.local, local, vector.banded_all(1, 2, balance, shares))

    def reason(self, selected: TargetScore) -> Reason:
        return Reason.LOCAL_PREFERRED if selected.target.is_local else Reason.HIGHEST_SCORE

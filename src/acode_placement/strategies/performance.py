"""performance: the fastest expected completion, start-up latency included."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from acode_placement.matching import Facts
from acode_placement.models import AnyTarget, Capabilities, Reason, TargetScore, TaskRequirements
from acode_placement.strategies.base import (
    BuiltinStrategy,
    banded,
    performance_metric,
)

if TYPE_CHECKING:
    from acode_placement.strategies.vector import Batch


class Performance(BuiltinStrategy):
    name: ClassVar[str] = "performance"
    description: ClassVar[str] = (
        "the fastest expected completion: most capable hardware, start-up latency counted"
    )

    def rate(
        self,
        target: AnyTarget,
        requirements: TaskRequirements,
        capabilities: Capabilities,
        verdict: Facts,
    ) -> float:
        metric = performance_metric(target, requirements, capabilities, verdict)
        return banded(1, 1, metric, verdict.preference_share)

    def rate_all(self, requirements: TaskRequirements, batch: Batch) -> Any:
        from acode_placement.strategies import vector  # noqa: PLC0415  (numpy: columns only)

        metric = vector.performance_metric_all(batch, requirements)
        return vector.banded_all(1, 1, metric, batch.shares)

    def reason(self, selected: TargetScore) -> Reason:
        return Reason.CAPABILITY_MATCH

"""cloud-first: a cloud target if any, the cheapest first; then ssh; then local."""

from __future__ import annotations

from typing import ClassVar

from acode_placement.matching import Facts
from acode_placement.models import AnyTarget, Capabilities, TargetKind, TaskRequirements
from acode_placement.strategies.base import BuiltinStrategy, banded, cost_metric

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

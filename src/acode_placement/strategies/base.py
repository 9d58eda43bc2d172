"""What a strategy is, and the shared scale the built-in strategies score on."""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from acode_placement.matching import Facts, evaluate, model_matches
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    PlacementOptions,
    Reason,
    TargetScore,
    TaskRequirements,
)

if TYPE_CHECKING:
    from acode_placement.strategies.vector import Batch

QUANTUM = 1e9  # steps of a metric within a tier (see `banded`)


@runtime_checkable
class Strategy(Protocol):
    """A plug-in strategy: any object with these three members.

    `score` is called only for eligible targets and must return a float in (0, 1];
    higher wins. `can_handle` false hands the request to `auto`.
    """

    @property
    def name(self) -> str: ...

    def score(
        self, target: AnyTarget, requirements: TaskRequirements, capabilities: Capabilities
    ) -> float: ...

    def can_handle(self, requirements: TaskRequirements) -> bool: ...


class BuiltinStrategy(ABC):
    """Base of the built-ins: scores from the engine's verdict, so nothing is checked twice."""

    name: ClassVar[str]
    description: ClassVar[str]

    def can_handle(self, requirements: TaskRequirements) -> bool:
        return True

    def score(
        self, target: AnyTarget, requirements: TaskRequirements, capabilities: Capabilities
    ) -> float:
        verdict = evaluate(target, capabilities, requirements, PlacementOptions())
        return self.rate(target, requirements, capabilities, verdict)

    @abstractmethod
    def rate(
        self,
        target: AnyTarget,
        requirements: TaskRequirements,
        capabilities: Capabilities,
        verdict: Facts,
    ) -> float:
        """Score in (0, 1] of an eligible target, preferences included."""

    def reason(self, selected: TargetScore) -> Reason:
        return Reason.HIGHEST_SCORE

    def rate_all(self, requirements: TaskRequirements, batch: Batch) -> Any:
        """`rate` of many targets at once (`strategies.vector`): a float array, bit for
        bit what `rate` gives each. None: this strategy rates one target at a time."""
        return None


@functools.cache
def rates_all(kind: type[BuiltinStrategy]) -> bool:
    """Whether this strategy's `rate_all` is its `rate`'s twin: both defined by the
    same class (a subclass that changes `rate` alone is rated one target at a time)."""

    def owner(name: str) -> type:
        return next(c for c in kind.__mro__ if name in c.__dict__)

    return owner("rate_all") is owner("rate") and owner("rate_all") is not BuiltinStrategy


def banded(tier: int, tiers: int, metric: float, preference: float) -> float:
    """A score in (0, 1] ordered by tier, then metric, then preferences met.

    A higher tier always beats a lower one. Within a tier the metric in [0, 1]
    decides, compared to 1e-9; only when two metrics agree that far do the
    preferences (share met, in [0, 1]) decide. So meeting a preference never lowers
    a score, and never overturns what the strategy is for (the cheaper one wins
    under cost-optimized even when the dearer one meets a preference).
    """
    steps = math.floor(min(max(metric, 0.0), 1.0) * QUANTUM)
    inner = (steps + 0.25 + 0.5 * preference) / (QUANTUM + 1)
    return (tier - 1 + inner) / tiers


def cost_metric(cost: float | None) -> float:
    """1 for a free run, falling with cost; an unknown cost ranks below any known one."""
    if cost is None:
        return 0.0
    return 1.0 / (1.0 + math.log1p(cost))


# Rough relative throughput of a GPU model (H100 = 1). Unknown models get the
# value of their memory alone.
_GPU_SPEED = {
    "b200": 2.2,
    "gh200": 1.1,
    "h200": 1.1,
    "h100": 1.0,
    "mi300x": 1.1,
    "mi250": 0.5,
    "l40s": 0.45,
    "a100": 0.45,
    "rtx 4090": 0.4,
    "l40": 0.35,
    "a6000": 0.25,
    "a10g": 0.18,
    "a10": 0.18,
    "rtx 3090": 0.18,
    "v100": 0.15,
    "l4": 0.15,
    "t4": 0.06,
    "radeon pro v520": 0.05,
    "v520": 0.05,
    "k80": 0.02,
    "m60": 0.02,
}
# Minutes before a task starts: nothing here, a connection there, a boot in the cloud.
STARTUP_MINUTES = {"local": 0.0, "ssh": 0.5, "ec2": 3.0}


@functools.lru_cache(maxsize=512)
def gpu_speed(model: str | None) -> float:
    if model:
        for name, speed in _GPU_SPEED.items():
            if model_matches(name, model):
                return speed
    return 0.1


def performance_metric(
    target: AnyTarget,
    requirements: TaskRequirements,
    caps: Capabilities,
    verdict: Facts,
) -> float:
    """Expected share of wall time spent working, in (0, 1): more capable is higher.

    The task's runtime is taken at the requested size; the target's speed-up is
    the ratio of what it offers to what was asked (diminishing), and start-up
    latency is added: local < ssh < a cloud instance to start.
    """
    speed = math.pow(_ratio(caps.cpu, requirements.cpu), 0.5)
    speed *= math.pow(min(_ratio(caps.memory_gb, requirements.memory_gb), 8.0), 0.1)
    if requirements.needs_gpu and caps.gpu is not None and requirements.gpu is not None:
        wanted = requirements.gpu
        power = caps.gpu.count * gpu_speed(caps.gpu.model) * math.sqrt(caps.gpu.vram_gb or 8.0)
        asked = wanted.count * 0.1 * math.sqrt(wanted.min_vram or 8.0)
        speed *= math.pow(power / asked, 0.7)
    minutes = verdict.runtime_minutes
    elapsed = STARTUP_MINUTES[target.kind.value] + minutes / max(speed, 1e-6)
    return minutes / (minutes + elapsed)


def _ratio(offered: float | None, wanted: float | None) -> float:
    if offered is None or offered <= 0:
        return 1.0
    return offered / max(wanted or 1.0, 1.0)

"""The built-in strategies' scores over many targets at once, bit for bit.

A decision over a large fleet scores every eligible target, and `rate` in Python
costs about 3 µs a target (1.6 ms for the 464 a CPU task finds in 1,000). Here the
same arithmetic runs on the compiled fleet's columns. It gives the very floats
`rate` gives, not merely close ones:

- `+`, `-`, `*`, `/`, `floor`, `min` and `max` are exact in IEEE 754 (correctly
  rounded), so NumPy and Python agree on them when the operations come in the same
  order, which each function below keeps;
- `pow` and `log1p` are not: NumPy may use its own SIMD versions, which differ from
  the C library's in the last bit. So these are computed by `math`, once per
  distinct value (`_exact`): a fleet has few distinct CPU counts or memory sizes.

Each strategy's `rate_all` is held to its `rate` by a property test, and every
placement through the columns is held to the reference path by the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from acode_placement.models import AnyTarget, Capabilities, TaskRequirements
from acode_placement.strategies.base import QUANTUM, STARTUP_MINUTES, gpu_speed

Floats = Any  # a float64 NumPy array (NumPy's own types are too loose to help here)
_KEPT = 64  # columns kept per fleet by `ScoringColumns.per_row` (distinct asks)


@dataclass(frozen=True, slots=True)
class ScoringColumns:
    """What the strategies read of each target, as columns (NaN: not known)."""

    cpu: Floats
    memory: Floats
    gpu_power: Floats  # count x model throughput x sqrt(VRAM), as performance_metric has it
    has_gpu: Any  # bool array
    startup: Floats  # minutes before a task starts there
    local: Any  # bool array
    kind: Any  # the target kind's value, an object array
    whole: ScoringColumns | None = None  # these rows' fleet (`at`), None for a whole one
    rows: Any = None  # their rows in it, an index array
    kept: dict[Hashable, Floats] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, targets: Sequence[AnyTarget], caps: Sequence[Capabilities]) -> ScoringColumns:
        def power(c: Capabilities) -> float:
            gpu = c.gpu
            if gpu is None:
                return math.nan
            return gpu.count * gpu_speed(gpu.model) * math.sqrt(gpu.vram_gb or 8.0)

        return cls(
            cpu=_floats(c.cpu for c in caps),
            memory=_floats(c.memory_gb for c in caps),
            gpu_power=np.array([power(c) for c in caps], dtype=np.float64),
            has_gpu=np.array([c.gpu is not None for c in caps], dtype=bool),
            startup=np.array([STARTUP_MINUTES[t.kind.value] for t in targets], dtype=np.float64),
            local=np.array([t.is_local for t in targets], dtype=bool),
            kind=np.array([t.kind.value for t in targets], dtype=object),
        )

    def at(self, rows: Sequence[int]) -> ScoringColumns:
        """These rows only (the targets a decision scores)."""
        index = np.asarray(rows, dtype=np.intp)
        whole, where = (self, index) if self.whole is None else (self.whole, self.rows[index])
        return ScoringColumns(
            self.cpu[index],
            self.memory[index],
            self.gpu_power[index],
            self.has_gpu[index],
            self.startup[index],
            self.local[index],
            self.kind[index],
            whole,
            where,
        )

    def per_row(self, key: Hashable, make: Callable[[ScoringColumns], Floats]) -> Floats:
        """`make(columns)` for these rows, where `make` works row by row and `key` is
        everything it reads besides the columns (an ask). Made once over the whole
        fleet for each key and kept with it, then read at these rows: `_exact` finds a
        column's distinct values once per fleet and ask, not in every decision (3 of
        them took 135 µs of a 1 ms decision on 1,000 targets)."""
        whole = self.whole
        if whole is None:
            return make(self)
        made = whole.kept.get(key)
        if made is None:
            if len(whole.kept) >= _KEPT:
                whole.kept.clear()
            made = whole.kept[key] = make(whole)
        return made[self.rows]


@dataclass(frozen=True, slots=True)
class Batch:
    """The targets a decision scores at once: what `rate` reads of one target (its
    columns) and of its verdict (`Facts`: the run's minutes, the cost, NaN where not
    known, and the share of preferences met), for each of them."""

    fleet: ScoringColumns
    minutes: float
    costs: Floats
    shares: Floats
    # What a run of `minutes` costs on each target of the whole fleet (`fleet.whole`),
    # when the caller has it: then the cost metric is made once per fleet and runtime.
    whole_costs: Callable[[], Floats] | None = None


def banded_all(tier: Any, tiers: int, metric: Floats, preference: Floats) -> Floats:
    """`base.banded` of each target (`tier` a number or a column)."""
    steps = np.floor(np.minimum(np.maximum(metric, 0.0), 1.0) * QUANTUM)
    inner = (steps + 0.25 + 0.5 * preference) / (QUANTUM + 1)
    return (tier - 1 + inner) / tiers


def cost_metric_of(batch: Batch) -> Floats:
    """`cost_metric_all` of the batch's costs, read from the one made for the whole
    fleet and this runtime when the batch has its costs (see `ScoringColumns.per_row`)."""
    whole_costs = batch.whole_costs
    if whole_costs is None or batch.fleet.whole is None:
        return cost_metric_all(batch.costs)
    return batch.fleet.per_row(("cost", batch.minutes), lambda _: cost_metric_all(whole_costs()))


def cost_metric_all(costs: Floats) -> Floats:
    """`base.cost_metric` of each cost (NaN: not known, which scores 0)."""
    known = ~np.isnan(costs)
    out = np.zeros(len(costs), dtype=np.float64)
    out[known] = 1.0 / (1.0 + _exact(math.log1p, costs[known]))
    return out


def performance_metric_all(batch: Batch, requirements: TaskRequirements) -> Floats:
    """`base.performance_metric` of each target."""
    fleet, minutes = batch.fleet, batch.minutes
    cpu, memory = requirements.cpu, requirements.memory_gb
    speed = fleet.per_row(("cpu", cpu), lambda f: _exact(_root, _ratio_all(f.cpu, cpu)))
    speed = speed * fleet.per_row(
        ("memory", memory),
        lambda f: _exact(_tenth, np.minimum(_ratio_all(f.memory, memory), 8.0)),
    )
    wanted = requirements.gpu
    if requirements.needs_gpu and wanted is not None and fleet.has_gpu.any():
        asked = wanted.count * 0.1 * math.sqrt(wanted.min_vram or 8.0)
        factor = fleet.per_row(("gpu", asked), lambda f: _gpu_factor(f, asked))
        speed = np.where(fleet.has_gpu, speed * factor, speed)
    elapsed = fleet.startup + minutes / np.maximum(speed, 1e-6)
    return minutes / (minutes + elapsed)


def _gpu_factor(fleet: ScoringColumns, asked: float) -> Floats:
    """What the GPUs multiply each target's speed by (1 without one)."""
    gpus = fleet.has_gpu
    factor = np.ones(len(gpus), dtype=np.float64)
    factor[gpus] = _exact(_gpu_power, fleet.gpu_power[gpus] / asked)
    return factor


def _ratio_all(offered: Floats, wanted: float | None) -> Floats:
    """`base._ratio` of each offered value (NaN: not known)."""
    out = np.ones(len(offered), dtype=np.float64)
    usable = ~np.isnan(offered) & (offered > 0)
    out[usable] = offered[usable] / max(wanted or 1.0, 1.0)
    return out


def _root(ratio: float) -> float:
    return math.pow(ratio, 0.5)


def _tenth(ratio: float) -> float:
    return math.pow(ratio, 0.1)


def _gpu_power(ratio: float) -> float:
    return math.pow(ratio, 0.7)


def _exact(function: Callable[[float], float], values: Floats) -> Floats:
    """`function` (a `math` one) of each value, computed once per distinct value."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.float64)
    distinct, where = np.unique(values, return_inverse=True)
    return np.array([function(v) for v in distinct.tolist()], dtype=np.float64)[where]


def _floats(values: Any) -> Floats:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def where(mask: Any, yes: Floats, no: Floats) -> Floats:
    """`yes` where `mask`, else `no` (a strategy's two tiers)."""
    return np.where(mask, yes, no)


def column(values: Any) -> Floats:
    """Floats as a column."""
    return np.array(list(values), dtype=np.float64)

"""A fleet compiled into columns, so one decision rules out thousands of targets in a
few vector operations instead of a Python loop over every target.

`FleetColumns.survivors` decides the numeric and categorical requirements (cpu,
memory, disk, GPU vendor/VRAM/count, tools, os, arch, network, runtime, cost, mode,
cloud and local options) exactly as `matching.quick_eligible` does. GPU models,
custom keys and affinity are not in columns: when a task names any of them
(`exact` is False) the engine runs `quick_eligible` on each survivor. The property
tests hold the survivors to `quick_eligible` on random fleets.

Columns are built once per fleet and reused while the same target and capability
objects come back (both are immutable).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any

import numpy as np

from acode_placement.models import (
    OS,
    Arch,
    Capabilities,
    GpuTypeWanted,
    GpuVendor,
    Known,
    Mode,
    PlacementOptions,
    TargetKind,
    TaskRequirements,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from acode_placement.models import AnyTarget

    Floats = NDArray[np.float64]
    Codes = NDArray[np.int8]
    Mask = NDArray[np.bool_]

_NAN = float("nan")
_OS = {member: code for code, member in enumerate(OS)}
_ARCH = {member: code for code, member in enumerate(Arch)}
_VENDOR = {member.value: code for code, member in enumerate(GpuVendor)}
_KIND = {member: code for code, member in enumerate(TargetKind)}
_LOCAL, _EC2 = _KIND[TargetKind.LOCAL], _KIND[TargetKind.EC2]
_CAPABILITIES = attrgetter("capabilities")


def _floats(values: Sequence[float | None]) -> Floats:
    """A float column; None (not known) is NaN, which fails every comparison."""
    return np.array([_NAN if v is None else v for v in values], dtype=np.float64)


def _codes(values: Sequence[Any], codes: dict[Any, int]) -> Codes:
    return np.array([codes.get(v, -1) for v in values], dtype=np.int8)


class FleetColumns:
    """The targets' capabilities as NumPy columns, one row per target."""

    __slots__ = (
        "_lock",
        "_tools",
        "arch",
        "caps",
        "cpu",
        "disk",
        "gpu_count",
        "gpu_vendor",
        "gpu_vram",
        "kind",
        "known",
        "memory",
        "network",
        "os",
        "rate",
        "runtime",
        "size",
        "targets",
    )

    def __init__(self, targets: Sequence[AnyTarget], caps: Sequence[Capabilities]) -> None:
        self.targets = tuple(targets)
        self.caps = tuple(caps)
        self.size = len(self.targets)
        gpus = [c.gpu for c in self.caps]
        self.cpu = _floats([c.cpu for c in self.caps])
        self.memory = _floats([c.memory_gb for c in self.caps])
        self.disk = _floats([c.disk_gb for c in self.caps])
        self.gpu_count = _floats([0.0 if g is None else g.count for g in gpus])
        self.gpu_vram = _floats([None if g is None else g.vram_gb for g in gpus])
        self.gpu_vendor = _codes([None if g is None else g.type.value for g in gpus], _VENDOR)
        self.os = _codes([c.os for c in self.caps], _OS)
        self.arch = _codes([c.arch for c in self.caps], _ARCH)
        self.network = np.array([c.network is True for c in self.caps], dtype=np.bool_)
        self.runtime = _floats([c.max_runtime_minutes for c in self.caps])
        self.kind = _codes([t.kind for t in self.targets], _KIND)
        # What one hour costs: unknown is NaN on a cloud target (fails any maxCost) and
        # 0 on an owned machine, as `matching.estimated_cost` has it.
        self.rate = _floats(
            [
                t.hourly_rate if t.hourly_rate is not None else (None if t.is_cloud else 0.0)
                for t in self.targets
            ]
        )
        self._tools: dict[str, Mask] = {}
        self._lock = threading.Lock()
        self.known: tuple[Known, ...] = ()  # the last Known objects seen for these caps

    def same(self, targets: Sequence[AnyTarget], known: Sequence[Known]) -> bool:
        """Whether these are exactly the objects compiled (identity, not equality)."""
        if len(targets) != self.size or not all(map(is_, targets, self.targets)):
            return False
        if len(known) == self.size and all(map(is_, known, self.known)):
            return True
        if not all(map(is_, map(_CAPABILITIES, known), self.caps)):
            return False
        self.known = tuple(known)  # new Known objects over the same capabilities
        return True

    @staticmethod
    def exact(req: TaskRequirements) -> bool:
        """Whether `survivors` alone decides eligibility (no rule left to check)."""
        gpu = req.gpu
        return not (
            req.custom
            or req.affinity
            or req.anti_affinity
            or (gpu is not None and req.needs_gpu and gpu.model)
        )

    def costs(self, indices: Sequence[int], minutes: float) -> list[float | None]:
        """`matching.estimated_cost` of these targets (the same float operations)."""
        costs: list[float] = (self.rate[indices] * minutes / 60.0).tolist()
        return [None if math.isnan(cost) else cost for cost in costs]

    def has_tool(self, tool: str) -> Mask:
        """Which targets offer `tool` (built on first use, then kept)."""
        column = self._tools.get(tool)
        if column is None:
            column = np.array([tool in c.tools for c in self.caps], dtype=np.bool_)
            with self._lock:
                self._tools[tool] = column
        return column

    def survivors(
        self, req: TaskRequirements, options: PlacementOptions, minutes: float
    ) -> list[int]:
        """Indices of the targets that pass every requirement decided on columns.

        The same rules as `matching.quick_eligible`, in vector form: a NaN (not
        known) fails every comparison, as None fails there.
        """
        keep: Mask = np.ones(self.size, dtype=np.bool_)
        self._hardware(req, keep)
        for tool in req.tools:
            keep &= self.has_tool(tool)
        if req.os is not None:
            keep &= self.os == _OS[req.os]
        if req.arch is not None:
            keep &= self.arch == _ARCH[req.arch]
        if req.network:
            keep &= self.network
        if req.max_runtime_minutes is not None:
            keep &= ~(self.runtime < req.max_runtime_minutes)
        if req.max_cost is not None:
            keep &= self.rate * minutes / 60.0 <= req.max_cost
        if options.mode is not Mode.BURST:
            if options.mode is Mode.AIRGAPPED and req.network:
                return []
            keep &= self.kind == _LOCAL
        if not req.allow_cloud or not options.include_cloud:
            keep &= self.kind != _EC2
        if not options.include_local:
            keep &= self.kind != _LOCAL
        result: list[int] = np.flatnonzero(keep).tolist()
        return result

    def _hardware(self, req: TaskRequirements, keep: Mask) -> None:
        for wanted, column in (
            (req.cpu, self.cpu),
            (req.memory_gb, self.memory),
            (req.disk_gb, self.disk),
        ):
            if wanted is not None:
                keep &= column >= wanted
        gpu = req.gpu
        if gpu is not None and req.needs_gpu:
            keep &= self.gpu_count > 0
            keep &= self.gpu_count >= gpu.count
            if gpu.type is not GpuTypeWanted.ANY:
                keep &= self.gpu_vendor == _VENDOR[gpu.type.value]
            if gpu.min_vram is not None:
                keep &= self.gpu_vram >= gpu.min_vram


class ColumnCache:
    """The last few fleets compiled, found again by the identity of their objects.

    Holding the objects keeps their ids from being reused while they are cached.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._fleets: list[FleetColumns] = []
        self._lock = threading.Lock()

    def get(self, targets: Sequence[AnyTarget], known: Sequence[Known]) -> FleetColumns:
        for fleet in list(self._fleets):
            if fleet.same(targets, known):
                return fleet
        fleet = FleetColumns(targets, [facts.capabilities for facts in known])
        fleet.known = tuple(known)
        with self._lock:
            self._fleets = [fleet, *self._fleets[: self.size - 1]]
        return fleet

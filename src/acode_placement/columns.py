"""A fleet compiled into columns, so one decision rules out thousands of targets in a
few vector operations instead of a Python loop over every target.

`FleetColumns.failing` states, as one mask per check, the checks `matching.evaluate`
makes of the numeric and categorical requirements (cpu, memory, disk, GPU
vendor/VRAM/count, tools, os, arch, network, runtime, cost, mode, cloud and local
options). The survivors are the targets that fail none of them; the same masks
count the causes of mismatch for an explanation (`misses`) without building a
single check. GPU models, custom keys and affinity are not in columns: when a
task names any of them (`exact` is False) the engine runs `quick_eligible` on
each survivor, and causes are counted from the checks. The property tests hold
all of it to the reference path on random fleets.

Columns are built once per fleet and reused while the same target and capability
objects come back (both are immutable).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import Counter
from collections.abc import Hashable, Sequence
from operator import attrgetter, is_
from typing import TYPE_CHECKING, Any

import numpy as np

from acode_placement import explain
from acode_placement.models import (
    OS,
    WHERE_KINDS,
    Arch,
    Capabilities,
    Check,
    CheckKind,
    GpuTypeWanted,
    GpuVendor,
    Known,
    Misses,
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
    # A check as `explain` needs it (kind, wanted, key), and the targets failing it.
    Failing = tuple[CheckKind, object, str | None, Mask]

_INF = float("inf")
_OS = {member: code for code, member in enumerate(OS)}
_ARCH = {member: code for code, member in enumerate(Arch)}
_VENDOR = {member.value: code for code, member in enumerate(GpuVendor)}
_KIND = {member: code for code, member in enumerate(TargetKind)}
_LOCAL, _EC2 = _KIND[TargetKind.LOCAL], _KIND[TargetKind.EC2]
_CAPABILITIES = attrgetter("capabilities")
_COUNTED = 256  # cause counts kept per compiled fleet (distinct task shapes)


def _floats(values: Sequence[float | None], unknown: float) -> Floats:
    """A float column, with `unknown` where the value is None."""
    return np.array([unknown if v is None else v for v in values], dtype=np.float64)


def _codes(values: Sequence[Any], codes: dict[Any, int]) -> Codes:
    return np.array([codes.get(v, -1) for v in values], dtype=np.int8)


class FleetColumns:
    """The targets' capabilities as NumPy columns, one row per target."""

    __slots__ = (
        "_counted",
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
        # An amount not known is -inf: below anything asked, as None fails there.
        self.cpu = _floats([c.cpu for c in self.caps], -_INF)
        self.memory = _floats([c.memory_gb for c in self.caps], -_INF)
        self.disk = _floats([c.disk_gb for c in self.caps], -_INF)
        self.gpu_count = _floats([0.0 if g is None else g.count for g in gpus], -_INF)
        self.gpu_vram = _floats([None if g is None else g.vram_gb for g in gpus], -_INF)
        self.gpu_vendor = _codes([None if g is None else g.type.value for g in gpus], _VENDOR)
        self.os = _codes([c.os for c in self.caps], _OS)
        self.arch = _codes([c.arch for c in self.caps], _ARCH)
        self.network = np.array([c.network is True for c in self.caps], dtype=np.bool_)
        self.runtime = _floats([c.max_runtime_minutes for c in self.caps], _INF)  # no limit
        self.kind = _codes([t.kind for t in self.targets], _KIND)
        # What one hour costs: unknown is NaN on a cloud target (fails any maxCost) and
        # 0 on an owned machine, as `matching.estimated_cost` has it.
        self.rate = _floats(
            [
                t.hourly_rate if t.hourly_rate is not None else (None if t.is_cloud else 0.0)
                for t in self.targets
            ],
            math.nan,
        )
        self._tools: dict[str, Mask] = {}
        self._counted: dict[Hashable, Counter[str]] = {}
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

    def failing(
        self, req: TaskRequirements, options: PlacementOptions, minutes: float
    ) -> list[Failing]:
        """Each check `matching.evaluate` makes that columns decide, in its order, with
        the targets that fail it; a value not known fails as None fails there. GPU
        models, custom keys and affinity are not here (see `exact`)."""
        out = self._hardware(req)
        fails = _Collector(out)
        for tool in req.tools:
            fails(CheckKind.TOOL, ~self.has_tool(tool), tool, tool)
        if req.os is not None:
            fails(CheckKind.OS, self.os != _OS[req.os], req.os)
        if req.arch is not None:
            fails(CheckKind.ARCH, self.arch != _ARCH[req.arch], req.arch)
        if req.network:
            fails(CheckKind.NETWORK, ~self.network, True)
        runtime = req.max_runtime_minutes
        if runtime is not None:
            fails(CheckKind.RUNTIME, self.runtime < runtime, runtime)
        if req.max_cost is not None:
            fails(CheckKind.COST, ~(self.rate * minutes / 60.0 <= req.max_cost), req.max_cost)
        mode = options.mode
        if mode is not Mode.BURST:
            fails(CheckKind.MODE, self.kind != _LOCAL, mode, mode.value)
            if mode is Mode.AIRGAPPED and req.network:
                fails(CheckKind.MODE, np.ones(self.size, dtype=np.bool_), mode, "network")
        if not req.allow_cloud:
            fails(CheckKind.ALLOW_CLOUD, self.kind == _EC2, False)
        if not options.include_local:
            fails(CheckKind.OPTION, self.kind == _LOCAL, False, "includeLocal")
        if not options.include_cloud:
            fails(CheckKind.OPTION, self.kind == _EC2, False, "includeCloud")
        return out

    def _hardware(self, req: TaskRequirements) -> list[Failing]:
        out: list[Failing] = []
        fails = _Collector(out)
        for kind, wanted, column in (
            (CheckKind.CPU, req.cpu, self.cpu),
            (CheckKind.MEMORY, req.memory_gb, self.memory),
            (CheckKind.DISK, req.disk_gb, self.disk),
        ):
            if wanted is not None:
                fails(kind, column < wanted, wanted)
        gpu = req.gpu
        if gpu is not None and req.needs_gpu:
            some = self.gpu_count > 0
            fails(CheckKind.GPU, ~some, gpu.count)
            if gpu.type is not GpuTypeWanted.ANY:
                other = self.gpu_vendor != _VENDOR[gpu.type.value]
                fails(CheckKind.GPU_TYPE, some & other, gpu.type)
            if gpu.min_vram is not None:
                fails(CheckKind.GPU_VRAM, some & (self.gpu_vram < gpu.min_vram), gpu.min_vram)
            fails(CheckKind.GPU_COUNT, some & (self.gpu_count < gpu.count), gpu.count)
        return out

    def survivors(self, failing: Sequence[Failing]) -> list[int]:
        """Indices of the targets that fail none of these checks."""
        if not failing:
            return list(range(self.size))
        failed = np.logical_or.reduce([entry[3] for entry in failing])
        result: list[int] = np.flatnonzero(~failed).tolist()
        return result

    def misses(self, failing: Sequence[Failing], unknown: Sequence[bool]) -> Misses:
        """What `explain.misses` finds from every target's checks (the causes of
        mismatch, the nearest miss, whether a target failed only on where the task
        may run), from the masks. `unknown` marks targets whose discovery failed."""
        entries = self._entries(failing, unknown)
        count = np.zeros(self.size, dtype=np.int64)
        severity = np.zeros(self.size, dtype=np.int64)
        where = np.zeros(self.size, dtype=np.int64)
        for kind, wanted, key, mask in entries:
            count += mask
            severity += explain.severity(Check(kind, False, wanted, None, key)) * mask
            if kind in WHERE_KINDS:
                where += mask
        # the fewest misses, the easiest to fix; a target never probed comes last
        lost = np.array(unknown, dtype=np.bool_)
        ranked = np.lexsort((np.arange(self.size), severity, count, lost))
        only_where = bool(((count > 0) & (count == where)).any())
        return Misses(self._causes(entries), int(ranked[0]) if self.size else -1, only_where)

    def causes(
        self, failing: Sequence[Failing], unknown: Sequence[bool], minutes: float
    ) -> Counter[str]:
        """`misses(...).causes` alone (what the metrics and the log of every placement
        count), without the nearest miss's ranking. The masks follow from the checks
        (kind, wanted, key), the runtime the costs are for and which targets are
        unknown, so the count is kept for the next decision that asks the same of
        these columns (they never change)."""
        key = (
            tuple(entry[:3] for entry in failing),
            minutes,
            tuple(itertools.compress(itertools.count(), unknown)),
        )
        try:
            counted = self._counted.get(key)
        except TypeError:  # a wanted value that cannot be a key: counted each time
            return self._causes(self._entries(failing, unknown))
        if counted is None:
            counted = self._causes(self._entries(failing, unknown))
            if len(self._counted) >= _COUNTED:
                self._counted.clear()
            self._counted[key] = counted
        return counted  # shared: read, never changed (explain.cause_counts copies it)

    def _entries(self, failing: Sequence[Failing], unknown: Sequence[bool]) -> list[Failing]:
        """The checks with the targets failing each; a target whose capabilities are
        unknown fails the discovery check alone (what it lacks is not known either)."""
        if not any(unknown):
            return list(failing)
        lost = np.array(unknown)
        known = ~lost
        return [(CheckKind.DISCOVERY, None, None, lost)] + [
            (kind, wanted, key, mask & known) for kind, wanted, key, mask in failing
        ]

    @staticmethod
    def _causes(entries: Sequence[Failing]) -> Counter[str]:
        if not entries or not len(entries[0][3]):  # nothing checked, or no target
            return Counter()
        groups: dict[str, list[int]] = {}
        for order, (kind, wanted, key, _) in enumerate(entries):
            groups.setdefault(explain.cause_name(kind, wanted, key), []).append(order)
        masks = np.stack([entry[3] for entry in entries])
        if len(groups) < len(entries):  # a cause several checks show: a target once
            masks = np.stack([np.logical_or.reduce(masks[members]) for members in groups.values()])
        totals = np.count_nonzero(masks, axis=1).tolist()
        firsts = masks.argmax(axis=1).tolist()
        # A Counter over the targets in order meets each cause first at its first
        # target, and there at its first check: most_common() keeps that order on ties.
        met = []
        for (name, members), total, first in zip(groups.items(), totals, firsts, strict=True):
            if total:
                order = min(order for order in members if entries[order][3][first])
                met.append(((first, order), name, total))
        met.sort()
        return Counter({name: total for _, name, total in met})


class _Collector:
    """Appends a check's kind, wanted and key, and the targets failing it."""

    __slots__ = ("out",)

    def __init__(self, out: list[Failing]) -> None:
        self.out = out

    def __call__(
        self, kind: CheckKind, mask: Mask, wanted: object = None, key: str | None = None
    ) -> None:
        self.out.append((kind, wanted, key, mask))


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

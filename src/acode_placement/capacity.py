"""Free capacity: a target's capabilities less what its reservations hold.

Pure functions used by the engine when a decision reserves: what a target has in
all, what a task would take, what is left, and the checks that say so in words
("cpu 2 free of 8 (6 reserved by 2 tasks)").
"""

from __future__ import annotations

from dataclasses import replace

from acode_placement.explain import num
from acode_placement.matching import Verdict
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    Capacity,
    Check,
    CheckKind,
    GpuInfo,
    Resources,
    TaskRequirements,
    Usage,
)

AMOUNTS: dict[str, str] = {
    CheckKind.CPU: "cpu",
    CheckKind.MEMORY: "memory_gb",
    CheckKind.GPU_COUNT: "gpus",
}
# (explain.is_capacity recognises the checks annotated here.)


def capacity_of(target: AnyTarget, caps: Capabilities) -> Capacity:
    """What a target has in all. A cloud instance type is a new machine per task:
    only its `maxConcurrentTasks` limits it."""
    if target.is_cloud:
        return Capacity(max_tasks=target.max_concurrent_tasks)
    return Capacity(
        cpu=caps.cpu,
        memory_gb=caps.memory_gb,
        gpus=_devices(caps),
        max_tasks=target.max_concurrent_tasks,
    )


def wanted(requirements: TaskRequirements) -> Resources:
    """What a task takes: its cpu, memory and GPUs (nothing it did not ask for)."""
    gpus = requirements.gpu.count if requirements.gpu and requirements.gpu.required else 0.0
    return Resources(requirements.cpu or 0.0, requirements.memory_gb or 0.0, gpus)


def free(caps: Capabilities, capacity: Capacity, usage: Usage) -> Capabilities:
    """The capabilities with reserved amounts taken off (never below zero)."""
    if usage.empty:
        return caps
    update: dict[str, object] = {}
    if capacity.cpu is not None:
        update["cpu"] = max(0.0, capacity.cpu - usage.cpu)
    if capacity.memory_gb is not None:
        update["memory_gb"] = round(max(0.0, capacity.memory_gb - usage.memory_gb), 3)
    if caps.gpu is not None and capacity.gpus is not None:
        update["gpu"] = caps.gpu.model_copy(update={"count": max(0.0, capacity.gpus - usage.gpus)})
        if len(caps.gpus) > 1:  # several kinds: what is held is taken off the largest first
            update["gpus"], update["gpu"] = _take(caps.gpus, usage.gpus)
    return caps.model_copy(update=update) if update else caps


def _devices(caps: Capabilities) -> float | None:
    """GPU devices in all: of every kind when there are several."""
    if len(caps.gpus) > 1:
        return sum(kind.count for kind in caps.gpus)
    return caps.gpu.count if caps.gpu is not None else None


def _take(kinds: tuple[GpuInfo, ...], held: float) -> tuple[tuple[GpuInfo, ...], GpuInfo]:
    """The kinds with `held` devices taken off, the first (the largest) first.
    Reservations count devices, not which ones: this is the cautious reading."""
    left: list[GpuInfo] = []
    for kind in kinds:
        taken = min(kind.count, held)
        held -= taken
        left.append(kind.model_copy(update={"count": kind.count - taken}))
    return tuple(left), left[0]


def unfree(caps: Capabilities, usage: Usage) -> Capabilities:
    """The reverse of `free`: the capabilities with what reservations hold added back."""
    update: dict[str, object] = {}
    if caps.cpu is not None:
        update["cpu"] = caps.cpu + usage.cpu
    if caps.memory_gb is not None:
        update["memory_gb"] = round(caps.memory_gb + usage.memory_gb, 3)
    if caps.gpu is not None:
        update["gpu"] = caps.gpu.model_copy(update={"count": caps.gpu.count + usage.gpus})
    return caps.model_copy(update=update) if update else caps


def annotate(verdict: Verdict, capacity: Capacity, usage: Usage) -> Verdict:
    """Say what reservations hold in the amount checks, and check maxConcurrentTasks."""
    if usage.tasks == 0 and capacity.max_tasks is None:
        return verdict

    def note(check: Check) -> Check:
        if check.kind is CheckKind.GPU and not check.ok and capacity.gpus and usage.gpus:
            # every GPU is reserved: say so, rather than "no GPU"
            check = Check(CheckKind.GPU_COUNT, False, check.wanted, 0.0)
        field = AMOUNTS.get(check.kind)
        total = getattr(capacity, field) if field else None
        if field is None or total is None or check.offered is None:
            return check
        held = getattr(usage, field)
        return replace(check, key=_held(total, held, usage.tasks))

    matches = tuple(note(c) for c in verdict.matches)
    mismatches = tuple(note(c) for c in verdict.mismatches)
    if capacity.max_tasks is not None:
        check = Check(
            CheckKind.CONCURRENCY,
            usage.tasks < capacity.max_tasks,
            wanted=capacity.max_tasks,
            offered=usage.tasks,
        )
        if check.ok:
            matches = (*matches, check)
        else:
            mismatches = (*mismatches, check)
    return replace(verdict, matches=matches, mismatches=mismatches)


def _held(total: float, held: float, tasks: int) -> str:
    plural = "task" if tasks == 1 else "tasks"
    return f"of {num(total)} ({num(held)} reserved by {tasks} {plural})"

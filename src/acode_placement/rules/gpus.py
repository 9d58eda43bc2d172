"""The GPU rule, declared once: a GPU's presence, then its type, model, memory, count,
compute capability, driver and CUDA version, each its own kind with its words and
cause; and how a target with several kinds of GPU device (MIG instances, mixed
cards) is seen by one task: the kinds that fit it, pooled.
What must not live here: how a group derives its answers (`rules.groups`), NumPy, I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from acode_placement.explain.format import gpu_text, gpu_wish, listing
from acode_placement.models import (
    Check,
    CheckKind,
    GpuRequirement,
    GpuTypeWanted,
    PlacementOptions,
    TaskRequirements,
)
from acode_placement.rules.base import Compare, Values, read, wished
from acode_placement.rules.conditions import satisfies
from acode_placement.rules.groups import Group
from acode_placement.rules.kinds import Kind
from acode_placement.rules.selectors import model_matches
from acode_placement.rules.words import amount, declare, equal, version_cause, version_words

if TYPE_CHECKING:
    from acode_placement.models import AnyTarget, Capabilities


def _gpu_words(check: Check) -> str:
    if isinstance(check.wanted, GpuRequirement):  # a wish: the whole block
        return f"gpu {'matches' if check.ok else 'does not match'} {gpu_wish(check.wanted)}"
    return f"gpu {gpu_text(check.offered)}" if check.ok else "no GPU"


def _gpu_model_words(check: Check) -> str:
    if check.ok:
        return f"gpu model {check.offered}"
    shown = "unknown" if check.offered is None else check.offered
    return f"gpu model {shown}, not {listing(check.wanted)}"


def _capability_words(check: Check) -> str:
    """`compute capability 7.5 < 8.0` (written major.minor, as NVIDIA does)."""
    wanted = f"{check.wanted:.1f}"
    if check.offered is None:
        return f"compute capability unknown (needs >= {wanted})"
    return f"compute capability {check.offered:.1f} {'>=' if check.ok else '<'} {wanted}"


GPU = declare(CheckKind.GPU, _gpu_words, "no GPU", severity=2)
GPU_TYPE = declare(CheckKind.GPU_TYPE, equal("gpu type"), "wrong GPU type", severity=2)
GPU_MODEL = declare(CheckKind.GPU_MODEL, _gpu_model_words, "wrong GPU model", severity=2)
GPU_VRAM = declare(CheckKind.GPU_VRAM, amount("gpu vram"), "too little GPU memory", severity=1)
GPU_COUNT = declare(
    CheckKind.GPU_COUNT, amount("gpu count", fractions=True), "too few GPUs", severity=1
)
GPU_COMPUTE = declare(
    CheckKind.GPU_COMPUTE,
    _capability_words,
    lambda wanted, key: f"compute capability {'unknown' if key else 'too low'}",
    severity=2,
)
GPU_DRIVER = declare(
    CheckKind.GPU_DRIVER, version_words("driver"), version_cause("GPU driver"), severity=1
)
GPU_CUDA = declare(CheckKind.GPU_CUDA, version_words("cuda"), version_cause("CUDA"), severity=1)


def _gpu(name: str) -> Callable[[AnyTarget, Capabilities, float | None], Any]:
    """A reader of one field of a target's GPU (None without one)."""

    def reader(target: AnyTarget, caps: Capabilities, cost: float | None) -> Any:
        gpu = caps.gpu
        return None if gpu is None else getattr(gpu, name)

    return reader


def _has_gpu(target: AnyTarget, caps: Capabilities) -> bool:
    return caps.gpu is not None and caps.gpu.count > 0


def _needed_gpu(req: TaskRequirements, options: PlacementOptions) -> GpuRequirement | None:
    return req.gpu if req.needs_gpu else None


def _gpu_type(gpu: GpuRequirement, options: PlacementOptions) -> GpuTypeWanted | None:
    return None if gpu.type is GpuTypeWanted.ANY else gpu.type


def _same_vendor(offered: Any, wanted: Any) -> bool:
    return bool(offered.value == wanted.value)


def _any_model(offered: str, wanted: tuple[str, ...]) -> bool:
    return any(model_matches(name, offered) for name in wanted)


def _satisfies(kind: Kind, field: str) -> Compare:
    """A GPU's version (driver, CUDA) against a version specifier."""
    return Compare(
        kind,
        wanted=read(field),
        offered=_gpu(field),
        test=lambda offered, wanted: satisfies(wanted, offered),
        values=Values.CATEGORY,
        unknown_key="unknown",
    )


class _Kinds:
    """How one task sees a target with several kinds of GPU device (`gpus`: MIG
    instances, mixed cards): the kinds whose every device meets the task's device
    requirements (type, model, memory, compute capability, driver, CUDA), pooled
    into one offering (their total count; the least of their memory and compute
    capability). A task asking for 2 GPUs of 20 GB gets two devices of at least 20
    GB each, whatever their kinds. When no kind fits, the largest kind (`gpu`), so
    that the explanation says what it lacks."""

    def applies(self, target: AnyTarget, caps: Capabilities) -> bool:
        return len(caps.gpus) > 1

    def view(self, target: AnyTarget, caps: Capabilities, ask: Any) -> Capabilities:
        if len(caps.gpus) <= 1:
            return caps
        per_device = [(part, asked) for part, asked in ask[1] if part.kind is not GPU_COUNT]
        fit = [
            kind
            for kind in caps.gpus
            if kind.count > 0
            and all(
                part.passes(asked, target, caps.model_copy(update={"gpu": kind}), None)
                for part, asked in per_device
            )
        ]
        if not fit:
            return caps
        memory = [kind.vram_gb for kind in fit]
        compute = [kind.compute_capability for kind in fit]
        pooled = fit[0].model_copy(
            update={
                "count": sum(kind.count for kind in fit),
                "vram_gb": None if None in memory else min(m for m in memory if m is not None),
                "compute_capability": (
                    None if None in compute else min(c for c in compute if c is not None)
                ),
            }
        )
        return caps.model_copy(update={"gpu": pooled})


GPU_RULE = Group(
    GPU,
    wanted=_needed_gpu,
    wished=wished("gpu"),
    present=_has_gpu,
    absent=lambda gpu: gpu.count,
    whole=lambda target, caps: caps.gpu,
    pool=_Kinds(),
    parts=(
        Compare(
            GPU_TYPE,
            wanted=_gpu_type,
            offered=_gpu("type"),
            test=_same_vendor,
            values=Values.CATEGORY,
        ),
        Compare(
            GPU_MODEL,
            wanted=lambda gpu, options: gpu.model or None,
            offered=_gpu("model"),
            test=_any_model,
            values=Values.CATEGORY,
        ),
        Compare(GPU_VRAM, wanted=read("min_vram"), offered=_gpu("vram_gb"), test=operator.ge),
        Compare(GPU_COUNT, wanted=read("count"), offered=_gpu("count"), test=operator.ge),
        Compare(
            GPU_COMPUTE,
            wanted=read("min_compute_capability"),
            offered=_gpu("compute_capability"),
            test=operator.ge,
            unknown_key="unknown",
        ),
        _satisfies(GPU_DRIVER, "driver"),
        _satisfies(GPU_CUDA, "cuda"),
    ),
)

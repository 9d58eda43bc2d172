"""Hard requirements and soft preferences against one target: pure, no I/O.

Every requirement yields a `Check` carrying what was asked and what is offered, so
an explanation can quote the numbers. All mismatches of a target are kept.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from acode_placement.models import (
    AnyTarget,
    Capabilities,
    Check,
    CheckKind,
    GpuRequirement,
    GpuTypeWanted,
    Mode,
    PlacementOptions,
    Preferences,
    Scalar,
    TargetKind,
    TaskRequirements,
    share_met,
)

_VENDOR_PREFIX = re.compile(r"^(?:nvidia|amd|intel|apple|geforce|tesla)\s+")


@dataclass(frozen=True, slots=True)
class Verdict:
    """All checks of one target. Eligible exactly when `mismatches` is empty."""

    matches: tuple[Check, ...]
    mismatches: tuple[Check, ...]
    preferences: tuple[Check, ...]
    estimated_cost: float | None
    runtime_minutes: float

    @property
    def eligible(self) -> bool:
        return not self.mismatches

    @property
    def preference_share(self) -> float:
        return share_met(self.preferences)


def runtime_minutes(requirements: TaskRequirements, options: PlacementOptions) -> float:
    """The runtime that prices a run: the task's maximum, else the default."""
    return requirements.max_runtime_minutes or options.default_runtime_minutes


def estimated_cost(target: AnyTarget, minutes: float) -> float | None:
    """USD for one run; owned machines without a rate cost 0; None when unknown."""
    rate = target.hourly_rate
    if rate is None:
        return None if target.is_cloud else 0.0
    return rate * minutes / 60.0


def evaluate(
    target: AnyTarget,
    caps: Capabilities,
    requirements: TaskRequirements,
    options: PlacementOptions,
) -> Verdict:
    minutes = runtime_minutes(requirements, options)
    cost = estimated_cost(target, minutes)
    checks = [
        *_hardware(requirements, caps),
        *_platform(requirements, caps),
        *_limits(requirements, caps, cost),
        *_custom(requirements.custom, target, caps),
        *_placement(requirements, target, options),
    ]
    prefs = requirements.preferences
    return Verdict(
        matches=tuple(c for c in checks if c.ok),
        mismatches=tuple(c for c in checks if not c.ok),
        preferences=tuple(preference_checks(prefs, target, caps)) if prefs else (),
        estimated_cost=cost,
        runtime_minutes=minutes,
    )


class Facts(Protocol):
    """What a built-in strategy reads of a verdict."""

    @property
    def estimated_cost(self) -> float | None: ...

    @property
    def runtime_minutes(self) -> float: ...

    @property
    def preference_share(self) -> float: ...


class QuickFacts(NamedTuple):
    """A verdict's facts without its checks (the fast path's; a tuple is the
    cheapest object to make once per eligible target)."""

    estimated_cost: float | None
    runtime_minutes: float
    preference_share: float


def quick_preference_share(
    prefs: Preferences | None, target: AnyTarget, caps: Capabilities
) -> float:
    """`share_met(preference_checks(...))` without building the checks."""
    if prefs is None:
        return 0.0
    met = total = 0
    for wanted, offered in (
        (prefs.cpu, caps.cpu),
        (prefs.memory_gb, caps.memory_gb),
        (prefs.disk_gb, caps.disk_gb),
    ):
        if wanted is not None:
            total += 1
            met += offered is not None and offered >= wanted
    if prefs.gpu is not None:
        total += 1
        met += _gpu_ok(prefs.gpu, caps)
    for tool in prefs.tools:
        total += 1
        met += tool in caps.tools
    if prefs.os is not None:
        total += 1
        met += caps.os is prefs.os
    if prefs.arch is not None:
        total += 1
        met += caps.arch is prefs.arch
    for key, value in prefs.custom.items():
        total += 1
        offered_value = target.labels.get(key, caps.custom.get(key))
        met += offered_value is not None and _canonical(offered_value) == _canonical(value)
    if prefs.affinity:
        total += 1
        met += selects(prefs.affinity, target)
    if prefs.anti_affinity:
        total += 1
        met += not selects(prefs.anti_affinity, target)
    return met / total if total else 0.0


def quick_eligible(
    target: AnyTarget,
    caps: Capabilities,
    req: TaskRequirements,
    options: PlacementOptions,
    cost: float | None,
) -> bool:
    """Whether `evaluate` finds no mismatch, decided without building a single check.

    The fast path of a decision: most targets are ruled out by their first failing
    requirement. It states the same rules as the check builders below, in the same
    order; the property tests hold the two to the same answer on random fleets.
    """
    for wanted, offered in (
        (req.cpu, caps.cpu),
        (req.memory_gb, caps.memory_gb),
        (req.disk_gb, caps.disk_gb),
    ):
        if wanted is not None and (offered is None or offered < wanted):
            return False
    if req.gpu is not None and req.needs_gpu and not _gpu_ok(req.gpu, caps):
        return False
    if req.tools and not all(tool in caps.tools for tool in req.tools):
        return False
    if not _platform_ok(req, caps) or not _limits_ok(req, caps, cost):
        return False
    for key, value in req.custom.items():
        offered_value = target.labels.get(key, caps.custom.get(key))
        if offered_value is None or _canonical(offered_value) != _canonical(value):
            return False
    return _placement_ok(req, target, options)


def _gpu_ok(wanted: GpuRequirement, caps: Capabilities) -> bool:
    gpu = caps.gpu
    if gpu is None or gpu.count <= 0:
        return False
    if wanted.type is not GpuTypeWanted.ANY and gpu.type.value != wanted.type.value:
        return False
    if wanted.model and (
        gpu.model is None or not any(model_matches(m, gpu.model) for m in wanted.model)
    ):
        return False
    if wanted.min_vram is not None and (gpu.vram_gb is None or gpu.vram_gb < wanted.min_vram):
        return False
    return gpu.count >= wanted.count


def _platform_ok(req: TaskRequirements, caps: Capabilities) -> bool:
    if req.os is not None and caps.os is not req.os:
        return False
    if req.arch is not None and caps.arch is not req.arch:
        return False
    return not (req.network and caps.network is not True)


def _limits_ok(req: TaskRequirements, caps: Capabilities, cost: float | None) -> bool:
    wanted = req.max_runtime_minutes
    limit = caps.max_runtime_minutes
    if wanted is not None and limit is not None and wanted > limit:
        return False
    return req.max_cost is None or (cost is not None and cost <= req.max_cost)


def _placement_ok(req: TaskRequirements, target: AnyTarget, options: PlacementOptions) -> bool:
    if req.affinity and not selects(req.affinity, target):
        return False
    if req.anti_affinity and any(selects((entry,), target) for entry in req.anti_affinity):
        return False
    kind = target.kind
    if options.mode is not Mode.BURST:
        if kind is not TargetKind.LOCAL:
            return False
        if options.mode is Mode.AIRGAPPED and req.network:
            return False
    if kind is TargetKind.EC2 and (not req.allow_cloud or not options.include_cloud):
        return False
    return not (kind is TargetKind.LOCAL and not options.include_local)


def _at_least(kind: CheckKind, wanted: float | None, offered: float | None) -> Iterator[Check]:
    if wanted is not None:
        yield Check(kind, offered is not None and offered >= wanted, wanted, offered)


def _hardware(req: TaskRequirements, caps: Capabilities) -> Iterator[Check]:
    yield from _at_least(CheckKind.CPU, req.cpu, caps.cpu)
    yield from _at_least(CheckKind.MEMORY, req.memory_gb, caps.memory_gb)
    yield from _at_least(CheckKind.DISK, req.disk_gb, caps.disk_gb)
    if req.gpu is not None and req.needs_gpu:
        yield from gpu_checks(req.gpu, caps)
    yield from _tools(req.tools, caps)


def gpu_checks(wanted: GpuRequirement, caps: Capabilities) -> Iterator[Check]:
    """One `GPU` mismatch when there is none, else one check per stated property."""
    gpu = caps.gpu
    if gpu is None or gpu.count <= 0:
        yield Check(CheckKind.GPU, False, wanted.count, 0)
        return
    if wanted.type is not GpuTypeWanted.ANY:
        yield Check(CheckKind.GPU_TYPE, gpu.type.value == wanted.type.value, wanted.type, gpu.type)
    if wanted.model:
        ok = gpu.model is not None and any(model_matches(m, gpu.model) for m in wanted.model)
        yield Check(CheckKind.GPU_MODEL, ok, wanted.model, gpu.model)
    yield from _at_least(CheckKind.GPU_VRAM, wanted.min_vram, gpu.vram_gb)
    yield Check(CheckKind.GPU_COUNT, gpu.count >= wanted.count, wanted.count, gpu.count)


def _tools(wanted: Iterable[str], caps: Capabilities) -> Iterator[Check]:
    have = caps.tools
    for tool in wanted:
        yield Check(CheckKind.TOOL, tool in have, tool, None, key=tool)


def _platform(req: TaskRequirements, caps: Capabilities) -> Iterator[Check]:
    if req.os is not None:
        yield Check(CheckKind.OS, caps.os is req.os, req.os, caps.os)
    if req.arch is not None:
        yield Check(CheckKind.ARCH, caps.arch is req.arch, req.arch, caps.arch)
    if req.network:
        yield Check(CheckKind.NETWORK, caps.network is True, True, caps.network)


def _limits(req: TaskRequirements, caps: Capabilities, cost: float | None) -> Iterator[Check]:
    wanted = req.max_runtime_minutes
    if wanted is not None and caps.max_runtime_minutes is not None:
        ok = wanted <= caps.max_runtime_minutes
        yield Check(CheckKind.RUNTIME, ok, wanted, caps.max_runtime_minutes)
    if req.max_cost is not None:
        ok = cost is not None and cost <= req.max_cost
        yield Check(CheckKind.COST, ok, req.max_cost, cost)


def _custom(wanted: dict[str, Scalar], target: AnyTarget, caps: Capabilities) -> Iterator[Check]:
    for key, value in wanted.items():
        offered = target.labels.get(key, caps.custom.get(key))
        ok = offered is not None and _canonical(offered) == _canonical(value)
        yield Check(CheckKind.CUSTOM, ok, value, offered, key=key)


def _placement(
    req: TaskRequirements, target: AnyTarget, options: PlacementOptions
) -> Iterator[Check]:
    if req.affinity:
        yield Check(CheckKind.AFFINITY, selects(req.affinity, target), req.affinity, target.id)
    hit = next((entry for entry in req.anti_affinity if selects((entry,), target)), None)
    if hit is not None:
        yield Check(CheckKind.ANTI_AFFINITY, False, req.anti_affinity, target.id, key=hit)
    yield from _mode(req, target, options.mode)
    if not req.allow_cloud and target.is_cloud:
        yield Check(CheckKind.ALLOW_CLOUD, False, False, target.kind)
    if not options.include_local and target.is_local:
        yield Check(CheckKind.OPTION, False, False, target.kind, key="includeLocal")
    if not options.include_cloud and target.is_cloud:
        yield Check(CheckKind.OPTION, False, False, target.kind, key="includeCloud")


def _mode(req: TaskRequirements, target: AnyTarget, mode: Mode) -> Iterator[Check]:
    if mode is Mode.BURST:
        return
    if not target.is_local:
        yield Check(CheckKind.MODE, False, mode, target.kind, key=mode.value)
    if mode is Mode.AIRGAPPED and req.network:
        yield Check(CheckKind.MODE, False, mode, target.kind, key="network")


def preference_checks(prefs: Preferences, target: AnyTarget, caps: Capabilities) -> Iterator[Check]:
    """One check per wish; each tool and each custom key counts as its own wish."""
    yield from _at_least(CheckKind.CPU, prefs.cpu, caps.cpu)
    yield from _at_least(CheckKind.MEMORY, prefs.memory_gb, caps.memory_gb)
    yield from _at_least(CheckKind.DISK, prefs.disk_gb, caps.disk_gb)
    if prefs.gpu is not None:
        ok = all(c.ok for c in gpu_checks(prefs.gpu, caps))
        yield Check(CheckKind.GPU, ok, prefs.gpu, caps.gpu)
    yield from _tools(prefs.tools, caps)
    if prefs.os is not None:
        yield Check(CheckKind.OS, caps.os is prefs.os, prefs.os, caps.os)
    if prefs.arch is not None:
        yield Check(CheckKind.ARCH, caps.arch is prefs.arch, prefs.arch, caps.arch)
    yield from _custom(prefs.custom, target, caps)
    if prefs.affinity:
        yield Check(CheckKind.AFFINITY, selects(prefs.affinity, target), prefs.affinity, target.id)
    if prefs.anti_affinity:
        ok = not selects(prefs.anti_affinity, target)
        yield Check(CheckKind.ANTI_AFFINITY, ok, prefs.anti_affinity, target.id)


def selects(entries: Iterable[str], target: AnyTarget) -> bool:
    """Whether any entry names the target: an id (or a fleet's id), or `label=value`."""
    for entry in entries:
        name, sep, value = entry.partition("=")
        if sep:
            if target.labels.get(name.strip()) == value.strip():
                return True
        elif target.id == entry or target.id.startswith(entry + "/"):
            return True
    return False


def model_matches(wanted: str, offered: str) -> bool:
    """GPU models compare case-insensitively, without vendor, as whole names.

    `A100` matches `A100-80GB` and `NVIDIA A100-SXM4-40GB`; `A10` matches neither
    `A100` nor `A10G`.
    """
    return _model_pattern(_normalise_model(wanted)).search(_normalise_model(offered)) is not None


@functools.lru_cache(maxsize=256)
def _model_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|[\s_/-]){re.escape(name)}(?:$|[\s_/-])")


@functools.lru_cache(maxsize=1024)
def _normalise_model(name: str) -> str:
    text = " ".join(name.lower().split())
    while (stripped := _VENDOR_PREFIX.sub("", text)) != text:
        text = stripped
    return text


def _canonical(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

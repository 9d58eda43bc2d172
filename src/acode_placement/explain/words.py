"""Decisions in words: one line per check, cause names and counts, the nearest miss,
the failure message and `why`. The only prose about decisions is written here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime

from acode_placement.models import (
    WHERE_KINDS,
    Check,
    CheckKind,
    DiscoveryStatus,
    Ec2Target,
    GpuInfo,
    GpuRequirement,
    Misses,
    PlacementResult,
    Reason,
    Scores,
    TargetScore,
)

_AMOUNT_NAMES = {
    CheckKind.CPU: "cpu",
    CheckKind.MEMORY: "memoryGb",
    CheckKind.DISK: "diskGb",
    CheckKind.GPU_VRAM: "gpu vram",
    CheckKind.GPU_COUNT: "gpu count",
}

_CAUSES = {
    CheckKind.CPU: "not enough CPU",
    CheckKind.MEMORY: "not enough memory",
    CheckKind.DISK: "not enough disk",
    CheckKind.GPU: "no GPU",
    CheckKind.GPU_TYPE: "wrong GPU type",
    CheckKind.GPU_MODEL: "wrong GPU model",
    CheckKind.GPU_VRAM: "too little GPU memory",
    CheckKind.GPU_COUNT: "too few GPUs",
    CheckKind.TOOL: "missing tools",
    CheckKind.OS: "wrong os",
    CheckKind.ARCH: "wrong arch",
    CheckKind.NETWORK: "no network",
    CheckKind.RUNTIME: "runtime over the target's limit",
    CheckKind.COST: "over maxCost",
    CheckKind.CUSTOM: "custom requirement unmet",
    CheckKind.AFFINITY: "not in affinity",
    CheckKind.ANTI_AFFINITY: "excluded by antiAffinity",
    CheckKind.ALLOW_CLOUD: "cloud not allowed",
    CheckKind.DISCOVERY: "capabilities unknown (discovery failed)",
    CheckKind.CONCURRENCY: "at maxConcurrentTasks",
}
_CAPACITY_AMOUNTS = (CheckKind.CPU, CheckKind.MEMORY, CheckKind.GPU_COUNT)


# How hard a miss is to fix, for naming the nearest miss: a different machine is
# needed (2), more of something (1), or only a setting or a policy differs (0).
_SEVERITY = {
    **dict.fromkeys((CheckKind.GPU, CheckKind.GPU_TYPE, CheckKind.GPU_MODEL), 2),
    **dict.fromkeys((CheckKind.OS, CheckKind.ARCH, CheckKind.DISCOVERY), 2),
    **dict.fromkeys((CheckKind.CPU, CheckKind.MEMORY, CheckKind.DISK, CheckKind.TOOL), 1),
    **dict.fromkeys((CheckKind.GPU_VRAM, CheckKind.GPU_COUNT, CheckKind.NETWORK), 1),
}


def num(value: object) -> str:
    """A number as people write it: 16, 0.5, 1.25 (no trailing zeros)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _scalar(value: object) -> str:
    """A label or custom value as YAML writes it (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return num(value)


def money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def _listing(values: object) -> str:
    if isinstance(values, tuple | list):
        return ", ".join(str(v) for v in values)
    return str(values)


def check_text(check: Check) -> str:
    """One check as a short phrase with its numbers, e.g. `memoryGb 8 < 16`."""
    kind, ok, wanted, offered = check.kind, check.ok, check.wanted, check.offered
    if kind in _AMOUNT_NAMES:
        name = _AMOUNT_NAMES[kind]
        if offered is None:
            return f"{name} unknown (needs >= {num(wanted)})"
        if check.key:  # free capacity: "cpu 2 free of 8 (6 reserved by 2 tasks) < 4"
            return f"{name} {num(offered)} free {check.key} {'>=' if ok else '<'} {num(wanted)}"
        text = f"{name} {num(offered)} {'>=' if ok else '<'} {num(wanted)}"
        if kind is CheckKind.GPU_COUNT and not ok and 0 < offered < 1:
            text += " (a fraction of one GPU)"
        return text
    if kind is CheckKind.GPU:
        if isinstance(wanted, GpuRequirement):  # a preference: the whole block
            return f"gpu {'matches' if ok else 'does not match'} {gpu_wish(wanted)}"
        return f"gpu {gpu_text(offered)}" if ok else "no GPU"
    if kind in (CheckKind.GPU_TYPE, CheckKind.OS, CheckKind.ARCH):
        name = {CheckKind.GPU_TYPE: "gpu type", CheckKind.OS: "os", CheckKind.ARCH: "arch"}[kind]
        if ok:
            return f"{name} {offered}"
        return (
            f"{name} unknown (needs {wanted})"
            if offered is None
            else f"{name} {offered}, not {wanted}"
        )
    return _other_text(check)


def _other_text(check: Check) -> str:  # noqa: PLR0912 (one flat case per CheckKind)
    kind, ok, wanted, offered, key = check.kind, check.ok, check.wanted, check.offered, check.key
    if kind is CheckKind.GPU_MODEL:
        if ok:
            return f"gpu model {offered}"
        shown = "unknown" if offered is None else offered
        return f"gpu model {shown}, not {_listing(wanted)}"
    if kind is CheckKind.TOOL:
        return f"tool {key} {'found' if ok else 'missing'}"
    if kind is CheckKind.NETWORK:
        if ok:
            return "outbound network"
        return "network unknown" if offered is None else "no outbound network"
    if kind is CheckKind.RUNTIME:
        return f"maxRuntimeMinutes {num(wanted)} {'<=' if ok else '>'} {num(offered)}"
    if kind is CheckKind.COST:
        if offered is None:
            return f"estimated cost unknown (no hourlyRate) with maxCost {money(wanted)}"
        return f"estimated cost {money(offered)} {'<=' if ok else '>'} maxCost {money(wanted)}"
    if kind is CheckKind.CUSTOM:
        if ok:
            return f"{key}={_scalar(offered)}"
        if offered is None:
            return f"{key} not set (needs {_scalar(wanted)})"
        return f"{key} {_scalar(offered)}, not {_scalar(wanted)}"
    if kind is CheckKind.AFFINITY:
        return f"{'in' if ok else 'not in'} affinity {_listing(wanted)}"
    if kind is CheckKind.ANTI_AFFINITY:
        return (
            f"not in antiAffinity {_listing(wanted)}"
            if ok
            else f"excluded by antiAffinity {key or _listing(wanted)}"
        )
    if kind is CheckKind.MODE:
        if key == "network":
            return f"network needed but mode is {wanted}"
        return f"excluded by mode {key}"
    if kind is CheckKind.ALLOW_CLOUD:
        return "cloud not allowed (allowCloud: false)"
    if kind is CheckKind.DISCOVERY:
        return f"capabilities unknown: {key}"
    if kind is CheckKind.CONCURRENCY:
        held = f"{num(offered)} reserved task{'' if offered == 1 else 's'}"
        return f"{held} {'<' if ok else 'at'} maxConcurrentTasks {num(wanted)}"
    return f"excluded by option {key}=false"


def is_capacity(check: Check) -> bool:
    """A mismatch caused by reservations, not by the hardware."""
    return _capacity(check.kind, check.key)


def _capacity(kind: CheckKind, key: str | None) -> bool:
    return kind is CheckKind.CONCURRENCY or (kind in _CAPACITY_AMOUNTS and key is not None)


def cause(check: Check) -> str:
    """The short name of a mismatch, used to count causes over many targets."""
    return cause_name(check.kind, check.wanted, check.key)


def cause_name(kind: CheckKind, wanted: object, key: str | None) -> str:
    """`cause` of a failed check of this kind, wanted value and key (what the
    columns count from a mask, without making the check)."""
    if _capacity(kind, key):
        return "full (reserved)"
    if kind is CheckKind.MODE:
        if key == "network":
            return f"network needed in mode {wanted}"
        return f"excluded by mode {wanted}"
    if kind is CheckKind.OPTION:
        return f"excluded by option {key}=false"
    return _CAUSES[kind]


def gpu_text(gpu: object) -> str:
    if not isinstance(gpu, GpuInfo) or gpu.count <= 0:
        return "none"
    count = num(gpu.count)
    model = gpu.model or gpu.type.value
    vram = f" {num(gpu.vram_gb)} GB" if gpu.vram_gb is not None else ""
    return f"{count}x {model}{vram}"


def gpu_wish(gpu: GpuRequirement) -> str:
    parts = [f"{num(gpu.count)}x"]
    parts.append(_listing(gpu.model) if gpu.model else gpu.type.value)
    if gpu.min_vram is not None:
        parts.append(f">= {num(gpu.min_vram)} GB")
    return " ".join(parts)


def severity(check: Check) -> int:
    """How hard a miss is to fix: 2 a different machine, 1 more of something, 0 a setting."""
    return _SEVERITY.get(check.kind, 0)


def misses(scores: Sequence[TargetScore]) -> Misses:
    """What the targets lack: the causes of mismatch, the nearest miss, and whether
    some target failed only on where the task may run. A decision's `Scores` counts
    them on the fleet's columns when it could, and keeps them (the metrics, the log
    and a failure message all ask); otherwise they come from every target's checks."""
    if isinstance(scores, Scores):
        return scores.misses(lambda: _from_checks(scores))
    return _from_checks(scores)


def _from_checks(scores: Sequence[TargetScore]) -> Misses:
    causes = Counter(
        reason for ts in scores for reason in dict.fromkeys(cause(c) for c in ts.mismatches)
    )
    nearest = min(range(len(scores)), key=lambda i: _distance(scores[i]), default=-1)
    only_where = any(
        ts.mismatches and all(c.kind in WHERE_KINDS for c in ts.mismatches) for ts in scores
    )
    return Misses(causes, nearest, only_where)


def cause_counts(scores: Sequence[TargetScore]) -> Counter[str]:
    """How many targets show each cause of mismatch (a target counts once per cause),
    in the order `misses` gives them."""
    if isinstance(scores, Scores):
        return Counter(scores.causes(lambda: _from_checks(scores)))
    return Counter(misses(scores).causes)


def failure_message(scores: Sequence[TargetScore]) -> str:
    """`0/12 targets eligible: 7 no GPU, 3 over maxCost; closest: gpu-box, fails only ...`.

    Each target counts once under every cause it shows, so the counts may sum to
    more than the number of targets.
    """
    if not scores:
        return "no targets to consider"
    causes = ", ".join(f"{n} {what}" for what, n in cause_counts(scores).most_common())
    return f"0/{len(scores)} targets eligible: {causes}; {nearest_miss(scores)}"


def nearest_miss(scores: Sequence[TargetScore]) -> str:
    """The target that misses least: fewest mismatches, then the easiest to fix
    (a policy before an amount, an amount before a different machine)."""
    best = scores[misses(scores).nearest]
    texts = [check_text(c) for c in best.mismatches]
    if len(texts) == 1:
        return f"closest: {best.id}, fails only {texts[0]}"
    return f"closest: {best.id}, fails {len(texts)}: {'; '.join(texts)}"


def _distance(ts: TargetScore) -> tuple[bool, int, int, int]:
    """Fewest misses, then the easiest to fix; a target never probed comes last."""
    lost = any(c.kind is CheckKind.DISCOVERY for c in ts.mismatches)
    return lost, len(ts.mismatches), sum(severity(c) for c in ts.mismatches), ts.index


def why(result: PlacementResult) -> str:
    """One line saying why the selected target won, or why none could."""
    chosen = result.selected
    if chosen is None:
        return result.failure_message or "no target"
    eligible = 1 + len(result.alternatives)
    runner = result.alternatives[0] if result.alternatives else None
    prefix = ""
    if result.handed_over_from:
        prefix = f"strategy {result.handed_over_from} cannot handle this task, so auto decided: "
    match result.reason:
        case Reason.ONLY_OPTION:
            text = f"the only one of {len(result.all_scores)} targets that meets every requirement"
        case Reason.LOCAL_PREFERRED:
            text = (
                f"this machine meets every requirement and {result.strategy} prefers local targets"
            )
        case Reason.COST_OPTIMAL:
            text = f"lowest estimated cost ${money(chosen.estimated_cost)}"
            if runner is not None:
                text += f" (next: {runner.id} ${money(runner.estimated_cost)})"
        case Reason.CAPABILITY_MATCH:
            text = f"fastest expected completion for this task ({hardware_text(chosen)})"
            if runner is not None:
                text += f", ahead of {runner.id}"
        case _:
            text = (
                f"highest {result.strategy} score {chosen.score:.3f}"
                f" for ${money(chosen.estimated_cost)} on {hardware_text(chosen)}"
            )
            if runner is not None:
                text += f" (next: {runner.id} {runner.score:.3f}, ${money(runner.estimated_cost)})"
    if result.reason is not Reason.ONLY_OPTION:
        text += f"; {eligible} of {len(result.all_scores)} targets eligible"
    return prefix + text + "".join(f"; {note}" for note in _caveats(result, chosen))


def _caveats(result: PlacementResult, chosen: TargetScore) -> list[str]:
    """What a person should know beyond the ranking: unconfirmed values, a full local."""
    notes = [discovery_text(chosen)] if chosen.stale else []
    if chosen.usage is None:
        return notes  # no reservations were counted: no target can be full
    for ts in result.all_scores:
        if ts.target.is_local and ts.mismatches and all(is_capacity(c) for c in ts.mismatches):
            full = ", ".join(check_text(c) for c in ts.mismatches)
            notes.append(f"{ts.id} is full ({full}), so the task bursts")
    return notes


def discovery_text(ts: TargetScore) -> str:
    """Why a target's capabilities were not confirmed this time, and what was used."""
    used = "last known" if ts.status is DiscoveryStatus.STALE else "declared"
    return f"{ts.id} {ts.status.value} ({ts.cause}): {used} capabilities used"


def hardware_text(ts: TargetScore) -> str:
    caps = ts.capabilities
    parts = []
    if caps.cpu is not None:
        parts.append(f"{num(caps.cpu)} CPUs")
    if caps.memory_gb is not None:
        parts.append(f"{num(caps.memory_gb)} GB")
    if caps.gpu is not None and caps.gpu.count > 0:
        parts.append(gpu_text(caps.gpu))
    return ", ".join(parts) or "capabilities unknown"


def price_source(target: Ec2Target, today: date | None = None) -> str:
    """`catalog 2026-01-21 (309 days old)`, `AWS Price List API today`, `declared`."""
    quote = target.price
    if quote is None:
        return "declared" if target.hourly_rate is not None else "unknown"
    if quote.as_of is None:
        return quote.source
    age = ((today or datetime.now(UTC).date()) - quote.as_of).days
    when = "today" if age <= 0 else f"{quote.as_of.isoformat()} ({age} days old)"
    return f"{quote.source} {when}"


def price_text(target: Ec2Target) -> str:
    """`$1.006/h on demand, catalog 2026-01-21 (309 days old)`, with any note."""
    quote = target.price
    rate = target.hourly_rate
    shown = "price unknown" if rate is None else f"${num(rate)}/h"
    text = f"{shown} {'spot' if target.spot else 'on demand'}, {price_source(target)}"
    if quote is not None and quote.note:
        text += f" ({quote.note})"
    return text

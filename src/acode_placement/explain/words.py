"""Decisions in words: one line per check, cause names and counts, the nearest miss,
the failure message and `why`. The only prose about decisions is written here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from operator import attrgetter

from acode_placement.explain.format import gpus_text, money, num
from acode_placement.models import (
    AnyTarget,
    Check,
    CheckKind,
    DiscoveryStatus,
    Ec2Target,
    Misses,
    PlacementResult,
    Reason,
    Scores,
    TargetScore,
)
from acode_placement.rules.kinds import kind_of

_CAPACITY_AMOUNTS = (CheckKind.CPU, CheckKind.MEMORY, CheckKind.GPU_COUNT)
# A target ruled out before its requirements (`Known.excluded`): named nearest last.
_EXCLUDING = (CheckKind.DISCOVERY, CheckKind.UNVERIFIED)


def check_text(check: Check) -> str:
    """One check as a short phrase with its numbers, e.g. `memoryGb 8 < 16`: the words
    its kind declares (`rules.builtin`, or a plug-in's rule)."""
    return kind_of(check.kind).words(check)


def is_capacity(check: Check) -> bool:
    """A mismatch caused by reservations, not by the hardware."""
    return _capacity(check.kind, check.key)


def _capacity(kind: str, key: str | None) -> bool:
    return kind is CheckKind.CONCURRENCY or (kind in _CAPACITY_AMOUNTS and key is not None)


def cause(check: Check) -> str:
    """The short name of a mismatch, used to count causes over many targets."""
    return cause_name(check.kind, check.wanted, check.key)


def cause_name(kind: str, wanted: object, key: str | None) -> str:
    """`cause` of a failed check of this kind, wanted value and key (what the
    columns count from a mask, without making the check)."""
    if _capacity(kind, key):
        return "full (reserved)"
    return kind_of(kind).cause_of(wanted, key)


def severity(check: Check) -> int:
    """How hard a miss is to fix: 2 a different machine, 1 more of something, 0 a setting."""
    return kind_of(check.kind).severity


def misses(scores: Sequence[TargetScore]) -> Misses:
    """What the targets lack: the causes of mismatch, the nearest miss, and whether
    some target failed only on where the task may run. A decision's `Scores` counts
    them on the fleet's columns when it could, and keeps them (the metrics, the log
    and a failure message all ask); otherwise they come from every target's checks."""
    if isinstance(scores, Scores):
        return scores.misses(lambda: _from_checks(scores))
    return _from_checks(scores)


def _from_checks(scores: Sequence[TargetScore]) -> Misses:
    # An eligible target misses nothing: its checks (built only when read) are not read.
    missed = [ts for ts in scores if not ts.eligible]
    causes = Counter(
        reason for ts in missed for reason in dict.fromkeys(cause(c) for c in ts.mismatches)
    )
    nearest = min(range(len(scores)), key=lambda i: _distance(scores[i]), default=-1)
    only_where = any(
        ts.mismatches and all(kind_of(c.kind).where for c in ts.mismatches) for ts in missed
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
    if ts.eligible:  # no miss at all
        return False, 0, 0, ts.index
    lost = any(c.kind in _EXCLUDING for c in ts.mismatches)
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
    notes = [discovery_text(chosen)] if chosen.unconfirmed else []
    # a cost is None only for a cloud target without a price: is_cloud is asked of
    # those, and only once the costs, read in C, show one (thousands may be eligible)
    unpriced = 0
    if chosen.estimated_cost is None or None in map(_COST, result.alternatives):
        ranked = [chosen, *result.alternatives]
        unpriced = sum(1 for ts in ranked if ts.estimated_cost is None and ts.target.is_cloud)
    if unpriced:
        notes.append(f"{unpriced} eligible without a price (hourlyRate or ec2Api gives one)")
    if result.options.require_verified:
        unverified = kind_of(CheckKind.UNVERIFIED).cause_of(None, None)
        left_out = cause_counts(result.all_scores).get(unverified, 0)
        notes.append(f"verified capabilities only ({left_out} unverified left out)")
    if chosen.usage is None:
        return notes  # no reservations were counted: no target can be full
    for ts in result.all_scores:
        if ts.target.is_local and ts.mismatches and all(is_capacity(c) for c in ts.mismatches):
            full = ", ".join(check_text(c) for c in ts.mismatches)
            notes.append(f"{ts.id} is full ({full}), so the task bursts")
    return notes


_COST = attrgetter("estimated_cost")


def unpriced_text(targets: Sequence[AnyTarget], eligible: bool = False) -> str:
    """`561 of 603 EC2 types have no price ...`, or '' when every cloud target has one."""
    cloud = [t for t in targets if t.is_cloud]
    missing = sum(1 for t in cloud if t.hourly_rate is None)
    if not missing:
        return ""
    which = "eligible EC2 types" if eligible else "EC2 types"
    return (
        f"{missing} of {len(cloud)} {which} have no price (not in the shipped catalog for"
        " their region): give an hourlyRate, or ec2Api with AWS credentials for the Price"
        " List API"
    )


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
        parts.append(gpus_text(caps))
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

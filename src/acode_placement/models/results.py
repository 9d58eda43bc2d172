"""What a decision says: checks, scores (made lazily), cause counts, attempts and the
placement result (leases and what they hold: `models.reservations`).

Frozen slotted dataclasses, made on every decision and cheap; prose for any of
them lives in `explain`, never here.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from acode_placement.memo import IdentityMemo
from acode_placement.models.base import (
    Mode,
    Reason,
    TargetKind,
)
from acode_placement.models.reservations import Reservation, Usage
from acode_placement.models.settings import (
    PlacementOptions,
)
from acode_placement.models.targets import (
    AnyTarget,
    Capabilities,
)


class CheckKind(enum.StrEnum):
    """What one check compared. Each is declared, with its words, in `rules.builtin`."""

    CPU = "cpu"
    MEMORY = "memoryGb"
    DISK = "diskGb"
    GPU = "gpu"
    GPU_TYPE = "gpuType"
    GPU_MODEL = "gpuModel"
    GPU_VRAM = "gpuVram"
    GPU_COUNT = "gpuCount"
    GPU_COMPUTE = "gpuComputeCapability"
    GPU_DRIVER = "gpuDriver"
    GPU_CUDA = "gpuCuda"
    TOOL = "tool"
    TOOL_VERSION = "toolVersion"
    TOOL_VERSION_UNKNOWN = "toolVersionUnknown"
    OS = "os"
    ARCH = "arch"
    NETWORK = "network"
    RUNTIME = "maxRuntimeMinutes"
    COST = "maxCost"
    CUSTOM = "custom"
    AFFINITY = "affinity"
    ANTI_AFFINITY = "antiAffinity"
    MODE = "mode"
    ALLOW_CLOUD = "allowCloud"
    OPTION = "option"
    DISCOVERY = "discovery"
    UNVERIFIED = "unverified"  # requireVerified: the values were not confirmed
    CONCURRENCY = "maxConcurrentTasks"


class DiscoveryStatus(enum.StrEnum):
    """Where a target's capabilities for a decision came from.

    `fresh`: probed just now. `cached`: probed within the cache's time-to-live.
    `declared`: from the targets file only (discovery off, or nothing probes this
    kind). `stale`: discovery failed or was late, so the last known values are
    used. `unreachable`: no connection, nothing discovered before: declared values
    used. `unverified`: connected but the answer could not be trusted (host key,
    login, probe output) or came too late, nothing discovered before: declared
    values used. `catalog`: an EC2 type's facts from the shipped catalog (dated
    data, not what a machine or the EC2 API said); `cause` says why and of when.
    """

    FRESH = "fresh"
    CACHED = "cached"
    DECLARED = "declared"
    STALE = "stale"
    UNREACHABLE = "unreachable"
    UNVERIFIED = "unverified"
    CATALOG = "catalog"


@dataclass(frozen=True, slots=True)
class Known:
    """A target's capabilities for one decision, and how they are known.

    `capabilities` are the discovered values over the declared ones; `discovered`
    the discovered values alone (None when nothing was ever discovered).
    `known` is False when discovery failed and nothing was declared: the target
    is then excluded, with `cause` as the reason.
    """

    capabilities: Capabilities
    status: DiscoveryStatus = DiscoveryStatus.DECLARED
    cause: str | None = None
    discovered: Capabilities | None = None
    notes: tuple[str, ...] = ()
    known: bool = True

    @property
    def stale(self) -> bool:
        """True when discovery did not confirm these values this time."""
        return self.status in _DEGRADED

    def excluded(self, require_verified: bool) -> Check | None:
        """The one check that rules the target out before any requirement is looked
        at: its capabilities are not known (discovery failed, nothing declared), or,
        with `require_verified`, were not confirmed. What it lacks is not known (or
        not trusted) either, so this is its only mismatch."""
        if not self.known:
            return Check(CheckKind.DISCOVERY, False, key=self.cause or self.status.value)
        if require_verified and self.status not in VERIFIED:
            shown = f"{self.status.value} ({self.cause})" if self.cause else self.status.value
            return Check(CheckKind.UNVERIFIED, False, True, self.status.value, shown)
        return None


_DEGRADED = frozenset(
    {DiscoveryStatus.STALE, DiscoveryStatus.UNREACHABLE, DiscoveryStatus.UNVERIFIED}
)
# Confirmed for this decision: probed, from a fresh cache, or an EC2 type's own facts.
VERIFIED = frozenset({DiscoveryStatus.FRESH, DiscoveryStatus.CACHED, DiscoveryStatus.CATALOG})


@dataclass(frozen=True, slots=True)
class Check:
    """One requirement (or preference) against one target.

    `wanted` is what the task asked, `offered` what the target has (None: unknown).
    `key` names the sub-item: a tool, a custom key, a mode or an option name.
    """

    kind: str  # a CheckKind, or a plug-in rule's own kind (`rules.register`)
    ok: bool
    wanted: Any = None
    offered: Any = None
    key: str | None = None


CheckSets = tuple[tuple[Check, ...], tuple[Check, ...], tuple[Check, ...]]


class LazyChecks:
    """A target's (matches, mismatches, preferences), computed once, on first use."""

    __slots__ = ("_compute", "_value")

    def __init__(
        self, value: CheckSets | None = None, compute: Callable[[], CheckSets] | None = None
    ) -> None:
        if value is None and compute is None:
            raise ValueError("LazyChecks needs a value or a way to compute it")
        self._value = value
        self._compute = compute

    def get(self, score: TargetScore | None = None) -> CheckSets:
        """The checks (`score` is the TargetScore asking; a shared source needs it)."""
        if self._value is None:
            assert self._compute is not None
            self._value = self._compute()
            self._compute = None
        return self._value


# Exclusions that come from where the task may run, not from what it needs.
def share_met(preferences: tuple[Check, ...]) -> float:
    """Share of soft preferences met, in [0, 1]; 0 when none were given."""
    return sum(c.ok for c in preferences) / len(preferences) if preferences else 0.0


@dataclass(slots=True)  # not frozen: a frozen __init__ costs 4x, and one is made per target
class TargetScore:
    """One target's verdict. `score` is in (0, 1] when eligible, else 0. Treat as read-only.

    `matches`, `mismatches` and `preferences` come from `checks`, which an ineligible
    target computes only when something reads them (an explanation): a decision
    needs none of them to rule a target out.
    """

    target: AnyTarget
    capabilities: Capabilities
    eligible: bool
    score: float
    checks: LazyChecks
    estimated_cost: float | None = None
    index: int = 0
    status: DiscoveryStatus = DiscoveryStatus.DECLARED
    cause: str | None = None
    usage: Usage | None = None  # active reservations, when the decision reserves
    preference_share: float = 0.0  # share of soft preferences met

    @property
    def matches(self) -> tuple[Check, ...]:
        return self.checks.get(self)[0]

    @property
    def mismatches(self) -> tuple[Check, ...]:
        return self.checks.get(self)[1]

    @property
    def preferences(self) -> tuple[Check, ...]:
        return self.checks.get(self)[2]

    @property
    def id(self) -> str:
        return self.target.id

    @property
    def stale(self) -> bool:
        """True when discovery did not confirm this target's capabilities."""
        return self.status in _DEGRADED

    @property
    def unconfirmed(self) -> bool:
        """Stale, or declared values used while the target's first probe runs in the
        background (`cause` says so): either way, worth a word to the reader."""
        return self.stale or (self.status is DiscoveryStatus.DECLARED and self.cause is not None)

    @property
    def type(self) -> TargetKind:
        return self.target.kind

    @property
    def preference_fraction(self) -> float:
        return self.preference_share


class Scores(Sequence[TargetScore]):
    """Every target's TargetScore in the order given, the eligible ones made up front.

    A ruled-out target's TargetScore is made when first read and then kept, so a
    decision over 10,000 targets pays only for the few that can run the task, and
    an explanation still finds every target's checks.
    """

    __slots__ = (
        "_causes",
        "_count",
        "_count_causes",
        "_kept",
        "_made",
        "_make",
        "_misses",
        "_size",
        "eligible",
        "ranked",
    )

    def __init__(
        self,
        size: int,
        eligible: dict[int, TargetScore],
        make: Callable[[int], TargetScore],
        misses: Callable[[], Misses] | None = None,
        causes: Callable[[], Counter[str]] | None = None,
        *,
        ranked: bool = False,
    ) -> None:
        self._size = size
        self._made = dict(eligible)
        self._make = make
        self._count = misses  # counts them without building checks, when it can
        self._kept: tuple[IdentityMemo[object, Misses], tuple[object, ...]] | None = None
        self._count_causes = causes  # the causes alone, cheaper still
        self._misses: Misses | None = None
        self._causes: Counter[str] | None = None
        self.eligible = list(eligible.values())
        self.ranked = ranked  # `eligible` is in the decision's rank order already

    def misses(self, from_checks: Callable[[], Misses]) -> Misses:
        """What the targets lack (see `explain.misses`), counted once: on the
        fleet's columns when the decision could, else by `from_checks`."""
        if self._misses is None:
            self._misses = (self._count or from_checks)()
            if self._kept is not None:
                self._kept[0].keep(self._kept[1], self._misses)
        return self._misses

    def counted_once_per(
        self, memo: IdentityMemo[object, Misses], inputs: tuple[object, ...]
    ) -> None:
        """Take the misses `memo` keeps for these very inputs (the same requirements,
        options, targets and facts objects: all immutable, so the same answer), or
        keep them there once counted. A caller placing the same task on the same
        small fleet again and again counts its causes once, not every time."""
        found = memo.find(inputs)
        if found is not None:
            self._misses = found
        else:
            self._kept = (memo, inputs)

    def causes(self, from_checks: Callable[[], Misses]) -> Counter[str]:
        """`misses(...).causes`, without ranking the nearest miss when the columns
        can count the causes alone (the metrics and the log of every placement)."""
        if self._misses is not None:
            return self._misses.causes
        if self._count_causes is None:
            return self.misses(from_checks).causes
        if self._causes is None:
            self._causes = self._count_causes()
        return self._causes

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> TargetScore: ...

    @overload
    def __getitem__(self, index: slice) -> list[TargetScore]: ...

    def __getitem__(self, index: int | slice) -> TargetScore | list[TargetScore]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("target index out of range")
        made = self._made.get(index)
        if made is None:
            made = self._made[index] = self._make(index)
        return made

    def __iter__(self) -> Iterator[TargetScore]:
        for index in range(self._size):
            yield self[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(other) == self._size and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Scores({self._size} targets, {len(self.eligible)} eligible)"


@dataclass(frozen=True, slots=True)
class Misses:
    """What a decision's ruled-out targets lack: how many targets show each cause of
    mismatch (in the order `Counter.most_common` gives), the index of the nearest
    miss (fewest mismatches, then the easiest to fix, then the first), and whether
    some target failed only on where the task may run (a `Kind` whose `where`
    is set: a mode, an option, a policy)."""

    causes: Counter[str]
    nearest: int
    only_where: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try to acquire a ranked target (see `PlacementEngine.acquire`)."""

    target_id: str
    ok: bool
    error: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class PlacementResult:
    """The decision. `selected` is None exactly when `success` is False.

    `alternatives` are the other eligible targets in rank order (the fallback
    order); `all_scores` holds every target in the order of the targets given.
    `decision_duration` is in seconds. `handed_over_from` names a strategy that
    could not handle the request and passed it to auto.
    """

    request_id: str
    task_name: str | None
    success: bool
    selected: TargetScore | None
    reason: Reason
    all_scores: Sequence[TargetScore]
    alternatives: tuple[TargetScore, ...]
    strategy: str
    mode: Mode
    failure_message: str | None = None
    decision_duration: float = 0.0
    handed_over_from: str | None = None
    attempts: tuple[Attempt, ...] = ()
    options: PlacementOptions = field(default_factory=PlacementOptions)
    reservation: Reservation | None = None
    # Its outcome as JSON (`explain.outcome_json`), made once for the history record
    # and the answer. Not an argument: a result made by `replace` makes its own.
    rendered: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def selected_target(self) -> AnyTarget | None:
        return self.selected.target if self.selected else None

    @property
    def estimated_cost(self) -> float | None:
        return self.selected.estimated_cost if self.selected else None

    @property
    def ranked(self) -> tuple[TargetScore, ...]:
        """Every eligible target kept, best first."""
        return ((self.selected,) if self.selected else ()) + self.alternatives

"""Every built-in requirement kind, declared once: where the wanted value is read from
the task, where the offered value is read from a target, the comparison, the cause
it is counted under, and its words. The table's order is the order of a target's
checks (and of its explanation).

The GPU rule is declared in `rules.gpus`, the shared words in `rules.words`.
To add a requirement kind: declare its `Kind` and its rule here (or in a plug-in,
with `rules.register`), and give the task and the capabilities the fields it reads.
The check builder, the fast path and the fleet's columns all follow from the rule.
What must not live here: how a shape derives its three answers (`rules.base`),
NumPy, I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from acode_placement.explain.format import listing, money, num
from acode_placement.models import (
    Check,
    CheckKind,
    Mode,
    PlacementOptions,
    TargetKind,
    TaskRequirements,
)
from acode_placement.rules.base import Compare, Each, Rule, Values, capability, read, wished
from acode_placement.rules.conditions import holds
from acode_placement.rules.gpus import GPU_RULE
from acode_placement.rules.kinds import Kind
from acode_placement.rules.selectors import Avoids, Selects
from acode_placement.rules.tools import Tools
from acode_placement.rules.words import (
    DECLARED,
    amount,
    custom_words,
    declare,
    equal,
    version_cause,
    version_words,
)

if TYPE_CHECKING:
    from acode_placement.columns import FleetColumns
    from acode_placement.models import AnyTarget, Capabilities

# ------------------------------------------------------------------------- the kinds


def _network_words(check: Check) -> str:
    if check.ok:
        return "outbound network"
    return "network unknown" if check.offered is None else "no outbound network"


def _runtime_words(check: Check) -> str:
    return f"maxRuntimeMinutes {num(check.wanted)} {'<=' if check.ok else '>'} {num(check.offered)}"


def _cost_words(check: Check) -> str:
    if check.offered is None:
        return f"estimated cost unknown (no hourlyRate) with maxCost {money(check.wanted)}"
    relation = "<=" if check.ok else ">"
    return f"estimated cost {money(check.offered)} {relation} maxCost {money(check.wanted)}"


def _mode_words(check: Check) -> str:
    if check.key == "network":
        return f"network needed but mode is {check.wanted}"
    return f"excluded by mode {check.key}"


def _mode_cause(wanted: Any, key: str | None) -> str:
    if key == "network":
        return f"network needed in mode {wanted}"
    return f"excluded by mode {wanted}"


def _option_cause(wanted: Any, key: str | None) -> str:
    return f"excluded by option {key}=false"


def _concurrency_words(check: Check) -> str:
    held = f"{num(check.offered)} reserved task{'' if check.offered == 1 else 's'}"
    return f"{held} {'<' if check.ok else 'at'} maxConcurrentTasks {num(check.wanted)}"


def _anti_affinity_words(check: Check) -> str:
    if check.ok:
        return f"not in antiAffinity {listing(check.wanted)}"
    return f"excluded by antiAffinity {check.key or listing(check.wanted)}"


CPU = declare(CheckKind.CPU, amount("cpu"), "not enough CPU", severity=1)
MEMORY = declare(CheckKind.MEMORY, amount("memoryGb"), "not enough memory", severity=1)
DISK = declare(CheckKind.DISK, amount("diskGb"), "not enough disk", severity=1)
TOOL = declare(
    CheckKind.TOOL,
    lambda check: f"tool {check.key} {'found' if check.ok else 'missing'}",
    "missing tools",
    severity=1,
)
TOOL_VERSION = declare(CheckKind.TOOL_VERSION, version_words(), version_cause("tool"), severity=1)
TOOL_VERSION_UNKNOWN = declare(
    CheckKind.TOOL_VERSION_UNKNOWN,
    lambda check: f"{check.key} version unknown (needs {check.wanted})",
    "tool version unknown",
    severity=1,
)
OS = declare(CheckKind.OS, equal("os"), "wrong os", severity=2)
ARCH = declare(CheckKind.ARCH, equal("arch"), "wrong arch", severity=2)
NETWORK = declare(CheckKind.NETWORK, _network_words, "no network", severity=1)
RUNTIME = declare(CheckKind.RUNTIME, _runtime_words, "runtime over the target's limit")
COST = declare(CheckKind.COST, _cost_words, "over maxCost")
CUSTOM = declare(CheckKind.CUSTOM, custom_words, "custom requirement unmet")
AFFINITY = declare(
    CheckKind.AFFINITY,
    lambda check: f"{'in' if check.ok else 'not in'} affinity {listing(check.wanted)}",
    "not in affinity",
)
ANTI_AFFINITY = declare(CheckKind.ANTI_AFFINITY, _anti_affinity_words, "excluded by antiAffinity")
MODE = declare(CheckKind.MODE, _mode_words, _mode_cause, where=True)
ALLOW_CLOUD = declare(
    CheckKind.ALLOW_CLOUD,
    lambda check: "cloud not allowed (allowCloud: false)",
    "cloud not allowed",
    where=True,
)
OPTION = declare(
    CheckKind.OPTION,
    lambda check: f"excluded by option {check.key}=false",
    _option_cause,
    where=True,
)
# Not requirements of a task, but checks all the same: a target whose capabilities
# could not be learnt (`ranking`), and a full target (`capacity`).
DISCOVERY = declare(
    CheckKind.DISCOVERY,
    lambda check: f"capabilities unknown: {check.key}",
    "capabilities unknown (discovery failed)",
    severity=2,
)
UNVERIFIED = declare(
    CheckKind.UNVERIFIED,
    lambda check: f"capabilities not verified: {check.key} (requireVerified)",
    "capabilities not verified",
    severity=2,
)
CONCURRENCY = declare(CheckKind.CONCURRENCY, _concurrency_words, "at maxConcurrentTasks")


# ------------------------------------------------------------------------- the rules


def _label_or_custom(key: str, target: AnyTarget, caps: Capabilities) -> Any:
    return target.labels.get(key, caps.custom.get(key))


def _kind_of(target: AnyTarget, caps: Capabilities, cost: float | None) -> TargetKind:
    return target.kind


def _cost(target: AnyTarget, caps: Capabilities, cost: float | None) -> float | None:
    return cost


def _costs(fleet: FleetColumns, minutes: float) -> Any:
    return fleet.cost_column(minutes)


def _not_burst(req: TaskRequirements, options: PlacementOptions) -> Mode | None:
    return None if options.mode is Mode.BURST else options.mode


def _airgapped_network(req: TaskRequirements, options: PlacementOptions) -> Mode | None:
    return options.mode if options.mode is Mode.AIRGAPPED and req.network else None


def _is(kind: TargetKind) -> Callable[[TargetKind, Any], bool]:
    def test(offered: TargetKind, wanted: Any) -> bool:
        return offered is kind

    return test


def _is_not(kind: TargetKind) -> Callable[[TargetKind, Any], bool]:
    def test(offered: TargetKind, wanted: Any) -> bool:
        return offered is not kind

    return test


def _never(offered: Any, wanted: Any) -> bool:
    return False


def _false_unless(name: str, *, on: str = "requirements") -> Callable[..., Any]:
    """Asked (as False) when the task or the options turn `name` off."""

    def wanted(req: TaskRequirements, options: PlacementOptions) -> Any:
        source = req if on == "requirements" else options
        return None if getattr(source, name) else False

    return wanted


def _at_least(kind: Kind, field: str) -> Compare:
    return Compare(
        kind, wanted=read(field), offered=capability(field), test=operator.ge, wished=wished(field)
    )


def _equals(kind: Kind, field: str) -> Compare:
    return Compare(
        kind,
        wanted=read(field),
        offered=capability(field),
        test=operator.eq,
        values=Values.CATEGORY,
        wished=wished(field),
    )


RULES: tuple[Rule, ...] = (
    _at_least(CPU, "cpu"),
    _at_least(MEMORY, "memory_gb"),
    _at_least(DISK, "disk_gb"),
    GPU_RULE,
    Tools(
        TOOL,
        TOOL_VERSION,
        TOOL_VERSION_UNKNOWN,
        wanted=lambda req: req.tools,
        wished=lambda prefs: prefs.tools,
    ),
    _equals(OS, "os"),
    _equals(ARCH, "arch"),
    Compare(
        NETWORK,
        wanted=lambda req, options: True if req.network else None,
        offered=capability("network"),
        test=operator.eq,
        values=Values.CATEGORY,
    ),
    Compare(
        RUNTIME,
        wanted=read("max_runtime_minutes"),
        offered=capability("max_runtime_minutes"),
        test=operator.ge,  # the target's limit at least the task's runtime
        unknown_passes=True,  # no limit declared: none
    ),
    Compare(COST, wanted=read("max_cost"), offered=_cost, test=operator.le, column=_costs),
    Each(
        CUSTOM,
        items=lambda req, options: req.custom.items(),
        wished=lambda prefs: prefs.custom.items(),
        offered=_label_or_custom,
        test=lambda offered, wanted: holds(wanted, offered),
    ),
    Selects(AFFINITY, wanted=read("affinity"), wished=wished("affinity")),
    Avoids(ANTI_AFFINITY, wanted=read("anti_affinity"), wished=wished("anti_affinity")),
    Compare(
        MODE,
        wanted=_not_burst,
        offered=_kind_of,
        test=_is(TargetKind.LOCAL),
        values=Values.CATEGORY,
        failures_only=True,
        key=lambda mode: mode.value,
    ),
    Compare(
        MODE,
        wanted=_airgapped_network,
        offered=_kind_of,
        test=_never,
        values=Values.CATEGORY,
        failures_only=True,
        key=lambda mode: "network",
    ),
    Compare(
        ALLOW_CLOUD,
        wanted=_false_unless("allow_cloud"),
        offered=_kind_of,
        test=_is_not(TargetKind.EC2),
        values=Values.CATEGORY,
        failures_only=True,
    ),
    Compare(
        OPTION,
        wanted=_false_unless("include_local", on="options"),
        offered=_kind_of,
        test=_is_not(TargetKind.LOCAL),
        values=Values.CATEGORY,
        failures_only=True,
        key=lambda ask: "includeLocal",
    ),
    Compare(
        OPTION,
        wanted=_false_unless("include_cloud", on="options"),
        offered=_kind_of,
        test=_is_not(TargetKind.EC2),
        values=Values.CATEGORY,
        failures_only=True,
        key=lambda ask: "includeCloud",
    ),
)

KINDS = tuple(DECLARED)  # every built-in kind, GPU kinds included

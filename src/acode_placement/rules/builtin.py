"""Every built-in requirement kind, declared once: where the wanted value is read from
the task, where the offered value is read from a target, the comparison, the cause
it is counted under, and its words. The table's order is the order of a target's
checks (and of its explanation).

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

from acode_placement.explain.format import gpu_text, gpu_wish, listing, money, num, scalar
from acode_placement.models import (
    Check,
    CheckKind,
    Condition,
    GpuRequirement,
    GpuTypeWanted,
    Mode,
    PlacementOptions,
    TargetKind,
    TaskRequirements,
)
from acode_placement.models.conditions import specifier
from acode_placement.rules.base import Compare, Each, Group, Rule, Values, capability, read, wished
from acode_placement.rules.conditions import holds, number_of, satisfies, version_of
from acode_placement.rules.kinds import Kind
from acode_placement.rules.selectors import Avoids, Selects, canonical, model_matches
from acode_placement.rules.tools import Tools

if TYPE_CHECKING:
    from acode_placement.columns import FleetColumns
    from acode_placement.models import AnyTarget, Capabilities

# ------------------------------------------------------------------------- the kinds


def _amount(name: str, *, fractions: bool = False) -> Callable[[Check], str]:
    """`cpu 8 < 16`; with free capacity (the key) `cpu 2 free of 8 (...) < 4`."""

    def words(check: Check) -> str:
        ok, wanted, offered = check.ok, check.wanted, check.offered
        if offered is None:
            return f"{name} unknown (needs >= {num(wanted)})"
        if check.key:
            return f"{name} {num(offered)} free {check.key} {'>=' if ok else '<'} {num(wanted)}"
        text = f"{name} {num(offered)} {'>=' if ok else '<'} {num(wanted)}"
        if fractions and not ok and 0 < offered < 1:
            text += " (a fraction of one GPU)"
        return text

    return words


def _equal(name: str) -> Callable[[Check], str]:
    """`os linux`; `os macos, not linux`; `os unknown (needs linux)`."""

    def words(check: Check) -> str:
        if check.ok:
            return f"{name} {check.offered}"
        if check.offered is None:
            return f"{name} unknown (needs {check.wanted})"
        return f"{name} {check.offered}, not {check.wanted}"

    return words


def _gpu_words(check: Check) -> str:
    if isinstance(check.wanted, GpuRequirement):  # a wish: the whole block
        return f"gpu {'matches' if check.ok else 'does not match'} {gpu_wish(check.wanted)}"
    return f"gpu {gpu_text(check.offered)}" if check.ok else "no GPU"


def _gpu_model_words(check: Check) -> str:
    if check.ok:
        return f"gpu model {check.offered}"
    shown = "unknown" if check.offered is None else check.offered
    return f"gpu model {shown}, not {listing(check.wanted)}"


def _version_words(name: str) -> Callable[[Check], str]:
    """`cuda 11.8 does not satisfy >=12.1`; `driver unknown (needs >=535)`."""

    def words(check: Check) -> str:
        if check.offered is None:
            return f"{name} unknown (needs {check.wanted})"
        if check.ok:
            return f"{name} {check.offered} satisfies {check.wanted}"
        if version_of(str(check.offered)) is None:
            return f"{name} {check.offered} is not a version (needs {check.wanted})"
        return f"{name} {check.offered} does not satisfy {check.wanted}"

    return words


def _version_cause(name: str) -> Callable[[Any, str | None], str]:
    """`CUDA too old` when the specifier only sets a floor, else `... not accepted`."""

    def cause(wanted: Any, key: str | None) -> str:
        if key == "unknown":
            return f"{name} version unknown"
        floors = isinstance(wanted, str) and all(
            spec.operator in (">=", ">", "~=") for spec in specifier(wanted)
        )
        return f"{name} too old" if floors else f"{name} version not accepted"

    return cause


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


def _custom_words(check: Check) -> str:
    key, wanted, offered = check.key, check.wanted, check.offered
    if isinstance(wanted, Condition):
        return _condition_words(check.ok, key, wanted, offered)
    if check.ok:
        return f"{key}={scalar(offered)}"
    if offered is None:
        return f"{key} not set (needs {scalar(wanted)})"
    return f"{key} {scalar(offered)}, not {scalar(wanted)}"


def _condition_words(ok: bool, key: str | None, wanted: Condition, offered: Any) -> str:
    """`cuda 11.8 does not satisfy >=12.1`, `region eu-north-1 not in [a, b]`."""
    name, operand = wanted.operator
    if name == "exists":
        if offered is None:
            return f"{key} not set" + ("" if ok else " (must be set)")
        return f"{key} set ({scalar(offered)})" + ("" if ok else ", must not be")
    if name in ("in", "notIn"):
        choices = f"[{', '.join(scalar(v) for v in operand)}]"
        if offered is None:
            return f"{key} not set" + ("" if ok else f" (needs one of {choices})")
        if name == "notIn":
            if ok:
                return f"{key} {scalar(offered)} not in {choices}"
            return f"{key} {scalar(offered)} excluded (notIn {choices})"
        return f"{key} {scalar(offered)} {'in' if ok else 'not in'} {choices}"
    if offered is None:
        return f"{key} not set (needs {_needs(name, operand)})"
    shown = scalar(offered)
    if name == "version":
        if ok:
            return f"{key} {shown} satisfies {operand}"
        if version_of(canonical(offered)) is None:
            return f"{key} {shown} is not a version (needs {operand})"
        return f"{key} {shown} does not satisfy {operand}"
    if name == "regex":
        return f"{key} {shown} {'matches' if ok else 'does not match'} {operand!r}"
    if number_of(offered) is None:
        return f"{key} {shown} is not a number (needs {_needs(name, operand)})"
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[name]
    return f"{key} {shown} {symbol if ok else 'not ' + symbol} {num(operand)}"


def _needs(name: str, operand: Any) -> str:
    if name == "regex":
        return f"a match of {operand!r}"
    symbol = {"gt": "> ", "gte": ">= ", "lt": "< ", "lte": "<= "}.get(name, "")
    return f"{symbol}{num(operand)}" if symbol else str(operand)


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


_DECLARED: list[Kind] = []


def _kind(
    name: CheckKind,
    words: Callable[[Check], str],
    cause: str | Callable[[Any, str | None], str],
    *,
    severity: int = 0,
    where: bool = False,
) -> Kind:
    kind = Kind(name, words, cause, severity, where)
    _DECLARED.append(kind)
    return kind


CPU = _kind(CheckKind.CPU, _amount("cpu"), "not enough CPU", severity=1)
MEMORY = _kind(CheckKind.MEMORY, _amount("memoryGb"), "not enough memory", severity=1)
DISK = _kind(CheckKind.DISK, _amount("diskGb"), "not enough disk", severity=1)
GPU = _kind(CheckKind.GPU, _gpu_words, "no GPU", severity=2)
GPU_TYPE = _kind(CheckKind.GPU_TYPE, _equal("gpu type"), "wrong GPU type", severity=2)
GPU_MODEL = _kind(CheckKind.GPU_MODEL, _gpu_model_words, "wrong GPU model", severity=2)
GPU_VRAM = _kind(CheckKind.GPU_VRAM, _amount("gpu vram"), "too little GPU memory", severity=1)
GPU_COUNT = _kind(
    CheckKind.GPU_COUNT, _amount("gpu count", fractions=True), "too few GPUs", severity=1
)


def _capability_words(check: Check) -> str:
    """`compute capability 7.5 < 8.0` (written major.minor, as NVIDIA does)."""
    wanted = f"{check.wanted:.1f}"
    if check.offered is None:
        return f"compute capability unknown (needs >= {wanted})"
    return f"compute capability {check.offered:.1f} {'>=' if check.ok else '<'} {wanted}"


GPU_COMPUTE = _kind(
    CheckKind.GPU_COMPUTE,
    _capability_words,
    lambda wanted, key: f"compute capability {'unknown' if key else 'too low'}",
    severity=2,
)
GPU_DRIVER = _kind(
    CheckKind.GPU_DRIVER, _version_words("driver"), _version_cause("GPU driver"), severity=1
)
GPU_CUDA = _kind(CheckKind.GPU_CUDA, _version_words("cuda"), _version_cause("CUDA"), severity=1)
TOOL = _kind(
    CheckKind.TOOL,
    lambda check: f"tool {check.key} {'found' if check.ok else 'missing'}",
    "missing tools",
    severity=1,
)
TOOL_VERSION = _kind(
    CheckKind.TOOL_VERSION,
    lambda check: (
        f"{check.key} {check.offered} {'satisfies' if check.ok else 'does not satisfy'}"
        f" {check.wanted}"
    ),
    _version_cause("tool"),
    severity=1,
)
TOOL_VERSION_UNKNOWN = _kind(
    CheckKind.TOOL_VERSION_UNKNOWN,
    lambda check: f"{check.key} version unknown (needs {check.wanted})",
    "tool version unknown",
    severity=1,
)
OS = _kind(CheckKind.OS, _equal("os"), "wrong os", severity=2)
ARCH = _kind(CheckKind.ARCH, _equal("arch"), "wrong arch", severity=2)
NETWORK = _kind(CheckKind.NETWORK, _network_words, "no network", severity=1)
RUNTIME = _kind(CheckKind.RUNTIME, _runtime_words, "runtime over the target's limit")
COST = _kind(CheckKind.COST, _cost_words, "over maxCost")
CUSTOM = _kind(CheckKind.CUSTOM, _custom_words, "custom requirement unmet")
AFFINITY = _kind(
    CheckKind.AFFINITY,
    lambda check: f"{'in' if check.ok else 'not in'} affinity {listing(check.wanted)}",
    "not in affinity",
)
ANTI_AFFINITY = _kind(CheckKind.ANTI_AFFINITY, _anti_affinity_words, "excluded by antiAffinity")
MODE = _kind(CheckKind.MODE, _mode_words, _mode_cause, where=True)
ALLOW_CLOUD = _kind(
    CheckKind.ALLOW_CLOUD,
    lambda check: "cloud not allowed (allowCloud: false)",
    "cloud not allowed",
    where=True,
)
OPTION = _kind(
    CheckKind.OPTION,
    lambda check: f"excluded by option {check.key}=false",
    _option_cause,
    where=True,
)
# Not requirements of a task, but checks all the same: a target whose capabilities
# could not be learnt (`ranking`), and a full target (`capacity`).
DISCOVERY = _kind(
    CheckKind.DISCOVERY,
    lambda check: f"capabilities unknown: {check.key}",
    "capabilities unknown (discovery failed)",
    severity=2,
)
CONCURRENCY = _kind(CheckKind.CONCURRENCY, _concurrency_words, "at maxConcurrentTasks")

KINDS = tuple(_DECLARED)

# ------------------------------------------------------------------------- the rules


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
    Group(
        GPU,
        wanted=_needed_gpu,
        wished=wished("gpu"),
        present=_has_gpu,
        absent=lambda gpu: gpu.count,
        whole=lambda target, caps: caps.gpu,
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
    ),
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

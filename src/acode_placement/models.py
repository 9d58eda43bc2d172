"""Value types: what a task needs, what a target offers, what the engine decided.

Inputs (requirements, capabilities, targets, settings, options) are frozen pydantic
models, so the same validation guards the files, the Python API and, later, the
HTTP API. Outputs (checks, scores, results, events) are frozen slotted dataclasses:
they are built on every decision and must be cheap.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, overload

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)
from pydantic.alias_generators import to_camel

# A tool name never starts with '-', so that no probe, shell or program can take it
# for an option, however it is passed.
TOOL_NAME_PATTERN = r"^[A-Za-z0-9._+][A-Za-z0-9._+-]{0,63}$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


def _check_tool_name(value: str) -> str:
    if not _TOOL_NAME.fullmatch(value):
        raise ValueError(
            f"invalid tool name {value!r}: use 1-64 letters, digits, '.', '_', '+' or '-',"
            " not starting with '-'"
        )
    return value


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            f"invalid id {value!r}: use 1-128 letters, digits, '.', '_', ':', '/', '@' or '-',"
            " starting with a letter or digit"
        )
    return value


_HOST = re.compile(r"^[A-Za-z0-9_\[][A-Za-z0-9._:%\[\]-]{0,252}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$")


def _check_host(value: str) -> str:
    """A host name or address: never an option (`-oProxyCommand=...`), a space or a
    control character, whatever later takes it."""
    if not _HOST.fullmatch(value):
        raise ValueError(
            f"invalid host {value!r}: a name or an address (letters, digits, '.', '-', ':',"
            " '[', ']'), not starting with '-'"
        )
    return value


def _check_user(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError(
            f"invalid user {value!r}: letters, digits, '.', '_', '@' or '-', not starting with '-'"
        )
    return value


def _check_path(value: str) -> str:
    if not value or not value.isprintable():
        raise ValueError("invalid path: empty, or with a control character")
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _not_bool(value: object) -> object:
    """YAML's `true` is not the number 1 (pydantic's lax mode would take it as one)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def _not_number(value: object) -> object:
    """A flag is true or false (or, from the environment, a word); never 0 or 1.5."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


# Bounds that keep every later sum, product and date within range: no amount a real
# machine or bill reaches comes near them, and no arithmetic on them overflows.
MAX_AMOUNT = 1e12  # CPUs, GB, GPUs, USD
MAX_MINUTES = 5_256_000  # ten years: runtimes (a lease ends that much later at most)
MAX_SETTING_MINUTES = 525_600  # one year: cache lifetime, lease grace
MAX_SECONDS = 3600.0  # timeouts
MAX_COUNT = 1_000_000_000

ToolName = Annotated[str, AfterValidator(_check_tool_name)]
TargetId = Annotated[str, AfterValidator(_check_id)]
Number = Annotated[float, BeforeValidator(_not_bool)]
NonNegative = Annotated[Number, Field(ge=0, le=MAX_AMOUNT)]
Positive = Annotated[Number, Field(gt=0, le=MAX_AMOUNT)]
Minutes = Annotated[Number, Field(gt=0, le=MAX_MINUTES)]
Seconds = Annotated[Number, Field(gt=0, le=MAX_SECONDS)]
Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_COUNT)]
Flag = Annotated[bool, BeforeValidator(_not_number)]
ModelNames = Annotated[
    tuple[Annotated[str, Field(min_length=1)], ...],
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
]
Scalar = str | int | float | bool


class OS(enum.StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"
    MACOS = "macos"


class Arch(enum.StrEnum):
    X64 = "x64"
    ARM64 = "arm64"


class GpuVendor(enum.StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    INTEL = "intel"
    APPLE = "apple"


class GpuTypeWanted(enum.StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    INTEL = "intel"
    APPLE = "apple"
    ANY = "any"


class Mode(enum.StrEnum):
    LOCAL_ONLY = "local-only"
    AIRGAPPED = "airgapped"
    BURST = "burst"


class AwsApi(enum.StrEnum):
    """When to ask AWS. `auto`: when credentials are configured (environment, shared
    files, SSO, a container role), never probing the instance-metadata service;
    `on`: always, with boto3's whole credential chain; `off`: never."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"
    AUTO = "auto"


class HistoryDurability(enum.StrEnum):
    """`durable`: a placement answers once its record is committed. `async`: at once;
    a crash can lose the records not committed yet (at most one transaction's worth)."""

    DURABLE = "durable"
    ASYNC = "async"


class TieBreaker(enum.StrEnum):
    FIRST = "first"
    ID = "id"


class TargetKind(enum.StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    EC2 = "ec2"


class Reason(enum.StrEnum):
    ONLY_OPTION = "OnlyOption"
    HIGHEST_SCORE = "HighestScore"
    COST_OPTIMAL = "CostOptimal"
    LOCAL_PREFERRED = "LocalPreferred"
    CAPABILITY_MATCH = "CapabilityMatch"
    NO_VALID_TARGET = "NoValidTarget"
    MODE_RESTRICTED = "ModeRestricted"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,  # inf and nan are no amounts; arithmetic on them misleads
    )


# --------------------------------------------------------------------- requirements


class GpuRequirement(_Model):
    """A GPU need. `model` lists acceptable models; any one of them will do."""

    required: Flag = True
    type: GpuTypeWanted = GpuTypeWanted.ANY
    model: ModelNames | None = None
    min_vram: NonNegative | None = Field(default=None, description="GB per GPU, >=")
    count: Positive = 1


class Preferences(_Model):
    """Soft wishes: each one met raises a target's score; none ever excludes it."""

    cpu: NonNegative | None = None
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = None
    gpu: GpuRequirement | None = None
    tools: tuple[ToolName, ...] = ()
    os: OS | None = None
    arch: Arch | None = None
    custom: dict[str, Scalar] = Field(default_factory=dict)
    affinity: tuple[str, ...] = ()
    anti_affinity: tuple[str, ...] = ()


class TaskRequirements(_Model):
    """Hard requirements: a target that misses any one is not eligible."""

    cpu: NonNegative | None = Field(default=None, description="logical CPUs, >=")
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = Field(default=None, description="free disk, >=")
    gpu: GpuRequirement | None = None
    tools: tuple[ToolName, ...] = ()
    os: OS | None = None
    arch: Arch | None = None
    network: Flag | None = Field(default=None, description="needs outbound network")
    max_runtime_minutes: Minutes | None = None
    max_cost: NonNegative | None = Field(default=None, description="USD for one run")
    allow_cloud: Flag = True
    custom: dict[str, Scalar] = Field(default_factory=dict)
    affinity: tuple[str, ...] = ()
    anti_affinity: tuple[str, ...] = ()
    preferences: Preferences | None = None

    @property
    def needs_gpu(self) -> bool:
        return self.gpu is not None and self.gpu.required

    def wanted_tools(self) -> frozenset[str]:
        """Every tool named as a requirement or a preference."""
        prefs = self.preferences.tools if self.preferences else ()
        return frozenset(self.tools) | frozenset(prefs)


def _no_nul(value: str) -> str:
    """A NUL cannot be stored in a PostgreSQL text column; no name needs one."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Name = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_no_nul)]


class Task(_Model):
    name: Name
    description: Annotated[str, Field(max_length=4096)] | None = None
    requirements: TaskRequirements = Field(default_factory=TaskRequirements)


# --------------------------------------------------------------------- capabilities


class GpuInfo(_Model):
    """GPUs of one kind on a target. `count` below 1 is a fraction of one GPU."""

    type: GpuVendor
    model: str | None = None
    vram_gb: NonNegative | None = Field(default=None, description="GB per GPU")
    count: NonNegative = 1


class Capabilities(_Model):
    """What a target offers. None means not known, which never meets a requirement."""

    cpu: NonNegative | None = None
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = None
    gpu: GpuInfo | None = None
    tools: tuple[ToolName, ...] = ()
    os: OS | None = None
    arch: Arch | None = None
    network: Flag | None = None
    max_runtime_minutes: Minutes | None = None
    custom: dict[str, Scalar] = Field(default_factory=dict)
    discovered_at: datetime | None = None

    def merged_over(self, declared: Capabilities | None) -> Capabilities:
        """These (discovered) values, with `declared` filling what is unknown."""
        if declared is None:
            return self
        mine = self.model_dump(exclude_none=True, by_alias=False)
        base = declared.model_dump(exclude_none=True, by_alias=False)
        if "tools" in mine or "tools" in base:
            mine["tools"] = tuple(sorted({*base.get("tools", ()), *mine.get("tools", ())}))
        mine["custom"] = {**base.get("custom", {}), **mine.get("custom", {})}
        return Capabilities.model_validate({**base, **mine})


# -------------------------------------------------------------------------- targets


class _TargetBase(_Model):
    type: str
    id: TargetId
    labels: dict[str, str] = Field(default_factory=dict)
    hourly_rate: NonNegative | None = Field(default=None, description="USD per hour")
    capabilities: Capabilities | None = None
    max_concurrent_tasks: Count | None = Field(
        default=None, description="reserved placements at once, at most (place --reserve)"
    )

    @property
    def kind(self) -> TargetKind:
        return _KINDS[self.type]

    @property
    def is_local(self) -> bool:
        return self.kind is TargetKind.LOCAL

    @property
    def is_cloud(self) -> bool:
        return self.kind is TargetKind.EC2


_KINDS = {kind.value: kind for kind in TargetKind}


class LocalTarget(_TargetBase):
    """This machine."""

    type: Literal["local"] = "local"


class SshTarget(_TargetBase):
    """A machine reached over SSH: remote, owned, not cloud."""

    type: Literal["ssh"] = "ssh"
    host: Annotated[str, AfterValidator(_check_host)]
    port: Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)] = 22
    user: Annotated[str, AfterValidator(_check_user)] | None = None
    identity_file: Annotated[str, AfterValidator(_check_path)] | None = None


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """An hourly price and where it came from (`declared`, `AWS Price List API`,
    `EC2 spot price history`, `catalog`, or `unknown`), as of when."""

    hourly: float | None
    source: str
    as_of: date | None = None
    spot: Flag = False
    note: str | None = None


_INSTANCE_TYPE = re.compile(r"^[a-z0-9-]+\.[a-z0-9-]+$")
_FAMILY = re.compile(r"^[a-z0-9-]+$")


def _check_instance_type(value: str) -> str:
    if not _INSTANCE_TYPE.fullmatch(value):
        raise ValueError(f"invalid instance type {value!r}: expected a name like g5.xlarge")
    return value


def _check_family(value: str) -> str:
    if not _FAMILY.fullmatch(value):
        raise ValueError(f"invalid instance family {value!r}: expected a name like g5 or c7i")
    return value


InstanceTypeName = Annotated[str, AfterValidator(_check_instance_type)]
FamilyName = Annotated[str, AfterValidator(_check_family)]
Every = Literal["*"]


class Ec2Target(_TargetBase):
    """One AWS EC2 instance type in one region (cloud), or a fleet of them.

    A fleet gives `instance_types` or `instance_families` (or `"*"`: every
    current-generation type) instead of `instance_type`; the engine expands it into
    one target per instance type, with ids `<id>/<instance type>`.
    """

    type: Literal["ec2"] = "ec2"
    instance_type: InstanceTypeName | None = None
    instance_types: tuple[InstanceTypeName, ...] | Every | None = None
    instance_families: tuple[FamilyName, ...] | Every | None = None
    region: Annotated[str, Field(min_length=1, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")] = "us-east-1"
    max_hourly_rate: NonNegative | None = Field(
        default=None, description="fleets: leave out instance types dearer than this (USD/hour)"
    )
    spot: Flag = Field(default=False, description="price as a spot instance")
    _price: PriceQuote | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_kind_of_choice(self) -> Ec2Target:
        given = [
            name
            for name, value in (
                ("instanceType", self.instance_type),
                ("instanceTypes", self.instance_types),
                ("instanceFamilies", self.instance_families),
            )
            if value is not None
        ]
        if len(given) != 1:
            shown = " and ".join(given) if given else "none of them"
            raise ValueError(
                f"give exactly one of instanceType, instanceTypes, instanceFamilies (got {shown})"
            )
        if self.is_fleet and self.hourly_rate is not None:
            raise ValueError("hourlyRate is for one instance type; a fleet takes maxHourlyRate")
        if not self.is_fleet and self.max_hourly_rate is not None:
            raise ValueError("maxHourlyRate is for fleets; one instance type takes hourlyRate")
        for value in (self.instance_types, self.instance_families):
            if value is not None and value != "*" and not value:
                raise ValueError('a fleet needs at least one instance type or family, or "*"')
        return self

    @property
    def is_fleet(self) -> bool:
        return self.instance_type is None

    @property
    def price(self) -> PriceQuote | None:
        """The price the engine resolved for this target (None before resolution)."""
        # Read the private store directly: pydantic's attribute fallback costs 2 us,
        # and explanations and the history read every candidate's price.
        private = self.__pydantic_private__
        quote: PriceQuote | None = private.get("_price") if private else None
        return quote

    def priced(self, quote: PriceQuote) -> Ec2Target:
        """A copy with `hourly_rate` from `quote`, and the quote kept for explanations."""
        copy = self.model_copy(update={"hourly_rate": quote.hourly})
        copy._price = quote
        return copy


Target = Annotated[LocalTarget | SshTarget | Ec2Target, Field(discriminator="type")]
AnyTarget = LocalTarget | SshTarget | Ec2Target


# ------------------------------------------------------------------ settings/options


class PlacementSettings(_Model):
    """The `placement:` settings file."""

    strategy: Annotated[str, Field(min_length=1)] = "auto"
    mode: Mode = Mode.BURST
    fallback_enabled: Flag = True
    discovery_enabled: Flag = True
    cache_minutes: Annotated[Number, Field(ge=0, le=MAX_SETTING_MINUTES)] = Field(
        default=5, description="capability cache time-to-live"
    )
    decision_timeout: Seconds = Field(
        default=5.0, description="seconds a decision waits for discovery at most"
    )
    probe_timeout: Seconds = Field(default=3.0, description="seconds for one probe of a target")
    discovery_concurrency: Annotated[Count, Field(le=1024)] = Field(
        default=32, description="targets probed at once"
    )
    known_hosts: str = Field(
        default="~/.ssh/known_hosts", description="OpenSSH known_hosts file checked for SSH targets"
    )
    ec2_api: AwsApi = Field(
        default=AwsApi.AUTO,
        description="ask the EC2 and Price List APIs: auto (when credentials are configured),"
        " on, off (the shipped catalog only)",
    )
    reservation_grace_minutes: Annotated[Number, Field(ge=0, le=MAX_SETTING_MINUTES)] = Field(
        default=60,
        description="a reservation expires this long after the task's maxRuntimeMinutes"
        " (or defaultRuntimeMinutes)",
    )
    accept_new_host_keys: Flag = Field(
        default=False,
        description="trust an SSH host seen for the first time and add its key to knownHosts"
        " (a changed key is always refused)",
    )
    tie_breaker: TieBreaker = TieBreaker.FIRST
    default_runtime_minutes: Minutes = 60
    history: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the placement history"
        " (default: sqlite history.db in the user data directory)",
    )
    history_enabled: Flag = True
    history_durability: HistoryDurability = Field(
        default=HistoryDurability.DURABLE,
        description="durable: a placement answers once its record is committed;"
        " async: at once (a crash can lose the last records)",
    )
    history_retention_days: Annotated[Number, Field(gt=0, le=36_500)] | None = Field(
        default=None, description="delete records older than this (off by default)"
    )
    history_retention_count: Count | None = Field(
        default=None, description="keep at most this many records (off by default)"
    )
    log_level: LogLevel = LogLevel.WARNING
    log_format: LogFormat = Field(
        default=LogFormat.AUTO, description="json | console | auto (console on a terminal)"
    )


class PlacementOptions(_Model):
    """How one decision is made. `decision_timeout` is in seconds."""

    strategy: Annotated[str, Field(min_length=1)] = "auto"
    mode: Mode = Mode.BURST
    fallback_enabled: Flag = True
    include_local: Flag = True
    include_cloud: Flag = True
    max_candidates: Count | None = Field(
        default=None, description="at most this many ranked targets kept for fallback"
    )
    decision_timeout: Seconds = 5.0
    tie_breaker: TieBreaker = TieBreaker.FIRST
    default_runtime_minutes: Minutes = 60
    discovery_enabled: Flag = True


# -------------------------------------------------------------------------- outputs


class CheckKind(enum.StrEnum):
    """What one check compared. Prose for each lives in `explain`."""

    CPU = "cpu"
    MEMORY = "memoryGb"
    DISK = "diskGb"
    GPU = "gpu"
    GPU_TYPE = "gpuType"
    GPU_MODEL = "gpuModel"
    GPU_VRAM = "gpuVram"
    GPU_COUNT = "gpuCount"
    TOOL = "tool"
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
    CONCURRENCY = "maxConcurrentTasks"


class DiscoveryStatus(enum.StrEnum):
    """Where a target's capabilities for a decision came from.

    `fresh`: probed just now. `cached`: probed within the cache's time-to-live.
    `declared`: from the targets file only (discovery off, or nothing probes this
    kind). `stale`: discovery failed or was late, so the last known values are
    used. `unreachable`: no connection, nothing discovered before: declared values
    used. `unverified`: connected but the answer could not be trusted (host key,
    login, probe output) or came too late, nothing discovered before: declared
    values used.
    """

    FRESH = "fresh"
    CACHED = "cached"
    DECLARED = "declared"
    STALE = "stale"
    UNREACHABLE = "unreachable"
    UNVERIFIED = "unverified"


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


_DEGRADED = frozenset(
    {DiscoveryStatus.STALE, DiscoveryStatus.UNREACHABLE, DiscoveryStatus.UNVERIFIED}
)


@dataclass(frozen=True, slots=True)
class Check:
    """One requirement (or preference) against one target.

    `wanted` is what the task asked, `offered` what the target has (None: unknown).
    `key` names the sub-item: a tool, a custom key, a mode or an option name.
    """

    kind: CheckKind
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
WHERE_KINDS = frozenset({CheckKind.MODE, CheckKind.ALLOW_CLOUD, CheckKind.OPTION})


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
        "_made",
        "_make",
        "_misses",
        "_size",
        "eligible",
    )

    def __init__(
        self,
        size: int,
        eligible: dict[int, TargetScore],
        make: Callable[[int], TargetScore],
        misses: Callable[[], Misses] | None = None,
        causes: Callable[[], Counter[str]] | None = None,
    ) -> None:
        self._size = size
        self._made = dict(eligible)
        self._make = make
        self._count = misses  # counts them without building checks, when it can
        self._count_causes = causes  # the causes alone, cheaper still
        self._misses: Misses | None = None
        self._causes: Counter[str] | None = None
        self.eligible = list(eligible.values())

    def misses(self, from_checks: Callable[[], Misses]) -> Misses:
        """What the targets lack (see `explain.misses`), counted once: on the
        fleet's columns when the decision could, else by `from_checks`."""
        if self._misses is None:
            self._misses = (self._count or from_checks)()
        return self._misses

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
    some target failed only on where the task may run (`WHERE_KINDS`)."""

    causes: Counter[str]
    nearest: int
    only_where: bool


@dataclass(frozen=True, slots=True)
class Resources:
    """What one reserved task holds on a target."""

    cpu: float = 0.0
    memory_gb: float = 0.0
    gpus: float = 0.0


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a target has in all (None: not limited, or not known)."""

    cpu: float | None = None
    memory_gb: float | None = None
    gpus: float | None = None
    max_tasks: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What the active reservations on a target hold."""

    cpu: float = 0.0
    memory_gb: float = 0.0
    gpus: float = 0.0
    tasks: int = 0

    def fits(self, wanted: Resources, capacity: Capacity) -> bool:
        checks = (
            (capacity.cpu, self.cpu, wanted.cpu),
            (capacity.memory_gb, self.memory_gb, wanted.memory_gb),
            (capacity.gpus, self.gpus, wanted.gpus),
        )
        for total, used, asked in checks:
            if total is not None and used + asked > total + 1e-9:
                return False
        return capacity.max_tasks is None or self.tasks + 1 <= capacity.max_tasks


@dataclass(frozen=True, slots=True)
class Reservation:
    """A lease on part of a target, until released or `expires_at`."""

    id: str
    target_id: str
    resources: Resources
    owner: str
    created_at: datetime
    expires_at: datetime
    request_id: str | None = None
    task_name: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None


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

"""What a target is and offers: local, SSH and EC2 targets, capabilities, GPUs,
price quotes.

Declared facts only: discovery (`discovery/`) and pricing (`ec2/`) fill them in;
nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    model_validator,
)

from acode_placement.models.base import (
    OS,
    Arch,
    ComputeCapability,
    Count,
    Flag,
    GpuVendor,
    Minutes,
    Model,
    NonNegative,
    Scalar,
    TargetId,
    TargetKind,
    ToolName,
    VersionText,
    _check_host,
    _check_path,
    _check_user,
    _not_bool,
)


class GpuInfo(Model):
    """GPUs of one kind on a target. `count` below 1 is a fraction of one GPU."""

    type: GpuVendor
    model: str | None = None
    vram_gb: NonNegative | None = Field(default=None, description="GB per GPU")
    count: NonNegative = 1
    compute_capability: ComputeCapability | None = Field(
        default=None, description="NVIDIA compute capability (8.0, 9.0...)"
    )
    mig: Annotated[str, Field(pattern=r"^[0-9]+g\.[0-9]+gb$")] | None = Field(
        default=None, description="a MIG instance of this profile (3g.40gb), not a whole GPU"
    )
    unified: Flag = Field(
        default=False, description="the GPU addresses the system's memory (vramGb is that)"
    )
    driver: VersionText | None = Field(default=None, description="driver version: 535.104.05")
    cuda: VersionText | None = Field(
        default=None, description="CUDA version the driver supports: 12.4"
    )


class Capabilities(Model):
    """What a target offers. None means not known, which never meets a requirement."""

    cpu: NonNegative | None = None
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = None
    gpu: GpuInfo | None = None
    gpus: tuple[GpuInfo, ...] = Field(
        default=(),
        description="every kind of GPU device when there are several (MIG instances, mixed"
        " cards); `gpu` is then the largest kind",
    )
    tools: tuple[ToolName, ...] = ()
    tool_versions: dict[ToolName, VersionText] = Field(
        default_factory=dict, description="the version each tool states (`TOOL --version`)"
    )
    os: OS | None = None
    arch: Arch | None = None
    network: Flag | None = None
    max_runtime_minutes: Minutes | None = None
    custom: dict[str, Scalar] = Field(default_factory=dict)
    discovered_at: datetime | None = None

    @model_validator(mode="after")
    def _largest_kind(self) -> Capabilities:
        """With several kinds of GPU device, `gpu` is the largest of them (the one a
        task that fits no kind is told about), whatever was given for it."""
        if len(self.gpus) > 1:
            largest = max(self.gpus, key=lambda kind: (kind.vram_gb or 0.0, kind.count))
            if self.gpu != largest:
                object.__setattr__(self, "gpu", largest)  # frozen: set once, while made
        return self

    def merged_over(self, declared: Capabilities | None) -> Capabilities:
        """These (discovered) values, with `declared` filling what is unknown."""
        if declared is None:
            return self
        mine = self.model_dump(exclude_none=True, by_alias=False)
        base = declared.model_dump(exclude_none=True, by_alias=False)
        if "tools" in mine or "tools" in base:
            mine["tools"] = tuple(sorted({*base.get("tools", ()), *mine.get("tools", ())}))
        mine["custom"] = {**base.get("custom", {}), **mine.get("custom", {})}
        mine["tool_versions"] = {**base.get("tool_versions", {}), **mine.get("tool_versions", {})}
        return Capabilities.model_validate({**base, **mine})


# -------------------------------------------------------------------------- targets


class _TargetBase(Model):
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

"""What a task asks: hard requirements, soft preferences, a task file's task.

Validation of what a user writes lives here; how a requirement is matched, and its
words, are declared once per kind in `rules.builtin`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError

from acode_placement.models.base import (
    OS,
    Arch,
    ComputeCapability,
    Flag,
    GpuTypeWanted,
    Minutes,
    Model,
    ModelNames,
    Name,
    NonNegative,
    Positive,
    ToolName,
)
from acode_placement.models.conditions import CustomValue, VersionSpec


class GpuRequirement(Model):
    """A GPU need. `model` lists acceptable models; any one of them will do."""

    required: Flag = True
    type: GpuTypeWanted = GpuTypeWanted.ANY
    model: ModelNames | None = None
    min_vram: NonNegative | None = Field(default=None, description="GB per GPU, >=")
    count: Positive = 1
    min_compute_capability: ComputeCapability | None = Field(
        default=None, description="NVIDIA compute capability, >= (8.0: A100 and newer)"
    )
    driver: VersionSpec | None = Field(default=None, description='driver version, ">=535"')
    cuda: VersionSpec | None = Field(
        default=None, description='CUDA version the driver supports, ">=12.1"'
    )


# Asked of discovery beside a tool's name when a task needs its version: never a
# tool name (':' is not allowed in one), so the probe and the cache tell them apart.
VERSION_OF = "version:"


class ToolWanted(Model):
    """A tool with a version requirement: `{name: python3, version: ">=3.11"}`."""

    name: ToolName
    version: VersionSpec


def _tool_entry(value: Any) -> Any:
    """A mapping becomes a `ToolWanted`, with a one-line error naming what is wrong."""
    if not isinstance(value, dict):
        return value
    try:
        return ToolWanted.model_validate(value)
    except ValidationError as exc:
        errors = exc.errors()
        # an unknown key first: it often explains a missing one (`versoin` for `version`)
        error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(part) for part in error["loc"]) or "tool"
        if error["type"] == "extra_forbidden":
            text = "unknown key (a tool is a name or {name, version})"
        elif error["type"] == "missing":
            text = "missing required key (a tool is a name or {name, version})"
        else:
            text = str((error.get("ctx") or {}).get("error", error["msg"]))
        raise ValueError(f"{where}: {text[0].lower()}{text[1:]}") from None


ToolEntry = Annotated[ToolName | ToolWanted, BeforeValidator(_tool_entry)]


def tool_name(entry: str | ToolWanted) -> str:
    return entry if isinstance(entry, str) else entry.name


def _asked_of_discovery(entries: tuple[str | ToolWanted, ...]) -> set[str]:
    """Each tool's name, and `version:NAME` for each whose version is wanted."""
    asked = {tool_name(entry) for entry in entries}
    asked.update(VERSION_OF + e.name for e in entries if isinstance(e, ToolWanted))
    return asked


class Preferences(Model):
    """Soft wishes: each one met raises a target's score; none ever excludes it."""

    cpu: NonNegative | None = None
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = None
    gpu: GpuRequirement | None = None
    tools: tuple[ToolEntry, ...] = ()
    os: OS | None = None
    arch: Arch | None = None
    custom: dict[str, CustomValue] = Field(default_factory=dict)
    affinity: tuple[str, ...] = ()
    anti_affinity: tuple[str, ...] = ()


class TaskRequirements(Model):
    """Hard requirements: a target that misses any one is not eligible."""

    cpu: NonNegative | None = Field(default=None, description="logical CPUs, >=")
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = Field(default=None, description="free disk, >=")
    gpu: GpuRequirement | None = None
    tools: tuple[ToolEntry, ...] = ()
    os: OS | None = None
    arch: Arch | None = None
    network: Flag | None = Field(default=None, description="needs outbound network")
    max_runtime_minutes: Minutes | None = None
    max_cost: NonNegative | None = Field(default=None, description="USD for one run")
    allow_cloud: Flag = True
    custom: dict[str, CustomValue] = Field(default_factory=dict)
    affinity: tuple[str, ...] = ()
    anti_affinity: tuple[str, ...] = ()
    preferences: Preferences | None = None

    @property
    def needs_gpu(self) -> bool:
        return self.gpu is not None and self.gpu.required

    def wanted_tools(self) -> frozenset[str]:
        """What discovery is asked: every tool named as a requirement or a preference,
        and `version:NAME` for each whose version is wanted."""
        prefs = self.preferences.tools if self.preferences else ()
        return frozenset(_asked_of_discovery(self.tools) | _asked_of_discovery(prefs))


class Task(Model):
    name: Name
    description: Annotated[str, Field(max_length=4096)] | None = None
    requirements: TaskRequirements = Field(default_factory=TaskRequirements)

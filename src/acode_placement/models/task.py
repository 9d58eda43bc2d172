"""What a task asks: hard requirements, soft preferences, a task file's task.

Validation of what a user writes lives here; how a requirement is matched, and its
words, are declared once per kind in `rules.builtin`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
)

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


class Preferences(Model):
    """Soft wishes: each one met raises a target's score; none ever excludes it."""

    cpu: NonNegative | None = None
    memory_gb: NonNegative | None = None
    disk_gb: NonNegative | None = None
    gpu: GpuRequirement | None = None
    tools: tuple[ToolName, ...] = ()
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
    tools: tuple[ToolName, ...] = ()
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
        """Every tool named as a requirement or a preference."""
        prefs = self.preferences.tools if self.preferences else ()
        return frozenset(self.tools) | frozenset(prefs)


class Task(Model):
    name: Name
    description: Annotated[str, Field(max_length=4096)] | None = None
    requirements: TaskRequirements = Field(default_factory=TaskRequirements)

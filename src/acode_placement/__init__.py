"""acode-placement: decide where a task should run, and say why.

from acode_placement import PlacementEngine, PlacementOptions, TaskRequirements, load_targets

engine = PlacementEngine.default()
result = await engine.place(requirements, targets, PlacementOptions(strategy="cost-optimized"))
"""

from acode_placement.config import load_settings, load_targets, load_task
from acode_placement.discovery.cache import CapabilityCache
from acode_placement.discovery.parse import ProbeReport, parse_probe
from acode_placement.discovery.probes import LocalProbe, ProbeError, Prober
from acode_placement.discovery.service import Discovery
from acode_placement.engine import PlacementEngine
from acode_placement.errors import (
    AcquireError,
    DuplicateStrategyError,
    InputError,
    PlacementError,
    StrategyError,
    UnknownNameError,
)
from acode_placement.events import (
    CapabilitiesChanged,
    Change,
    PlacementCompleted,
    PlacementEvent,
    PlacementFailed,
    PlacementStarted,
)
from acode_placement.leasing import Acquisition
from acode_placement.models import (
    OS,
    Arch,
    Attempt,
    Capabilities,
    Check,
    CheckKind,
    DiscoveryStatus,
    Ec2Target,
    GpuInfo,
    GpuRequirement,
    Known,
    LocalTarget,
    Mode,
    PlacementOptions,
    PlacementResult,
    PlacementSettings,
    Preferences,
    Reason,
    SshTarget,
    TargetKind,
    TargetScore,
    Task,
    TaskRequirements,
    TieBreaker,
)
from acode_placement.strategies import BuiltinStrategy, Strategy, StrategyRegistry

__all__ = [
    "OS",
    "AcquireError",
    "Acquisition",
    "Arch",
    "Attempt",
    "BuiltinStrategy",
    "Capabilities",
    "CapabilitiesChanged",
    "CapabilityCache",
    "Change",
    "Check",
    "CheckKind",
    "Discovery",
    "DiscoveryStatus",
    "DuplicateStrategyError",
    "Ec2Target",
    "GpuInfo",
    "GpuRequirement",
    "InputError",
    "Known",
    "LocalProbe",
    "LocalTarget",
    "Mode",
    "PlacementCompleted",
    "PlacementEngine",
    "PlacementError",
    "PlacementEvent",
    "PlacementFailed",
    "PlacementOptions",
    "PlacementResult",
    "PlacementSettings",
    "PlacementStarted",
    "Preferences",
    "ProbeError",
    "ProbeReport",
    "Prober",
    "Reason",
    "SshProbe",
    "SshTarget",
    "Strategy",
    "StrategyError",
    "StrategyRegistry",
    "TargetKind",
    "TargetScore",
    "Task",
    "TaskRequirements",
    "TieBreaker",
    "UnknownNameError",
    "load_settings",
    "load_targets",
    "load_task",
    "parse_probe",
]


def __getattr__(name: str) -> object:
    # asyncssh takes a fifth of a second to import: only SSH users pay for it.
    if name == "SshProbe":
        from acode_placement.discovery.ssh import SshProbe  # noqa: PLC0415

        return SshProbe
    raise AttributeError(f"module 'acode_placement' has no attribute {name!r}")

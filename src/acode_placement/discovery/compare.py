"""Comparing capabilities: what changed between two discoveries, where each value
came from, and where the targets file says something discovery contradicts."""

from __future__ import annotations

from typing import Any

from acode_placement.events import Change
from acode_placement.explain import gpu_text, num
from acode_placement.matching import model_matches
from acode_placement.models import Capabilities, GpuInfo

FIELDS = ("cpu", "memory_gb", "disk_gb", "gpu", "os", "arch", "network", "max_runtime_minutes")
_CAMEL = {
    "cpu": "cpu",
    "memory_gb": "memoryGb",
    "disk_gb": "diskGb",
    "gpu": "gpu",
    "os": "os",
    "arch": "arch",
    "network": "network",
    "max_runtime_minutes": "maxRuntimeMinutes",
    "tools": "tools",
}
# Free disk moves all the time; a change is news only past this share (or 1 GB).
_DISK_SHARE = 0.05
# Declared sizes are often round numbers: a few percent off is not a contradiction.
_SIZE_SHARE = 0.05


def _near(a: float, b: float, share: float, floor: float = 0.0) -> bool:
    return abs(a - b) <= max(floor, share * max(abs(a), abs(b)))


def _same(field: str, before: Any, after: Any) -> bool:
    if before is None or after is None:
        return before is after
    if field == "disk_gb":
        return _near(before, after, _DISK_SHARE, floor=1.0)
    return bool(before == after)


def changes(before: Capabilities, after: Capabilities, checked: frozenset[str]) -> list[Change]:
    """What differs between two discoveries of one target.

    Tools count only where both discoveries asked about them (`checked`): a tool
    asked about for the first time is news to the cache, not a change.
    """
    found: list[Change] = []
    for field in FIELDS:
        old, new = getattr(before, field), getattr(after, field)
        if not _same(field, old, new):
            found.append(Change(_CAMEL[field], _plain(old), _plain(new)))
    old_tools, new_tools = set(before.tools) & checked, set(after.tools) & checked
    for tool in sorted(old_tools ^ new_tools):
        found.append(Change(f"tool {tool}", tool in old_tools, tool in new_tools))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, GpuInfo):
        return value.model_dump(mode="json", exclude_none=True)
    return value.value if hasattr(value, "value") else value


def provenance(
    declared: Capabilities | None, discovered: Capabilities | None, by: str = "discovered"
) -> dict[str, str]:
    """For each capability known: `discovered` (or who answered: `catalog`,
    `ec2-api`), `declared`, or `both`."""
    sources: dict[str, str] = {}
    for field in (*FIELDS, "tools"):
        mine = getattr(discovered, field) if discovered else None
        theirs = getattr(declared, field) if declared else None
        present_mine = mine not in (None, ())
        present_theirs = theirs not in (None, ())
        if present_mine and present_theirs:
            sources[_CAMEL[field]] = "both"
        elif present_mine or present_theirs:
            sources[_CAMEL[field]] = by if present_mine else "declared"
    return sources


def contradictions(
    declared: Capabilities | None, discovered: Capabilities | None, checked: frozenset[str]
) -> list[str]:
    """Declared values that discovery found otherwise, in words."""
    if declared is None or discovered is None:
        return []
    found: list[str] = []
    for field in ("cpu", "memory_gb", "disk_gb", "os", "arch", "network"):
        said, seen = getattr(declared, field), getattr(discovered, field)
        if said is None or seen is None:
            continue
        differs = (
            not _near(said, seen, _SIZE_SHARE)
            if field in ("memory_gb", "disk_gb")
            else said != seen
        )
        if differs:
            found.append(f"{_CAMEL[field]} declared {_word(said)}, discovered {_word(seen)}")
    if declared.gpu is not None and not _gpu_agrees(declared.gpu, discovered.gpu):
        seen_gpu = gpu_text(discovered.gpu) if discovered.gpu else "none"
        found.append(f"gpu declared {gpu_text(declared.gpu)}, discovered {seen_gpu}")
    missing = sorted(t for t in declared.tools if t in checked and t not in discovered.tools)
    if missing:
        found.append(f"tools declared but not found: {', '.join(missing)}")
    return found


def _gpu_agrees(said: GpuInfo, seen: GpuInfo | None) -> bool:
    if seen is None:
        return said.count <= 0
    if said.type != seen.type or said.count != seen.count:
        return False
    if said.model and seen.model and not model_matches(said.model, seen.model):
        return False
    return said.vram_gb is None or seen.vram_gb is None or _near(said.vram_gb, seen.vram_gb, 0.05)


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return num(value.value if hasattr(value, "value") else value)

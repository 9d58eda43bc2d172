"""This machine, as far as Python's standard library can tell (no GPU knowledge)."""

from __future__ import annotations

import functools
import os
import platform
import shutil
from datetime import UTC, datetime
from pathlib import Path

from acode_placement.models import OS, AnyTarget, Arch, Capabilities

_GIB = 1024**3
_OS = {"linux": OS.LINUX, "darwin": OS.MACOS, "windows": OS.WINDOWS}
_ARCH = {
    "x86_64": Arch.X64,
    "amd64": Arch.X64,
    "x64": Arch.X64,
    "arm64": Arch.ARM64,
    "aarch64": Arch.ARM64,
}


class LocalMachine:
    """Capabilities of the machine this process runs on.

    Hardware facts are read once per instance; tools are looked up on PATH with
    `shutil.which` (never a shell) as tasks ask for them, and remembered.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        self._workdir = workdir or Path.cwd()
        self._tools: dict[str, bool] = {}

    async def capabilities(self, target: AnyTarget, tools: frozenset[str]) -> Capabilities:
        return self.snapshot(tools)

    def snapshot(self, tools: frozenset[str] = frozenset()) -> Capabilities:
        for tool in tools - self._tools.keys():
            self._tools[tool] = shutil.which(tool) is not None
        found = tuple(sorted(t for t, ok in self._tools.items() if ok))
        return self.hardware.model_copy(update={"tools": found})

    @functools.cached_property
    def hardware(self) -> Capabilities:
        """CPU, memory, free disk of the work directory, OS, arch and network."""
        return Capabilities(
            cpu=_cpu_count(),
            memory_gb=_memory_gb(),
            disk_gb=round(shutil.disk_usage(self._workdir).free / _GIB, 1),
            os=_OS.get(platform.system().lower()),
            arch=_ARCH.get(platform.machine().lower()),
            network=_has_default_route(),
            discovered_at=datetime.now(UTC),
        )


def _cpu_count() -> int | None:
    # The CPUs this process may use, as `nproc` counts them.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _memory_gb() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return round(pages * size / _GIB, 1)


def _has_default_route() -> bool | None:
    """True when Linux's routing table has a default route; None elsewhere."""
    tables = (Path("/proc/net/route"), Path("/proc/net/ipv6_route"))
    if not tables[0].exists():
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if table.name == "route" and len(fields) > 2 and fields[1] == "00000000":
                return True
            ipv6_default = len(fields) >= 10 and fields[0] == "0" * 32 and fields[1] == "00"
            if table.name == "ipv6_route" and ipv6_default and fields[9] != "lo":
                return True
    return False

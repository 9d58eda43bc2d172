"""This machine as the standard library sees it agrees with the system's own tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acode_placement.models import Arch
from acode_placement.targets.local import LocalMachine

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@linux_only
def test_agrees_with_nproc_meminfo_and_df(tmp_path: Path) -> None:
    caps = LocalMachine(tmp_path).snapshot()
    # nproc also obeys OMP_NUM_THREADS; the machine's count is what is compared.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    assert caps.cpu == int(subprocess.check_output(["nproc"], text=True, env=env))
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    assert caps.memory_gb == pytest.approx(total_kib / 1024**2, abs=0.1)
    df = subprocess.check_output(["df", "-Pk", str(tmp_path)], text=True).splitlines()[1]
    free_gib = int(df.split()[3]) / 1024**2
    assert caps.disk_gb == pytest.approx(free_gib, abs=max(1.0, free_gib * 0.02))
    assert caps.os == "linux"
    assert caps.arch in (Arch.X64, Arch.ARM64)
    assert caps.discovered_at is not None


def test_tools_are_looked_up_on_path_and_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = LocalMachine()
    looked: list[str] = []
    real_which = shutil.which

    def which(name: str) -> str | None:
        looked.append(name)
        return real_which(name)

    monkeypatch.setattr(shutil, "which", which)
    caps = machine.snapshot(frozenset({"sh", "surely-not-a-tool-xyz"}))
    assert caps.tools == ("sh",)
    machine.snapshot(frozenset({"sh"}))
    assert sorted(looked) == ["sh", "surely-not-a-tool-xyz"]

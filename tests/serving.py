"""Waiting for an `acode-placement serve` process the tests (and benchmarks) started."""

from __future__ import annotations

import contextlib
import subprocess
import time
from typing import Any

import httpx


def wait_until_up(
    base: str, process: subprocess.Popen[Any], *, path: str = "/healthz", seconds: float = 30
) -> None:
    """Return once `GET base+path` answers 200. RuntimeError if the process ends first
    (with what it wrote on a piped stderr) or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + path, timeout=5).status_code == 200:
                return
        if process.poll() is not None:
            said = process.stderr.read() if process.stderr is not None else ""
            raise RuntimeError(f"serve ended with status {process.returncode}: {said!s:.2000}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve did not answer {path} within {seconds:g} s")
        time.sleep(0.05)

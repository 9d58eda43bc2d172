"""Running the probe on this machine (a subprocess); over SSH see `discovery.ssh`.

A prober returns a `ProbeReport` or raises `ProbeError` with the status
(unreachable or unverified) and a cause a person can act on. It leaves nothing
behind: a probe that runs past its timeout is killed with its process group, and
an SSH connection is closed on every path, cancellation included.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

from acode_placement.discovery.facts import facts_script, read_facts
from acode_placement.discovery.parse import ProbeOutputError, ProbeReport, parse_probe
from acode_placement.models import AnyTarget, DiscoveryStatus, FactSpec
from acode_placement.telemetry import get_logger

_log = get_logger("acode_placement.discovery")
_STDERR_SHOWN = 200
MAX_OUTPUT = 4 * 1024 * 1024  # bytes of stdout (or stderr) a probe may print


class ProbeError(Exception):
    """A probe gave no trustworthy answer. `status` is unreachable or unverified."""

    def __init__(self, status: DiscoveryStatus, cause: str) -> None:
        super().__init__(cause)
        self.status = status
        self.cause = cause


class Prober(Protocol):
    """Finds what a target offers. `tools_only` asks about `tools` alone."""

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport: ...


@cache
def script(name: str) -> str:
    """The text of a probe shipped with the package (`probe.sh`, `probe.ps1`)."""
    return resources.files("acode_placement.discovery").joinpath(name).read_text("utf-8")


def sh_arguments(tools: Iterable[str], tools_only: bool) -> list[str]:
    """`sh -s -- all|tools TOOL...`: the script comes on stdin, the mode always first
    and the tools after it as arguments, so no tool name can stand for the mode."""
    return ["sh", "-s", "--", "tools" if tools_only else "all", *sorted(tools)]


def powershell_arguments(tools: Iterable[str], tools_only: bool) -> list[str]:
    """`powershell -EncodedCommand ...` running probe.ps1 with the tools bound first.

    Tool names are already restricted to `[A-Za-z0-9._+-]`, never a leading '-';
    each is single-quoted
    (with PowerShell's quote doubling) all the same.
    """
    quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in sorted(tools))
    prelude = f"$Tools = @({quoted})\n$ToolsOnly = ${'true' if tools_only else 'false'}\n"
    encoded = base64.b64encode((prelude + script("probe.ps1")).encode("utf-16-le")).decode()
    return ["powershell", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded]


def probe_report(stdout: str, where: str, tools: frozenset[str], tools_only: bool) -> ProbeReport:
    """The probe's answer to what was asked, or ProbeError (unverified) saying why not."""
    try:
        return parse_probe(
            stdout, discovered_at=datetime.now(UTC), asked=tools, tools_only=tools_only
        )
    except ProbeOutputError as exc:
        raise ProbeError(DiscoveryStatus.UNVERIFIED, f"{where}: {exc}") from None


def last_words(text: str) -> str:
    text = " ".join(text.split())
    return text[-_STDERR_SHOWN:] if text else "no error output"


class LocalProbe:
    """Runs the probe on this machine as a subprocess, in its own process group."""

    def __init__(
        self,
        timeout: float = 3.0,
        workdir: Path | None = None,
        probe_script: str | None = None,
        facts: Mapping[str, FactSpec] | None = None,
    ) -> None:
        self.timeout = timeout
        self.workdir = workdir
        self.probe_script = probe_script  # None: the shipped probe.sh
        self.facts = dict(facts or {})  # the settings' custom facts

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        if sys.platform == "win32":
            argv, stdin = powershell_arguments(tools, tools_only), b""
        else:
            text = facts_script(self.facts) + (self.probe_script or script("probe.sh"))
            argv, stdin = sh_arguments(tools, tools_only), text.encode()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.workdir,
                start_new_session=sys.platform != "win32",
            )
        except OSError as exc:
            raise ProbeError(DiscoveryStatus.UNVERIFIED, f"cannot run {argv[0]}: {exc}") from None
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await _communicate(process, stdin)
        except TimeoutError:
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"the probe did not finish within {self.timeout:g} s",
            ) from None
        finally:
            await _reap(process)
        if process.returncode != 0:
            stderr = last_words(err.decode(errors="replace"))
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"the probe exited with status {process.returncode}: {stderr}",
            )
        report = probe_report(out.decode(errors="replace"), "this machine", tools, tools_only)
        return read_facts(report, self.facts)


async def _communicate(process: asyncio.subprocess.Process, stdin: bytes) -> tuple[bytes, bytes]:
    """Feed stdin, read stdout and stderr to their ends, at most MAX_OUTPUT bytes each
    (a tool on PATH that prints without end must not fill this process's memory)."""
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdin.write(stdin)
    with contextlib.suppress(ConnectionError):
        await process.stdin.drain()
    process.stdin.close()
    readers = [asyncio.ensure_future(_bounded(s)) for s in (process.stdout, process.stderr)]
    try:
        out, err = await asyncio.gather(*readers)
    finally:
        for reader in readers:  # one failed (too much output): stop the other too
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    await process.wait()
    return out, err


async def _bounded(stream: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED, f"the probe printed over {MAX_OUTPUT} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Kill the probe and everything it started, unless it has already ended, and
    close its pipes: output left unread (over the bound) would otherwise keep
    `wait()` waiting for an end of file that never comes."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sys.platform == "win32":
                process.kill()
            else:
                os.killpg(process.pid, signal.SIGKILL)
    transport = getattr(process, "_transport", None)  # asyncio has no public way
    if transport is not None:
        transport.close()
    # Waiting is shielded so that a cancelled caller still leaves no zombie.
    await asyncio.shield(process.wait())


class DeferredProber:
    """A prober built on first use, so that its library (asyncssh, say) loads only
    when a target of its kind is probed."""

    def __init__(self, build: Callable[[], Prober]) -> None:
        self._build = build
        self._prober: Prober | None = None

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        if self._prober is None:
            self._prober = self._build()
        return await self._prober.probe(target, tools, tools_only=tools_only)

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
import selectors
import signal
import subprocess
import sys
import time
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
    """Finds what a target offers. `tools_only` asks about `tools` alone.

    A prober may also have `at_once(target) -> ProbeReport | None`: what it can tell
    without I/O (dated data, such as an EC2 type's catalog row), which a decision
    uses while the probe runs in the background.
    """

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
    """Runs the probe on this machine as a subprocess, in its own process group.

    The process is started with `subprocess.Popen` and its pipes are served by a
    worker thread, not by asyncio's subprocess transport: a probe started in the
    background may still be starting when a one-shot command's event loop closes,
    and CPython 3.11 hangs forever at that close when a task is cancelled inside
    `asyncio.create_subprocess_exec` (python/cpython#103847). A cancelled probe
    kills its process group, which ends the worker's reads at once.
    """

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
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.workdir,
                start_new_session=sys.platform != "win32",
            )
        except OSError as exc:
            raise ProbeError(DiscoveryStatus.UNVERIFIED, f"cannot run {argv[0]}: {exc}") from None
        try:
            out, err = await asyncio.to_thread(_collect, process, stdin, self.timeout)
        finally:
            _reap(process)
        if process.returncode != 0:
            stderr = last_words(err.decode(errors="replace"))
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"the probe exited with status {process.returncode}: {stderr}",
            )
        report = probe_report(out.decode(errors="replace"), "this machine", tools, tools_only)
        return read_facts(report, self.facts)


def _collect(process: subprocess.Popen[bytes], data: bytes, timeout: float) -> tuple[bytes, bytes]:
    """Feed stdin, read stdout and stderr to their ends, at most MAX_OUTPUT bytes each
    (a tool on PATH that prints without end must not fill this process's memory),
    within `timeout` seconds; runs in a worker thread and closes the pipes."""
    deadline = time.monotonic() + timeout
    if sys.platform == "win32":  # pragma: no cover - no selectors on pipes there
        try:
            out, err = process.communicate(data, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise _late(timeout) from None
        if len(out) > MAX_OUTPUT or len(err) > MAX_OUTPUT:  # _pump stops at the bound itself
            raise _flood()
    else:
        out, err = _pump(process, data, deadline, timeout)
    try:
        process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:  # closed its output but went on running
        raise _late(timeout) from None
    return out, err


def _pump(
    process: subprocess.Popen[bytes], data: bytes, deadline: float, timeout: float
) -> tuple[bytes, bytes]:
    """`_collect` on POSIX: one selector over the three pipes."""
    stdin, stdout, stderr = process.stdin, process.stdout, process.stderr
    assert stdin is not None
    assert stdout is not None
    assert stderr is not None
    streams = (stdin, stdout, stderr)
    got: dict[int, bytearray] = {stdout.fileno(): bytearray(), stderr.fileno(): bytearray()}
    pending = memoryview(data)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            selector.register(stderr, selectors.EVENT_READ)
            os.set_blocking(stdin.fileno(), False)
            selector.register(stdin, selectors.EVENT_WRITE)
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _late(timeout)
                for key, _ in selector.select(left):
                    if key.fileobj is stdin:
                        pending = _feed(key.fd, pending)
                        if not pending:
                            selector.unregister(stdin)
                            stdin.close()
                    elif chunk := os.read(key.fd, 65536):
                        got[key.fd] += chunk
                        if len(got[key.fd]) > MAX_OUTPUT:
                            raise _flood()
                    else:
                        selector.unregister(key.fileobj)
    finally:
        for stream in streams:
            stream.close()
    out, err = got.values()
    return bytes(out), bytes(err)


def _feed(fd: int, pending: memoryview) -> memoryview:
    """What is left of `pending` after one write to a non-blocking pipe; nothing when
    the probe closed its stdin (it does not want the rest)."""
    try:
        return pending[os.write(fd, pending[:65536]) :]
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        return pending[len(pending) :]


def _flood() -> ProbeError:
    return ProbeError(DiscoveryStatus.UNVERIFIED, f"the probe printed over {MAX_OUTPUT} bytes")


def _late(timeout: float) -> ProbeError:
    return ProbeError(DiscoveryStatus.UNVERIFIED, f"the probe did not finish within {timeout:g} s")


def _reap(process: subprocess.Popen[bytes]) -> None:
    """Kill the probe and everything it started, unless it has already ended, and
    wait for it (after SIGKILL, a moment), so that nothing is left behind, a
    cancelled or interrupted caller's probe included."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sys.platform == "win32":
                process.kill()
            else:
                os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(2.0)


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

"""Running the probe: on this machine (a subprocess) and over SSH (asyncssh).

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
import shlex
import signal
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import asyncssh

from acode_placement.discovery.parse import ProbeOutputError, ProbeReport, parse_probe
from acode_placement.models import OS, AnyTarget, DiscoveryStatus, SshTarget
from acode_placement.telemetry import get_logger

_log = get_logger("acode_placement.discovery")
_STDERR_SHOWN = 200


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
    """`sh -s -- [--tools-only] TOOL...`: the script comes on stdin, tools as arguments."""
    return ["sh", "-s", "--", *(["--tools-only"] if tools_only else []), *sorted(tools)]


def powershell_arguments(tools: Iterable[str], tools_only: bool) -> list[str]:
    """`powershell -EncodedCommand ...` running probe.ps1 with the tools bound first.

    Tool names are already restricted to `[A-Za-z0-9._+-]`; each is single-quoted
    (with PowerShell's quote doubling) all the same.
    """
    quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in sorted(tools))
    prelude = f"$Tools = @({quoted})\n$ToolsOnly = ${'true' if tools_only else 'false'}\n"
    encoded = base64.b64encode((prelude + script("probe.ps1")).encode("utf-16-le")).decode()
    return ["powershell", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded]


def _report(stdout: str, where: str) -> ProbeReport:
    try:
        return parse_probe(stdout, discovered_at=datetime.now(UTC))
    except ProbeOutputError as exc:
        raise ProbeError(DiscoveryStatus.UNVERIFIED, f"{where}: {exc}") from None


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text[-_STDERR_SHOWN:] if text else "no error output"


class LocalProbe:
    """Runs the probe on this machine as a subprocess, in its own process group."""

    def __init__(
        self, timeout: float = 3.0, workdir: Path | None = None, probe_script: str | None = None
    ) -> None:
        self.timeout = timeout
        self.workdir = workdir
        self.probe_script = probe_script  # None: the shipped probe.sh

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        if sys.platform == "win32":
            argv, stdin = powershell_arguments(tools, tools_only), b""
        else:
            text = self.probe_script or script("probe.sh")
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
                out, err = await process.communicate(stdin)
        except TimeoutError:
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"the probe did not finish within {self.timeout:g} s",
            ) from None
        finally:
            await _reap(process)
        if process.returncode != 0:
            stderr = _tail(err.decode(errors="replace"))
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"the probe exited with status {process.returncode}: {stderr}",
            )
        return _report(out.decode(errors="replace"), "this machine")


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Kill the probe and everything it started, unless it has already ended."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sys.platform == "win32":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)
    # Waiting is shielded so that a cancelled caller still leaves no zombie.
    await asyncio.shield(process.wait())


class SshProbe:
    """Runs the probe over SSH: one connection per probe, host keys checked.

    `known_hosts` is an OpenSSH known_hosts file (a missing file trusts no one).
    With `accept_new_host_keys`, a host that has no entry at all is trusted on
    first sight and its key appended to that file, like OpenSSH's
    `StrictHostKeyChecking accept-new`; a host whose key changed is always refused.
    """

    def __init__(
        self,
        timeout: float = 3.0,
        known_hosts: Path | None = None,
        accept_new_host_keys: bool = False,
    ) -> None:
        self.timeout = timeout
        self.known_hosts = known_hosts or Path("~/.ssh/known_hosts").expanduser()
        self.accept_new_host_keys = accept_new_host_keys

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        if not isinstance(target, SshTarget):
            raise TypeError(f"SshProbe cannot probe a {target.type} target")
        windows = target.capabilities is not None and target.capabilities.os is OS.WINDOWS
        if windows:
            command, stdin = shlex.join(powershell_arguments(tools, tools_only)), ""
        else:
            command, stdin = shlex.join(sh_arguments(tools, tools_only)), script("probe.sh")
        where = f"{target.host}:{target.port}"
        key = target.identity_file
        if key and not Path(key).expanduser().is_file():
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED, f"{where}: identityFile {key} does not exist"
            )
        stage = "connect"
        try:
            async with asyncio.timeout(self.timeout):
                async with asyncssh.connect(**self._options(target)) as connection:
                    stage = "run"
                    result = await connection.run(command, input=stdin, check=False)
        except TimeoutError:
            if stage == "connect":
                raise ProbeError(
                    DiscoveryStatus.UNREACHABLE,
                    f"{where}: no SSH answer within {self.timeout:g} s",
                ) from None
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"{where}: the probe did not finish within {self.timeout:g} s",
            ) from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"{where}: host key not trusted ({exc.reason}); add it to {self.known_hosts}"
                " or set acceptNewHostKeys: true",
            ) from None
        except asyncssh.PermissionDenied:
            user = f" as {target.user}" if target.user else ""
            key = f" with {target.identity_file}" if target.identity_file else ""
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED, f"{where}: login{user}{key} refused"
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise ProbeError(DiscoveryStatus.UNREACHABLE, f"{where}: {_describe(exc)}") from None
        status = result.exit_status
        if status != 0:
            stderr = result.stderr if isinstance(result.stderr, str) else ""
            raise ProbeError(
                DiscoveryStatus.UNVERIFIED,
                f"{where}: the probe exited with status {status}: {_tail(stderr)}",
            )
        stdout = result.stdout if isinstance(result.stdout, str) else ""
        return _report(stdout, where)

    def _options(self, target: SshTarget) -> dict[str, object]:
        options: dict[str, object] = {
            "host": target.host,
            "port": target.port,
            "known_hosts": self._trusted(),
            "connect_timeout": self.timeout,
            "login_timeout": self.timeout,
        }
        if target.user:
            options["username"] = target.user
        if target.identity_file:
            options["client_keys"] = [str(Path(target.identity_file).expanduser())]
        if self.accept_new_host_keys:
            options["client_factory"] = lambda: _AcceptNewClient(self.known_hosts, self._trusted())
        return options

    def _trusted(self) -> asyncssh.SSHKnownHosts:
        try:
            text = self.known_hosts.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        return asyncssh.import_known_hosts(text)


class _AcceptNewClient(asyncssh.SSHClient):
    """Trusts a host with no known_hosts entry at all and records its key."""

    def __init__(self, path: Path, known: asyncssh.SSHKnownHosts) -> None:
        self._path = path
        self._known = known

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        keys, ca_keys, *_ = asyncssh.match_known_hosts(self._known, host, addr, port)
        if keys or ca_keys:
            return False  # known with another key: a changed key is never accepted
        pattern = host if port == 22 else f"[{host}]:{port}"
        line = f"{pattern} {key.export_public_key().decode().strip()}\n"
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("a", encoding="utf-8") as file:
            file.write(line)
        _log.warning("discovery.host_key_added", host=host, port=port, file=str(self._path))
        return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    reason = getattr(exc, "reason", None)
    return str(reason or exc or type(exc).__name__)

"""Running the probe over SSH with asyncssh: one connection per probe, host keys checked.

Kept apart from the local probe so that asyncssh is imported only by a program
that probes SSH hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shlex
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

import asyncssh

from acode_placement.discovery.facts import facts_script, read_facts
from acode_placement.discovery.parse import ProbeReport
from acode_placement.discovery.probes import (
    ProbeError,
    last_words,
    powershell_arguments,
    probe_report,
    script,
    sh_arguments,
)
from acode_placement.models import OS, AnyTarget, DiscoveryStatus, FactSpec, SshTarget
from acode_placement.safe import UnsafeFileError, read_regular
from acode_placement.telemetry import get_logger

_log = get_logger("acode_placement.discovery")
_KEY_BYTES = 1024 * 1024
_KNOWN_HOSTS_BYTES = 64 * 1024 * 1024


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
        facts: Mapping[str, FactSpec] | None = None,
    ) -> None:
        self.timeout = timeout
        self.known_hosts = known_hosts or Path("~/.ssh/known_hosts").expanduser()
        self.accept_new_host_keys = accept_new_host_keys
        self.facts = dict(facts or {})  # the settings' custom facts

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        if not isinstance(target, SshTarget):
            raise TypeError(f"SshProbe cannot probe a {target.type} target")
        windows = target.capabilities is not None and target.capabilities.os is OS.WINDOWS
        if windows:
            command, stdin = shlex.join(powershell_arguments(tools, tools_only)), ""
        else:
            stdin = facts_script(self.facts) + script("probe.sh")
            command = shlex.join(sh_arguments(tools, tools_only))
        where = f"{target.host}:{target.port}"
        keys = _identity(target, where)
        stage = "connect"
        try:
            async with asyncio.timeout(self.timeout):
                await _resolvable(target.host, target.port)
                async with asyncssh.connect(**self._options(target, keys)) as connection:
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
            key = " with its identityFile" if target.identity_file else ""
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
                f"{where}: the probe exited with status {status}: {last_words(stderr)}",
            )
        stdout = result.stdout if isinstance(result.stdout, str) else ""
        return read_facts(probe_report(stdout, where, tools, tools_only), self.facts)

    def _options(self, target: SshTarget, keys: list[asyncssh.SSHKey] | None) -> dict[str, object]:
        options: dict[str, object] = {
            "host": target.host,
            "port": target.port,
            "known_hosts": self._trusted(),
            "connect_timeout": self.timeout,
            "login_timeout": self.timeout,
        }
        if target.user:
            options["username"] = target.user
        if keys is not None:
            options["client_keys"] = keys
        if self.accept_new_host_keys:
            options["client_factory"] = lambda: _AcceptNewClient(self.known_hosts, self._trusted())
        return options

    def _trusted(self) -> asyncssh.SSHKnownHosts:
        """The known_hosts file's entries; a missing file trusts no one, and so does
        one that is not a regular file (a FIFO would hang every probe) or not text."""
        try:
            text = read_regular(self.known_hosts, _KNOWN_HOSTS_BYTES).decode("utf-8")
        except (OSError, UnsafeFileError, UnicodeDecodeError) as exc:
            if not isinstance(exc, FileNotFoundError):
                _log.warning("discovery.known_hosts_unreadable", error=str(exc)[:200])
            text = ""
        return asyncssh.import_known_hosts(text)


def _identity(target: SshTarget, where: str) -> list[asyncssh.SSHKey] | None:
    """The target's identityFile, read now: a missing, unreadable or undecodable key is
    a probe failure (unverified, so that it is retried only after a back-off) whose
    cause names the problem but never the key's path."""
    if not target.identity_file:
        return None
    path = Path(target.identity_file).expanduser()
    try:
        return [asyncssh.import_private_key(read_regular(path, _KEY_BYTES))]
    except FileNotFoundError:
        cause = "identityFile does not exist"
    except IsADirectoryError:
        cause = "identityFile is a directory"
    except UnsafeFileError:
        cause = "identityFile is not a regular file of at most 1 MiB"
    except OSError as exc:
        cause = f"identityFile cannot be read ({(exc.strerror or 'error').lower()})"
    except asyncssh.KeyEncryptionError:
        cause = "identityFile needs a passphrase (use an agent-free, unencrypted key)"
    except (asyncssh.KeyImportError, ValueError):
        cause = "identityFile is not a private key asyncssh can read"
    raise ProbeError(DiscoveryStatus.UNVERIFIED, f"{where}: {cause}")


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


async def _resolvable(host: str, port: int) -> None:
    """Return when `host` has an address; raise `socket.gaierror` when it has none.

    The name is looked up in a daemon thread of its own rather than in the event
    loop's executor: a resolver that hangs (a DNS server that drops queries takes 5 s
    or more per name) then costs only this probe its timeout, and can neither hold
    the executor's few threads from other probes nor keep a command from exiting.
    asyncssh looks the name up again to connect, from the resolver's cache at best.
    """
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return  # an address: nothing to look up
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[None] = loop.create_future()

    def settle(error: OSError | None) -> None:
        if answer.done():
            return  # the probe gave up meanwhile
        if error is None:
            answer.set_result(None)
        else:
            answer.set_exception(error)

    def look_up() -> None:
        error: OSError | None = None
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=look_up, name="acode-placement-resolve", daemon=True).start()
    await answer


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    reason = getattr(exc, "reason", None)
    return str(reason or exc or type(exc).__name__)

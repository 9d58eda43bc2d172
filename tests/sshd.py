"""A real OpenSSH server on 127.0.0.1 for the tests and the discovery benchmark.

It runs as the current user with keys made for it: one client key that logs in
normally, and keys whose authorized_keys entry forces another command (garbage
output, a failing exit, a hang), so each fault is a real SSH session.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# authorized_keys entries: key name -> forced command (None: the client's own command)
KEYS: dict[str, str | None] = {
    "good": None,
    "garbage": "echo 'this is not a probe'",
    "failing": "echo 'probe exploded' >&2; exit 3",
    "hanging": "sleep 20",
}


def sshd_binary() -> str:
    found = shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None
    )
    if found is None:
        raise RuntimeError(
            "sshd not found: install OpenSSH's server (./scripts/test does it with apt-get)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
    )


@dataclass
class Sshd:
    root: Path
    port: int
    process: subprocess.Popen[bytes]
    user: str

    def key(self, name: str) -> Path:
        return self.root / f"client_{name}"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file that trusts this server."""
        return self.root / "known_hosts"

    @property
    def host_key_line(self) -> str:
        public = (self.root / "host_ed25519.pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {public[0]} {public[1]}"

    def sessions(self) -> list[int]:
        """Process ids of sshd's per-connection children still alive."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if not children.exists():
            return []
        return [int(p) for p in children.read_text().split()]


@contextlib.contextmanager
def running_sshd(root: Path) -> Iterator[Sshd]:
    root.mkdir(parents=True, exist_ok=True)
    _keygen(root / "host_ed25519", "test-host")
    authorized = []
    for name, command in KEYS.items():
        _keygen(root / f"client_{name}", f"test-{name}")
        public = (root / f"client_{name}.pub").read_text().strip()
        prefix = f'command="{command}",no-pty ' if command else ""
        authorized.append(prefix + public)
    _keygen(root / "client_stranger", "not-authorized")
    (root / "authorized_keys").write_text("\n".join(authorized) + "\n")
    port = free_port()
    (root / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {root / 'host_ed25519'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                f"PidFile {root / 'sshd.pid'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "MaxStartups 400",
                "MaxSessions 50",
                "UseDNS no",
                "PrintMotd no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    process = subprocess.Popen(
        [sshd_binary(), "-D", "-e", "-f", str(root / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=(root / "sshd.log").open("wb"),
    )
    server = Sshd(root, port, process, getpass.getuser())
    server.known_hosts.write_text(server.host_key_line + "\n")
    try:
        _wait_for_port(port, process, root)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (root / "sshd.log").read_text(errors="replace")
            raise RuntimeError(f"sshd exited with {process.returncode}: {log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("sshd did not start listening within 10 s")

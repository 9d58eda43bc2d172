"""`init`: a first targets file, written from what this machine (and any SSH host
named) is found to offer, with commented SSH and EC2 examples to copy.

Everything a probed machine says is written as YAML data (quoted and escaped by the
YAML library); a comment carries only escaped, one-line text. The file is read back
with the same checks as any targets file before it replaces anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from acode_placement.commands.common import (
    _CONFIG_DIR,
    ConfigOpt,
    JsonOpt,
    _echo,
    _errors,
    _print_json,
    _progress,
    _run,
    app,
)
from acode_placement.config import TARGETS_ENV, read_targets, resolve_settings
from acode_placement.discovery.parse import ProbeReport
from acode_placement.discovery.probes import ProbeError
from acode_placement.discovery.service import COMMON_TOOLS
from acode_placement.errors import InputError
from acode_placement.explain import num
from acode_placement.models import Capabilities, LocalTarget, PlacementSettings, SshTarget
from acode_placement.safe import printable

# `[USER@]HOST[:PORT]`, HOST possibly a bracketed IPv6 address.
_SSH_SPEC = re.compile(
    r"\A(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?\Z"
)

EXAMPLES = """\
# More targets: uncomment, edit, and check with `acode-placement targets`.
#
# - id: build-box
#   type: ssh
#   host: build-box.example.com
#   user: ci                  # optional: your login name otherwise
#   port: 22                  # optional
#   identityFile: ~/.ssh/id_ed25519   # optional: without it, your SSH agent and
#                             # ~/.ssh/id_* keys are tried, as ssh does
#   capabilities:             # optional: discovery probes the host; declared
#     cpu: 16                 # values are used when it cannot be reached
#     memoryGb: 64
#     tools: [docker, git]
#
# - id: aws-gpu               # one EC2 instance type, priced from the shipped catalog
#   type: ec2
#   instanceType: g5.xlarge
#   region: us-east-1
#
# - id: aws-burst             # every type of these families, each a candidate
#   type: ec2
#   instanceFamilies: [g5, g6]
#   region: us-east-1
"""


@app.command()
@_errors
def init(
    targets: Annotated[
        Path | None,
        typer.Option(
            "--targets",
            metavar="FILE",
            help=f"where to write (default: ${TARGETS_ENV}, then {_CONFIG_DIR}/targets.yaml,"
            " where every command looks)",
        ),
    ] = None,
    ssh: Annotated[
        list[str] | None,
        typer.Option(
            "--ssh",
            metavar="[USER@]HOST[:PORT]",
            help="an SSH host to add, probed when it can be reached (repeat for more)",
        ),
    ] = None,
    accept_new_host_keys: Annotated[
        bool,
        typer.Option(
            "--accept-new-host-keys",
            help="trust an SSH host seen for the first time and record its key in"
            " knownHosts (a changed key is always refused)",
        ),
    ] = False,
    config: ConfigOpt = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing file")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a starting targets file: this machine as found now, any --ssh hosts, and
    commented SSH and EC2 examples.

    \b
    Examples:
      acode-placement init
      acode-placement init --ssh ci@build-box --ssh gpu-box:2222 --accept-new-host-keys
      acode-placement init --targets ./targets.yaml --force
    """
    path = _destination(targets)
    if path.exists() and not force:
        raise InputError(f"{path}: already exists; give --force to replace it")
    settings, _ = resolve_settings(config)
    hosts = _ssh_targets(ssh or [])
    fleet = [LocalTarget(id="local"), *hosts]
    with _progress("probing") as bar:
        found = _run(_probe_all(fleet, settings, accept_new_host_keys, bar.update))
    today = datetime.now(UTC).date().isoformat()
    text = _document(fleet, found, today)
    _write(path, text)
    rows = [_row(t, f) for t, f in zip(fleet, found, strict=True)]
    if json_out:
        _print_json({"path": str(path), "targets": rows})
        return
    _echo(f"wrote {path}:")
    for row in rows:
        _echo(f"  {row['id']} ({row['type']}): {row['note']}")
    _echo(f"next: acode-placement targets --targets {path}")


def _destination(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit.expanduser()
    from_env = os.environ.get(TARGETS_ENV)
    return Path(from_env).expanduser() if from_env else Path(_CONFIG_DIR) / "targets.yaml"


def _ssh_targets(specs: list[str]) -> list[SshTarget]:
    """One target per `[USER@]HOST[:PORT]`, ids from the host names, never twice."""
    hosts: list[SshTarget] = []
    taken = {"local"}
    for spec in specs:
        match = _SSH_SPEC.match(spec)
        if match is None:
            raise InputError(f"--ssh {spec!r}: give [USER@]HOST[:PORT]")
        host = match["host"].strip("[]")
        address = ":" in host or host.replace(".", "").isdigit()
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", host if address else host.split(".")[0])
        name = name.strip("-") or "host"
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        taken.add(unique)
        try:
            hosts.append(
                SshTarget(id=unique, host=host, port=int(match["port"] or 22), user=match["user"])
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise InputError(f"--ssh {spec!r}: {where}: {problem['msg']}") from None
    return hosts


async def _probe_all(
    fleet: list[Any],
    settings: PlacementSettings,
    accept_new: bool,
    progress: Callable[[int, int], None],
) -> list[ProbeReport | ProbeError]:
    """Each target's probe report, or the error that says why it has none."""
    from acode_placement.assembly import host_probers  # noqa: PLC0415  (as the engine does)

    trusting = accept_new or settings.accept_new_host_keys
    probers = host_probers(settings.model_copy(update={"accept_new_host_keys": trusting}))
    done = 0

    async def one(target: Any) -> ProbeReport | ProbeError:
        nonlocal done
        try:
            return await probers[target.kind].probe(target, COMMON_TOOLS)
        except ProbeError as exc:
            return exc
        finally:
            done += 1
            progress(done, len(fleet))

    return list(await asyncio.gather(*(one(t) for t in fleet)))


def _declared(report: ProbeReport) -> dict[str, Any]:
    """What a probe found, as a targets file's `capabilities` (no empty values)."""
    data = report.capabilities.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude={"discovered_at"}
    )
    return {key: _whole(value) for key, value in data.items() if value not in ({}, [], ())}


def _whole(value: Any) -> Any:
    """2.0 as 2 (a count of CPUs reads as one), everything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _document(fleet: list[Any], found: list[ProbeReport | ProbeError], today: str) -> str:
    lines = [
        f"# Targets for acode-placement, written by `acode-placement init` on {today}.",
        "# Capabilities below are what was found then; with discovery on (the default)",
        "# every run refreshes them, and they are used as declared when a probe fails.",
        "# Reference: `acode-placement schema targets`; what is in use: `acode-placement",
        "# targets`.",
        "targets:",
    ]
    for target, result in zip(fleet, found, strict=True):
        entry: dict[str, Any] = {"id": target.id, "type": target.type}
        if isinstance(target, SshTarget):
            entry["host"] = target.host
            if target.port != 22:
                entry["port"] = target.port
            if target.user:
                entry["user"] = target.user
        if isinstance(result, ProbeReport):
            entry["capabilities"] = _declared(result)
        else:
            cause = printable(" ".join(result.cause.split()))
            lines.append(f"# {result.status.value} at init ({cause}); discovered when it answers")
        lines.append(
            yaml.safe_dump([entry], sort_keys=False, allow_unicode=False, width=88).rstrip()
        )
    return "\n".join(lines) + "\n\n" + EXAMPLES


def _write(path: Path, text: str) -> None:
    """Check `text` as a targets file, then put it at `path` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".targets-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        read_targets(temporary)  # what was written loads, with every check
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _row(target: Any, result: ProbeReport | ProbeError) -> dict[str, Any]:
    if isinstance(result, ProbeError):
        note = f"{result.status.value} ({result.cause}); added without capabilities"
        return {"id": target.id, "type": target.type, "status": result.status.value,
                "note": note}  # fmt: skip
    caps: Capabilities = result.capabilities
    parts = [f"{num(caps.cpu)} CPUs" if caps.cpu else None,
             f"{num(caps.memory_gb)} GB" if caps.memory_gb else None,
             f"{caps.gpu.count}x {caps.gpu.model}" if caps.gpu and caps.gpu.model else None,
             f"{len(caps.tools)} tools" if caps.tools else None]  # fmt: skip
    note = "probed: " + ", ".join(p for p in parts if p)
    return {"id": target.id, "type": target.type, "status": "fresh", "note": note}

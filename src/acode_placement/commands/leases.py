"""`reservations` and `release`: the active leases, and ending one."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from acode_placement import explain
from acode_placement.commands.common import (
    ConfigOpt,
    JsonOpt,
    _console,
    _echo,
    _errors,
    _print_json,
    _settings,
    _Table,
    app,
)

if TYPE_CHECKING:
    from acode_placement.history.reservations import ReservationStore


def _leases(config: Path | None) -> ReservationStore:
    from acode_placement.history.reservations import ReservationStore  # noqa: PLC0415

    return ReservationStore(_settings(config).history)


@app.command()
@_errors
def release(
    reservation_id: Annotated[
        str, typer.Argument(metavar="ID", help="the id `place --reserve` printed")
    ],
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """End a reservation (again is harmless; an unknown or expired one is an error)."""
    lease = _leases(config).release(reservation_id)
    if json_out:
        _print_json(explain.lease_json(lease))
    else:
        _echo(f"released {lease.id} on {lease.target_id}")


@app.command()
@_errors
def reservations(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """List the active reservations (expired ones are reclaimed first).

    \b
    Examples:
      acode-placement reservations
      acode-placement release 6f1c2e...
    """
    store = _leases(config)
    leases = store.active()
    if json_out:
        _print_json({"reservations": [explain.lease_json(lease) for lease in leases]})
        return
    table = _Table(
        "id", "target", "cpu", "mem GB", "gpus", "owner", "task", "expires (UTC)", box=None
    )
    for lease in leases:
        table.add_row(
            lease.id,
            lease.target_id,
            explain.num(lease.resources.cpu),
            explain.num(lease.resources.memory_gb),
            explain.num(lease.resources.gpus),
            lease.owner,
            lease.task_name or "-",
            lease.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
    _console().print(table)

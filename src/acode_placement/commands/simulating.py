"""`simulate`: replay a workload trace over a fleet with several strategies and
compare them on cost, wait and use (see `acode_placement.simulation`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from acode_placement.commands.common import (
    JsonOpt,
    _console,
    _echo,
    _errors,
    _print_json,
    _progress,
    _Table,
    _targets,
    app,
)
from acode_placement.errors import InputError, UnknownNameError
from acode_placement.models import Mode
from acode_placement.strategies import StrategyRegistry

BUILTIN = ("auto", "local-first", "cloud-first", "cost-optimized", "performance")


@app.command()
@_errors
def simulate(
    trace: Annotated[
        Path, typer.Argument(metavar="TRACE", help="jobs CSV (submit_s, duration_s, cpu, ...)")
    ],
    targets: Annotated[
        Path,
        typer.Option("--targets", metavar="FILE", help="the fleet to replay on (a targets file)"),
    ],
    strategies: Annotated[
        str,
        typer.Option(
            "--strategies", metavar="NAME,...", help="strategies to compare, comma-separated"
        ),
    ] = ",".join(BUILTIN),
    mode: Annotated[
        str, typer.Option("--mode", metavar="MODE", help="burst | local-only | airgapped")
    ] = "burst",
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE.png", help="also draw cost, queue and use"),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Replay a workload trace over a fleet in simulated time, once per strategy, and
    compare placements, waits, bursts to the cloud, cost and use of owned targets.

    Each job is placed by the real engine on free capacity; nothing is probed,
    recorded or reserved for real.

    \b
    Examples:
      acode-placement simulate jobs.csv --targets fleet.yaml
      acode-placement simulate jobs.csv --targets fleet.yaml --mode local-only --json
      acode-placement simulate jobs.csv --targets fleet.yaml --strategies auto,performance
        --plot out.png
    """
    from acode_placement.simulation import (  # noqa: PLC0415
        Fleet,
        read_trace,
        report,
        simulate,
    )

    names = [name.strip() for name in strategies.split(",") if name.strip()]
    registry = StrategyRegistry.default()
    for name in names:
        if name not in registry:
            raise UnknownNameError("strategy", name, registry.names(), "--strategies")
    if not names:
        raise InputError("--strategies: name at least one strategy")
    if mode not in set(Mode):
        raise UnknownNameError("mode", mode, [m.value for m in Mode], "--mode")
    if plot is not None and plot.suffix.lower() != ".png":
        raise InputError(f"--plot {plot}: give a file name ending in .png")
    jobs = read_trace(trace)
    fleet = Fleet(_targets(targets))
    started = time.perf_counter()
    runs = []
    with _progress("simulating", len(names)) as bar:
        for name in dict.fromkeys(names):
            bar.step(name)
            runs.append(simulate(jobs, fleet, name, Mode(mode)))
    took = time.perf_counter() - started
    if plot is not None:
        try:
            report.plot(runs, plot, f"{trace.name} on {targets.name} ({mode})")
        except ImportError:
            raise InputError(
                "--plot needs matplotlib: pip install 'acode-placement[plot]'"
            ) from None
        except OSError as exc:
            raise InputError(f"--plot {plot}: {exc.strerror}") from None
    if json_out:
        _print_json(report.document(runs, len(jobs), took))
        return
    table = _Table(*report.HEADER, box=None)
    for row in report.table_rows(runs):
        table.add_row(*row)
    _console().print(table)
    first = runs[0]
    _echo(
        f"{len(jobs)} jobs: {first.never_ran} never ran in the trace (no duration);"
        f" {len(runs) * len(jobs) / took:,.0f} simulated jobs/s ({took:.1f} s)"
    )
    if plot is not None:
        _echo(f"plot: {plot}")

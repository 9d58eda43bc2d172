"""`place` and `explain`: a decision on this machine or through `--server`, and how
it is printed (the choice, the ranking table, each candidate's checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from acode_placement import explain
from acode_placement.commands.common import (
    ConfigOpt,
    JsonOpt,
    ModeOpt,
    NoDiscoveryOpt,
    RequireVerifiedOpt,
    StrategyOpt,
    TargetsOpt,
    TaskArg,
    _console,
    _echo,
    _engine,
    _errors,
    _options,
    _print_json,
    _run,
    _session,
    _Table,
    _targets,
    app,
)
from acode_placement.config import (
    read_task,
    resolve_settings,
)
from acode_placement.engine import PlacementEngine
from acode_placement.errors import InputError, PlacementError, UnknownNameError
from acode_placement.models import (
    AnyTarget,
    CheckKind,
    Ec2Target,
    Mode,
    PlacementOptions,
    PlacementResult,
    TargetScore,
    Task,
)
from acode_placement.safe import mask_url


@dataclass(frozen=True, slots=True)
class _Run:
    engine: PlacementEngine
    options: PlacementOptions
    targets: list[AnyTarget]


def _prepare(
    targets_path: Path | None,
    config: Path | None,
    strategy: str | None,
    mode: str | None,
    no_discovery: bool,
    require_verified: bool = False,
) -> _Run:
    settings, settings_file = resolve_settings(config)
    _session.config_path = config
    engine = _engine(settings)
    chosen = strategy or settings.strategy
    if chosen not in engine.registry:
        origin = "--strategy" if strategy else (settings_file or "settings")
        raise UnknownNameError("strategy", chosen, engine.registry.names(), origin)
    if mode is not None and mode not in set(Mode):
        raise UnknownNameError("mode", mode, [m.value for m in Mode], "--mode")
    chosen_mode = Mode(mode) if mode else None
    options = _options(settings, chosen, chosen_mode, no_discovery, require_verified)
    return _Run(engine, options, _targets(targets_path))


def _place_remotely(
    server: str,
    task_path: Path,
    strategy: str | None,
    mode: str | None,
    no_discovery: bool,
    reserve: bool,
    owner: str | None,
    json_out: bool,
    require_verified: bool = False,
) -> None:
    from acode_placement.client import PlacementClient  # noqa: PLC0415  (httpx: --server only)

    task = read_task(task_path).value.task
    given: dict[str, Any] = {}  # only what was asked: the server's settings give the rest
    if strategy is not None:
        given["strategy"] = strategy
    if mode is not None:
        if mode not in set(Mode):
            raise UnknownNameError("mode", mode, [m.value for m in Mode], "--mode")
        given["mode"] = Mode(mode)
    if no_discovery:
        given["discovery_enabled"] = False
    if require_verified:
        given["require_verified"] = True
    options = PlacementOptions(**given) if given else None
    with PlacementClient(server) as client:
        result = client.place(task, options, reserve=reserve, owner=owner)
    try:
        _check_placement(result)
        if json_out:
            _print_json(result)
        else:
            _print_answer(result)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise PlacementError(
            f"--server {mask_url(server)}: the answer is not a placement"
        ) from None
    raise typer.Exit(0 if result["success"] else 1)


def _check_placement(result: Any) -> None:
    """Raise TypeError unless `result` has the shape of a `place --json` object."""
    if not isinstance(result, dict) or not isinstance(result.get("success"), bool):
        raise TypeError("not a placement")
    target = result.get("target")
    named = isinstance(target, dict) and isinstance(target.get("id"), str)
    if (result["success"] and not named) or (not result["success"] and target is not None):
        raise TypeError("not a placement")
    if not isinstance(result.get("alternatives", []), list):
        raise TypeError("not a placement")


def _print_answer(answer: dict[str, Any]) -> None:
    """The human `place` output, from a `place --json` object: the one rendering of a
    local decision and of a service's answer (`--server`), so they never differ."""
    chosen = answer["target"]
    if chosen is None:  # a service older than failureMessage says why in `why`
        _echo(f"no target ({answer['reason']}): {answer.get('failureMessage') or answer['why']}")
    else:
        took = answer.get("decisionMs")
        _echo(
            f"{chosen['id']} ({chosen['type']})  score {float(answer['score']):.3f}  "
            f"{answer['strategy']}/{answer['mode']}  "
            f"est. cost ${explain.money(answer['estimatedCost'])}  "
            + ("" if took is None else f"{float(took):.1f} ms  ")
            + f"[{answer['reason']}]"
        )
        _echo(f"why: {answer['why']}")
        if answer["alternatives"]:
            _echo(_fallback([str(a) for a in answer["alternatives"]]))
    lease = answer.get("reservation")
    if lease:
        until = datetime.fromisoformat(str(lease["expires"])).isoformat(timespec="seconds")
        _echo(
            f"reserved: {lease['id']} until {until}"
            f" (release with: acode-placement release {lease['id']})"
        )


def _decide(
    task_path: Path,
    run: _Run,
    *,
    reserve: bool = False,
    owner: str | None = None,
    record: bool = True,
) -> tuple[Task, PlacementResult]:
    task = read_task(task_path).value.task
    result = _run(
        run.engine.place(
            task.requirements,
            run.targets,
            run.options,
            task_name=task.name,
            reserve=reserve,
            owner=owner,
            record=record,
        )
    )
    return task, result


@app.command()
@_errors
def place(
    task: TaskArg,
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    strategy: StrategyOpt = None,
    mode: ModeOpt = None,
    no_discovery: NoDiscoveryOpt = False,
    require_verified: RequireVerifiedOpt = False,
    reserve: Annotated[
        bool,
        typer.Option(
            "--reserve",
            help="lease the chosen target's cpu, memory and GPUs (free capacity decides);"
            " end it with `release ID`",
        ),
    ] = False,
    owner: Annotated[
        str | None,
        typer.Option("--owner", metavar="NAME", help="who holds the lease (default host:pid)"),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="ask this acode-placement service instead (token: $ACODE_PLACEMENT_TOKEN)",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Choose where TASK runs, and say why in one line.

    Exit status: 0 placed, 1 no valid target, 2 bad input.

    \b
    Examples:
      acode-placement place task.yaml --targets targets.yaml
      acode-placement place task.yaml --strategy cost-optimized --mode local-only
      acode-placement place task.yaml --reserve --owner ci-42 --json
      acode-placement place task.yaml --server http://127.0.0.1:8790
    """
    if owner is not None and (not 1 <= len(owner) <= 256 or "\x00" in owner):
        raise InputError(f"--owner: 1 to 256 characters without NUL, not {len(owner)}")
    if server is not None:
        if targets is not None or config is not None:
            flag = "--targets" if targets is not None else "--config"
            raise InputError(
                f"{flag}: a service places on its own targets with its own settings;"
                f" give {flag} to `serve`, or drop --server"
            )
        _place_remotely(
            server, task, strategy, mode, no_discovery, reserve, owner, json_out, require_verified
        )
        return
    run = _prepare(targets, config, strategy, mode, no_discovery, require_verified)
    if reserve and run.engine.reservations is not None:
        run.engine.reservations.check()  # a lease needs its database: say so before deciding
    _, result = _decide(task, run, reserve=reserve, owner=owner)
    if json_out:
        # recorded: whether `history show REQUEST_ID` will find it
        _print_json({**explain.result_json(result), "recorded": run.engine.history is not None})
    else:
        _print_answer(explain.outcome_json(result))
    raise typer.Exit(0 if result.success else 1)


@app.command(name="explain")
@_errors
def explain_command(
    task: TaskArg,
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    strategy: StrategyOpt = None,
    mode: ModeOpt = None,
    no_discovery: NoDiscoveryOpt = False,
    require_verified: RequireVerifiedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show every target with its score, matches and mismatches (nothing is recorded).

    \b
    Examples:
      acode-placement explain task.yaml --targets targets.yaml
      acode-placement explain task.yaml --require-verified --json
    """
    run = _prepare(targets, config, strategy, mode, no_discovery, require_verified)
    _, result = _decide(task, run, record=False)
    if json_out:
        # nothing is recorded: its requestId is never in the history
        _print_json({**explain.result_json(result), "recorded": False})
    else:
        _console().print(_explain_table(result))
        _print_answer(explain.outcome_json(result))
    raise typer.Exit(0 if result.success else 1)


FALLBACK_SHOWN = 5  # the rest of the ranking is in `explain` and `--json`


def _fallback(ids: Sequence[str]) -> str:
    """`fallback: a, b, c, d, e and 295 more`: the next few in rank order."""
    shown = ", ".join(ids[:FALLBACK_SHOWN])
    more = len(ids) - FALLBACK_SHOWN
    return f"fallback: {shown} and {more} more" if more > 0 else f"fallback: {shown}"


def _explain_table(result: PlacementResult) -> Table:
    table = _Table("#", "target", "type", "score", "cost $", "details", box=None)
    rank = {ts.id: n for n, ts in enumerate(result.ranked, start=1)}
    ordered = sorted(result.all_scores, key=lambda ts: (rank.get(ts.id, 10**9), ts.index))
    for ts in ordered:
        table.add_row(
            str(rank[ts.id]) if ts.id in rank else "-",
            ts.id,
            ts.type.value,
            f"{ts.score:.3f}" if ts.eligible else "not eligible",
            explain.money(ts.estimated_cost),
            _details(ts),
        )
    return table


def _details(ts: TargetScore) -> str:
    if not ts.eligible:
        text = "; ".join(explain.check_text(c) for c in ts.mismatches)
    else:
        text = f"meets all {len(ts.matches)}: {explain.hardware_text(ts)}"
    met = [explain.check_text(c) for c in ts.preferences if c.ok]
    if ts.preferences:
        text += f" | preferences {len(met)}/{len(ts.preferences)}"
        if met:
            text += f": {', '.join(met)}"
    if isinstance(ts.target, Ec2Target) and ts.target.price is not None:
        text += f" | {explain.price_text(ts.target)}"
    unknown = any(c.kind is CheckKind.DISCOVERY for c in ts.mismatches)
    if ts.unconfirmed and not unknown:
        text += f" | {explain.discovery_text(ts)}"
    return text

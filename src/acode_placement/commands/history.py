"""`history`, `history show` and `history replay`: the recorded decisions, each
explained again from its snapshot, and today's engine on yesterday's inputs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from acode_placement.engine import PlacementEngine
from acode_placement.errors import InputError
from acode_placement.strategies import StrategyRegistry

if TYPE_CHECKING:
    from acode_placement.history.records import Record
    from acode_placement.history.store import HistoryStore


history_app = typer.Typer(
    help="The placement history: every decision, success or failure, as it was made.",
    no_args_is_help=False,
)
app.add_typer(history_app, name="history")


def _store(config: Path | None) -> HistoryStore:
    from acode_placement.history.store import HistoryStore  # noqa: PLC0415

    settings = _settings(config)
    if not settings.history_enabled:
        raise InputError("the history is off (historyEnabled: false)")
    return HistoryStore(settings.history)


_MAX_AGE_DAYS = 36_500  # a hundred years: ages beyond are typing errors, not questions


def _since(text: str | None) -> datetime | None:
    """`2026-11-26`, `2026-11-26T10:00`, or an age: `30m`, `12h`, `7d` (up to 100 years)."""
    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number = text[:-1]
    if text[-1:] in units and number.replace(".", "", 1).isdigit():
        seconds = float(number) * units[text[-1]]
        if seconds > _MAX_AGE_DAYS * 86400:
            raise InputError(f"--since: {text!r} is more than {_MAX_AGE_DAYS} days ago")
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"--since: {text!r} is neither a date (2026-11-26T10:00) nor an age (30m, 12h, 7d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@history_app.callback(invoke_without_command=True)
@_errors
def history(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=100_000, help="at most this many")
    ] = 20,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="WHEN", help="a date (2026-11-26) or an age (30m, 12h, 7d)"
        ),
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="ID", help="placed on this target (or fleet)")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="only failures")] = False,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List recorded decisions, newest first.

    \b
    Examples:
      acode-placement history --since 12h --failed
      acode-placement history --target gpu-box --limit 5 --json
    """
    if ctx.invoked_subcommand is not None:
        return
    records = _store(config).list(
        limit=limit, since=_since(since), target=target, failed=True if failed else None
    )
    if json_out:
        _print_json({"decisions": [r.summary_json() for r in records]})
        return
    table = _Table(
        "time (UTC)",
        "request",
        "task",
        "strategy/mode",
        "target",
        "reason",
        "cost $",
        "ms",
        box=None,
    )
    for r in records:
        table.add_row(
            r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.request_id[:8],
            r.task_name or "-",
            f"{r.strategy}/{r.mode}",
            r.target_id or "-",
            r.reason,
            explain.money(r.estimated_cost),
            f"{r.duration_ms:.1f}",
        )
    _console().print(table)


def _one(store: HistoryStore, request_id: str) -> Record:
    record = store.get(request_id)
    if record is None:
        raise InputError(
            f"no recorded decision has the request id {request_id!r} (or it is ambiguous)"
        )
    return record


@history_app.command("show")
@_errors
def history_show(
    request_id: Annotated[
        str, typer.Argument(metavar="ID", help="a request id, or a unique prefix of one")
    ],
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The decision and its explanation, as they were when it was made."""
    from acode_placement.history.replay import explanation  # noqa: PLC0415

    record = _one(_store(config), request_id)
    result = explanation(PlacementEngine(StrategyRegistry.default()), record)
    if json_out:
        attempts = [
            {"target": a.target_id, "ok": a.ok, "error": a.error, "retryable": a.retryable}
            for a in record.attempts
        ]
        _print_json(
            {
                **record.summary_json(),
                "requirements": record.requirements,
                "options": record.options,
                "result": result,
                "attempts": attempts,
                "engineVersion": record.engine_version,
            }
        )
        return
    console = _console()
    console.print(
        f"{record.request_id}  {record.created_at.isoformat()}  task {record.task_name or '-'}"
        f"  {record.strategy}/{record.mode}  engine {record.engine_version}",
        markup=False,
    )
    table = _Table("target", "type", "score", "cost $", "details", box=None)
    for c in result.get("candidates", []):
        details = "; ".join(c["mismatches"]) if not c["eligible"] else "; ".join(c["matches"])
        table.add_row(
            c["id"],
            c["type"],
            f"{c['score']:.3f}" if c["eligible"] else "not eligible",
            explain.money(c.get("estimatedCost")),
            details,
        )
    console.print(table)
    chosen = result.get("target")
    head = f"{chosen['id']} ({chosen['type']})" if chosen else "no target"
    console.print(f"{head}  [{record.reason}]", markup=False)
    console.print(f"why: {result.get('why') or record.failure_message}", markup=False)
    if result.get("note"):
        console.print(f"note: {result['note']}", markup=False)
    for attempt in record.attempts:
        outcome = "acquired" if attempt.ok else f"failed: {attempt.error}"
        console.print(f"attempt {attempt.target_id}: {outcome}", markup=False)


@history_app.command("replay")
@_errors
def history_replay(
    request_id: Annotated[
        str, typer.Argument(metavar="ID", help="a request id, or a unique prefix of one")
    ],
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a recorded decision's inputs through today's engine: same choice or not?

    Exit status 0 when the decision is the same, 1 when it differs."""
    from acode_placement.history.replay import replay  # noqa: PLC0415

    record = _one(_store(config), request_id)
    engine = PlacementEngine(StrategyRegistry.default())
    again = replay(engine, record)
    before = record.result.get("target")
    now = again.selected
    same = (before["id"] if before else None) == (now.id if now else None) and (
        record.reason == again.reason.value
    )
    if json_out:
        _print_json(
            {
                "requestId": record.request_id,
                "same": same,
                "recorded": {
                    "target": before["id"] if before else None,
                    "reason": record.reason,
                    "score": record.score,
                },
                "now": {
                    "target": now.id if now else None,
                    "reason": again.reason.value,
                    "score": round(now.score, 6) if now else 0.0,
                },
            }
        )
    else:
        was = (
            f"{before['id'] if before else 'no target'} ({record.reason}, score {record.score:.6f})"
        )
        is_now = (
            f"{now.id if now else 'no target'} ({again.reason.value}, score"
            f" {now.score if now else 0.0:.6f})"
        )
        if same:
            _echo(f"same decision: {is_now}")
        else:
            _echo(f"different decision: recorded {was}, today {is_now}")
    raise typer.Exit(0 if same else 1)

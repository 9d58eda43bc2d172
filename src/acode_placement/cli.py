"""The `acode-placement` command: thin typer commands over the engine and `explain`.

Exit status: 0 placed (or done), 1 no valid target, 2 bad input or usage.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from acode_placement import explain
from acode_placement.config import (
    SCHEMAS,
    TARGETS_ENV,
    TOKEN_ENV,
    find_file,
    package_version,
    read_targets,
    read_task,
    resolve_settings,
)
from acode_placement.discovery.compare import contradictions, provenance
from acode_placement.engine import PlacementEngine
from acode_placement.errors import InputError, PlacementError, UnknownNameError
from acode_placement.matching import selects
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    CheckKind,
    Ec2Target,
    Known,
    LocalTarget,
    LogFormat,
    LogLevel,
    Mode,
    PlacementOptions,
    PlacementResult,
    PlacementSettings,
    SshTarget,
    TargetScore,
    Task,
    TaskRequirements,
)
from acode_placement.safe import mask_url, printable
from acode_placement.strategies import StrategyRegistry
from acode_placement.telemetry import configure_logging

if TYPE_CHECKING:
    from acode_placement.history.reservations import ReservationStore
    from acode_placement.history.store import HistoryStore, Record

P = ParamSpec("P")
R = TypeVar("R")


class _Group(TyperGroup):
    """The command group, with every usage error on one line (`acode-placement: error:
    ...`, exit 2) instead of click's boxed block, and no traceback on any path."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # click's errors, as typer vendors them
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()  # type: ignore[attr-defined]  # the help, as --help prints it
            else:
                _fail(f"{exc.format_message()}{_usage_hint(exc)}")
            code = 2
        except typer.Abort:
            _fail("aborted")
            code = 2
        except Exception as exc:  # the last net: one line, never a traceback
            _fail(f"unexpected {type(exc).__name__}: {exc}")
            code = 2
        if not standalone_mode:
            return code
        sys.exit(code or 0)


def _usage_hint(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    return f" (see: {path} --help)" if path else ""


def _fail(message: str) -> None:
    """One line on stderr: controls escaped, so the line stays one line."""
    typer.echo(f"acode-placement: error: {printable(message)}", err=True)


def _echo(text: str) -> None:
    typer.echo(printable(text))


class _Table(Table):
    """A table whose text cells are shown literally (no markup, controls escaped)."""

    def add_row(self, *cells: Any, **options: Any) -> None:
        super().add_row(
            *(Text(printable(c)) if isinstance(c, str) else c for c in cells), **options
        )


class _Console(Console):
    """Prints text literally: markup, emoji codes and controls are never interpreted."""

    def print(self, *objects: Any, **options: Any) -> None:
        options["markup"] = False
        options["emoji"] = False
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **options)


app = typer.Typer(
    name="acode-placement",
    cls=_Group,
    help="Decide where a task should run: this machine, an SSH host or an EC2 instance type.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

TargetsOpt = Annotated[
    Path | None,
    typer.Option(
        "--targets",
        help="targets file (default: $ACODE_PLACEMENT_TARGETS, "
        "then the user config dir, then this machine alone)",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="settings file (default: $ACODE_PLACEMENT_CONFIG, then the user config dir)",
    ),
]
StrategyOpt = Annotated[str | None, typer.Option("--strategy", help="overrides the settings")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="local-only | airgapped | burst")]
NoDiscoveryOpt = Annotated[
    bool, typer.Option("--no-discovery", help="use declared capabilities only")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
TaskArg = Annotated[Path, typer.Argument(help="task file (YAML)", show_default=False)]


def _console() -> Console:
    # Piped output keeps long rows on one line instead of wrapping at 80 columns.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return _Console(width=width, highlight=False, soft_wrap=True, markup=False, emoji=False)


@dataclass
class _Session:
    """What the top-level options asked for, and the engine a command made."""

    log_level: str | None = None
    log_format: str | None = None
    metrics_file: Path | None = None
    engine: PlacementEngine | None = None


_session = _Session()


def _errors(command: Callable[P, R]) -> Callable[P, R]:
    """Bad input becomes one line on stderr and exit status 2, never a traceback.
    Whatever the outcome, `--metrics-file` gets the command's metrics."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except PlacementError as exc:
            _fail(str(exc))
            raise typer.Exit(2) from None
        finally:
            _write_metrics()

    return run


def _write_metrics() -> None:
    path, engine = _session.metrics_file, _session.engine
    if path is None or engine is None:
        return
    try:
        engine.metrics.write(path)
    except OSError as exc:
        typer.echo(
            printable(f"acode-placement: warning: --metrics-file {path}: {exc.strerror}"),
            err=True,
        )


def _settings(config: Path | None) -> PlacementSettings:
    """The settings; logging follows them unless a flag said otherwise."""
    settings, _ = resolve_settings(config)
    _log_as(settings)
    return settings


def _log_as(settings: PlacementSettings) -> None:
    configure_logging(
        _session.log_level or settings.log_level.value,
        _session.log_format or settings.log_format.value,
    )


def _engine(settings: PlacementSettings) -> PlacementEngine:
    """The default engine for these settings; logging follows them unless a flag said."""
    _log_as(settings)
    _session.engine = PlacementEngine.default(settings)
    return _session.engine


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
) -> _Run:
    settings, settings_file = resolve_settings(config)
    engine = _engine(settings)
    chosen = strategy or settings.strategy
    if chosen not in engine.registry:
        origin = "--strategy" if strategy else (settings_file or "settings")
        raise UnknownNameError("strategy", chosen, engine.registry.names(), origin)
    if mode is not None and mode not in set(Mode):
        raise UnknownNameError("mode", mode, [m.value for m in Mode], "--mode")
    options = _options(settings, chosen, Mode(mode) if mode else None, no_discovery)
    return _Run(engine, options, _targets(targets_path))


def _options(
    settings: PlacementSettings, strategy: str, mode: Mode | None, no_discovery: bool
) -> PlacementOptions:
    return PlacementOptions(
        strategy=strategy,
        mode=mode or settings.mode,
        fallback_enabled=settings.fallback_enabled,
        tie_breaker=settings.tie_breaker,
        default_runtime_minutes=settings.default_runtime_minutes,
        discovery_enabled=settings.discovery_enabled and not no_discovery,
        decision_timeout=settings.decision_timeout,
    )


def _place_remotely(
    server: str,
    task_path: Path,
    strategy: str | None,
    mode: str | None,
    reserve: bool,
    owner: str | None,
    json_out: bool,
) -> None:
    from acode_placement.client import PlacementClient  # noqa: PLC0415  (httpx: --server only)

    task = read_task(task_path).value.task
    options = None
    if strategy or mode:
        if mode is not None and mode not in set(Mode):
            raise UnknownNameError("mode", mode, [m.value for m in Mode], "--mode")
        options = PlacementOptions(strategy=strategy or "auto", mode=Mode(mode or "burst"))
    with PlacementClient(server) as client:
        result = client.place(task, options, reserve=reserve, owner=owner)
    try:
        _check_placement(result)
        if json_out:
            _print_json(result)
        else:
            _print_remote(result)
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


def _print_remote(result: dict[str, Any]) -> None:
    chosen = result["target"]
    head = f"{chosen['id']} ({chosen['type']})" if chosen else "no target"
    _echo(
        f"{head}  score {float(result['score']):.3f}  {result['strategy']}/{result['mode']}"
        f"  est. cost ${explain.money(result['estimatedCost'])}  [{result['reason']}]"
    )
    _echo(f"why: {result['why']}")
    if result["alternatives"]:
        _echo(f"fallback: {', '.join(map(str, result['alternatives']))}")
    if result.get("reservation"):
        _echo(f"reserved: {result['reservation']['id']}")


def _targets(explicit: Path | None) -> list[AnyTarget]:
    path = find_file(explicit, TARGETS_ENV, "targets.yaml")
    if path is None:
        return [LocalTarget(id="local")]
    return list(read_targets(path).value.targets)


def _decide(
    task_path: Path,
    run: _Run,
    *,
    reserve: bool = False,
    owner: str | None = None,
    record: bool = True,
) -> tuple[Task, PlacementResult]:
    task = read_task(task_path).value.task
    result = asyncio.run(
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


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"acode-placement {package_version()}")
        raise typer.Exit(0)


def _choice(value: str | None, option: str, allowed: type[enum.StrEnum]) -> str | None:
    if value is None or value.lower() in set(allowed):
        return value.lower() if value else None
    names = ", ".join(sorted(allowed))
    _fail(f"{option}: unknown value {value!r}; available: {names}")
    raise typer.Exit(2)


@app.callback()
def _main(
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug | info | warning | error (default: settings)"),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="json | console | auto (console on a terminal)"),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help="write this run's Prometheus metrics there (node_exporter textfile collector)",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    _session.log_level = _choice(log_level, "--log-level", LogLevel)
    _session.log_format = _choice(log_format, "--log-format", LogFormat)
    _session.metrics_file = metrics_file
    _session.engine = None
    # Until a command reads its settings: the flags, else the environment, else defaults.
    env_level = os.environ.get("ACODE_PLACEMENT_LOG_LEVEL", "warning")
    env_format = os.environ.get("ACODE_PLACEMENT_LOG_FORMAT", "auto")
    configure_logging(
        _session.log_level
        or _choice(env_level, "ACODE_PLACEMENT_LOG_LEVEL", LogLevel)
        or "warning",
        _session.log_format
        or _choice(env_format, "ACODE_PLACEMENT_LOG_FORMAT", LogFormat)
        or "auto",
    )


@app.command()
@_errors
def place(
    task: TaskArg,
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    strategy: StrategyOpt = None,
    mode: ModeOpt = None,
    no_discovery: NoDiscoveryOpt = False,
    reserve: Annotated[
        bool,
        typer.Option(
            "--reserve",
            help="lease the chosen target's cpu, memory and GPUs (free capacity decides);"
            " end it with `release ID`",
        ),
    ] = False,
    owner: Annotated[
        str | None, typer.Option("--owner", help="who holds the lease (default host:pid)")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="ask this acode-placement service instead (token: $ACODE_PLACEMENT_TOKEN)",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Choose where TASK runs, and say why in one line."""
    if owner is not None and (not 1 <= len(owner) <= 256 or "\x00" in owner):
        raise InputError(f"--owner: 1 to 256 characters without NUL, not {len(owner)}")
    if server is not None:
        _place_remotely(server, task, strategy, mode, reserve, owner, json_out)
        return
    run = _prepare(targets, config, strategy, mode, no_discovery)
    if reserve and run.engine.reservations is not None:
        run.engine.reservations.check()  # a lease needs its database: say so before deciding
    _, result = _decide(task, run, reserve=reserve, owner=owner)
    if json_out:
        _print_json(explain.result_json(result))
    else:
        _print_choice(_console(), result)
        if result.reservation is not None:
            lease = result.reservation
            _console().print(
                f"reserved: {lease.id} until {lease.expires_at.isoformat(timespec='seconds')}"
                f" (release with: acode-placement release {lease.id})",
                markup=False,
            )
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
    json_out: JsonOpt = False,
) -> None:
    """Show every target with its score, matches and mismatches (nothing is recorded)."""
    run = _prepare(targets, config, strategy, mode, no_discovery)
    _, result = _decide(task, run, record=False)
    if json_out:
        _print_json(explain.result_json(result))
    else:
        console = _console()
        console.print(_explain_table(result))
        _print_choice(console, result)
    raise typer.Exit(0 if result.success else 1)


@app.command()
@_errors
def targets(
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    no_discovery: NoDiscoveryOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """List the targets with their capabilities: declared, with what discovery found over them."""
    fleet = _targets(targets)
    settings, _ = resolve_settings(config)
    engine = _engine(settings)
    options = PlacementOptions(
        discovery_enabled=settings.discovery_enabled and not no_discovery,
        decision_timeout=settings.decision_timeout,
    )

    async def look() -> tuple[list[AnyTarget], list[Known]]:
        resolved = await engine.resolve(fleet)
        return resolved, await engine.capabilities(resolved, TaskRequirements(), options)

    resolved, known = asyncio.run(look())
    rows = list(zip(resolved, known, strict=True))
    if json_out:
        _print_json([explain.target_json(t, k) for t, k in rows])
        return
    _console().print(_targets_table(rows))


@app.command()
@_errors
def discover(
    ids: Annotated[
        list[str] | None, typer.Argument(help="target ids (default: every target)")
    ] = None,
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="probe every target now, whatever the cache holds")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Probe the targets: what each offers, where each value came from, how old it is."""
    fleet = _targets(targets)
    for name in ids or ():
        if not any(t.id == name for t in fleet) and "/" not in name:
            raise UnknownNameError("target id", name, [t.id for t in fleet], "discover")
    settings, _ = resolve_settings(config)
    engine = _engine(settings)

    async def look() -> tuple[list[AnyTarget], list[Known]]:
        resolved = await engine.resolve(fleet)
        wanted = [t for t in resolved if not ids or selects(ids, t)]
        tools = frozenset(tool for t in wanted if t.capabilities for tool in t.capabilities.tools)
        return wanted, await engine.discover(wanted, tools, refresh=refresh)

    chosen, known = asyncio.run(look())
    for name in ids or ():
        if not any(selects([name], t) for t in chosen):
            raise UnknownNameError("target id", name, [t.id for t in fleet], "discover")
    reports = [discovery_json(t, k, engine) for t, k in zip(chosen, known, strict=True)]
    if json_out:
        _print_json({"targets": reports, "cache": _cache_json(engine)})
        return
    console = _console()
    console.print(_discover_table(reports))
    for report in reports:
        for line in (*report["contradictions"], *report["notes"]):
            console.print(f"{report['id']}: {line}", markup=False)


def _leases(config: Path | None) -> ReservationStore:
    from acode_placement.history.reservations import ReservationStore  # noqa: PLC0415

    return ReservationStore(_settings(config).history)


@app.command()
@_errors
def release(
    reservation_id: Annotated[str, typer.Argument(help="the id `place --reserve` printed")],
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
    """List the active reservations (expired ones are reclaimed first)."""
    store = _leases(config)
    leases = store.active()
    if json_out:
        _print_json([explain.lease_json(lease) for lease in leases])
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


@app.command()
@_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8790,
    config: ConfigOpt = None,
    targets: TargetsOpt = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="bearer token (first line); else $ACODE_PLACEMENT_TOKEN"),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="processes answering on the one port, sharing the history and reservations",
        ),
    ] = 1,
) -> None:
    """Serve the engine over HTTP (FastAPI under uvicorn); SIGTERM finishes in-flight requests."""
    import uvicorn  # noqa: PLC0415  (the web stack loads for this command only)

    from acode_placement import server  # noqa: PLC0415
    from acode_placement.service import is_loopback, read_token  # noqa: PLC0415

    token = read_token(token_file, dict(os.environ))
    if token is None and not is_loopback(host):
        raise InputError(
            f"--host {host}: refusing to serve beyond loopback without a token"
            f" (set {TOKEN_ENV} or --token-file)"
        )
    spec = {
        "config": str(config) if config else None,
        "targets": str(targets) if targets else None,
        "tokenFile": str(token_file) if token_file else None,
    }
    application, count = _served(spec)  # bad files fail here, in one line, before listening
    listening = server.listen(host, port)
    each = f", {workers} workers" if workers > 1 else ""
    serving = f"acode-placement serving on http://{host}:{port} ({count} targets{each})"
    typer.echo(printable(serving), err=True)
    if hasattr(signal, "SIGTERM"):  # uvicorn drains in-flight requests, then dies by the signal
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if workers == 1:
        served = server.config(application, host, port, timeout_graceful_shutdown=30)
        uvicorn.Server(served).run(sockets=[listening])
        return
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

    os.environ[_WORKER_ENV] = json.dumps(spec)  # each worker builds its own engine from it
    served = server.config(
        f"{__name__}:worker_app",
        host,
        port,
        factory=True,
        workers=workers,
        timeout_graceful_shutdown=30,
    )
    Multiprocess(served, sockets=[listening]).run()


_WORKER_ENV = "ACODE_PLACEMENT__WORKER"  # what `serve --workers` hands its workers


def _served(spec: dict[str, str | None]) -> tuple[Any, int]:
    """The service's application for these files, and how many targets it serves."""
    from acode_placement.service import create_app, read_token  # noqa: PLC0415

    config = Path(spec["config"]) if spec["config"] else None
    settings, _ = resolve_settings(config)
    token_file = Path(spec["tokenFile"]) if spec["tokenFile"] else None
    token = read_token(token_file, dict(os.environ))
    fleet = _targets(Path(spec["targets"]) if spec["targets"] else None)
    engine = _engine(settings)
    # A service lives long enough for numpy's import to be nothing, and answers the
    # same task shapes again and again: on columns, whatever the fleet's size, a
    # placement's causes (for its metrics) are counted on masks and kept per shape,
    # where a small fleet's Python loop builds every ruled-out target's checks.
    engine.compile_from = 0
    defaults = _options(settings, settings.strategy, None, no_discovery=False)
    return create_app(engine, fleet, token, defaults=defaults), len(fleet)


def worker_app() -> Any:
    """One `serve --workers` process's application (uvicorn's factory): its own
    engine, on the files `serve` read and checked, sharing the history database."""
    application, _ = _served(json.loads(os.environ[_WORKER_ENV]))
    return application


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Time decisions at 10 to 10,000 targets, beside HTCondor ([--sizes] [--runs] [--json])."""
    from acode_placement import bench as benchmark  # noqa: PLC0415  (only this command needs it)

    raise typer.Exit(benchmark.main(list(ctx.args)))


@app.command()
@_errors
def strategies(json_out: JsonOpt = False) -> None:
    """List the strategies: built-in, plug-in (entry point) and broken plug-ins."""
    registry = PlacementEngine(StrategyRegistry.default()).registry
    entries = [
        {"name": name, "origin": entry.origin, "description": entry.description}
        for name, entry in registry
    ]
    broken = [{"name": n, "error": e} for n, e in registry.broken.items()]
    if json_out:
        _print_json({"strategies": entries, "broken": broken})
        return
    table = _Table("strategy", "origin", "what it picks", box=None)
    for entry in entries:
        table.add_row(entry["name"], entry["origin"], entry["description"])
    console = _console()
    console.print(table)
    for item in broken:
        console.print(f"plug-in {item['name']} failed to load: {item['error']}")


@app.command()
@_errors
def schema(
    kind: Annotated[str, typer.Argument(help="task | targets | settings")],
) -> None:
    """Print the JSON Schema of a file kind, for editors to validate as you type."""
    if kind not in SCHEMAS:
        raise UnknownNameError("schema", kind, SCHEMAS)
    document = SCHEMAS[kind].model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = f"acode-placement {kind} file"
    _print_json(document)


# -------------------------------------------------------------------------- render


def _print_choice(console: Console, result: PlacementResult) -> None:
    chosen = result.selected
    if chosen is None:
        console.print(f"no target ({result.reason.value}): {result.failure_message}")
        return
    cost = explain.money(chosen.estimated_cost)
    console.print(
        f"{chosen.id} ({chosen.type.value})  score {chosen.score:.3f}  "
        f"{result.strategy}/{result.mode.value}  est. cost ${cost}  "
        f"{result.decision_duration * 1000:.1f} ms  [{result.reason.value}]",
        markup=False,
    )
    console.print(f"why: {explain.why(result)}", markup=False)
    if result.alternatives:
        console.print(f"fallback: {', '.join(ts.id for ts in result.alternatives)}", markup=False)


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
    if ts.stale and not unknown:
        text += f" | {explain.discovery_text(ts)}"
    return text


def _where(target: AnyTarget) -> str:
    if isinstance(target, SshTarget):
        user = f"{target.user}@" if target.user else ""
        return f"{user}{target.host}:{target.port}"
    if isinstance(target, Ec2Target):
        return f"{target.instance_type} in {target.region}"
    return "this machine"


def _targets_table(rows: Sequence[tuple[AnyTarget, Known]]) -> Table:
    table = _Table(
        "id",
        "type",
        "where",
        *_CAPABILITY_COLUMNS,
        "$/h",
        "price from",
        "labels",
        "known",
        box=None,
    )
    for target, known in rows:
        caps = known.capabilities
        rate = target.hourly_rate
        table.add_row(
            target.id,
            target.kind.value,
            _where(target),
            *_capability_cells(caps),
            f"{rate:.3f}" if rate is not None else ("-" if target.is_cloud else "0"),
            explain.price_source(target) if isinstance(target, Ec2Target) else "-",
            ", ".join(f"{k}={v}" for k, v in target.labels.items()) or "-",
            known.status.value,
        )
    return table


# The headers of `_capability_cells`, in the same order.
_CAPABILITY_COLUMNS = ("cpu", "mem GB", "disk GB", "gpu", "os/arch", "tools")


def _capability_cells(caps: Capabilities) -> tuple[str, ...]:
    return (
        _num_or_dash(caps.cpu),
        _num_or_dash(caps.memory_gb),
        _num_or_dash(caps.disk_gb),
        explain.gpu_text(caps.gpu) if caps.gpu else "-",
        f"{caps.os or '?'}/{caps.arch or '?'}",
        ", ".join(caps.tools) or "-",
    )


def _discover_table(reports: Sequence[dict[str, Any]]) -> Table:
    table = _Table(
        "id",
        "status",
        "age",
        *_CAPABILITY_COLUMNS,
        "cause",
        box=None,
    )
    for report in reports:
        caps = Capabilities.model_validate(report["capabilities"])
        age = report["ageSeconds"]
        table.add_row(
            report["id"],
            report["status"],
            "-" if age is None else _age(age),
            *_capability_cells(caps),
            report["cause"] or "",
        )
    return table


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _num_or_dash(value: float | None) -> str:
    return "-" if value is None else explain.num(value)


def discovery_json(target: AnyTarget, known: Known, engine: PlacementEngine) -> dict[str, Any]:
    """One target's discovery: values, their sources, age, status and contradictions."""
    found = known.discovered
    at = found.discovered_at if found else None
    entry = engine.discovery.cache.get(target.id) if engine.discovery else None
    checked = entry.tools_checked if entry else frozenset()
    return {
        "id": target.id,
        "type": target.kind.value,
        "status": known.status.value,
        "cause": known.cause,
        "discoveredAt": at.isoformat() if at else None,
        "ageSeconds": round((datetime.now(UTC) - at).total_seconds(), 1) if at else None,
        "capabilities": known.capabilities.model_dump(mode="json", exclude_none=True),
        "sources": provenance(target.capabilities, found),
        "contradictions": contradictions(target.capabilities, found, checked),
        "notes": list(known.notes),
    }


def _cache_json(engine: PlacementEngine) -> dict[str, Any]:
    discovery = engine.discovery
    if discovery is None:
        return {}
    stats = discovery.stats
    return {
        "path": str(discovery.cache.path) if discovery.cache.path else None,
        "ttlMinutes": discovery.ttl.total_seconds() / 60,
        "hits": stats.hits,
        "misses": stats.misses,
        "probes": stats.probes,
        "failures": stats.failures,
    }


# ------------------------------------------------------------------------- history

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
        int, typer.Option("--limit", min=1, max=100_000, help="at most this many")
    ] = 20,
    since: Annotated[
        str | None, typer.Option("--since", help="a date (2026-11-26) or an age (30m, 12h, 7d)")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="placed on this target (or fleet)")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="only failures")] = False,
    config: ConfigOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List recorded decisions, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    records = _store(config).list(
        limit=limit, since=_since(since), target=target, failed=True if failed else None
    )
    if json_out:
        _print_json([r.summary_json() for r in records])
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
    request_id: Annotated[str, typer.Argument(help="a request id, or a unique prefix of one")],
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
    request_id: Annotated[str, typer.Argument(help="a request id, or a unique prefix of one")],
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


def _terminated(signum: int, _: object) -> None:
    """SIGTERM unwinds like an interrupt: asyncio cancels the running probes, whose
    cleanup kills their process groups, and the command exits 128 + 15."""
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _terminated)
    app(args=list(argv) if argv is not None else None, prog_name="acode-placement")

"""What every command shares: the typer app and its error handling (one line,
exit 2, never a traceback), the options, the session (settings, engine, metrics
file), and printing that never lets a string become markup or an escape sequence.

No command lives here; each command group has its own module beside this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import platformdirs
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from acode_placement.config import (
    CONFIG_ENV,
    TARGETS_ENV,
    find_file,
    package_version,
    read_targets,
    resolve_settings,
    stray_environment,
)
from acode_placement.engine import PlacementEngine
from acode_placement.errors import PlacementError
from acode_placement.models import (
    AnyTarget,
    LocalTarget,
    LogFormat,
    LogLevel,
    Mode,
    PlacementOptions,
    PlacementSettings,
)
from acode_placement.safe import printable
from acode_placement.strategies import StrategyRegistry
from acode_placement.telemetry import configure_logging, get_logger

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
        _session.json_errors = _wants_json(args)
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
        except BrokenPipeError:  # the reader left (`... | head -1`): not a failure of ours
            pipe_closed()
        except Exception as exc:  # the last net: one line, never a traceback
            _fail(f"unexpected {type(exc).__name__}: {exc}")
            code = 2
        if not standalone_mode:
            return code
        sys.exit(code or 0)


PIPE_CLOSED = 128 + 13  # what a shell reports for a process that SIGPIPE ended


def pipe_closed() -> NoReturn:
    """Stop quietly when whoever read stdout has gone (`explain ... | head -1`): the
    rest of the output is dropped and the exit status is 141, as a shell reports for
    SIGPIPE, never 1 (which means "no valid target") and never a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush must not fail again
    raise SystemExit(PIPE_CLOSED)


def _usage_hint(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    return f" (see: {path} --help)" if path else ""


def _fail(message: str) -> None:
    """One line on stderr: controls escaped, so the line stays one line. Under
    `--json` the line is a JSON object, `{"error": MESSAGE, "exitStatus": 2}` (every
    error this reports exits 2)."""
    if _session.json_errors:
        line = json.dumps({"error": printable(message), "exitStatus": 2}, ensure_ascii=False)
        typer.echo(line, err=True)
        return
    typer.echo(f"acode-placement: error: {printable(message)}", err=True)


def _warn(message: str) -> None:
    """A warning, one line on stderr (`{"warning": MESSAGE}` under `--json`)."""
    if _session.json_errors:
        typer.echo(json.dumps({"warning": printable(message)}, ensure_ascii=False), err=True)
        return
    typer.echo(f"acode-placement: warning: {printable(message)}", err=True)


def _wants_json(args: Sequence[str] | None) -> bool:
    """`--json` among the options (before any `--`)."""
    words = list(sys.argv[1:] if args is None else args)
    return "--json" in words[: words.index("--") if "--" in words else len(words)]


def _echo(text: str) -> None:
    typer.echo(printable(text))


class _Table(Table):
    """A table whose text cells are shown literally (no markup, controls escaped)."""

    def add_row(self, *cells: Any, **options: Any) -> None:
        super().add_row(
            *(Text(printable(c)) if isinstance(c, str) else c for c in cells), **options
        )


PIPED_WIDTH = 100_000  # piped output is never wrapped


class _Console(Console):
    """Prints text literally: markup, emoji codes and controls are never interpreted.
    Lines lose the spaces rich pads them with at the end (tables pad every cell)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        pipe_closed()

    def print(self, *objects: Any, **options: Any) -> None:
        options["markup"] = False
        options["emoji"] = False
        shown = [printable(o) if isinstance(o, str) else o for o in objects]
        with self.capture() as captured:
            super().print(*shown, **options)
        text = "\n".join(line.rstrip() for line in captured.get().split("\n"))
        try:
            self.file.write(text)
            self.file.flush()
        except BrokenPipeError:
            self.on_broken_pipe()


app = typer.Typer(
    name="acode-placement",
    cls=_Group,
    help="Decide where a task should run: this machine, an SSH host or an EC2 instance type.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Where a file is looked for when no option names it (said in --help, with the path).
_CONFIG_DIR = platformdirs.user_config_dir("acode-placement")
TargetsOpt = Annotated[
    Path | None,
    typer.Option(
        "--targets",
        metavar="FILE",
        help=f"targets file (default: ${TARGETS_ENV}, then {_CONFIG_DIR}/targets.yaml,"
        " then this machine alone)",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help=f"settings file (default: ${CONFIG_ENV}, then {_CONFIG_DIR}/placement.yaml)",
    ),
]


def _strategy_names(incomplete: str) -> list[str]:
    """What the shell completes after --strategy: built-ins and installed plug-ins."""
    names = StrategyRegistry.default().names()
    return [name for name in names if name.startswith(incomplete)]


def _mode_names(incomplete: str) -> list[str]:
    return [mode.value for mode in Mode if mode.value.startswith(incomplete)]


StrategyOpt = Annotated[
    str | None,
    typer.Option(
        "--strategy",
        metavar="NAME",
        help="overrides the settings: auto | local-first | cloud-first | cost-optimized"
        " | performance, or an installed plug-in (acode-placement strategies)",
        autocompletion=_strategy_names,
    ),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode", metavar="MODE", help="local-only | airgapped | burst", autocompletion=_mode_names
    ),
]
NoDiscoveryOpt = Annotated[
    bool, typer.Option("--no-discovery", help="use declared capabilities only")
]
RequireVerifiedOpt = Annotated[
    bool,
    typer.Option(
        "--require-verified",
        help="only targets whose capabilities were verified (probed now or from a fresh"
        " cache; an EC2 type's API or catalog facts) are eligible (default: settings)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object on stdout")]
TaskArg = Annotated[
    Path, typer.Argument(metavar="TASK", help="task file (YAML)", show_default=False)
]


def _console() -> Console:
    """On a terminal: its width, and no colour or bold when NO_COLOR is set. Piped: no
    escapes at all, rows never wrapped (a reader's `grep` sees one row per line), and
    no trailing spaces."""
    if sys.stdout.isatty():
        plain = bool(os.environ.get("NO_COLOR"))
        return _Console(
            highlight=False,
            soft_wrap=True,
            markup=False,
            emoji=False,
            color_system=None if plain else "auto",
        )
    return _Console(width=PIPED_WIDTH, highlight=False, soft_wrap=True, markup=False, emoji=False)


@dataclass
class _Session:
    """What the top-level options asked for, and the engine a command made."""

    log_level: str | None = None
    log_format: str | None = None
    metrics_file: Path | None = None
    engine: PlacementEngine | None = None
    # One event loop per command; the probes a decision left running on it are handed
    # to a detached refresh when the command ends (see `_end_loop`).
    runner: asyncio.Runner | None = None
    targets_path: Path | None = None
    config_path: Path | None = None
    background_refresh: bool = False
    json_errors: bool = False  # `--json` was given: errors are JSON too


_session = _Session()


def _errors(command: Callable[P, R]) -> Callable[P, R]:
    """Bad input becomes one line on stderr and exit status 2, never a traceback
    (with `--json`, that line is a JSON object; see `_fail`). Whatever the outcome,
    `--metrics-file` gets the command's metrics."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        answered = False
        try:
            answer = command(*args, **kwargs)
            answered = True
            return answer
        except typer.Exit:
            answered = True
            raise
        except PlacementError as exc:
            _fail(str(exc))
            raise typer.Exit(2) from None
        except BrokenPipeError:  # before typer's own handler makes it exit status 1
            pipe_closed()
        finally:
            _end_loop(answered)
            _write_metrics()

    return run


def _run(work: Coroutine[Any, Any, R]) -> R:
    """Run `work` on the command's event loop (made on first use)."""
    if _session.runner is None:
        _session.runner = asyncio.Runner()
    return _session.runner.run(work)


def _end_loop(answered: bool) -> None:
    """Close the command's event loop, cancelling what still runs on it (a local
    probe's processes are killed). After an answer, the targets whose probes were
    still running are handed to a detached `discover` that refreshes the cache in
    the background (unless `backgroundRefresh: false`), so that the command exits at
    once and the next run finds them probed; after an interrupt or an error, nothing
    is handed on."""
    runner, engine = _session.runner, _session.engine
    if runner is None:
        return
    _session.runner = None
    try:
        if answered and _session.background_refresh and engine and engine.discovery:
            pending = engine.discovery.pending()
            if pending and engine.discovery.cache.path is not None:
                _refresh_in_background(pending)
    finally:
        runner.close()


# The hidden `discover` option of the detached refresh (never a user's).
IN_BACKGROUND = "--in-background"


def _refresh_in_background(targets: Sequence[AnyTarget]) -> None:
    """Start `acode-placement discover --in-background -- ID...` on the same targets
    file and settings, detached (own session, no terminal, output discarded). It
    takes a lock beside the cache file, so that at most one runs at a time."""
    argv = [sys.executable, "-m", "acode_placement", "discover", IN_BACKGROUND]
    if _session.targets_path is not None:
        argv += ["--targets", str(_session.targets_path.absolute())]
    if _session.config_path is not None:
        argv += ["--config", str(_session.config_path.absolute())]
    argv += ["--", *sorted(t.id for t in targets)]
    try:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=sys.platform != "win32",
        )
    except OSError as exc:  # the answer is out; the next run probes them instead
        get_logger("acode_placement.discovery").warning(
            "discovery.background_refresh_not_started", error=str(exc)
        )


class _Bar:
    """What `_progress` yields: `step(text)` moves to the next of a known number of
    steps and names it; `update(done, total)` counts finished pieces of work."""

    def __init__(self, what: str, bar: Any = None, task: Any = None) -> None:
        self._what, self._bar, self._task, self._steps = what, bar, task, 0

    def step(self, text: str) -> None:
        if self._bar is None:
            return
        self._bar.update(
            self._task, completed=self._steps, description=f"{self._what}: {printable(text)}"
        )
        self._steps += 1

    def update(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)


@contextlib.contextmanager
def _progress(what: str, total: int | None = None) -> Iterator[_Bar]:
    """A rich progress bar on stderr while slow work runs, only when stderr is a
    terminal (piped or redirected output never gets one); gone when done."""
    if not sys.stderr.isatty():
        yield _Bar(what)
        return
    from rich.progress import (  # noqa: PLC0415  (a terminal's only)
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Bar(what, bar, bar.add_task(what, total=total))


def _write_metrics() -> None:
    path, engine = _session.metrics_file, _session.engine
    if path is None or engine is None:
        return
    try:
        engine.metrics.add_to(path)
    except OSError as exc:
        _warn(f"--metrics-file {path}: {exc.strerror}")
    except ValueError as exc:
        _warn(f"--metrics-file {path}: {exc}")


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
    _session.background_refresh = settings.background_refresh
    return _session.engine


def _options(
    settings: PlacementSettings,
    strategy: str,
    mode: Mode | None,
    no_discovery: bool,
    require_verified: bool = False,
) -> PlacementOptions:
    return PlacementOptions(
        require_verified=settings.require_verified or require_verified,
        strategy=strategy,
        mode=mode or settings.mode,
        fallback_enabled=settings.fallback_enabled,
        tie_breaker=settings.tie_breaker,
        default_runtime_minutes=settings.default_runtime_minutes,
        discovery_enabled=settings.discovery_enabled and not no_discovery,
        decision_timeout=settings.decision_timeout,
    )


def _targets(explicit: Path | None) -> list[AnyTarget]:
    _session.targets_path = explicit
    path = find_file(explicit, TARGETS_ENV, "targets.yaml")
    if path is None:
        return [LocalTarget(id="local")]
    return list(read_targets(path).value.targets)


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
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="debug | info | warning | error (default: settings)",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", metavar="FORMAT", help="json | console | auto (console on a terminal)"
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            metavar="FILE",
            help="add this run's Prometheus metrics to that file: counts add up across runs"
            " (node_exporter's textfile collector)",
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
    # A variable that looks like a setting but is none (a misspelling) is said, once.
    for stray in stray_environment(os.environ):
        _warn(stray)
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

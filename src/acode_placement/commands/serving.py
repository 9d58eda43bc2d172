"""`serve` (the HTTP service, one process or `--workers N`) and `bench` (the
benchmark, which keeps its own argument parser).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from acode_placement import cpus as pinning
from acode_placement import heap
from acode_placement.commands.common import (
    ConfigOpt,
    JsonOpt,
    TargetsOpt,
    _echo,
    _engine,
    _errors,
    _options,
    _print_json,
    _progress,
    _targets,
    app,
)
from acode_placement.config import (
    TOKEN_ENV,
    resolve_settings,
)
from acode_placement.errors import InputError
from acode_placement.safe import printable
from acode_placement.telemetry import get_logger


@app.command()
@_errors
def serve(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="address to listen on")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=1, max=65535)] = 8790,
    config: ConfigOpt = None,
    targets: TargetsOpt = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="bearer token (first line); else $ACODE_PLACEMENT_TOKEN",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            metavar="N",
            min=1,
            max=64,
            help="processes answering on the one port, sharing the history and reservations",
        ),
    ] = 1,
    pin_cpus: Annotated[
        bool,
        typer.Option(
            "--pin-cpus",
            help="keep each worker on a CPU of its own (of those this process may use):"
            " faster where nothing else busy shares them",
        ),
    ] = False,
) -> None:
    """Serve the engine over HTTP (FastAPI under uvicorn); SIGTERM finishes in-flight requests.

    \b
    Examples:
      acode-placement serve --targets targets.yaml
      ACODE_PLACEMENT_TOKEN=... acode-placement serve --host 0.0.0.0 --workers 4
    """
    import uvicorn  # noqa: PLC0415  (the web stack loads for this command only)

    from acode_placement import server  # noqa: PLC0415
    from acode_placement.web import is_loopback, read_token  # noqa: PLC0415

    token = read_token(token_file, dict(os.environ))
    if token is None and not is_loopback(host):
        raise InputError(
            f"--host {host}: refusing to serve beyond loopback without a token"
            f" (set {TOKEN_ENV} or --token-file)"
        )
    spec: dict[str, Any] = {
        "config": str(config) if config else None,
        "targets": str(targets) if targets else None,
        "tokenFile": str(token_file) if token_file else None,
    }
    cpus = pinning.usable() if pin_cpus else None
    application, count = _served(spec)  # bad files fail here, in one line, before listening
    listening = server.listen(host, port)
    each = f", {workers} workers" if workers > 1 else ""
    if cpus is not None and workers == 1:
        each += f", pinned to CPU {pinning.pin(cpus)}"
    elif cpus is not None:
        each += f", each pinned to a CPU of {cpus}"
    serving = f"acode-placement serving on http://{host}:{port} ({count} targets{each})"
    typer.echo(printable(serving), err=True)
    if hasattr(signal, "SIGTERM"):  # uvicorn drains in-flight requests, then dies by the signal
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if workers == 1:
        served = server.config(application, host, port, timeout_graceful_shutdown=30)
        uvicorn.Server(served).run(sockets=[listening])
        return
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415

    spec["pinCpus"] = cpus
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


def _served(spec: dict[str, Any]) -> tuple[Any, int]:
    """The service's application for these files, and how many targets it serves."""
    from acode_placement.service import create_app  # noqa: PLC0415
    from acode_placement.web import read_token  # noqa: PLC0415

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
    application = create_app(engine, fleet, token, defaults=defaults)
    heap.settle()  # what every request would otherwise make the collector walk again
    return application, len(fleet)


def worker_app() -> Any:
    """One `serve --workers` process's application (uvicorn's factory): its own
    engine, on the files `serve` read and checked, sharing the history database."""
    spec = json.loads(os.environ[_WORKER_ENV])
    application, _ = _served(spec)
    if spec.get("pinCpus"):
        try:
            pinning.pin(spec["pinCpus"])
        except InputError as exc:  # a CPU taken away since `serve` looked: run on any
            get_logger("acode_placement.service").warning("serve.not_pinned", error=str(exc))
    return application


@app.command()
@_errors
def bench(
    sizes: Annotated[
        str,
        typer.Option(
            "--sizes", metavar="N,N,...", help="fleet sizes, comma-separated (1 to 100,000)"
        ),
    ] = "10,100,1000,10000",
    runs: Annotated[
        int, typer.Option("--runs", metavar="N", min=1, max=100_000, help="timed runs per figure")
    ] = 200,
    json_out: JsonOpt = False,
) -> None:
    """Time decisions at 10 to 10,000 targets, beside HTCondor's matchmaking.

    Exit status 1 when the two pick differently. On a terminal, progress goes to
    stderr.

    \b
    Examples:
      acode-placement bench
      acode-placement bench --sizes 100,1000 --runs 50 --json
    """
    from acode_placement import bench as benchmark  # noqa: PLC0415  (only this command needs it)

    try:
        fleet_sizes = benchmark.parse_sizes(sizes)
    except ValueError as exc:
        raise InputError(f"--sizes: {exc}") from None
    with _progress("bench", len(fleet_sizes)) as bar:
        report = benchmark.run(fleet_sizes, runs, progress=bar.step)
    if json_out:
        _print_json(report)
    else:
        for line in benchmark.render(report).splitlines():  # one echo per line: _echo
            _echo(line)  # escapes control characters, a newline included
    raise typer.Exit(benchmark.verdict(report))

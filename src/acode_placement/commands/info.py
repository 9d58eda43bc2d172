"""`strategies`, `schema` and `config`: what the engine offers, the JSON Schemas of
its files, and the files and settings in use with where each came from.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from acode_placement.commands.common import (
    ConfigOpt,
    JsonOpt,
    TargetsOpt,
    _console,
    _engine,
    _errors,
    _print_json,
    _progress,
    _run,
    _Table,
    _targets,
    app,
)
from acode_placement.commands.fleet import where_of
from acode_placement.config import (
    CONFIG_ENV,
    SCHEMAS,
    TARGETS_ENV,
    TOKEN_ENV,
    locate_file,
    settings_with_origins,
)
from acode_placement.engine import PlacementEngine
from acode_placement.errors import UnknownNameError
from acode_placement.models import PlacementSettings, SshTarget
from acode_placement.safe import mask_url
from acode_placement.strategies import StrategyRegistry


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
    kind: Annotated[str, typer.Argument(metavar="KIND", help="task | targets | settings")],
) -> None:
    """Print the JSON Schema of a file kind, for editors to validate as you type."""
    if kind not in SCHEMAS:
        raise UnknownNameError("schema", kind, SCHEMAS)
    document = SCHEMAS[kind].model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = f"acode-placement {kind} file"
    _print_json(document)


@app.command(name="config")
@_errors
def config_command(
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="also check that the history database answers and probe every SSH host",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Show the files and settings in use and where each came from (an option, the
    environment, a file and its line, or the default). Secrets are never shown.

    With --check, also whether the history database answers and what a probe of
    each SSH host says (exit status 0 either way: the answers are in the output).

    \b
    Examples:
      acode-placement config
      acode-placement config --check --json
    """
    from acode_placement.discovery.cache import CACHE_ENV  # noqa: PLC0415
    from acode_placement.discovery.cache import default_path as cache_path  # noqa: PLC0415
    from acode_placement.history.database import normalise_url  # noqa: PLC0415

    settings_path, settings_from = locate_file(config, CONFIG_ENV, "placement.yaml")
    targets_path, targets_from = locate_file(targets, TARGETS_ENV, "targets.yaml")
    settings, _, origins = settings_with_origins(config)
    values = settings.model_dump(mode="json", by_alias=True)
    history_url = mask_url(normalise_url(settings.history))
    files: dict[str, dict[str, str | None]] = {
        "settings": {"path": _shown(settings_path), "from": settings_from},
        "targets": {
            "path": _shown(targets_path) or "this machine alone",
            "from": targets_from,
        },
        "cache": {
            "path": str(cache_path()),
            "from": f"environment {CACHE_ENV}" if os.environ.get(CACHE_ENV) else "default",
        },
        "history": {"path": history_url, "from": origins["history"]},
        "token": {
            "path": "set (not shown)" if os.environ.get(TOKEN_ENV) else "not set",
            "from": f"environment {TOKEN_ENV}",
        },
    }
    rows: list[dict[str, object]] = [
        {
            "name": field.alias or name,
            "value": history_url if name == "history" else values[field.alias or name],
            "from": origins[name],
        }
        for name, field in PlacementSettings.model_fields.items()
    ]
    checks = _checks(settings, targets) if check else None
    if json_out:
        _print_json({"files": files, "settings": rows, **({"checks": checks} if checks else {})})
        return
    console = _console()
    table = _Table("file", "in use", "from", box=None)
    for kind, entry in files.items():
        table.add_row(kind, entry["path"] or "none", entry["from"])
    console.print(table)
    table = _Table("setting", "value", "from", box=None)
    for row in rows:
        table.add_row(str(row["name"]), json.dumps(row["value"]), str(row["from"]))
    console.print(table)
    if checks:
        table = _Table("check", "status", "detail", box=None)
        table.add_row("history", checks["history"]["status"], checks["history"]["detail"])
        for host in checks["sshHosts"]:
            table.add_row(f"ssh {host['id']} ({host['where']})", host["status"], host["cause"])
        console.print(table)


def _checks(settings: PlacementSettings, targets: Path | None) -> dict[str, Any]:
    """Whether the history database answers, and each SSH host's probe now."""
    from acode_placement.history.database import HistoryError  # noqa: PLC0415

    engine = _engine(settings)
    history: dict[str, str]
    if engine.history is None:
        history = {"status": "off", "detail": "historyEnabled: false"}
    else:
        try:
            engine.history.check()
            history = {"status": "ok", "detail": f"{engine.history.count()} decisions"}
        except HistoryError as exc:
            history = {"status": "failed", "detail": str(exc)}
    hosts = [t for t in _targets(targets) if isinstance(t, SshTarget)]
    with _progress("probing SSH hosts") as bar:
        known = _run(engine.discover(hosts, refresh=True, progress=bar.update))
    return {
        "history": history,
        "sshHosts": [
            {
                "id": t.id,
                "where": where_of(t),
                "status": k.status.value,
                "cause": k.cause or "",
            }
            for t, k in zip(hosts, known, strict=True)
        ],
    }


def _shown(path: Path | None) -> str | None:
    return str(path) if path is not None else None

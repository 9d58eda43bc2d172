"""`strategies` and `schema`: what the engine offers, and the JSON Schemas of its
files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from acode_placement.config import (
    SCHEMAS,
)
from acode_placement.engine import PlacementEngine
from acode_placement.errors import UnknownNameError
from acode_placement.strategies import StrategyRegistry

if TYPE_CHECKING:
    pass

from acode_placement.commands.common import (
    JsonOpt,
    _console,
    _errors,
    _print_json,
    _Table,
    app,
)


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

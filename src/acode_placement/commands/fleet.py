"""`targets` and `discover`: the fleet as declared and as discovered, with the
capability cache, and the tables that show them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from acode_placement import explain
from acode_placement.commands.common import (
    IN_BACKGROUND,
    ConfigOpt,
    JsonOpt,
    NoDiscoveryOpt,
    TargetsOpt,
    _console,
    _engine,
    _errors,
    _print_json,
    _progress,
    _run,
    _session,
    _Table,
    _targets,
    app,
)
from acode_placement.config import (
    resolve_settings,
)
from acode_placement.discovery.cache import age_words
from acode_placement.discovery.compare import contradictions, provenance
from acode_placement.engine import PlacementEngine
from acode_placement.errors import UnknownNameError
from acode_placement.matching import selects
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    Ec2Target,
    Known,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no background refresh
    fcntl = None  # type: ignore[assignment]


@app.command()
@_errors
def targets(
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    no_discovery: NoDiscoveryOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """List the targets with their capabilities: declared, with what discovery found over them.

    \b
    Examples:
      acode-placement targets --targets targets.yaml
      acode-placement targets --no-discovery --json
    """
    fleet = _targets(targets)
    settings, _ = resolve_settings(config)
    _session.config_path = config
    engine = _engine(settings)
    options = PlacementOptions(
        discovery_enabled=settings.discovery_enabled and not no_discovery,
        decision_timeout=settings.decision_timeout,
    )

    async def look() -> tuple[list[AnyTarget], list[Known]]:
        resolved = await engine.resolve(fleet)
        return resolved, await engine.capabilities(resolved, TaskRequirements(), options)

    resolved, known = _run(look())
    rows = list(zip(resolved, known, strict=True))
    if json_out:
        _print_json({"targets": [explain.target_json(t, k) for t, k in rows]})
        return
    console = _console()
    console.print(_targets_table(rows))
    unpriced = explain.unpriced_text([t for t, _ in rows])
    if unpriced:
        console.print(unpriced, markup=False)


@app.command()
@_errors
def discover(
    ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[ID]...", help="target ids (default: every target)"),
    ] = None,
    targets: TargetsOpt = None,
    config: ConfigOpt = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="probe every target now, whatever the cache holds")
    ] = False,
    json_out: JsonOpt = False,
    in_background: Annotated[bool, typer.Option(IN_BACKGROUND, hidden=True)] = False,
) -> None:
    """Probe the targets: what each offers, where each value came from, how old it is.

    \b
    Examples:
      acode-placement discover
      acode-placement discover gpu-box build-box --refresh
      acode-placement discover aws-burst/g5.xlarge --json
    """
    fleet = _targets(targets)
    for name in ids or ():
        if not any(t.id == name for t in fleet) and "/" not in name:
            raise UnknownNameError("target id", name, [t.id for t in fleet], "discover")
    settings, _ = resolve_settings(config)
    engine = _engine(settings)
    if in_background:  # the refresh a command left behind (see common._end_loop)
        _refresh_quietly(engine, fleet, ids or [])
        return

    with _progress("probing") as bar:
        chosen, known = _run(_discovered(engine, fleet, ids, refresh, bar.update))
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
            if line != report["cause"]:  # the table's cause column says it already
                console.print(f"{report['id']}: {line}", markup=False)


def _refresh_quietly(engine: PlacementEngine, fleet: list[AnyTarget], ids: list[str]) -> None:
    """Probe these targets (those expired or never probed), print nothing, and give
    way at once when another refresh of the same cache is running."""
    cache = engine.discovery.cache.path if engine.discovery else None
    if cache is None or fcntl is None:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.with_name(f".{cache.name}.refresh.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another refresh is at it

        _run(_discovered(engine, fleet, ids))


async def _discovered(
    engine: PlacementEngine,
    fleet: list[AnyTarget],
    ids: Sequence[str] | None,
    refresh: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[AnyTarget], list[Known]]:
    """The targets `ids` select (all without ids), fleets expanded, and what probing
    them finds, asked about the tools they declare."""
    resolved = await engine.resolve(fleet)
    wanted = [t for t in resolved if not ids or selects(ids, t)]
    tools = frozenset(tool for t in wanted if t.capabilities for tool in t.capabilities.tools)
    return wanted, await engine.discover(wanted, tools, refresh=refresh, progress=progress)


def where_of(target: AnyTarget) -> str:
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
            where_of(target),
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
            "-" if age is None else age_words(age),
            *_capability_cells(caps),
            report["cause"] or "",
        )
    return table


def _num_or_dash(value: float | None) -> str:
    return "-" if value is None else explain.num(value)


def discovery_json(target: AnyTarget, known: Known, engine: PlacementEngine) -> dict[str, Any]:
    """One target's discovery: values, their sources, age, status and contradictions."""
    found = known.discovered
    at = found.discovered_at if found else None
    entry = engine.discovery.cache.get(target.id) if engine.discovery else None
    # only a probe looks at tools: the catalog and the EC2 API never find one missing
    checked = entry.tools_checked if entry and entry.source == "probe" else frozenset()
    by = entry.source if entry and entry.source != "probe" else "discovered"
    return {
        "id": target.id,
        "type": target.kind.value,
        "status": known.status.value,
        "cause": known.cause,
        "discoveredAt": at.isoformat() if at else None,
        "ageSeconds": round((datetime.now(UTC) - at).total_seconds(), 1) if at else None,
        "capabilities": known.capabilities.model_dump(mode="json", exclude_none=True),
        "sources": provenance(target.capabilities, found, by),
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

"""The benchmark: decision latency from 10 to 10,000 targets, beside HTCondor's matchmaking.

    acode-placement bench [--sizes 10,100,1000,10000] [--runs 200] [--json]
    python -m acode_placement.bench ...

Fleets and tasks come from a fixed seed: about 30% of targets with GPUs (mostly
NVIDIA), 85% Linux, 80% x64, 10% local, cloud prices that grow with the hardware,
tool lists; tasks that need a GPU, many CPUs, particular tools, or the impossible.
Timings are of `PlacementEngine.decide` (capabilities known: what a worker pays
on every task once discovery is cached), after a first decision that compiles
the fleet into columns (`firstDecisionUs`; the columns count in `bytesPerTarget`).
`operatorsP50Us` times a task with three operator requirements (a set of regions,
a zone pattern, a CUDA version) on the same fleet, whose targets carry region and
zone labels and their GPUs' driver, CUDA and compute capability.
With the `htcondor` package installed (the `bench` extra), the same fleet and GPU
task are matched as ClassAds (`symmetricMatch` against every machine ad, then
`Rank`, keep the best) and both must pick the same target.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from acode_placement import explain, heap
from acode_placement.bench_fleet import (
    GPU_TASK,
    OPERATOR_TASK,
    OPTIONS,
    TASKS,
    fleet,
)
from acode_placement.discovery.cache import CapabilityCache
from acode_placement.discovery.parse import ProbeReport
from acode_placement.discovery.service import Discovery
from acode_placement.engine import PlacementEngine
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    Known,
    TargetKind,
)
from acode_placement.safe import printable

if TYPE_CHECKING:
    from acode_placement.history.batch import DriverStatement


def _timed(work: Callable[[], object], runs: int) -> list[float]:
    gc.collect()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return sorted(times)


def _us(times: list[float], share: float) -> float:
    index = min(len(times) - 1, max(0, round(share * len(times)) - 1))
    return round(times[index] * 1e6, 1)


def measure(size: int, runs: int) -> dict[str, Any]:
    engine = PlacementEngine()
    importlib.import_module("acode_placement.columns")  # numpy is not the fleet's memory
    tracemalloc.start()
    targets, known = fleet(size)
    started = time.perf_counter()
    engine.decide(GPU_TASK, targets, known, OPTIONS)  # the first sight compiles the fleet
    first = time.perf_counter() - started
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    decide = _timed(lambda: engine.decide(GPU_TASK, targets, known, OPTIONS), runs)
    engine.decide(OPERATOR_TASK, targets, known, OPTIONS)  # its masks, once
    operators = _timed(lambda: engine.decide(OPERATOR_TASK, targets, known, OPTIONS), runs)
    mixed = list(TASKS.values())
    rounds = max(4, runs // 4) * len(mixed)
    started = time.perf_counter()
    for n in range(rounds):
        engine.decide(mixed[n % len(mixed)], targets, known, OPTIONS)
    per_second = rounds / (time.perf_counter() - started)
    result = engine.decide(GPU_TASK, targets, known, OPTIONS)
    few = max(3, runs // 20 * 100 // max(size, 100))
    explaining = _timed(
        lambda: explain.result_json(engine.decide(GPU_TASK, targets, known, OPTIONS)), few
    )
    evaluating = _timed(lambda: asyncio.run(engine.evaluate_all(GPU_TASK, targets, OPTIONS)), few)
    placing = _placed(engine, targets, runs)
    recorded, record_bytes, snapshot_bytes, commits = _placed_with_history(
        targets, max(5, min(runs, 20_000 // size))
    )
    row: dict[str, Any] = {
        "targets": size,
        "p50Us": _us(decide, 0.5),
        "p99Us": _us(decide, 0.99),
        "operatorsP50Us": _us(operators, 0.5),
        "placementsPerSecond": round(per_second, 1),
        "firstDecisionUs": round(first * 1e6, 1),
        "bytesPerTarget": round(memory / size),
        "evaluateAllP50Us": _us(evaluating, 0.5),
        "explainP50Us": round(_us(explaining, 0.5) - _us(decide, 0.5), 1),
        "warmDiscoveryP50Us": _warm_discovery(targets, few),
        "placeP50Us": _us(placing, 0.5),
        "placeP99Us": _us(placing, 0.99),
        "placeHistoryP50Us": _us(recorded, 0.5),
        "placeHistoryP99Us": _us(recorded, 0.99),
        "commitP50Us": _us(commits, 0.5),
        "bytesPerRecord": record_bytes,
        "snapshotBytes": snapshot_bytes,
        "choice": result.selected.id if result.selected else None,
        "peer": None,
        "samePick": None,
    }
    # The peer gets a warm-up and at least 20 timed runs (its p99 is their slowest
    # below 100 runs), however slow it is at 10,000 targets.
    peer = _htcondor(targets, known, max(20, min(runs, runs * 1000 // max(size, 1000))))
    if peer is not None:
        row["peer"] = {"name": "htcondor", "p50Us": peer[0], "p99Us": peer[1]}
        row["samePick"] = peer[2] == row["choice"]
        row["ratio"] = round(peer[0] / row["p50Us"], 1) if row["p50Us"] else None
    return row


def _placed(engine: PlacementEngine, targets: list[AnyTarget], runs: int) -> list[float]:
    """What a caller pays: `place()` through the public API, history off."""

    async def go() -> list[float]:
        await engine.place(GPU_TASK, targets, OPTIONS, record=False)  # warm-up
        gc.collect()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await engine.place(GPU_TASK, targets, OPTIONS, record=False)
            times.append(time.perf_counter() - started)
        return sorted(times)

    return asyncio.run(go())


def _placed_with_history(
    targets: list[AnyTarget], runs: int
) -> tuple[list[float], int, int, list[float]]:
    """`place()` with the history on (SQLite, the default), the bytes each record adds
    to the database file (after a checkpoint), the size of the fleet's snapshot
    (stored once, by the first placement), and what one commit costs a lone caller
    off the event loop: a one-page transaction through the same group writer, from
    the loop and back (the floor under any durable record)."""
    from acode_placement.history.store import HistoryStore  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="acode-bench-") as folder:
        path = Path(folder) / "history.db"
        store = HistoryStore(f"sqlite:///{path}")
        engine = PlacementEngine(history=store)

        async def go() -> list[float]:
            await engine.place(GPU_TASK, targets, OPTIONS)  # warm-up, and the schema
            before = _database_bytes(store, path)
            gc.collect()
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await engine.place(GPU_TASK, targets, OPTIONS)
                times.append(time.perf_counter() - started)
            sizes.append(_database_bytes(store, path) - before)
            for n in range(runs):
                started = time.perf_counter()
                await asyncio.wrap_future(store.writer.submit(_one_page(n)))
                commits.append(time.perf_counter() - started)
            return sorted(times)

        sizes: list[int] = []
        commits: list[float] = []
        times = asyncio.run(go())
        snapshot = store.snapshot_bytes()
        store.close()
    return times, round(sizes[0] / runs), snapshot, sorted(commits)


def _one_page(n: int) -> DriverStatement:
    """A transaction that writes one page (the header's user version) and commits, on
    the writer's connection as a batch of records is (the cheapest durable write)."""
    from acode_placement.history.batch import DriverStatement  # noqa: PLC0415

    return DriverStatement(f"PRAGMA user_version = {n % 1000}")


def _database_bytes(store: Any, path: Path) -> int:
    store.checkpoint()
    return path.stat().st_size


def _warm_discovery(targets: list[AnyTarget], runs: int) -> float:
    class Instant:
        async def probe(
            self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
        ) -> ProbeReport:
            return ProbeReport(target.capabilities or Capabilities(), tools, not tools_only)

    probers = {kind: Instant() for kind in TargetKind}
    discovery = Discovery(probers, CapabilityCache(), ttl=timedelta(hours=1))
    asyncio.run(discovery.lookup(targets))

    async def warm() -> list[float]:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await discovery.lookup(targets)
            times.append(time.perf_counter() - started)
        return sorted(times)

    return _us(asyncio.run(warm()), 0.5)


def _htcondor(
    targets: list[AnyTarget], known: list[Known], runs: int
) -> tuple[float, float, str | None] | None:
    """HTCondor's matchmaking on the same fleet and GPU task: (p50 us, p99 us, pick)."""
    try:
        # htcondor2 first: without it classad2's string-list functions evaluate to ERROR.
        importlib.import_module("htcondor2")
        classad2: Any = importlib.import_module("classad2")
    except ImportError:
        return None
    machines = []
    for index, (target, facts) in enumerate(zip(targets, known, strict=True)):
        caps = facts.capabilities
        gpu = caps.gpu
        rate = target.hourly_rate if target.hourly_rate is not None else 0.0
        ad = classad2.ClassAd(
            {
                "Name": target.id,
                "Index": index,
                "Cpus": caps.cpu or 0,
                "MemoryGb": caps.memory_gb or 0,
                "GpuCount": gpu.count if gpu else 0,
                "GpuType": gpu.type.value if gpu else "none",
                "GpuVram": (gpu.vram_gb or 0) if gpu else 0,
                "Tools": ",".join(caps.tools),
                "HourlyRate": rate,
            }
        )
        ad["Requirements"] = classad2.ExprTree("true")
        machines.append(ad)
    job = classad2.ClassAd({"RequestCpus": 4, "RequestMemoryGb": 16, "MaxCost": 10})
    job["Requirements"] = classad2.ExprTree(
        "TARGET.Cpus >= MY.RequestCpus && TARGET.MemoryGb >= MY.RequestMemoryGb"
        ' && TARGET.GpuCount >= 1 && TARGET.GpuType == "nvidia" && TARGET.GpuVram >= 16'
        ' && stringListMember("docker", TARGET.Tools)'
        " && TARGET.HourlyRate * 60 / 60 <= MY.MaxCost"
    )
    rank = classad2.ExprTree("-TARGET.HourlyRate")

    def matchmake() -> str | None:
        best, best_rank = None, None
        for machine in machines:
            if job.symmetricMatch(machine):
                value = rank.eval(job, machine)
                if best_rank is None or value > best_rank:
                    best, best_rank = machine, value
        return None if best is None else str(best["Name"])

    pick = matchmake()
    matchmake()  # warm-up: both engines are timed warm
    times = _timed(matchmake, runs)
    return _us(times, 0.5), _us(times, 0.99), pick


def _cpu_model() -> str | None:
    """The CPU's name as Linux reports it (None elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def run(
    sizes: list[int], runs: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Every figure at each size; `progress` is told of each size as it starts.
    Timed with the garbage collector as a library caller's process has it, not as
    the command settles it for itself."""
    heap.unsettle()
    results = []
    for size in sizes:
        if progress is not None:
            progress(f"{size:,} targets")
        results.append(measure(size, runs))
    return {
        "machine": {
            "cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "processor": _cpu_model() or platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "results": results,
    }


def render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"machine: {machine['cpus']} CPUs, {machine['processor']}, Python {machine['python']}",
        "  targets   p50 us    p99 us  operators p50 us  decisions/s  B/target"
        "  evaluate_all us  explain us  warm discovery us  htcondor p50 us  ratio  same pick",
    ]
    tail = [
        "what a caller pays: place() through the public API (history off, then on: SQLite)",
        "  targets  decide p50 us  place p50 us  place p99 us  with history p50 us"
        "  with history p99 us  one commit us  B/record  snapshot B",
    ]
    for r in report["results"]:
        peer = r["peer"]
        lines.append(
            f"  {r['targets']:7d}  {r['p50Us']:7.1f}  {r['p99Us']:8.1f}"
            f"  {r['operatorsP50Us']:16.1f}  {r['placementsPerSecond']:11.1f}"
            f"  {r['bytesPerTarget']:8d}  {r['evaluateAllP50Us']:15.1f}  {r['explainP50Us']:10.1f}"
            f"  {r['warmDiscoveryP50Us']:17.1f}  {peer['p50Us'] if peer else '-':>15}"
            f"  {r.get('ratio') or '-':>5}  {r['samePick'] if peer else '-'}"
        )
        tail.append(
            f"  {r['targets']:7d}  {r['p50Us']:13.1f}  {r['placeP50Us']:12.1f}"
            f"  {r['placeP99Us']:12.1f}  {r['placeHistoryP50Us']:19.1f}"
            f"  {r['placeHistoryP99Us']:19.1f}  {r['commitP50Us']:13.1f}  {r['bytesPerRecord']:8d}"
            f"  {r['snapshotBytes']:10d}"
        )
    return "\n".join([*lines, *tail])


MAX_SIZE = 100_000
MAX_RUNS = 100_000


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's one-line errors (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"acode-placement: error: bench: {printable(message)}\n")


def parse_sizes(text: str) -> list[int]:
    """`10,100,1000` as sizes; ValueError saying what is wanted otherwise."""
    parts = [s.strip() for s in text.split(",") if s.strip()]
    if not parts or not all(p.isdigit() and 1 <= int(p) <= MAX_SIZE for p in parts):
        raise ValueError(
            f"{text!r}: give fleet sizes from 1 to {MAX_SIZE}, comma-separated (10,100,1000)"
        )
    return [int(p) for p in parts]


def _sizes(text: str) -> list[int]:
    try:
        return parse_sizes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _runs(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_RUNS:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number from 1 to {MAX_RUNS}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="acode-placement bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=[10, 100, 1000, 10000])
    parser.add_argument("--runs", type=_runs, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.sizes, args.runs)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return verdict(report)


def verdict(report: dict[str, Any]) -> int:
    """0, or 1 (said on stderr) when HTCondor picked another target at some size."""
    differing = [r["targets"] for r in report["results"] if r["samePick"] is False]
    if differing:
        print(
            f"acode-placement and HTCondor picked differently at {differing} targets",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

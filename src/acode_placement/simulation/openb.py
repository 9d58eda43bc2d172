"""The shipped openb fleet CSV as a targets file: owned machines, scaled down while
keeping the mix of machine shapes (and so of GPU models), plus an EC2 fleet to
burst into.

    python -m acode_placement.simulation.openb FLEET.csv [--scale 0.01]
        [--burst-region us-east-1] [--no-burst] > targets.yaml

Each kept machine is an `ssh` target on a made-up host (`NODE.openb.invalid`: a
simulation never probes) declaring its CPUs, memory and GPUs. The trace's GPU codes
become model names a task can ask for: `V100M16`/`V100M32` are V100s of 16 and 32 GB;
`G2`, `G3` (Alibaba's undisclosed models), `T4`, `P100` and `A10` keep their names,
with the memory of the public models. Scaling keeps, of each shape (GPU model, GPU
count, CPUs, memory), its share of the machines, by largest remainder.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from acode_placement.config import read_bounded
from acode_placement.errors import InputError

MODELS = {  # trace code -> (model name, GB per GPU; None: not public)
    "T4": ("T4", 16.0),
    "P100": ("P100", 16.0),
    "V100M16": ("V100", 16.0),
    "V100M32": ("V100", 32.0),
    "A10": ("A10", 24.0),
    "G2": ("G2", None),
    "G3": ("G3", None),
}
# GPU types whose models the trace names (T4, V100, A10G is not A10) and CPU types.
BURST_FAMILIES = ("g4dn", "p3", "c6i", "m6i", "r6i")


Shape = tuple[str, int, float, float]  # gpu code, gpu count, cpu, memory GB


def read_fleet(path: str | Path) -> list[tuple[str, Shape]]:
    """(node id, shape) per machine of an openb fleet CSV."""
    where = str(path)
    text = read_bounded(Path(path), 64 * 1024 * 1024).decode("utf-8", errors="replace")
    rows = csv.DictReader(io.StringIO(text, newline=""))
    wanted = {"node_id", "cpu", "memory_gb", "gpu_count", "gpu_model"}
    if not rows.fieldnames or not wanted <= set(rows.fieldnames):
        raise InputError(f"{where}:1: needs the columns {', '.join(sorted(wanted))}")
    machines = []
    for row in rows:
        line = rows.line_num
        try:
            cpu, memory = float(row["cpu"]), float(row["memory_gb"])
            gpus = int(row["gpu_count"] or 0)
        except (TypeError, ValueError):
            raise InputError(f"{where}:{line}: cpu, memory_gb and gpu_count are numbers") from None
        if not (0 < cpu < 1e5 and 0 < memory < 1e7 and 0 <= gpus <= 1024):
            raise InputError(f"{where}:{line}: implausible machine ({cpu} CPUs, {memory} GB)")
        code = (row["gpu_model"] or "").strip()
        if gpus and code not in MODELS:
            raise InputError(f"{where}:{line}: column gpu_model: unknown {code[:40]!r}")
        machines.append((row["node_id"].strip() or f"node-{line}", (code, gpus, cpu, memory)))
    return machines


def scaled(machines: list[tuple[str, Shape]], scale: float) -> list[tuple[str, Shape]]:
    """About `scale` of the machines: each GPU model (and the machines without GPUs)
    keeps its share by largest remainder, at least one machine per GPU model, so the
    mix survives; within a model, its shapes likewise; within a shape, the first
    machines of the file."""
    by_model: dict[str, list[tuple[str, Shape]]] = {}
    for machine in machines:
        by_model.setdefault(machine[1][0] if machine[1][1] else "", []).append(machine)
    total = max(1, round(len(machines) * scale))
    counts = _largest_remainder({m: len(ms) for m, ms in by_model.items()}, total)
    kept: list[tuple[str, Shape]] = []
    for model, members in by_model.items():
        count = max(counts[model], 1 if model else 0)
        by_shape: dict[Shape, list[str]] = {}
        for node, shape in members:
            by_shape.setdefault(shape, []).append(node)
        per_shape = _largest_remainder({s: len(n) for s, n in by_shape.items()}, count)
        kept += [(node, shape) for shape, nodes in by_shape.items()
                 for node in nodes[: per_shape[shape]]]  # fmt: skip
    order = {node: i for i, (node, _) in enumerate(machines)}
    return sorted(kept, key=lambda m: order[m[0]])


def _largest_remainder(sizes: dict[Any, int], total: int) -> dict[Any, int]:
    """`total` shared in proportion to `sizes`, rounded by largest remainder (ties:
    the larger group, then the first)."""
    whole = sum(sizes.values())
    quotas = {key: size * total / whole for key, size in sizes.items()}
    counts = {key: math.floor(q) for key, q in quotas.items()}
    ranked = sorted(quotas, key=lambda k: (-(quotas[k] - counts[k]), -sizes[k]))
    for key in ranked[: total - sum(counts.values())]:
        counts[key] += 1
    return counts


def targets_document(
    machines: list[tuple[str, Shape]], burst_region: str | None = "us-east-1"
) -> dict[str, Any]:
    targets: list[dict[str, Any]] = []
    for node, (code, gpus, cpu, memory) in machines:
        caps: dict[str, Any] = {"cpu": _whole(cpu), "memoryGb": _whole(memory), "os": "linux",
                                "arch": "x64", "network": True}  # fmt: skip
        if gpus:
            model, vram = MODELS[code]
            caps["gpu"] = {"type": "nvidia", "model": model, "count": gpus,
                           **({"vramGb": vram} if vram else {})}  # fmt: skip
        targets.append(
            {"id": node, "type": "ssh", "host": f"{node}.openb.invalid", "capabilities": caps}
        )
    if burst_region:
        targets.append(
            {
                "id": "aws-burst",
                "type": "ec2",
                "region": burst_region,
                "instanceFamilies": list(BURST_FAMILIES),
                "capabilities": {"os": "linux", "network": True},
            }
        )
    return {"targets": targets}


def _whole(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def header(source: str, machines: list[tuple[str, Shape]], scale: float) -> str:
    mix = Counter(MODELS[code][0] if gpus else "no GPU" for _, (code, gpus, _, _) in machines)
    gpus = Counter(MODELS[code][0] for _, (code, n, _, _) in machines for _ in range(n))
    return (
        f"# The openb fleet ({source}) at scale {scale:g}: {len(machines)} machines"
        f" ({', '.join(f'{n} {m}' for m, n in sorted(mix.items()))}),"
        f" {sum(gpus.values())} GPUs ({', '.join(f'{n} {m}' for m, n in sorted(gpus.items()))}).\n"
        "# Data: Alibaba cluster-trace-gpu-v2023 (openb), from Weng et al., USENIX ATC '23;\n"
        "# redistributed under Apache-2.0 as in hkust-adsl/kubernetes-scheduler-simulator.\n"
        "# Hosts are made up (.invalid): simulate never probes them.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m acode_placement.simulation.openb", description=__doc__.splitlines()[0]
    )
    parser.add_argument("fleet", type=Path)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--burst-region", default="us-east-1")
    parser.add_argument("--no-burst", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 1:
        parser.error(f"--scale {args.scale}: give a share from 0 (excluded) to 1")
    try:
        machines = scaled(read_fleet(args.fleet), args.scale)
    except (InputError, OSError) as exc:
        print(f"acode-placement: error: {exc}", file=sys.stderr)
        return 2
    document = targets_document(machines, None if args.no_burst else args.burst_region)
    sys.stdout.write(header(args.fleet.name, machines, args.scale))
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The benchmark's fleet and tasks: a reproducible mixed fleet (about 30% with GPUs,
85% Linux, 80% x64, 10% local, cloud prices that grow with the hardware, region and
zone labels, GPU driver, CUDA and compute capability) and the tasks `bench` times.
Also what the tests use as a realistic fleet. No timing here (`bench`).
"""

from __future__ import annotations

import random

from acode_placement.models import (
    AnyTarget,
    Capabilities,
    Ec2Target,
    GpuInfo,
    Known,
    LocalTarget,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)

TOOLS = ["docker", "git", "python3", "make", "gcc", "kubectl", "helm", "nvidia-smi", "node"]
NVIDIA = [
    ("T4", 16, 0.35),
    ("A10G", 24, 0.75),
    ("L4", 24, 0.6),
    ("A100", 80, 3.0),
    ("H100", 80, 6.0),
]
AMD = [("MI210", 64, 2.0), ("Radeon Pro V520", 8, 0.3)]
GPU_TASK = TaskRequirements(
    cpu=4,
    memory_gb=16,
    gpu={"type": "nvidia", "min_vram": 16},
    tools=["docker"],
    max_cost=10,
    max_runtime_minutes=60,
)
TASKS = {
    "gpu": GPU_TASK,
    "cpu-heavy": TaskRequirements(cpu=32, memory_gb=64, os="linux"),
    "tool-bound": TaskRequirements(tools=["kubectl", "helm"], network=True),
    "impossible": TaskRequirements(gpu={"type": "nvidia", "count": 16, "min_vram": 80}),
}
# Three operator requirements (issue 20): a set of regions, a zone pattern, a CUDA
# version; timed beside the GPU task (`operatorsP50Us`).
OPERATOR_TASK = TaskRequirements(
    cpu=4,
    gpu={"type": "nvidia", "cuda": ">=12.1"},
    custom={"region": {"in": ["eu-west-1", "eu-central-1"]}, "zone": {"regex": "[a-c]"}},
)
OPTIONS = PlacementOptions(strategy="cost-optimized", discovery_enabled=False)
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1"]
# What an NVIDIA GPU's driver reports: (driver, CUDA) pairs of recent releases.
DRIVERS = [
    ("525.147.05", "12.0"),
    ("535.183.01", "12.2"),
    ("550.127.05", "12.4"),
    ("570.133.20", "12.8"),
    ("580.159.04", "13.0"),
]
COMPUTE = {"T4": 7.5, "A10G": 8.6, "L4": 8.9, "A100": 8.0, "H100": 9.0}


def fleet(size: int, seed: int = 2026) -> tuple[list[AnyTarget], list[Known]]:
    """A reproducible mixed fleet and its capabilities."""
    rng = random.Random(seed + size)
    facts = random.Random(seed + size + 1)  # labels and versions: the rest stays as it was
    targets: list[AnyTarget] = []
    for i in range(size):
        cpu = rng.choice([2, 4, 8, 16, 32, 64, 96])
        gpu = None
        gpu_price = 0.0
        if rng.random() < 0.3:
            model, vram, price = rng.choice(NVIDIA) if rng.random() < 0.85 else rng.choice(AMD)
            count = rng.choice([1, 1, 1, 2, 4, 8])
            vendor = "amd" if (model, vram, price) in AMD else "nvidia"
            driver, cuda = facts.choice(DRIVERS) if vendor == "nvidia" else (None, None)
            gpu = GpuInfo(
                type=vendor,
                model=model,
                vram_gb=vram,
                count=count,
                compute_capability=COMPUTE.get(model),
                driver=driver,
                cuda=cuda,
            )
            gpu_price = price * count
        caps = Capabilities(
            cpu=cpu,
            memory_gb=cpu * rng.choice([2, 4, 8]),
            disk_gb=rng.choice([50, 100, 250, 500, 1000]),
            gpu=gpu,
            tools=tuple(sorted(rng.sample(TOOLS, rng.randint(2, 6)))),
            os="linux" if rng.random() < 0.85 else rng.choice(["macos", "windows"]),
            arch="x64" if rng.random() < 0.8 else "arm64",
            network=True,
        )
        labels = {"region": facts.choice(REGIONS), "zone": facts.choice("abcdef")}
        kind = rng.random()
        if kind < 0.1:
            targets.append(LocalTarget(id=f"t{i:05d}", capabilities=caps, labels=labels))
        elif kind < 0.45:
            targets.append(
                SshTarget(id=f"t{i:05d}", host=f"h{i}.lan", capabilities=caps, labels=labels)
            )
        else:
            rate = round(0.045 * cpu + gpu_price, 4)
            targets.append(
                Ec2Target(
                    id=f"t{i:05d}",
                    instance_type="m7i.large",
                    hourly_rate=rate,
                    capabilities=caps,
                    labels=labels,
                )
            )
    return targets, [Known(t.capabilities or Capabilities()) for t in targets]

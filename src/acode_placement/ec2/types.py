"""What one EC2 instance type offers, from the EC2 API or the shipped catalog."""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from acode_placement.discovery.parse import normalise_arch, vram_from_mib
from acode_placement.models import OS, Arch, Capabilities, GpuInfo, GpuVendor

# Accelerator makers whose devices are GPUs a task can ask for; the others
# (AWS Inferentia and Trainium, Habana Gaudi, Qualcomm AI100) are offered as the
# custom capabilities `accelerator` and `acceleratorCount`.
_GPU_VENDORS = {"nvidia": GpuVendor.NVIDIA, "amd": GpuVendor.AMD}


@dataclass(frozen=True, slots=True)
class InstanceType:
    name: str
    vcpus: float
    memory_gib: float
    arch: Arch | None
    accelerator_maker: str | None = None
    accelerator: str | None = None
    accelerator_count: float = 0.0  # below 1: a fraction of one device
    accelerator_memory_mib: float | None = None  # per device (per slice for fractions)
    storage_gb: float | None = None  # instance store; None when EBS only
    current_generation: bool | None = None

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def gpu(self) -> GpuInfo | None:
        vendor = _GPU_VENDORS.get((self.accelerator_maker or "").lower())
        if vendor is None or not self.accelerator or self.accelerator_count <= 0:
            return None
        mib = self.accelerator_memory_mib
        return GpuInfo(
            type=vendor,
            model=self.accelerator,
            vram_gb=vram_from_mib(mib) if mib else None,
            count=self.accelerator_count,
            compute_capability=(
                compute_capability(self.accelerator) if vendor is GpuVendor.NVIDIA else None
            ),
        )

    def capabilities(self) -> Capabilities:
        """Linux by default, with outbound network; tools are never known here."""
        custom: dict[str, str | int | float | bool] = {}
        if self.accelerator and self.gpu is None and self.accelerator_count > 0:
            custom = {"accelerator": self.accelerator, "acceleratorCount": self.accelerator_count}
        return Capabilities(
            cpu=self.vcpus,
            memory_gb=round(self.memory_gib, 1),
            disk_gb=self.storage_gb,
            gpu=self.gpu,
            os=OS.LINUX,
            arch=self.arch,
            network=True,
            custom=custom,
        )

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> InstanceType:
        """One item of DescribeInstanceTypes' `InstanceTypes`."""
        archs = data.get("ProcessorInfo", {}).get("SupportedArchitectures", [])
        arch = next((a for a in map(normalise_arch, archs) if a is not None), None)
        maker = name = None
        count = 0.0
        memory = None
        devices, maker = _devices(data)
        if devices:
            first = devices[0]
            maker = first.get("Manufacturer") or maker
            name = first.get("Name")
            partition = float(first.get("GpuPartitionSize", 1.0) or 1.0)
            if partition < 1:  # a slice of one GPU: count the fraction, never a whole one
                count = partition * float(first.get("LogicalGpuCount", 1) or 1)
            else:
                count = float(sum(int(d.get("Count", 0)) for d in devices))
            memory = first.get("MemoryInfo", {}).get("SizeInMiB")
        storage = (data.get("InstanceStorageInfo") or {}).get("TotalSizeInGB")
        return cls(
            name=data["InstanceType"],
            vcpus=float(data["VCpuInfo"]["DefaultVCpus"]),
            memory_gib=data["MemoryInfo"]["SizeInMiB"] / 1024,
            arch=arch,
            accelerator_maker=maker,
            accelerator=name,
            accelerator_count=count,
            accelerator_memory_mib=float(memory) if memory else None,
            storage_gb=float(storage) if storage else None,
            current_generation=data.get("CurrentGeneration"),
        )


def _devices(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The accelerators of a DescribeInstanceTypes item, and their maker if unnamed."""
    gpus = (data.get("GpuInfo") or {}).get("Gpus")
    if gpus:
        return gpus, None
    accelerators = (data.get("InferenceAcceleratorInfo") or {}).get("Accelerators")
    if accelerators:
        return accelerators, None
    neuron = (data.get("NeuronInfo") or {}).get("NeuronDevices")
    return (neuron, "AWS") if neuron else ([], None)


def compute_capability(model: str) -> float | None:
    """NVIDIA's compute capability of a GPU model as AWS names it (`A10G`: 8.6), from
    the shipped table (`compute-capability.csv`, with its source); None when unlisted."""
    return _compute_capabilities().get(model.strip().lower())


@functools.cache
def _compute_capabilities() -> dict[str, float]:
    text = resources.files("acode_placement.ec2").joinpath("compute-capability.csv")
    rows = [line for line in text.read_text("utf-8").splitlines() if not line.startswith("#")]
    return {row["model"].lower(): float(row["computeCapability"]) for row in csv.DictReader(rows)}

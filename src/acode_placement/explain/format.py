"""How values are written for people: numbers, money, lists, GPUs. Used by the words
of every check kind (`rules.builtin`) and by the rest of `explain`; imports nothing
of either, so both can use it."""

from __future__ import annotations

from acode_placement.models import Capabilities, GpuInfo, GpuRequirement


def num(value: object) -> str:
    """A number as people write it: 16, 0.5, 1.25 (no trailing zeros)."""
    if type(value) is int:  # what checks hold most (dozens per answer): asked first
        return str(value)
    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, int | float)):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def scalar(value: object) -> str:
    """A label or custom value as YAML writes it (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return num(value)


def money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def listing(values: object) -> str:
    if isinstance(values, tuple | list):
        return ", ".join(str(v) for v in values)
    return str(values)


def gpu_text(gpu: object) -> str:
    if not isinstance(gpu, GpuInfo) or gpu.count <= 0:
        return "none"
    count = num(gpu.count)
    model = gpu.model or gpu.type.value
    vram = f" {num(gpu.vram_gb)} GB" if gpu.vram_gb is not None else ""
    shared = " unified" if gpu.unified else ""  # the system's memory, not its own
    return f"{count}x {model}{vram}{shared}"


def gpus_text(caps: Capabilities) -> str:
    """Every kind of GPU device a target offers: `4x A100 MIG 1g.20gb 20 GB + 3x A100 80 GB`."""
    if len(caps.gpus) > 1:
        return " + ".join(gpu_text(kind) for kind in caps.gpus)
    return gpu_text(caps.gpu)


def gpu_wish(gpu: GpuRequirement) -> str:
    parts = [f"{num(gpu.count)}x"]
    parts.append(listing(gpu.model) if gpu.model else gpu.type.value)
    if gpu.min_vram is not None:
        parts.append(f">= {num(gpu.min_vram)} GB")
    if gpu.min_compute_capability is not None:
        parts.append(f"compute capability >= {num(gpu.min_compute_capability)}")
    if gpu.driver is not None:
        parts.append(f"driver {gpu.driver}")
    if gpu.cuda is not None:
        parts.append(f"cuda {gpu.cuda}")
    return " ".join(parts)

"""GPUs as their vendors' tools report them: `nvidia-smi`, `rocm-smi`, Apple's chip
name; and the one `GpuInfo` a machine offers to tasks. Pure functions, tested on
recorded outputs (`tests/fixtures/`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass

from acode_placement.models import GpuInfo, GpuVendor


class ProbeOutputError(ValueError):
    """The probe's output cannot be trusted; the message says why."""


_MIB_PER_GIB = 1024
# A driver reports a little less than the card's size (an H100 80GB: 81559 MiB);
# within this share below a whole GiB the card's nominal size is used.
_NOMINAL_SLACK = 0.01
_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_DIGITS = 20  # a whole number longer than this is no machine's size
# A version as a driver or a toolkit writes it (535.104.05, 12.4, 6.0.2-115).
VERSION = re.compile(r"^[0-9][0-9A-Za-z.+_-]{0,63}$")
_CAPABILITY = re.compile(r"^\d{1,2}\.\d{1,2}$")
_LISTED_GPU = re.compile(r"^GPU (\d{1,4}): ")
_LISTED_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+\d+:")
# A MIG profile: compute slices and memory (`3g.40gb`), maybe with extras (`+me`).
_PROFILE = re.compile(r"^(\d{1,2})g\.(\d{1,4})gb(?:\+[a-z]{1,8})?$")
_MAX_LIST = 4096  # lines of `nvidia-smi -L` read


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU as a vendor tool reported it."""

    vendor: GpuVendor
    model: str
    vram_gb: float | None
    driver: str | None = None
    compute_capability: float | None = None
    mig: str | None = None  # a MIG instance of this profile (3g.40gb), not a whole GPU


def vram_from_mib(mib: float) -> float:
    """GiB to one decimal; the whole GiB when the driver reports just under it."""
    gib = mib / _MIB_PER_GIB
    whole = math.ceil(gib)
    if whole - gib <= whole * _NOMINAL_SLACK:
        return float(whole)
    return round(gib, 1)


def parse_nvidia_smi(
    text: str,
    capabilities: dict[int, float] | None = None,
    mig: dict[int, list[str]] | None = None,
) -> list[Gpu]:
    """`nvidia-smi --query-gpu=index,name,memory.total[,driver_version,...]
    --format=csv,noheader,nounits`, with each index's compute capability when known
    (`parse_compute_capabilities`). A GPU split into MIG instances (`parse_mig`) is
    offered as its instances, each with its profile's memory, never whole."""
    known = capabilities or {}
    split = mig or {}
    gpus = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[0].isdigit() or not fields[1]:
            raise ProbeOutputError(f"nvidia-smi line {number} is not index, name, memory: {line!r}")
        mib = fields[2]
        vram = vram_from_mib(float(mib)) if _NUMBER.match(mib) and len(mib) <= _DIGITS else None
        driver = fields[3] if len(fields) > 3 and VERSION.match(fields[3]) else None
        index = int(fields[0]) if len(fields[0]) <= 4 else -1
        cc = known.get(index)
        for profile in split.get(index, []):
            size = float(_PROFILE.match(profile).group(2))  # type: ignore[union-attr]
            base = profile.split("+", 1)[0]
            gpus.append(Gpu(GpuVendor.NVIDIA, f"{fields[1]} MIG {profile}", size, driver, cc, base))
        if index not in split:
            gpus.append(Gpu(GpuVendor.NVIDIA, fields[1], vram, driver, cc))
    return gpus


def parse_mig(text: str) -> dict[int, list[str]]:
    """`nvidia-smi -L`: the MIG profile of each instance each GPU is split into
    (`  MIG 3g.40gb     Device  0: (UUID: MIG-...)` under `GPU 0: ...`); GPUs not
    in MIG mode are absent."""
    found: dict[int, list[str]] = {}
    gpu: int | None = None
    for line in text.splitlines()[:_MAX_LIST]:
        whole = _LISTED_GPU.match(line)
        if whole is not None:
            gpu = int(whole.group(1))
            continue
        instance = _LISTED_MIG.match(line)
        if instance is not None and gpu is not None and _PROFILE.match(instance.group(1)):
            found.setdefault(gpu, []).append(instance.group(1))
    return found


def parse_compute_capabilities(text: str) -> dict[int, float]:
    """`nvidia-smi --query-gpu=index,compute_cap --format=csv`: each GPU's compute
    capability, by its index. Columns are found by the header's names (in any order;
    without an index column, rows count from 0); without a header, `index, cc`.
    Drivers before 510 know no such field: nothing is known."""
    rows = [[part.strip() for part in line.split(",")] for line in text.splitlines()]
    rows = [row for row in rows if any(row)]
    if not rows:
        return {}
    header = [name.lower() for name in rows[0]]
    if "compute_cap" in header:
        cc_at = header.index("compute_cap")
        index_at = header.index("index") if "index" in header else None
        rows = rows[1:]
    else:
        cc_at, index_at = 1, 0
    found: dict[int, float] = {}
    for number, row in enumerate(rows):
        index = str(number) if index_at is None else (row[index_at] if index_at < len(row) else "")
        value = row[cc_at] if cc_at < len(row) else ""
        if index.isdigit() and len(index) <= 4 and _CAPABILITY.match(value):
            found[int(index)] = float(value)
    return found


def parse_rocm_smi(text: str) -> list[Gpu]:
    """`rocm-smi --showproductname --showmeminfo vram --json`: one object per card."""
    start = text.find("{")
    try:
        document = json.loads(text[start:]) if start >= 0 else None
    except json.JSONDecodeError as exc:
        raise ProbeOutputError(f"rocm-smi printed bad JSON ({exc.msg})") from None
    if not isinstance(document, dict):
        raise ProbeOutputError("rocm-smi printed no JSON object")
    gpus = []
    for card, info in sorted(document.items(), key=lambda kv: _card_number(kv[0])):
        if not card.lower().startswith("card") or not isinstance(info, dict):
            continue
        fields = {str(k).strip().lower(): str(v).strip() for k, v in info.items()}
        model = (
            fields.get("card series")
            or fields.get("marketing name")
            or fields.get("card model")
            or "AMD GPU"
        )
        total = fields.get("vram total memory (b)", "")
        plain = total.isdigit() and len(total) <= _DIGITS
        vram = vram_from_mib(int(total) / 1024**2) if plain else None
        gpus.append(Gpu(GpuVendor.AMD, model, vram))
    return gpus


def _card_number(card: str) -> int:
    digits = "".join(c for c in card if c.isdigit())
    return int(digits) if digits else 0


def apple_gpu(chip: str) -> list[Gpu]:
    """Apple silicon's built-in GPU, named after the chip (`Apple M2 Pro`)."""
    chip = chip.strip()
    if not chip.lower().startswith("apple"):
        return []
    return [Gpu(GpuVendor.APPLE, chip, None)]


def summarise_gpus(
    gpus: list[Gpu], cuda: str | None = None, system_memory: float | None = None
) -> tuple[GpuInfo | None, tuple[GpuInfo, ...]]:
    """The GPUs as capabilities: the largest kind (`gpu`) and, when there are several
    kinds (mixed cards, MIG instances), every kind (`gpus`), largest first. Each kind
    carries its count, driver, compute capability and the CUDA version the driver
    supports. A GPU that reports no memory of its own (Apple silicon, a GB10's
    `[N/A]`) addresses the system's: it offers that, marked unified."""
    if not gpus:
        return None, ()
    groups = Counter(gpus)
    kinds = sorted(groups, key=lambda g: (-(g.vram_gb or 0.0), -groups[g], g.model))
    infos = tuple(_info(kind, groups[kind], cuda, system_memory) for kind in kinds)
    return infos[0], infos if len(infos) > 1 else ()


def _info(gpu: Gpu, count: int, cuda: str | None, system_memory: float | None) -> GpuInfo:
    unified = gpu.vram_gb is None and gpu.mig is None and system_memory is not None
    return GpuInfo(
        type=gpu.vendor,
        model=gpu.model,
        vram_gb=system_memory if unified else gpu.vram_gb,
        count=count,
        mig=gpu.mig,
        unified=unified,
        compute_capability=gpu.compute_capability,
        driver=gpu.driver,
        cuda=cuda if gpu.vendor is GpuVendor.NVIDIA else None,
    )

"""Reading what the probe printed: pure functions, tested on recorded outputs.

The probe (`probe.sh`, `probe.ps1`) prints `key value` lines between a header
`acode-probe 1` and a last line `end`, with the raw output of `nvidia-smi` (and
its compute capability query, `nvidia-cc`) and `rocm-smi` in `<name>-begin` ...
`<name>-end STATUS` blocks; the vendor outputs are read in `gpus`. Anything else (a
banner from a login shell, a missing `end`, a number that is not one) is refused
with a `ProbeOutputError` that says what was wrong and where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from acode_placement.discovery.gpus import (
    VERSION,
    Gpu,
    ProbeOutputError,
    apple_gpu,
    parse_compute_capabilities,
    parse_mig,
    parse_nvidia_smi,
    parse_rocm_smi,
    summarise_gpus,
    vram_from_mib,
)
from acode_placement.models import OS, VERSION_OF, Arch, Capabilities

__all__ = [
    "HEADER",
    "Gpu",
    "ProbeOutputError",
    "ProbeReport",
    "check_complete",
    "check_plausible",
    "normalise_arch",
    "normalise_os",
    "parse_compute_capabilities",
    "parse_mig",
    "parse_nvidia_smi",
    "parse_probe",
    "parse_rocm_smi",
    "shorten",
    "summarise_gpus",
    "vram_from_mib",
]

HEADER = "acode-probe 1"
_KIB_PER_GIB = 1024**2
_BYTES_PER_GIB = 1024**3

_OS = {"linux": OS.LINUX, "darwin": OS.MACOS, "windows": OS.WINDOWS}
_WINDOWS_SHELLS = ("mingw", "msys", "cygwin", "windows_nt")
_ARCH = {
    "x86_64": Arch.X64,
    "amd64": Arch.X64,
    "x64": Arch.X64,
    "arm64": Arch.ARM64,
    "aarch64": Arch.ARM64,
    "armv8l": Arch.ARM64,
}
_BLOCKS = ("nvidia-smi", "nvidia-cc", "nvidia-list", "rocm-smi")
_ASIDE = ("nvidia-cc", "nvidia-list")  # read alongside nvidia-smi's own block
# Versions a probe reports, offered as custom capabilities a task can match
# (`custom: {kernel: {version: ">=5.15"}}`).
_VERSIONS = {"kernel": "kernel", "glibc": "glibc", "rocm_version": "rocm"}
# The first version-looking token of what `TOOL --version` printed: "Python 3.11.7",
# "git version 2.39.2", "Docker version 24.0.7, build afdd53b", "v20.10.0".
_TOOL_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+(?:[-+][0-9A-Za-z.]+)?)")
_MAX_VERSION = 64  # characters of a version a tool states
_DIGITS = 20  # a whole number longer than this is no machine's size

# Beyond any real machine (the largest single systems have a few thousand CPUs, tens
# of TiB of memory, 16 GPUs of under 300 GB each): a probe reporting more is broken
# or lying, and its answer is refused rather than offered to tasks.
MAX_CPUS = 65_536
MAX_MEMORY_GB = 262_144.0  # 256 TiB
MAX_DISK_GB = 1024.0**3  # 1 EiB
MAX_GPUS = 1_024
MAX_VRAM_GB = 4_096.0
MAX_OUTPUT_LINES = 20_000
MAX_NAME = 256  # characters of a GPU's name


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What one probe run established.

    `tools_checked` holds every tool asked about (found or not); `hardware` is
    False for a tools-only run, whose `capabilities` then carry tools alone.
    `notes` are facts worth telling a person (a GPU tool that failed, GPUs of a
    second kind that are not matched).
    """

    capabilities: Capabilities
    tools_checked: frozenset[str]
    hardware: bool
    notes: tuple[str, ...] = ()
    gpus: tuple[Gpu, ...] = field(default=())
    facts: Mapping[str, str] = field(default_factory=dict)  # name: what its command said
    # Who answered: "probe" (the machine itself), "ec2-api", or "catalog" (the shipped
    # data). Only a probe looks at tools: the others never say a tool is missing.
    source: str = "probe"


def parse_probe(
    text: str,
    discovered_at: datetime | None = None,
    *,
    asked: frozenset[str] | None = None,
    tools_only: bool | None = None,
) -> ProbeReport:
    """Parse a whole probe output; raise `ProbeOutputError` when it is not one.

    Given what was asked (`asked` tools, `tools_only`), an answer that leaves any of
    it out (a full probe without its hardware facts, a tool not answered) is refused
    as incomplete, and so is one beyond any real machine (`check_plausible`).
    """
    lines = _lines(text)
    first = next((n for n, line in enumerate(lines) if line.strip() == HEADER), None)
    if first is None:
        shown = next((line for line in lines if line.strip()), "")
        if not shown:
            raise ProbeOutputError("the probe printed nothing")
        raise ProbeOutputError(f"not a probe's output: it starts with {shorten(shown)!r}")
    # A login shell may greet before the probe speaks (a banner, an echo in .bashrc).
    ignored = sum(1 for line in lines[:first] if line.strip())
    values: dict[str, str] = {}
    tools: dict[str, bool] = {}
    versions: dict[str, str] = {}
    facts: dict[str, str] = {}
    blocks: dict[str, tuple[list[str], int | None]] = {}
    ended = False
    number = first + 1
    while number < len(lines):
        line = lines[number].rstrip()
        number += 1
        if not line:
            continue
        if line == "end":
            ended = True
            break
        key, _, value = line.partition(" ")
        if key.endswith("-begin") and key[: -len("-begin")] in _BLOCKS:
            name = key[: -len("-begin")]
            body, status, number = _block(lines, number, name)
            blocks[name] = (body, status)
        elif key in ("tool", "tool_version", "fact"):
            _listed(key, value, (tools, versions, facts), f"line {number}")
        elif key in values:
            raise ProbeOutputError(f"line {number}: {key} given twice")
        else:
            values[key] = value.strip()
    if not ended:
        raise ProbeOutputError("the probe's output was cut short (no 'end' line)")
    report = replace(_report(values, tools, versions, blocks, discovered_at), facts=facts)
    check_complete(report, values, asked, tools_only)
    check_plausible(report)
    if ignored:
        note = f"{ignored} line(s) printed before the probe (a login banner?) were ignored"
        report = replace(report, notes=(*report.notes, note))
    return report


def _listed(
    key: str,
    value: str,
    into: tuple[dict[str, bool], dict[str, str], dict[str, str]],
    where: str,
) -> None:
    """A line of which there are many: `tool NAME 0|1`; `tool_version NAME TEXT` (TEXT:
    what `NAME --version` said, of which the first version-looking token is kept, or
    the version is unknown); `fact NAME TEXT` (what a settings fact's command said)."""
    tools, versions, facts = into
    name, _, rest = value.partition(" ")
    if key == "fact":
        if name in facts:
            raise ProbeOutputError(f"{where}: fact {shorten(name)!r} given twice")
        facts[name] = rest
    elif key == "tool_version":
        found = _TOOL_VERSION.search(rest)
        if found is not None and name and len(found.group(1)) <= _MAX_VERSION:
            versions[name] = found.group(1)
    else:
        name, _, answer = value.rpartition(" ")
        if answer not in ("0", "1") or not name:
            raise ProbeOutputError(f"{where}: bad tool line {shorten(key + ' ' + value)!r}")
        tools[name] = answer == "1"


def _lines(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_OUTPUT_LINES:
        raise ProbeOutputError(f"the probe printed over {MAX_OUTPUT_LINES} lines")
    return lines


def check_complete(
    report: ProbeReport,
    values: dict[str, str],
    asked: frozenset[str] | None,
    tools_only: bool | None,
) -> None:
    """Refuse an answer that leaves out part of the question."""
    if asked is not None and (missing := sorted(asked - report.tools_checked)):
        raise ProbeOutputError(f"incomplete: no answer for tool {shorten(missing[0])!r}")
    if asked is not None and (extra := sorted(report.tools_checked - asked)):
        raise ProbeOutputError(f"an answer for tool {shorten(extra[0])!r}, which was not asked")
    if tools_only is None or tools_only:
        return
    if not report.hardware:
        raise ProbeOutputError("incomplete: a full probe answered without its hardware facts")
    needed = ["cpu"]
    if report.capabilities.os in (OS.LINUX, OS.MACOS):
        needed.append("mem_kb" if "mem_kb" in values or "mem_bytes" not in values else "mem_bytes")
    for key in needed:
        if not values.get(key):
            raise ProbeOutputError(f"incomplete: no {key.split('_')[0]} value")


def _bounded(name: str, value: float | None, most: float, unit: str) -> float | None:
    if value is not None and value > most:
        raise ProbeOutputError(f"implausible {name}: {value:g} {unit} (at most {most:g})")
    if name == "cpu" and value is not None and value < 1:
        raise ProbeOutputError("implausible cpu: 0 CPUs")
    return value


def check_plausible(report: ProbeReport) -> None:
    """Refuse facts beyond any real machine (the bounds are this module's MAX_*; the
    machine-wide amounts are checked as they are read)."""
    if len(report.gpus) > MAX_GPUS:
        raise ProbeOutputError(f"implausible: {len(report.gpus)} GPUs (at most {MAX_GPUS})")
    for gpu in report.gpus:
        if len(gpu.model) > MAX_NAME:
            raise ProbeOutputError(f"implausible GPU name: {len(gpu.model)} characters")
        if gpu.vram_gb is not None and gpu.vram_gb > MAX_VRAM_GB:
            raise ProbeOutputError(
                f"implausible GPU memory: {gpu.vram_gb:g} GB (at most {MAX_VRAM_GB:g})"
            )


def _block(lines: list[str], start: int, name: str) -> tuple[list[str], int | None, int]:
    body: list[str] = []
    for number in range(start, len(lines)):
        line = lines[number].rstrip()
        if line.startswith(f"{name}-end"):
            status = line[len(f"{name}-end") :].strip()
            return body, int(status) if status.isdigit() else None, number + 1
        body.append(line)
    raise ProbeOutputError(f"the probe's output was cut short (inside the {name} output)")


def _report(
    values: dict[str, str],
    tools: dict[str, bool],
    versions: dict[str, str],
    blocks: dict[str, tuple[list[str], int | None]],
    discovered_at: datetime | None,
) -> ProbeReport:
    # `version:NAME` answers say whether a version was read; they are not tools
    found = tuple(sorted(n for n, ok in tools.items() if ok and not n.startswith(VERSION_OF)))
    asked = {n[len(VERSION_OF) :] for n, ok in tools.items() if n.startswith(VERSION_OF)}
    stated = {name: v for name, v in versions.items() if name in asked and name in found}
    hardware = "os" in values
    if not hardware:
        caps = Capabilities(tools=found, tool_versions=stated, discovered_at=discovered_at)
        return ProbeReport(caps, frozenset(tools), hardware=False)
    notes: list[str] = []
    os_name = normalise_os(values.get("os", ""))
    if os_name is None:
        notes.append(f"os {values.get('os')!r} is not one of linux, macos, windows")
    arch = normalise_arch(values.get("arch", ""))
    if arch is None and values.get("arch"):
        notes.append(f"arch {values.get('arch')!r} is neither x64 nor arm64")
    gpus = _gpus(blocks, notes)
    if not gpus and arch is Arch.ARM64 and os_name is OS.MACOS:
        gpus.extend(apple_gpu(values.get("chip", "")))
    custom = {
        name: version
        for key, name in _VERSIONS.items()
        if (version := _version(values, key, notes)) is not None
    }
    network = values.get("route")
    cpu = _bounded("cpu", _count(values, "cpu"), MAX_CPUS, "CPUs")
    memory = _size(values, "mem_kb", _KIB_PER_GIB) or _size(values, "mem_bytes", _BYTES_PER_GIB)
    disk = _size(values, "disk_kb", _KIB_PER_GIB) or _size(values, "disk_bytes", _BYTES_PER_GIB)
    memory = _bounded("memory", memory, MAX_MEMORY_GB, "GB")
    cuda = _version(values, "cuda_version", notes)
    gpu, kinds = summarise_gpus(gpus, cuda, memory)
    caps = Capabilities(
        cpu=cpu,
        memory_gb=memory,
        disk_gb=_bounded("disk", disk, MAX_DISK_GB, "GB"),
        gpu=gpu,
        gpus=kinds,
        tools=found,
        tool_versions=stated,
        os=os_name,
        arch=arch,
        network=None if network not in ("0", "1") else network == "1",
        custom=custom,
        discovered_at=discovered_at,
    )
    return ProbeReport(caps, frozenset(tools), True, tuple(notes), tuple(gpus))


def _gpus(blocks: dict[str, tuple[list[str], int | None]], notes: list[str]) -> list[Gpu]:
    """Every GPU the vendor tools listed; a tool that failed is a note, not an error.
    NVIDIA's compute capabilities come from a second query (`nvidia-cc`), which
    drivers before 510 refuse: then they are not known."""
    capabilities: dict[int, float] = {}
    cc = blocks.get("nvidia-cc")
    if cc is not None and cc[1] == 0:
        capabilities = parse_compute_capabilities("\n".join(cc[0]))
    elif cc is not None:
        shown = shorten("\n".join(cc[0])) or "no output"
        notes.append(f"compute capability not reported (exit {cc[1]}): {shown}")
    listed = blocks.get("nvidia-list")
    mig = parse_mig("\n".join(listed[0])) if listed is not None and listed[1] == 0 else {}
    gpus: list[Gpu] = []
    for name, (body, status) in blocks.items():
        if name in _ASIDE:
            continue
        text = "\n".join(body).strip()
        if status != 0:
            notes.append(f"{name} failed (exit {status}): {shorten(text) or 'no output'}")
            continue
        try:
            if name == "nvidia-smi":
                gpus.extend(parse_nvidia_smi(text, capabilities, mig))
            else:
                gpus.extend(parse_rocm_smi(text))
        except ProbeOutputError as exc:
            notes.append(f"{name}: {exc}")
    return gpus


def _version(values: dict[str, str], key: str, notes: list[str]) -> str | None:
    """A version line (`kernel 5.15.0-91-generic`); one that is not a version is a note."""
    value = values.get(key, "")
    if not value:
        return None
    if not VERSION.match(value):
        notes.append(f"{key} {shorten(value)!r} is not a version")
        return None
    return value


def _count(values: dict[str, str], key: str) -> int | None:
    value = values.get(key, "")
    if not value:
        return None
    if not value.isdigit() or len(value) > _DIGITS:
        raise ProbeOutputError(f"{key} {shorten(value)!r} is not a whole number")
    return int(value)


def _size(values: dict[str, str], key: str, per_gib: int) -> float | None:
    value = values.get(key, "")
    if not value:
        return None
    if not value.isdigit() or len(value) > _DIGITS:
        raise ProbeOutputError(f"{key} {shorten(value)!r} is not a whole number")
    return round(int(value) / per_gib, 1)


def normalise_os(value: str) -> OS | None:
    """`uname -s` (or Windows') name as linux, macos or windows."""
    lowered = value.strip().lower()
    if lowered.startswith(_WINDOWS_SHELLS):
        return OS.WINDOWS
    return _OS.get(lowered)


def normalise_arch(value: str) -> Arch | None:
    """`uname -m` (or PROCESSOR_ARCHITECTURE) as x64 or arm64."""
    return _ARCH.get(value.strip().lower())


def shorten(text: str, limit: int = 80) -> str:
    """Text on one line, cut to `limit` characters with `...` (for notes and errors)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."

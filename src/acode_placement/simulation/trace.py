"""A workload trace: one job per CSV row, read with the checks of every input file
(a bad row is one line naming the file, the line and the column).

Required columns: `submit_s`, `duration_s`, `cpu`, `memory_gb`, `gpu_count`;
optional: `job_id`, `gpu_model`, `gpu_share`, `gpu_models_allowed` (the shipped
openb trace's columns). A row with an empty `duration_s` never ran in the trace.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from acode_placement.config import read_bounded
from acode_placement.errors import InputError
from acode_placement.models import TaskRequirements

REQUIRED = ("submit_s", "duration_s", "cpu", "memory_gb", "gpu_count")
OPTIONAL = ("job_id", "gpu_model", "gpu_share", "gpu_models_allowed")
MAX_TRACE_BYTES = 256 * 1024 * 1024
MAX_SECONDS = 100 * 365 * 86400.0  # a century of simulated time
MAX_CPU = 100_000.0
MAX_MEMORY_GB = 1_000_000.0
MAX_GPUS = 1024

# The openb trace names GPUs by Alibaba's codes; a task asks for models by the names
# targets give (V100M16 is a V100 of 16 GB, V100M32 one of 32 GB).
MODEL_NAMES = {"V100M16": ("V100", 16.0), "V100M32": ("V100", 32.0)}


@dataclass(frozen=True)  # no slots: `requirements` is cached on the instance
class Job:
    """One row of a trace: what a task asked for, when, and for how long it ran."""

    line: int
    id: str
    submit_s: float
    duration_s: float | None  # None: never ran in the trace
    cpu: float
    memory_gb: float
    gpu_count: int
    gpu_share: float = 1.0  # of each GPU, below 1 only for one shared GPU
    gpu_models: tuple[str, ...] = ()  # any one of them; () any model

    @cached_property
    def requirements(self) -> TaskRequirements:
        """The task the engine is asked to place. Its runtime is the trace's duration
        (a perfect estimate), so that costs and runtime limits are the real ones."""
        minutes = math.ceil((self.duration_s or 60.0) / 60.0)
        gpu = None
        if self.gpu_count:
            models = sorted({MODEL_NAMES.get(m, (m, 0.0))[0] for m in self.gpu_models})
            least = min((MODEL_NAMES.get(m, (m, 0.0))[1] for m in self.gpu_models), default=0.0)
            gpu = {
                "count": self.gpu_count * self.gpu_share,
                **({"model": models} if models else {}),
                **({"minVram": least} if least else {}),
            }
        return TaskRequirements.model_validate(
            {
                "cpu": self.cpu,
                "memoryGb": self.memory_gb,
                "maxRuntimeMinutes": max(1, minutes),
                **({"gpu": gpu} if gpu else {}),
            }
        )

    @property
    def gpus(self) -> float:
        return self.gpu_count * self.gpu_share

    def shape(self) -> tuple[float, float, int, float, tuple[str, ...], bool]:
        """What decides whether the job can ever be placed (not when, nor its runtime)."""
        return (self.cpu, self.memory_gb, self.gpu_count, self.gpu_share, self.gpu_models,
                self.duration_s is None)  # fmt: skip


def read_trace(path: str | Path) -> list[Job]:
    """Every job of a trace CSV, in file order. InputError (one line: file, line,
    column) for a file that is not one."""
    where = str(path)
    try:
        text = read_bounded(Path(path), MAX_TRACE_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None:
        raise InputError(f"{where}: empty; a trace needs a header line")
    header = [name.strip() for name in header]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(f"{where}:1: missing column(s) {', '.join(missing)}")
    column = {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}
    jobs = []
    for row in rows:
        line = rows.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise InputError(f"{where}:{line}: {len(row)} fields, the header has {len(header)}")
        jobs.append(_job(row, column, f"{where}:{line}", line))
    return jobs


def _job(row: list[str], column: dict[str, int], where: str, line: int) -> Job:
    def cell(name: str) -> str:
        return row[column[name]].strip() if name in column else ""

    def number(name: str, most: float, *, whole: bool = False) -> float:
        text = cell(name)
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"{where}: column {name}: {text[:40]!r} is not a number") from None
        if not math.isfinite(value) or not 0 <= value <= most:
            raise InputError(f"{where}: column {name}: {text[:40]!r} is not from 0 to {most:g}")
        if whole and not value.is_integer():
            raise InputError(f"{where}: column {name}: {text[:40]!r} is not a whole number")
        return value

    duration = None if not cell("duration_s") else number("duration_s", MAX_SECONDS)
    gpu_count = int(number("gpu_count", MAX_GPUS, whole=True))
    share = 1.0
    if gpu_count and cell("gpu_share"):
        share = number("gpu_share", 1.0)
        if share == 0:
            raise InputError(f"{where}: column gpu_share: 0 for a job that asks for GPUs")
        if share < 1 and gpu_count != 1:
            raise InputError(f"{where}: column gpu_share: a share below 1 needs gpu_count 1")
    models = tuple(m.strip() for m in cell("gpu_models_allowed").split("|") if m.strip())
    if not models and cell("gpu_model"):
        models = (cell("gpu_model"),)
    for model in models:
        if len(model) > 64 or not model.isprintable():
            raise InputError(f"{where}: column gpu_models_allowed: {model[:40]!r} is no GPU model")
    job_id = cell("job_id") or f"line-{line}"
    if len(job_id) > 200 or not job_id.isprintable():
        raise InputError(f"{where}: column job_id: not a printable name of at most 200 characters")
    return Job(
        line=line,
        id=job_id,
        submit_s=number("submit_s", MAX_SECONDS),
        duration_s=duration,
        cpu=number("cpu", MAX_CPU),
        memory_gb=number("memory_gb", MAX_MEMORY_GB),
        gpu_count=gpu_count,
        gpu_share=share,
        gpu_models=models if gpu_count else (),
    )

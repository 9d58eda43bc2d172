"""What a simulation shows: the table on a terminal, the JSON for tools, and the plot
(matplotlib's Agg backend: a PNG, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acode_placement.simulation.run import Run

DAY = 86400.0


def table_rows(runs: Sequence[Run]) -> list[list[str]]:
    """One row per run: the figures a person compares strategies on."""
    rows = []
    for run in runs:
        rows.append(
            [
                f"{run.strategy}/{run.mode}",
                str(run.placed),
                str(sum(run.never_placeable.values())),
                str(run.waiting_at_end),
                str(run.waited),
                _duration(run.wait_percentile(0.5)),
                _duration(run.wait_percentile(0.95)),
                _duration(max(run.waits, default=0.0)),
                str(run.bursts),
                f"{run.cloud_cost:,.2f}",
                f"{run.cpu_utilisation:.1%}",
                f"{run.gpu_utilisation:.1%}",
                f"{run.makespan_s / DAY:.1f} d",
            ]
        )
    return rows


HEADER = [
    "strategy/mode", "placed", "never placeable", "waiting at end", "waited", "wait p50",
    "wait p95", "wait max", "bursts", "cloud $", "CPU use", "GPU use", "makespan",
]  # fmt: skip


def _duration(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} d"


def document(runs: Sequence[Run], jobs: int, seconds: float) -> dict[str, Any]:
    """`simulate --json`: every run's figures, and the simulation's own speed."""
    simulated = jobs * len(runs)
    return {
        "jobs": jobs,
        "runs": [run.summary() for run in runs],
        "seconds": round(seconds, 3),
        "simulatedJobsPerSecond": round(simulated / seconds, 1) if seconds else None,
    }


def plot(runs: Sequence[Run], path: Path, title: str) -> None:
    """One PNG: cumulative cloud and owned cost over time, queue length over time,
    and owned CPU and GPU utilisation, per run. Each line is named at its end, so the
    figure reads without the legend."""
    import matplotlib  # noqa: PLC0415  (the plot extra; only --plot needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (cost, queue, use) = plt.subplots(3, 1, figsize=(10, 12), constrained_layout=True)
    figure.suptitle(title)
    start = min((run.start_s for run in runs), default=0.0)
    end = max((run.end_s for run in runs), default=0.0)
    finals = [run.cloud_cost + run.owned_cost for run in runs]
    if max(finals, default=0.0) > 100 * max(min(f for f in finals if f > 0) if any(finals)
                                            else 1.0, 1.0):  # fmt: skip
        cost.set_yscale("symlog", linthresh=1.0)  # costs that differ by orders of magnitude
    ends: list[float] = []
    peaks: list[float] = []
    for n, run in enumerate(runs):
        colour = f"C{n % 10}"
        name = f"{run.strategy}/{run.mode}"
        xs, ys = _steps(run.cost_curve, start, end, 0.0)
        cost.plot(xs, ys, color=colour, label=name)
        # names of lines that end together are stacked, not printed over each other
        lift = 9 * sum(1 for y in ends if _close(y, ys[-1]))
        ends.append(ys[-1])
        cost.annotate(name, (xs[-1], ys[-1]), color=colour, fontsize=8,
                      xytext=(4, lift), textcoords="offset points", va="center")  # fmt: skip
        xs, ys = _steps(run.queue_curve, start, end, 0)
        queue.plot(xs, ys, color=colour, label=name, drawstyle="steps-post")
        if any(ys):
            top = max(range(len(ys)), key=ys.__getitem__)
            lift = 4 + 9 * sum(1 for y in peaks if _close(y, ys[top]))
            peaks.append(ys[top])
            queue.annotate(name, (xs[top], ys[top]), color=colour, fontsize=8,
                           xytext=(4, lift), textcoords="offset points")  # fmt: skip
    cost.set(title="Cumulative cost (cloud and priced owned targets)", xlabel="day",
             ylabel="US dollars")  # fmt: skip
    queue.set(title="Jobs waiting for room", xlabel="day", ylabel="jobs")
    for axes in (cost, queue):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="upper left")
    names = [f"{run.strategy}\n{run.mode}" for run in runs]
    positions = range(len(runs))
    cpu = [run.cpu_utilisation for run in runs]
    gpu = [run.gpu_utilisation for run in runs]
    bars_cpu = use.bar([p - 0.2 for p in positions], cpu, 0.4, label="CPU", color="C0")
    bars_gpu = use.bar([p + 0.2 for p in positions], gpu, 0.4, label="GPU", color="C1")
    use.bar_label(bars_cpu, labels=[f"CPU {v:.0%}" for v in cpu], fontsize=8)
    use.bar_label(bars_gpu, labels=[f"GPU {v:.0%}" for v in gpu], fontsize=8)
    use.set_xticks(list(positions), names, fontsize=8)
    use.set(title="Owned targets' utilisation (used over available, over the makespan)",
            ylabel="share")  # fmt: skip
    use.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 0.03 * max(abs(a), abs(b), 1.0)


def _steps(
    curve: Sequence[tuple[float, float]] | Sequence[tuple[float, int]],
    start: float,
    end: float,
    zero: float,
) -> tuple[list[float], list[float]]:
    """The curve in days from `start`, from its first value (`zero`) to `end`."""
    xs = [0.0] + [(t - start) / DAY for t, _ in curve] + [(end - start) / DAY]
    ys = [float(zero)] + [float(v) for _, v in curve]
    ys.append(ys[-1])
    return xs, ys

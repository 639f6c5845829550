"""Figures of one or more runs: loss against simulated time, a per-node timeline, bytes over time.

Every function takes ``runs``, a list of ``(label, result)`` pairs (a :class:`sim.runner.Result`
or anything with the same ``history`` and ``recorder``), draws on a fresh
:class:`matplotlib.figure.Figure` (no pyplot, no global backend: safe in scripts, servers and
notebooks alike), writes it to ``path`` when one is given, and returns the figure.

Time axes use the unit that suits the run's length (seconds, minutes or hours).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_bytes", "plot_loss", "plot_timeline", "time_axis"]

#: Colour of each node state in the timeline (down > busy > comm > idle, as in the recorder).
STATE_COLOURS = {"busy": "#1f77b4", "comm": "#ff7f0e", "down": "#d62728"}


def time_axis(max_time_s: float) -> tuple[float, str]:
    """``(seconds per unit, unit label)`` for a time axis that ends at ``max_time_s``."""
    if max_time_s >= 3 * 3600:
        return 3600.0, "h"
    if max_time_s >= 3 * 60:
        return 60.0, "min"
    return 1.0, "s"


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        FigureCanvasAgg(fig)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def _sim_time(result: Any) -> float:
    return float(result.recorder.elapsed_s)


def plot_loss(runs: Sequence[tuple[str, Any]], path: str | Path | None = None, *,
              target_loss: float | None = None, optimum_loss: float | None = None) -> Figure:
    """Held-out loss of each run against simulated wall-clock time.

    Uses the ``eval_loss`` series (global points) when a run has one, else the mean training
    ``loss`` reported at each time. Dashed lines mark the target loss and the data's optimum.
    """
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    scale, unit = time_axis(max((_sim_time(r) for _, r in runs), default=0.0))
    for label, result in runs:
        history = result.history
        series = history[(history.metric == "eval_loss") & history.node.isna()]
        metric = "eval loss"
        if series.empty:
            series = history[history.metric == "loss"].groupby("time_s", as_index=False).value \
                .mean()
            metric = "train loss"
        ax.plot(series.time_s / scale, series.value, marker=".", markersize=3,
                label=f"{label} ({metric})")
    if target_loss is not None:
        ax.axhline(target_loss, color="grey", linestyle="--", linewidth=1, label="target")
    if optimum_loss is not None:
        ax.axhline(optimum_loss, color="black", linestyle=":", linewidth=1, label="optimum")
    ax.set_xlabel(f"simulated wall-clock time ({unit})")
    ax.set_ylabel("loss")
    ax.set_title("Loss against simulated time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_timeline(runs: Sequence[tuple[str, Any]], path: str | Path | None = None, *,
                  max_nodes: int = 16) -> Figure:
    """Plot what each node did (busy, communicating, down; blank = idle), a panel per run."""
    panels = max(len(runs), 1)
    fig = Figure(figsize=(8, 1.0 + 1.8 * panels), layout="constrained")
    scale, unit = time_axis(max((_sim_time(r) for _, r in runs), default=0.0))
    axes = [fig.add_subplot(panels, 1, i + 1) for i in range(panels)]
    for ax, (label, result) in zip(axes, runs):
        intervals = result.recorder.intervals()
        num_nodes = min(len(result.recorder.node_names), max_nodes)
        for kind, colour in STATE_COLOURS.items():
            for node in range(num_nodes):
                rows = intervals[(intervals.kind == kind) & (intervals.node == node)]
                if rows.empty:
                    continue
                spans = list(zip(rows.start_s / scale, (rows.end_s - rows.start_s) / scale))
                ax.broken_barh(spans, (node - 0.4, 0.8), facecolors=colour, linewidth=0)
        ax.set_ylim(-0.6, num_nodes - 0.4)
        ax.set_yticks(range(0, num_nodes, max(1, num_nodes // 8)))
        ax.set_xlim(0, _sim_time(result) / scale)
        ax.set_ylabel("node")
        ax.set_title(label, fontsize="small", loc="left")
        ax.invert_yaxis()
    axes[-1].set_xlabel(f"simulated time ({unit})")
    handles = [_patch(colour, kind) for kind, colour in STATE_COLOURS.items()]
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize="small")
    fig.suptitle("Per-node timeline (blank: idle)", x=0.02, ha="left")
    return _save(fig, path)


def _patch(colour: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=colour, label=label)


def bytes_series(result: Any) -> tuple[list[float], list[float], bool]:
    """Cumulative bytes sent by all nodes against time, from the ``bytes_sent`` metric.

    The runner records the running total as a global ``bytes_sent`` metric; a run without it
    gives only its two known points, ``(0, 0)`` and ``(end, total)``; the third element says
    whether a recorded series was found.
    """
    history = result.history
    series = history[(history.metric == "bytes_sent") & history.node.isna()]
    total = float(result.recorder.bytes_sent.sum())
    end = _sim_time(result)
    times = [0.0, *series.time_s.tolist()]
    values = [0.0, *series.value.tolist()]
    if times[-1] < end:
        times.append(end)
        values.append(total)
    return times, values, not series.empty


def plot_bytes(runs: Sequence[tuple[str, Any]], path: str | Path | None = None) -> Figure:
    """Cumulative bytes sent over the network against simulated time, one line a run."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    scale, unit = time_axis(max((_sim_time(r) for _, r in runs), default=0.0))
    for label, result in runs:
        times, values, recorded = bytes_series(result)
        ax.plot([t / scale for t in times], [v / 1e9 for v in values],
                label=label if recorded else f"{label} (total at the end only)",
                linestyle="-" if recorded else "--")
    ax.set_xlabel(f"simulated time ({unit})")
    ax.set_ylabel("bytes sent, all nodes (GB)")
    ax.set_title("Traffic over time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)

"""Figures of one or more runs: loss against simulated time, a per-node timeline, bytes sent.

Every function takes ``runs``, a list of ``(label, result)`` pairs (a :class:`sim.runner.Result`
or anything with the same ``history``, ``recorder`` and ``summary``), draws on a fresh
:class:`matplotlib.figure.Figure` (no pyplot, no global backend: safe in scripts, servers and
notebooks alike), writes it to ``path`` when one is given (the format follows the suffix:
``.png``, ``.svg``, ``.pdf``, ...), and returns the figure.

The figures are meant to be shown as they are, e.g. in a talk, so they compare methods on common
axes: every panel of the timeline shares one time axis (a method that finishes sooner has a
visibly shorter bar), and the bytes figure puts each method's bytes per node side by side as bars
with their ratio to the first run (the baseline) written on them. Time axes use the unit that
suits the longest run (seconds, minutes or hours).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from sim.units import short_bytes, short_duration

__all__ = ["STATE_COLOURS", "bytes_series", "plot_bytes", "plot_loss", "plot_timeline",
           "save_figure", "time_axis"]

#: Colour of each node state in the timeline (down > busy > comm > idle, as in the recorder).
STATE_COLOURS = {"busy": "#1f77b4", "comm": "#ff7f0e", "down": "#d62728", "idle": "#e4e4e4"}

#: What each state means, for legends.
STATE_LABELS = {"busy": "computing", "comm": "communicating", "down": "down",
                "idle": "idle (waiting)"}

#: Narrowest span the timeline draws, in pixels of its axis (shorter states stay visible).
MIN_SPAN_PX = 1.5

#: Resolution of saved raster figures (dots per inch).
DPI = 120

#: How a run ended, in words (``Result.stop_reason``).
STOP_WORDS = {"target_loss": "reached the target", "until_s": "time limit",
              "max_steps": "step limit", "policy_done": "finished", "stalled": "stalled",
              "error": "failed"}


def time_axis(max_time_s: float) -> tuple[float, str]:
    """``(seconds per unit, unit label)`` for a time axis that ends at ``max_time_s``."""
    if max_time_s >= 3 * 3600:
        return 3600.0, "h"
    if max_time_s >= 3 * 60:
        return 60.0, "min"
    return 1.0, "s"


def save_figure(fig: Figure, path: str | Path | None) -> Figure:
    """Attach an Agg canvas and, when ``path`` is given, write the figure (format by suffix)."""
    FigureCanvasAgg(fig)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return fig


def _sim_time(result: Any) -> float:
    return float(result.recorder.elapsed_s)


def _summary(result: Any) -> dict[str, Any]:
    return dict(getattr(result, "summary", {}) or {})


def _colour(index: int) -> str:
    """The colour of the ``index``-th run, the same in every figure."""
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    return palette[index % len(palette)]


def plot_loss(runs: Sequence[tuple[str, Any]], path: str | Path | None = None, *,
              target_loss: float | None = None, optimum_loss: float | None = None) -> Figure:
    """Held-out loss of each run against simulated wall-clock time.

    Uses the ``eval_loss`` series (global points) when a run has one, else the mean training
    ``loss`` reported at each time. Dashed lines mark the target loss and the data's optimum; a
    large dot marks where a run reached the target.
    """
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    scale, unit = time_axis(max((_sim_time(r) for _, r in runs), default=0.0))
    for index, (label, result) in enumerate(runs):
        history = result.history
        series = history[(history.metric == "eval_loss") & history.node.isna()]
        metric = "eval loss"
        if series.empty:
            series = history[history.metric == "loss"].groupby("time_s", as_index=False).value \
                .mean()
            metric = "train loss"
        colour = _colour(index)
        ax.plot(series.time_s / scale, series.value, marker=".", markersize=3, color=colour,
                label=f"{label} ({metric})")
        reached = _summary(result).get("time_to_target_s")
        if reached is not None and target_loss is not None:
            ax.plot([reached / scale], [target_loss], marker="o", markersize=7, color=colour,
                    markeredgecolor="black", linestyle="none")
    if target_loss is not None:
        ax.axhline(target_loss, color="grey", linestyle="--", linewidth=1, label="target")
    if optimum_loss is not None:
        ax.axhline(optimum_loss, color="black", linestyle=":", linewidth=1, label="optimum")
    ax.set_xlim(left=0)
    ax.set_xlabel(f"simulated wall-clock time ({unit})")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("Loss against simulated time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def plot_timeline(runs: Sequence[tuple[str, Any]], path: str | Path | None = None, *,
                  max_nodes: int = 16, width_px: int = 960) -> Figure:
    """What each node did over time, a panel per run, all panels on one shared time axis.

    Each node is a row: grey while it is up and waiting (idle), blue while computing, orange
    while communicating, red while down; the row ends where the run ended, so a run that
    reached the target sooner is visibly shorter. A span narrower than :data:`MIN_SPAN_PX`
    pixels of a ``width_px``-pixel-wide axis is drawn that wide, so that states too short to see
    at the common scale (a 0.02 s compute step next to a 75 s all-reduce) still show; each panel's
    title gives the exact share of time in each state.
    """
    panels = max(len(runs), 1)
    shown = [min(len(result.recorder.node_names), max_nodes) for _, result in runs] or [1]
    heights = [0.8 + 0.22 * n for n in shown]
    fig = Figure(figsize=(width_px / DPI, 0.8 + sum(heights)), layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    longest = max((_sim_time(r) for _, r in runs), default=0.0)
    scale, unit = time_axis(longest)
    min_width = MIN_SPAN_PX * longest / scale / width_px
    for ax, (label, result), num_nodes in zip(axes, runs, shown):
        end = _sim_time(result) / scale
        all_spans = result.recorder.state_spans()
        for node in range(num_nodes):
            ax.broken_barh([(0.0, end)], (node - 0.4, 0.8), facecolors=STATE_COLOURS["idle"],
                           linewidth=0)
            for kind in ("comm", "busy", "down"):
                spans = [(start / scale, max((stop - start) / scale, min_width))
                         for start, stop in all_spans[node][kind]]
                if spans:
                    ax.broken_barh(spans, (node - 0.4, 0.8), facecolors=STATE_COLOURS[kind],
                                   linewidth=0)
        ax.axvline(end, color="black", linewidth=1)
        ax.set_ylim(num_nodes - 0.4, -0.6)
        ax.set_yticks(range(0, num_nodes, max(1, num_nodes // 8)))
        ax.set_ylabel("node")
        ax.set_xlabel(f"simulated time ({unit})")
        ax.tick_params(labelbottom=True)
        ax.set_title(_timeline_title(label, result), fontsize="small", loc="left")
    axes[0].set_xlim(0, longest / scale if longest > 0 else 1.0)
    handles = [_patch(STATE_COLOURS[k], STATE_LABELS[k]) for k in ("busy", "comm", "idle",
                                                                   "down")]
    fig.legend(handles=handles, loc="outside upper right", ncol=4, fontsize="small")
    fig.suptitle("Per-node timeline, one time axis", x=0.01, ha="left")
    return save_figure(fig, path)


def _timeline_title(label: str, result: Any) -> str:
    """``"ddp: 2.12 h, reached the target; computing 0.1%, communicating 97.0%, idle 2.9%"``."""
    elapsed = _sim_time(result)
    words = STOP_WORDS.get(str(_summary(result).get("stop_reason")), "")
    breakdown = result.recorder.node_time_breakdown()
    total = float(breakdown[["busy_s", "comm_s", "idle_s", "down_s"]].to_numpy().sum())
    shares = []
    for kind in ("busy", "comm", "idle", "down"):
        seconds = float(breakdown[f"{kind}_s"].sum())
        if kind != "down" or seconds > 0:
            shares.append(f"{STATE_LABELS[kind].split(' ')[0]} {_percent(seconds, total)}")
    head = f"{label}: {short_duration(elapsed)}" + (f", {words}" if words else "")
    return f"{head};  " + ", ".join(shares)


def _percent(part: float, whole: float) -> str:
    if whole <= 0:
        return "-"
    share = 100 * part / whole
    if share < 1e-3:  # rounding residue of a sum of spans, or truly nothing
        return "0%"
    return f"{share:.2g}%" if share < 1 else f"{share:.1f}%"


def _patch(colour: str, label: str) -> Any:
    return Patch(facecolor=colour, label=label)


def _ratio_words(ratio: float) -> str:
    """``baseline / run`` of bytes in words: ``"18.1x less"``, ``"1.6x more"``, ``"same"``."""
    if abs(ratio - 1) < 0.005:
        return "same"
    return f"{ratio:.3g}x less" if ratio > 1 else f"{1 / ratio:.3g}x more"


def _minor_log_label(value: float, _pos: int) -> str:
    """Label the 2x and 5x minor ticks of a log axis (plain numbers, no 10^k notation)."""
    mantissa = value / 10 ** np.floor(np.log10(value)) if value > 0 else 0.0
    return f"{value:g}" if round(mantissa, 6) in (2.0, 5.0) else ""


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
    """Bytes each method sent: per node by the end of its run (bars), and over time (log axis).

    Left: mean bytes sent per node by the end of each run (the table's ``bytes/node``; a run
    that stops at the target loss shows its bytes to target), each bar labelled with its value
    and its ratio to the first run's (the baseline). Right: the cumulative bytes per node against
    simulated time on a logarithmic axis, so that runs an order of magnitude apart are both
    readable.
    """
    fig = Figure(figsize=(10, 3.4 + 0.15 * len(runs)), layout="constrained")
    bars, lines = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    totals = [float(result.recorder.bytes_sent.mean()) if len(result.recorder.bytes_sent)
              else 0.0 for _, result in runs]
    labels = [label for label, _ in runs]
    positions = list(range(len(runs)))
    bars.barh(positions, [t / 1e9 for t in totals], color=[_colour(i) for i in positions])
    bars.set_yticks(positions, labels)
    bars.invert_yaxis()
    bars.set_xlabel("bytes sent per node by the end of the run (GB)")
    bars.set_title("Bytes per node", fontsize="medium", loc="left")
    widest = max(totals, default=0.0) / 1e9
    bars.set_xlim(0, widest * 1.45 if widest > 0 else 1.0)
    base = totals[0] if totals else 0.0
    for i, total in enumerate(totals):
        text = short_bytes(total)
        if i > 0 and base > 0 and total > 0:
            text += f"  ({_ratio_words(base / total)})"
        elif i == 0 and len(totals) > 1:
            text += "  (baseline)"
        bars.text(total / 1e9, i, " " + text, va="center", fontsize="small")
    bars.grid(axis="x", alpha=0.3)

    scale, unit = time_axis(max((_sim_time(r) for _, r in runs), default=0.0))
    for index, (label, result) in enumerate(runs):
        times, values, recorded = bytes_series(result)
        nodes = max(len(result.recorder.node_names), 1)
        points = [(t / scale, v / nodes / 1e9) for t, v in zip(times, values) if v > 0]
        if not points:
            continue
        lines.plot([p[0] for p in points], [p[1] for p in points], color=_colour(index),
                   marker="." if recorded else None, markersize=3,
                   label=label if recorded else f"{label} (total at the end only)",
                   linestyle="-" if recorded else "--")
    lines.set_yscale("log")
    lines.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    lines.yaxis.set_minor_formatter(FuncFormatter(_minor_log_label))
    lines.set_xlim(left=0)
    lines.set_xlabel(f"simulated time ({unit})")
    lines.set_ylabel("bytes sent per node (GB, log scale)")
    lines.set_title("Traffic over time", fontsize="medium", loc="left")
    lines.grid(alpha=0.3, which="both")
    if lines.get_legend_handles_labels()[0]:
        lines.legend(fontsize="small")
    return save_figure(fig, path)

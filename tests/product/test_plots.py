"""The comparison figures show the difference between methods (issue 18, item 5).

The runs here are hand-made recorders with known intervals and bytes, so every drawn extent has
an exact expected value: a run of 100 s next to one of 1000 s, compute slivers of 10 ms, bytes
per node 18x apart.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
from matplotlib.colors import to_hex

from sim.compare import Comparison, PolicyRun
from sim.config import PolicyConfig
from sim.plots import MIN_SPAN_PX, STATE_COLOURS, plot_bytes, plot_loss, plot_timeline
from sim.recorder import Recorder


def fake_run(end_s: float, *, nodes: int = 3, step_s: float = 10.0, busy_s: float = 0.01,
             bytes_per_node: float = 1e9, reached: float | None = None) -> types.SimpleNamespace:
    """Every ``step_s``: compute ``busy_s``, then communicate until the next step; node 0 is
    down over [20, 30) s; ``bytes_per_node`` sent by each node, spread evenly over time."""
    rec = Recorder(types.SimpleNamespace(now=end_s), [f"n{i}" for i in range(nodes)])
    for node in range(nodes):
        t = 0.0
        while t < end_s:
            rec.interval(node, "busy", t, t + busy_s)
            rec.interval(node, "comm", t + busy_s, min(t + step_s * 0.8, end_s))
            t += step_s
    rec.interval(0, "down", 20.0, 30.0)
    for k, t in enumerate(np.linspace(0, end_s, 5)[1:], start=1):
        rec.env.now = float(t)
        rec.metric("bytes_sent", nodes * bytes_per_node * k / 4)
        rec.metric("eval_loss", 3.0 - k * 0.3)
    rec.env.now = end_s
    rec.bytes_sent[:] = bytes_per_node
    rec.finish(end_s)
    summary = {"stop_reason": "target_loss" if reached else "until_s",
               "time_to_target_s": reached}
    return types.SimpleNamespace(recorder=rec, history=rec.history(), summary=summary)


def _drawn(ax) -> dict[str, list[tuple[float, float]]]:
    """``colour -> [(x0, x1), ...]`` of every bar drawn on ``ax``."""
    out: dict[str, list[tuple[float, float]]] = {}
    for collection in ax.collections:
        colour = to_hex(collection.get_facecolor()[0])
        for path in collection.get_paths():
            xs = path.vertices[:, 0]
            out.setdefault(colour, []).append((float(xs.min()), float(xs.max())))
    return out


def test_timeline_panels_share_one_time_axis_and_shorter_runs_end_sooner():
    fast, slow = fake_run(100.0), fake_run(1000.0)
    fig = plot_timeline([("fast", fast), ("slow", slow)])
    axes = fig.axes
    assert len(axes) == 2
    # one shared axis ending at the longest run (1000 s = 16.7 min, shown in minutes)
    assert all(ax.get_xlim() == pytest.approx((0.0, 1000.0 / 60)) for ax in axes)
    idle = STATE_COLOURS["idle"]
    ends = [max(x1 for _, x1 in _drawn(ax)[idle]) for ax in axes]
    assert ends == pytest.approx([100.0 / 60, 1000.0 / 60])
    for ax in axes:  # every panel is labelled, not only the last one
        assert ax.get_xlabel() == "simulated time (min)"
        assert ax.get_ylabel() == "node"
        assert all(label.get_visible() for label in ax.get_xticklabels())


def test_every_state_colour_is_visible_even_when_too_short_to_scale():
    run = fake_run(1000.0)  # 10 ms of compute every 10 s: 1e-5 of the axis, far below a pixel
    fig = plot_timeline([("run", run)], width_px=1000)
    drawn = _drawn(fig.axes[0])
    for state in ("busy", "comm", "down", "idle"):
        assert STATE_COLOURS[state] in drawn, state
    busy_widths = [x1 - x0 for x0, x1 in drawn[STATE_COLOURS["busy"]]]
    # MIN_SPAN_PX pixels of a 1000-pixel axis that spans 1000 s, drawn in minutes
    assert min(busy_widths) == pytest.approx(MIN_SPAN_PX * 1000.0 / 60 / 1000)
    assert len(busy_widths) == 3 * 100 - 1  # 3 nodes x 100 steps, minus node 0's during down
    down = drawn[STATE_COLOURS["down"]]
    assert down == [pytest.approx((20.0 / 60, 30.0 / 60))]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["computing", "communicating", "idle (waiting)", "down"]
    # the exact shares are in the panel title: busy 0.01 s of every 10 s is 0.1%
    assert "computing 0.1%" in fig.axes[0].get_title(loc="left")


def test_bytes_figure_shows_the_ratio_between_methods():
    ddp, diloco = fake_run(7600.0, bytes_per_node=75.4e9), fake_run(420.0, bytes_per_node=4.18e9)
    fig = plot_bytes([("ddp", ddp), ("diloco", diloco)])
    bars, lines = fig.axes
    widths = [patch.get_width() for patch in bars.patches]
    assert widths == pytest.approx([75.4, 4.18])
    texts = [t.get_text() for t in bars.texts]
    assert texts == [" 75.4 GB  (baseline)", " 4.18 GB  (18x less)"]
    assert lines.get_yscale() == "log"
    assert bars.get_xlabel() and lines.get_xlabel() and lines.get_ylabel()
    # cumulative per node: the last point of each line is its total per node
    finals = [line.get_ydata()[-1] for line in lines.get_lines()]
    assert finals == pytest.approx([75.4, 4.18])


def test_loss_plot_marks_where_each_run_reached_the_target():
    a, b = fake_run(100.0, reached=60.0), fake_run(1000.0)
    fig = plot_loss([("a", a), ("b", b)], target_loss=2.0, optimum_loss=1.0)
    ax = fig.axes[0]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(dots) == 1 and list(dots[0].get_xdata()) == [1.0]  # 60 s in minutes
    assert ax.get_xlabel() == "simulated wall-clock time (min)"


def _comparison(runs) -> Comparison:
    comparison = Comparison(scenario=None)
    for label, result in runs:
        record = {"label": label, "target_loss": None, "optimum_loss": None}
        comparison.runs.append(PolicyRun(label=label, policy=PolicyConfig(name=label, params={}),
                                         record=record, result=result))
    return comparison


def test_save_plots_writes_png_svg_and_pdf_and_never_overwrites(tmp_path):
    comparison = _comparison([("a", fake_run(100.0)), ("b", fake_run(300.0))])
    out = tmp_path / "out"
    first = comparison.save_plots(out, formats=["png", "svg", "pdf"])
    assert [p.name for p in first] == ["compare.png", "compare.svg", "compare.pdf",
                                       "timeline.png", "timeline.svg", "timeline.pdf",
                                       "bytes.png", "bytes.svg", "bytes.pdf"]
    assert {p.parent for p in first} == {out}
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}
    for path in first:
        assert path.read_bytes().startswith(magic[path.suffix]), path
    before = {p: p.read_bytes() for p in first}
    second = comparison.save_plots(out, formats=["png"])
    assert {p.parent for p in second} == {tmp_path / "out-2"}
    assert all(p.read_bytes() == data for p, data in before.items())  # first run untouched
    again = comparison.save_plots(out, formats=["png"], overwrite=True)
    assert {p.parent for p in again} == {out}


def test_unknown_plot_format_is_bad_input(tmp_path):
    from sim.errors import ScenarioError

    comparison = _comparison([("a", fake_run(100.0))])
    with pytest.raises(ScenarioError, match=r"^--plot-format: unknown format 'jpg'; allowed: "
                                            r"png, svg, pdf$"):
        comparison.save_plots(tmp_path, formats=["jpg"])

"""GC, SR-SGC and M-SGC compared the authors' way (probe, tune, run): the table and the figure.

Command (the headline of docs/methods/gradient-coding.md)::

    python -m experiments.gc_tuned_compare scenarios/gc-lambda.toml [--set K=V ...] [--plot PNG]

The procedure itself (probe, tune, the tuned policies) is the method's and lives in
:mod:`policies.gradient_coding.tuned_compare`; this script runs it and reports.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policies.gradient_coding.sequential import SCHEMES
from policies.gradient_coding.tuned_compare import describe_tuning, tuned_spec
from policies.gradient_coding.tuning import Tuning
from sim.compare import PLOT_FORMATS, compare
from sim.usage import (
    OneLineParser,
    check_output_file,
    checked,
    command_line_checks,
    known,
    refusing,
)


def plot_tuning(tuning: Tuning, comparison: Any, labels: Sequence[str], path: str | Path) -> None:
    """The authors' two panels: emulated time vs load per parameter set; jobs done vs time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for scheme in SCHEMES:
        rows = [r for r in tuning.table if r.candidate.scheme == scheme]
        left.plot([r.load for r in rows], [r.total_s for r in rows], ".", ms=3, label=scheme)
        best = tuning.best[scheme]
        left.plot([best.load], [best.total_s], "k*", ms=9)
    left.set(xlabel="normalised load", ylabel="emulated time (s)", xscale="log", yscale="log",
             title="tuning on the probe (* = chosen)")
    left.legend()
    left.grid(alpha=0.3)
    for label, run in zip(labels, comparison.runs):
        times = run.result.history.query("metric == 'job'").time_s.tolist()
        style = "--" if label.endswith("_fixed") else "-"
        right.plot(times, range(1, len(times) + 1), style, label=label)
    right.set(xlabel="simulated time (s)", ylabel="jobs decoded", title="runs")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


PROG = "python -m experiments.gc_tuned_compare"


def parse_command_line(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked before the probe runs: a bad value is a :class:`UsageError`."""
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--max-W", type=int, default=3, help="largest window tried (>= 2)")
    parser.add_argument("--common-slope", action="store_true",
                        help="the authors' one load slope for all cells (default: per cell)")
    parser.add_argument("--plot", help="write the two-panel figure to this file "
                                       f"({', '.join(PLOT_FORMATS)})")
    parser.add_argument("--no-fixed", action="store_true",
                        help="run only the tuned schemes (not the file's fixed-parameter extra)")
    args = parser.parse_args(argv)
    checked("--max-W", args.max_W, lambda rounds: rounds >= 2, "an integer >= 2 (rounds)")
    if args.plot is not None:  # refused now, not after the runs
        check_output_file("--plot", args.plot)
        known("--plot", [Path(args.plot).suffix.lstrip(".").lower()], PLOT_FORMATS,
              "figure format")
    return args


@refusing(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    """Probe, tune, run every scheme; print the table (and write the figure with --plot)."""
    args = parse_command_line(argv)
    with command_line_checks():  # the file and --set are read before the probe
        spec, profile, tuning = tuned_spec(args.scenario, args.overrides, max_W=args.max_W,
                                           per_cell=not args.common_slope)
    n = spec.scenario.cluster.num_nodes - 1
    print(f"probe: {profile.num_workers} workers x {profile.num_rounds} rounds, "
          f"median base delay {float(_median(profile.base_s)):.3f} s, "
          f"median slope {_median(profile.slope_s):.2f} s per unit load")
    print(describe_tuning(tuning, n))
    policies = [(label, cfg) for label, cfg in spec.policies
                if not (args.no_fixed and label.endswith("_fixed"))]
    comparison = compare(spec.scenario, policies)
    print(f"{'label':12s} {'policy':14s} {'params':32s} {'sim time (s)':>12s}")
    for (label, cfg), run in zip(policies, comparison.runs):
        shown = {k: cfg.params[k] for k in ("B", "W", "lam") if k in cfg.params}
        print(f"{label:12s} {cfg.name:14s} {str(shown):32s} {run.record['sim_time_s']:12.1f}")
    if args.plot:
        plot_tuning(tuning, comparison, [label for label, _ in policies], args.plot)
    return 0


def _median(values: Any) -> float:
    import numpy as np

    return float(np.median(values))


if __name__ == "__main__":
    raise SystemExit(main())

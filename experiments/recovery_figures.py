"""Reproduce the family's full-version figure: ``python -m experiments.recovery_figures``.

Runs the five methods of ``scenarios/checkfree-{5,10,16}pct.toml`` (the paper's rates, no
compression; about 5 minutes of CPU per file), plots held-out loss against simulated wall-clock
time, one panel per failure rate, with the stage failures marked, and prints a table of time to
the target loss. Writes ``docs/methods/recovery-checkfree/loss-vs-time.png``, ``summary.csv``
(every run) and ``spread.csv`` (per rate and method over the seeds: mean, std, min, max of the
time to target, and the mean speed-up over the faster baseline) there (or ``--out``).
``--seeds 0,1,2`` repeats every file with other seeds (other failure schedules, data and
initial weights; the figure shows the first seed); ``--processes N`` runs the points in
parallel. Each finished point is appended to ``points.csv`` in the output folder at once (so a
long run can be watched, and a cut-off run keeps what it did); it is removed once
``summary.csv`` is written.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

from sim.compare import compare
from sim.scenario import load, resolve_policies
from sim.usage import (
    OneLineParser,
    at_least,
    check_output_folder,
    checked,
    checked_list,
    command_line_checks,
    refusing,
    seed_list,
)

RATES_PCT = (5, 10, 16)
ROOT = Path(__file__).resolve().parents[1]


def point_spec(pct: int, scenarios_dir: Path, seed: int | None = None,
               extra: tuple[str, ...] = ()) -> Any:
    """The scenario of one (rate, seed) point: ``checkfree-<pct>pct.toml`` with its overrides."""
    overrides = ([] if seed is None else [f"seed={seed}"]) + list(extra)
    return load(scenarios_dir / f"checkfree-{pct}pct.toml", overrides)


def run_rate(pct: int, scenarios_dir: Path, seed: int | None = None,
             extra: tuple[str, ...] = (), methods: tuple[str, ...] = ()) -> tuple[object, dict]:
    """Run the comparison of one scenario file; return its spec and the runs by label.

    ``methods``: the labels to run (default: every ``[policies.<label>]`` table of the file).
    """
    spec = point_spec(pct, scenarios_dir, seed, extra)
    comparison = compare(spec, list(methods) or None,
                         processes=1)  # the points may already run in worker processes
    return spec, {run.label: run.result for run in comparison.runs}


def run_point(job: tuple[int, int, str, tuple[str, ...], tuple[str, ...]]) -> dict:
    """One (rate, seed) point, reduced to picklable tables (for worker processes)."""
    import torch

    torch.set_num_threads(1)
    pct, seed, scenarios_dir, extra, methods = job
    spec, runs = run_rate(pct, Path(scenarios_dir), seed, extra, methods)
    rows = summary_rows(pct, spec, runs)
    for row in rows:
        row["seed"] = seed
    failing = [label for label in runs if label != "no_failure"] or list(runs)
    events = runs[failing[0]].recorder.events()  # every failing method faces the same ones
    failures = [] if not len(events) else events[events["kind"] == "failure"].time_s.tolist()
    return {"pct": pct, "seed": seed, "rows": rows, "target": spec.scenario.run.target_loss,
            "curves": {label: r.loss_curve() for label, r in runs.items()},
            "failures": failures}


def summary_rows(pct: int, spec: object, runs: dict) -> list[dict]:
    """One row per method: time to target, final loss, steps, failures, rollbacks."""
    from experiments.recovery_family import result_summary, time_to_loss

    target = spec.scenario.run.target_loss
    rows = []
    for label, result in runs.items():
        counts = result_summary(result)
        rows.append({"p_hour_pct": pct, "method": label,
                     "time_to_target_s": time_to_loss(result, target),
                     "final_loss": result.final_loss, **counts})
    base = {r["method"]: r["time_to_target_s"] for r in rows}
    for row in rows:
        best = min(base.get("checkpointing", math.inf), base.get("redundant", math.inf))
        t = row["time_to_target_s"]
        row["speedup_vs_best_baseline"] = (best / t) if math.isfinite(t) and t > 0 else math.nan
    return rows


PROG = "python -m experiments.recovery_figures"


def rates_in(scenarios_dir: Path) -> list[int]:
    """The failure rates (percent per stage-hour) with a ``checkfree-<rate>pct.toml`` file here."""
    names = (re.fullmatch(r"checkfree-(\d+)pct", path.stem)
             for path in scenarios_dir.glob("checkfree-*pct.toml"))
    return sorted(int(name.group(1)) for name in names if name)


def parse_command_line(argv: list[str] | None) -> argparse.Namespace:
    """The command line, every point's scenario included, checked before anything runs.

    Each (rate, seed) point's file is read with its overrides and ``--methods`` is checked
    against it, so a typo is refused at once rather than by a worker after other points ran.
    Raises :class:`UsageError` naming the option, or the scenario key of a ``--set``.
    """
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs/methods/recovery-checkfree"))
    parser.add_argument("--scenarios", default=str(ROOT / "scenarios"),
                        help="folder of the checkfree-<rate>pct.toml files")
    parser.add_argument("--rates", default=",".join(map(str, RATES_PCT)),
                        help="comma-separated failure rates, percent per stage-hour")
    parser.add_argument("--seeds", default="0", help="comma-separated; the figure shows the first")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--methods", default="",
                        help="comma-separated labels to run (default: all five)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="scenario override for every file, e.g. network.transport=fluid")
    args = parser.parse_args(argv)
    check_output_folder("--out", args.out)
    scenarios = Path(checked("--scenarios", args.scenarios, lambda path: Path(path).is_dir(),
                             "an existing folder"))
    shipped = rates_in(scenarios)
    args.rates = checked_list("--rates", args.rates, int, lambda pct: pct in shipped,
                              f"rates with a file checkfree-<rate>pct.toml in {scenarios} "
                              f"({', '.join(map(str, shipped))})")
    args.seeds = seed_list("--seeds", args.seeds)
    at_least("--processes", args.processes, 1)
    args.methods = tuple(m for m in args.methods.split(",") if m)
    with command_line_checks():
        for pct in args.rates:
            for seed in args.seeds:
                spec = point_spec(pct, scenarios, seed, tuple(args.set))
                resolve_policies(spec, list(args.methods) or None, flag="--methods")
    return args


@refusing(PROG)
def main(argv: list[str] | None = None) -> int:
    """Run, plot, print."""
    import multiprocessing

    args = parse_command_line(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rates, seeds, methods = args.rates, args.seeds, args.methods
    jobs = [(pct, seed, args.scenarios, tuple(args.set), methods)
            for seed in seeds for pct in rates]
    points_csv = out / "points.csv"  # one row per run, appended as each point finishes
    points_csv.unlink(missing_ok=True)
    points = []

    def keep(point: dict) -> None:
        points.append(point)
        pd.DataFrame(point["rows"]).to_csv(points_csv, mode="a", index=False,
                                           header=not points_csv.exists())
        print(f"done: {point['pct']}%/h seed {point['seed']}", flush=True)

    if args.processes > 1:
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            for point in pool.imap_unordered(run_point, jobs):
                keep(point)
    else:
        for job in jobs:
            keep(run_point(job))
    points.sort(key=lambda p: (seeds.index(p["seed"]), rates.index(p["pct"])))
    points_csv.unlink()  # everything is in summary.csv now

    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4), sharey=True,
                             squeeze=False)
    shown = {p["pct"]: p for p in points if p["seed"] == seeds[0]}
    for ax, pct in zip(axes[0], rates):
        point = shown[pct]
        for label, curve in point["curves"].items():
            ax.plot(curve.time_s / 60, curve.value, label=label)
        for t in point["failures"]:
            ax.axvline(t / 60, color="grey", lw=0.5, ls=":")
        ax.axhline(point["target"], color="k", lw=0.5)
        ax.set_title(f"{pct}% per stage-hour, seed {seeds[0]} (dotted: failures)")
        ax.set_xlabel("simulated time (min)")
        ax.set_ylim(1.0, 2.5)
    axes[0][0].set_ylabel("held-out loss (nats/token)")
    axes[0][-1].legend()
    fig.tight_layout()
    fig.savefig(out / "loss-vs-time.png", dpi=120)
    table = pd.DataFrame([row for p in points for row in p["rows"]])
    table.to_csv(out / "summary.csv", index=False)
    print(table.to_string(index=False))
    spread = spread_table(table)
    spread.to_csv(out / "spread.csv", index=False)
    print("\ntime to target (s) over seeds", seeds)
    print(spread.to_string(index=False))
    return 0


def spread_table(table: Any) -> Any:
    """Per rate and method: runs, mean, std, min, max of the time to target; failures; speed-up.

    A run that never reached the target counts as ``inf`` (then the mean is ``inf`` too, and
    ``reached`` says how many did).
    """
    import numpy as np

    rows = []
    for (pct, method), group in table.groupby(["p_hour_pct", "method"], sort=True):
        t = group.time_to_target_s.to_numpy(dtype=float)
        finite = t[np.isfinite(t)]
        rows.append({"p_hour_pct": pct, "method": method, "runs": len(t),
                     "reached": len(finite), "mean_s": float(np.mean(t)),
                     "std_s": float(np.std(t, ddof=1)) if len(t) > 1 else 0.0,
                     "min_s": float(np.min(t)), "max_s": float(np.max(t)),
                     "failures_mean": float(group.failures.mean()),
                     "speedup_vs_best_baseline_mean": float(
                         group.speedup_vs_best_baseline.mean())})
    return pd_frame(rows)


def pd_frame(rows: list[dict]) -> Any:
    """A pandas DataFrame of ``rows`` (imported late: the CLI imports this module quickly)."""
    import pandas as pd

    return pd.DataFrame(rows)


if __name__ == "__main__":
    raise SystemExit(main())

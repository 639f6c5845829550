"""Run several policies on one scenario and put the results side by side.

``compare(scenario, ["ddp", "diloco", "noloco"])`` runs each policy on the *same* scenario (same
seed, so the same failures and stragglers) and returns a :class:`Comparison`: a table (time to
target loss, final loss, simulated time, bytes sent per node, idle fraction, goodput, speed-up
against the first policy), JSON records, and plots (loss against simulated time, per-node
timeline, bytes over time).

Speed-up of policy ``p`` against the baseline ``b`` (the first policy)::

    speedup = time_to_target(b) / time_to_target(p)        when both reached the target
            = None                                          when only one of them reached it
            = step_time(b) / step_time(p)                   when neither did (sim_time / steps)

The table's ``speedup_basis`` column says which one was used (``time_to_target``,
``step_time``), why there is none (``missed_target``: the policy missed the target the
baseline reached; ``baseline_missed_target``: the reverse), or is empty when nothing is defined.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.backends import Backend, ProcessBackend, SerialBackend
from sim.config import PolicyConfig, Scenario
from sim.errors import ScenarioError
from sim.output import fresh_output_dir
from sim.policy import get_policy
from sim.records import record_of
from sim.runner import check_policy
from sim.runner import run as default_run
from sim.runs import RunTask, execute, run_result
from sim.threads import DEFAULT_TORCH_THREADS
from sim.units import short_bytes, short_duration

__all__ = [
    "Comparison",
    "PolicyRun",
    "compare",
    "normalize_policies",
    "record_of",
    "speedup_between",
]

#: Columns of :attr:`Comparison.table`, in order.
TABLE_COLUMNS = ["policy", "time_to_target_s", "final_loss", "sim_time_s", "steps",
                 "bytes_sent_per_node", "idle_fraction", "goodput", "speedup", "speedup_basis"]

#: Stems of the files :meth:`Comparison.save_plots` writes: loss, per-node timeline, bytes.
PLOT_STEMS = ("compare", "timeline", "bytes")

#: Formats ``save_plots`` and ``--plot-format`` accept.
PLOT_FORMATS = ("png", "svg", "pdf")

#: Keys that vary between identical runs (real time); ignore them when comparing outputs.
NONDETERMINISTIC_KEYS = ("wall_time_s",)

PolicySpec = str | PolicyConfig | tuple[str, PolicyConfig]


def speedup_between(record: dict[str, Any], baseline: dict[str, Any]) -> tuple[float | None, str]:
    """``(speedup, basis)`` of ``record`` against ``baseline``; see the module docstring."""
    t, t_base = record.get("time_to_target_s"), baseline.get("time_to_target_s")
    if t is not None and t_base is not None and t > 0:
        return t_base / t, "time_to_target"
    if (t is None) != (t_base is None):
        # one run reached the target and the other did not: a per-step ratio would compare
        # unlike steps (a DDP step is not a DiLoCo inner step), so there is no honest number
        return None, "baseline_missed_target" if t_base is None else "missed_target"
    step, step_base = _step_time(record), _step_time(baseline)
    if step is not None and step_base is not None and step > 0:
        return step_base / step, "step_time"
    return None, ""


def _step_time(record: dict[str, Any]) -> float | None:
    steps, sim_time_s = record.get("steps"), record.get("sim_time_s")
    if not steps or sim_time_s is None:
        return None
    return sim_time_s / steps


@dataclass
class PolicyRun:
    """One run of a comparison: its label, its policy config, its record and its result."""

    label: str
    policy: PolicyConfig
    record: dict[str, Any]
    result: Any = None


@dataclass
class Comparison:
    """The runs of several policies on one scenario; the first policy is the baseline."""

    scenario: Scenario
    runs: list[PolicyRun] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per run, each with ``speedup`` and ``speedup_basis``."""
        if not self.runs:
            return []
        baseline = self.runs[0].record
        out = []
        for run in self.runs:
            value, basis = speedup_between(run.record, baseline)
            out.append({**run.record, "speedup": value, "speedup_basis": basis})
        return out

    @property
    def table(self) -> pd.DataFrame:
        """The comparison table, one row per policy (column ``policy`` is the run's label)."""
        rows = [{**r, "policy": r["label"]} for r in self.records]
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def to_json(self, *, indent: int | None = 2) -> str:
        """Return the records as a JSON list (what ``dtsim compare --json`` prints)."""
        return json.dumps(self.records, indent=indent)

    def format_table(self) -> str:
        """Return the table as aligned text with units, for terminals."""
        return format_table(self.table)

    def _pairs(self) -> list[tuple[str, Any]]:
        return [(run.label, run.result) for run in self.runs if run.result is not None]

    def plot_loss(self, path: str | Path | None = None) -> Any:
        """Loss against simulated wall-clock time, one line per policy (format by suffix)."""
        from sim.plots import plot_loss  # deferred: sim.plots loads matplotlib

        first = self.runs[0].record if self.runs else {}
        return plot_loss(self._pairs(), path, target_loss=first.get("target_loss"),
                         optimum_loss=first.get("optimum_loss"))

    def plot_timeline(self, path: str | Path | None = None) -> Any:
        """Per-node timeline, one panel per policy on one shared time axis (format by suffix)."""
        from sim.plots import plot_timeline  # deferred: sim.plots loads matplotlib

        return plot_timeline(self._pairs(), path)

    def plot_bytes(self, path: str | Path | None = None) -> Any:
        """Bytes sent per node by each policy, as bars and over time (format by suffix)."""
        from sim.plots import plot_bytes  # deferred: sim.plots loads matplotlib

        return plot_bytes(self._pairs(), path)

    def save_plots(self, out_dir: str | Path, *, formats: Sequence[str] = ("png",),
                   overwrite: bool = False) -> list[Path]:
        """Write ``compare`` (loss), ``timeline`` and ``bytes`` figures; return their paths.

        Parameters
        ----------
        out_dir:
            The folder asked for. When it already holds one of these files (an earlier run's)
            and ``overwrite`` is false, the figures go to the first free ``out_dir-2``,
            ``out_dir-3``, ... instead (:func:`sim.output.fresh_output_dir`): look at the
            returned paths.
        formats:
            File formats, any of :data:`PLOT_FORMATS` (``png``, ``svg``, ``pdf``).
        overwrite:
            Replace the files in ``out_dir``.
        """
        from sim.plots import save_figure  # deferred: sim.plots loads matplotlib

        formats = [check_plot_format(f) for f in formats]
        if not formats:
            check_plot_format("")
        names = [f"{stem}.{fmt}" for stem in PLOT_STEMS for fmt in formats]
        out = fresh_output_dir(out_dir, names, overwrite=overwrite)
        draw = {"compare": self.plot_loss, "timeline": self.plot_timeline,
                "bytes": self.plot_bytes}
        paths = []
        for stem in PLOT_STEMS:
            figure = draw[stem]()
            for fmt in formats:
                path = out / f"{stem}.{fmt}"
                save_figure(figure, path)
                paths.append(path)
        return paths

    def write_trace(self, path: str | Path) -> None:
        """One Chrome trace with a process (track group) per policy; loads in Perfetto."""
        events: list[dict[str, Any]] = []
        for pid, run in enumerate(self.runs):
            if run.result is None:
                continue
            for ev in run.result.recorder.chrome_trace()["traceEvents"]:
                ev = {**ev, "pid": pid}
                if ev.get("name") == "process_name":
                    ev["args"] = {"name": run.label}
                events.append(ev)
        Path(path).write_text(json.dumps({"traceEvents": events, "displayTimeUnit": "ms"}),
                              encoding="utf-8")


def check_plot_format(fmt: str) -> str:
    """Return ``fmt`` lower-cased, or raise :class:`~sim.errors.ScenarioError` naming the rest."""
    name = fmt.strip().lower().lstrip(".")
    if name not in PLOT_FORMATS:
        raise ScenarioError("--plot-format", f"unknown format {fmt!r}; allowed: "
                                             f"{', '.join(PLOT_FORMATS)}")
    return name


def format_table(table: pd.DataFrame) -> str:
    """Aligned text: durations, bytes and fractions in human units; missing values as ``-``."""
    def fmt(column: str, value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
            return "-"
        if column.endswith("_s"):
            return short_duration(float(value))
        if column == "bytes_sent_per_node":
            return short_bytes(float(value))
        if column in ("idle_fraction", "goodput"):
            return f"{abs(100 * float(value)):.1f}%"  # abs: no "-0.0%" from rounding
        if column == "speedup":
            return f"{float(value):.2f}x"
        if isinstance(value, float):
            return f"{value:.4f}"
        return str(value)

    headers = {"policy": "policy", "time_to_target_s": "time to target", "final_loss":
               "final loss", "sim_time_s": "sim time", "steps": "steps", "bytes_sent_per_node":
               "bytes/node", "idle_fraction": "idle", "goodput": "goodput",
               "speedup": "speed-up",
               "speedup_basis": "basis"}
    columns = [c for c in table.columns if c in headers]
    cells = [[headers[c] for c in columns]]
    for _, row in table.iterrows():
        cells.append([fmt(c, row[c]) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                       for i, (v, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def normalize_policies(scenario: Any, policies: Sequence[PolicySpec] | None,
                       ) -> tuple[Scenario, list[tuple[str, PolicyConfig]]]:
    """``(scenario, [(label, PolicyConfig), ...])`` from the forms :func:`compare` accepts."""
    spec = scenario
    if policies is None:
        return spec, spec.policy_configs(None)
    names = [p for p in policies if isinstance(p, str)]
    by_name = dict(spec.policy_configs(names)) if names else {}
    chosen: list[tuple[str, PolicyConfig]] = []
    for p in policies:
        if isinstance(p, str):
            chosen.append((p, by_name[p]))
        elif isinstance(p, PolicyConfig):
            chosen.append((p.name, p))
        else:
            label, config = p
            chosen.append((label, config))
    return spec, chosen


def known_to_spawned_workers(config: PolicyConfig) -> bool:
    """Whether a freshly spawned worker process knows the policy ``config`` names.

    A worker imports the built-in ``policies`` package only: a policy registered anywhere
    else (a notebook's ``__main__``, a user's own module) exists in this process alone, so a
    comparison that includes one runs here, one policy after another.
    """
    return get_policy(config.name).__module__.split(".")[0] == "policies"


def compare(scenario: Any, policies: Sequence[PolicySpec] | None = None, *,
            progress: bool = False, run_fn: Callable[..., Any] | None = None,
            processes: int | None = None, backend: Backend | None = None,
            threads: int | None = DEFAULT_TORCH_THREADS) -> Comparison:
    """Run each policy on ``scenario``; the first one is the baseline of the speed-ups.

    The policies run in parallel, each in its own process (the mechanism of sweeps,
    :mod:`sim.runs`); every run is deterministic given the scenario's seed, so the records,
    traces and plots are those of running them one after another in this process.

    Parameters
    ----------
    scenario:
        A :class:`~sim.config.Scenario`, or a :class:`~sim.scenario.ScenarioSpec` (then policy
        names may be labels of its ``[policies.<label>]`` tables).
    policies:
        Names (run with the scenario's ``[policy]`` parameters when the name matches, else the
        policy's defaults), :class:`~sim.config.PolicyConfig` objects, or ``(label, config)``
        pairs. ``None``: the spec's ``[policies]`` tables, or the scenario's own policy.
    progress:
        Show a progress bar over the policies (on stderr).
    run_fn:
        The function that runs one scenario (default :func:`sim.runner.run`); tests pass fakes.
        A ``run_fn`` runs in this process, one policy after another.
    processes:
        Worker processes: ``None`` one per policy up to this machine's CPUs; 1 runs every
        policy in this process, one after another (each result then keeps its live world).
    backend:
        Where the runs execute (:mod:`sim.backends`, e.g. Ray); overrides ``processes``.
    threads:
        CPU threads torch trains on in each run, here or in a worker (default one, as in the
        ``dtsim`` command; see :mod:`sim.threads`); ``None`` leaves torch's setting alone.
    """
    base, chosen = normalize_policies(scenario, policies)
    for _label, config in chosen:  # refuse bad input before the first policy runs
        check_policy(config, dataclasses.replace(base, policy=config))
    if processes is not None and processes < 1:
        raise ValueError(f"compare: processes must be >= 1, got {processes}")
    if backend is None:
        workers = processes or min(len(chosen), os.cpu_count() or 1)
        in_process = (run_fn is not None or workers <= 1 or len(chosen) <= 1
                      or not all(known_to_spawned_workers(c) for _, c in chosen))
        backend = SerialBackend() if in_process else ProcessBackend(processes=workers)
    elif run_fn is not None and not isinstance(backend, SerialBackend):
        raise ValueError("compare: run_fn runs in this process; it takes no other backend")
    tasks = [RunTask(key=str(i), policy=label, scenario=dataclasses.replace(base, policy=config),
                     torch_threads=threads) for i, (label, config) in enumerate(chosen)]
    if isinstance(backend, SerialBackend):
        if run_fn is None:
            run_fn = functools.partial(default_run, threads=threads)
        fn: Callable[[RunTask], Any] = functools.partial(_run_here, run_fn=run_fn)
    else:
        fn = run_result
    results = execute(tasks, fn, backend=backend, progress=progress, desc="policies").values
    comparison = Comparison(scenario=base)
    for task, (label, config) in zip(tasks, chosen):
        result = results[task.key]
        comparison.runs.append(PolicyRun(label=label, policy=config,
                                         record=record_of(result, label), result=result))
    return comparison


def _run_here(task: Any, run_fn: Callable[..., Any]) -> Any:
    """A comparison's run in this process (the result keeps its live world)."""
    return run_fn(task.scenario)

"""Sweeps: run a scenario over a grid of parameter values, in parallel, resumably.

A grid maps dotted scenario keys to lists of values, e.g.
``{"network.uplink": ["10Mbit/s", "100Mbit/s"], "cluster.nodes": [4, 8]}``; the sweep runs every
combination (the Cartesian product, in the grid's key order) times every policy: the ones
given, or else the scenario's own list, exactly as ``compare`` reads it (every
``[policies.<label>]`` table, or the ``[policy]`` table when there are none).

Each run is one :class:`~sim.runs.RunTask` of the shared mechanism in :mod:`sim.runs`: keyed by a
hash of what defines it (the point's scenario table, seed included, and the policy label), its
record saved as ``OUT/<key>.json`` as soon as it finishes, whatever the backend
(:mod:`sim.backends`: a local process pool by default, or Ray on one machine or a cluster).
So:

* an interrupted sweep keeps every run that finished;
* running the same sweep again skips them (records with ``"status": "ok"``) and says so
  (the table's ``attrs["skipped"]``, and the CLI prints how many);
* a run that raises writes an error record (``"status": "error"``) and the sweep goes on; a
  resumed sweep tries it again;
* :func:`load_table` reads every record of a folder as one pandas table.

Every point is validated before anything runs, so a bad grid value fails at once with the
field's name.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim.backends import Backend, ProcessBackend, SerialBackend
from sim.runner import check_policy
from sim.runs import RunTask, execute, load_records, run_key, run_record
from sim.scenario import (
    ScenarioError,
    apply_overrides,
    parse_spec,
    read_scenario_file,
    resolve_policies,
)
from sim.threads import DEFAULT_TORCH_THREADS

__all__ = ["grid_points", "load_records", "load_table", "run_key", "sweep",
           "sweep_tasks"]


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as ``{dotted key: value}`` dicts, in order."""
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ScenarioError(f"grid.{key}", f"needs a non-empty list of values, got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def set_dotted(raw: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``raw`` with the dotted ``key`` set to ``value`` (tables created)."""
    data = copy.deepcopy(dict(raw))
    parts = key.split(".")
    table = data
    for part in parts[:-1]:
        child = table.setdefault(part, {})
        if not isinstance(child, dict):
            raise ScenarioError(key, f"cannot set a key inside {part!r}, which is {child!r}")
        table = child
    table[parts[-1]] = value
    return data


def load_table(out_dir: str | Path) -> pd.DataFrame:
    """Every run saved in ``out_dir`` as one table: point keys, ``policy``, ``status``, figures.

    One row per saved record (any sweep that wrote there), sorted by key; the columns are those
    of :func:`sweep`'s table plus ``key``.
    """
    return pd.DataFrame([_row(r.get("point", {}), r.get("policy"), r, r.get("key"))
                         for r in load_records(out_dir)])


def _row(point: Mapping[str, Any], policy: str | None, saved: Mapping[str, Any],
         key: str | None = None) -> dict[str, Any]:
    row = {**point, "policy": policy, "status": saved.get("status"), "error": saved.get("error")}
    # the record's own "policy" is the policy's name; the row's is the run's label
    row.update((k, v) for k, v in saved.get("record", {}).items() if k != "policy")
    if key is not None:
        row = {"key": key, **row}
    return row


def sweep_tasks(base: Mapping[str, Any] | str | Path, grid: Mapping[str, Sequence[Any]], *,
                policies: Sequence[str] | None = None, base_dir: str | Path | None = None,
                torch_threads: int | None = DEFAULT_TORCH_THREADS) -> list[RunTask]:
    """The sweep's runs, in order: every grid point, times every policy label.

    ``policies=None`` runs the scenario's own list at every point (``[policies.<label>]``
    tables, or the single ``[policy]``), as :func:`sim.compare.compare` does.
    """
    if isinstance(base, (str, Path)):
        raw, base_dir = read_scenario_file(base), str(Path(base).resolve().parent)
    else:
        raw = apply_overrides(base, [])
        base_dir = str(base_dir) if base_dir is not None else None
    tasks: list[RunTask] = []
    for point in grid_points(grid):
        point_raw = raw
        for key, value in point.items():
            point_raw = set_dotted(point_raw, key, value)
        spec = parse_spec(point_raw, base_dir=base_dir)  # fail fast on a bad grid value
        chosen = resolve_policies(spec, list(policies) if policies is not None else None)
        for _label, config in chosen:  # and on a policy that cannot run at this point
            check_policy(config, dataclasses.replace(spec.scenario, policy=config))
        for label, _ in chosen:
            tasks.append(RunTask(key=run_key(point_raw, label), point=point, policy=label,
                                 raw=point_raw, base_dir=base_dir,
                                 torch_threads=torch_threads))
    return tasks


def sweep(base: Mapping[str, Any] | str | Path, grid: Mapping[str, Sequence[Any]],
          out_dir: str | Path, *, policies: Sequence[str] | None = None, processes: int = 2,
          backend: Backend | None = None, resume: bool = True, progress: bool = True,
          base_dir: str | Path | None = None,
          torch_threads: int | None = DEFAULT_TORCH_THREADS,
          run_fn: Callable[..., Any] | None = None) -> pd.DataFrame:
    """Run every grid point (times every policy) and return one row per run.

    Parameters
    ----------
    base:
        A scenario file path, or a file-shaped table (e.g. ``ScenarioBuilder.to_dict()``).
    grid:
        Dotted key -> list of values (file-style values: ``"100Mbit/s"``, ``16``, ...).
    out_dir:
        Folder of the per-run JSON records (created).
    policies:
        Policy names or ``[policies]`` labels to run at every point; ``None``: the scenario's
        own list, as ``compare`` runs it.
    processes:
        Worker processes of the default backend (1 runs in this process).
    backend:
        Where the runs execute (:mod:`sim.backends`); overrides ``processes``.
    resume:
        Skip runs whose record is already saved with status ok (listed in
        ``table.attrs["skipped"]``).
    base_dir:
        Where relative paths of a table ``base`` resolve (a file's own folder by default).
    torch_threads:
        torch threads of each run (default one, as everywhere: see :mod:`sim.threads`;
        ``None``: leave torch's setting).
    run_fn:
        Replaces :func:`sim.runner.run` (only in this process; used by tests).

    Returns
    -------
    pandas.DataFrame
        One row per run of this grid: the point's keys, ``policy``, ``status``, ``error`` and
        the run's record fields (``sim_time_s``, ``final_loss``, ...). ``attrs["skipped"]``
        lists the keys of the runs found finished and not run again.
    """
    tasks = sweep_tasks(base, grid, policies=policies, base_dir=base_dir,
                        torch_threads=torch_threads)
    if run_fn is not None:
        if backend is not None and not isinstance(backend, SerialBackend) or \
                backend is None and processes != 1:
            raise ValueError("sweep: run_fn can only replace the runner in this process "
                             "(processes=1)")
        fn: Callable[[RunTask], Any] = functools.partial(run_record, run_fn=run_fn)
    else:
        fn = run_record
    if backend is None:
        backend = SerialBackend() if processes <= 1 else ProcessBackend(processes=processes)
    execution = execute(tasks, fn, backend=backend, out_dir=out_dir, resume=resume,
                        progress=progress, desc="sweep")
    by_key = {r.get("key"): r for r in load_records(out_dir)}
    table = pd.DataFrame([_row(t.point, t.policy, by_key.get(t.key, {"status": "missing"}))
                          for t in tasks])
    table.attrs["skipped"] = execution.skipped
    return table

"""Sweeps: run a scenario over a grid of parameter values, in parallel processes, resumably.

A grid maps dotted scenario keys to lists of values, e.g.
``{"network.uplink": ["10Mbit/s", "100Mbit/s"], "policy.name": ["ddp", "diloco"]}``; the sweep
runs every combination (the Cartesian product, in the grid's key order), times every policy
given. Each finished run is saved at once as ``OUT/<key>.json``, where ``key`` is a hash of the
base scenario, the point's values and the policy, so that:

* an interrupted sweep keeps every run that finished;
* running the same sweep again skips them (records with ``"status": "ok"``);
* a run that raises writes an error record (``"status": "error"``) and the sweep goes on; a
  resumed sweep tries it again.

Every point is validated before anything runs, so a bad grid value fails at once with the
field's name. Workers are started with the ``spawn`` method (safe with torch and on every OS).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.scenario import ScenarioError, parse_spec

__all__ = ["SweepTask", "grid_points", "load_records", "point_key", "sweep"]


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


def point_key(base: Mapping[str, Any], point: Mapping[str, Any], policy: str | None) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of (base scenario, point, policy)."""
    text = json.dumps({"base": base, "point": point, "policy": policy}, sort_keys=True,
                      default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class SweepTask:
    """One run of a sweep: plain data, so it pickles into a spawned worker."""

    key: str
    raw: dict[str, Any]
    point: dict[str, Any]
    policy: str | None
    base_dir: str | None
    out_path: str
    torch_threads: int | None = None


def _write_atomically(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def run_task(task: SweepTask, run_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run one task and save its record (``status`` ok or error); returns the record."""
    from sim.compare import normalize_policies, record_of

    record: dict[str, Any] = {"key": task.key, "point": task.point, "policy": task.policy}
    started = time.perf_counter()
    try:
        if task.torch_threads is not None:
            import torch

            torch.set_num_threads(task.torch_threads)
        spec = parse_spec(task.raw, base_dir=task.base_dir)
        scenario, chosen = normalize_policies(spec, [task.policy] if task.policy else None)
        label, config = chosen[0]
        if run_fn is None:
            from sim.runner import run as default_run

            run_fn = default_run
        import dataclasses

        result = run_fn(dataclasses.replace(scenario, policy=config))
        record.update(status="ok", record=record_of(result, label))
    except Exception as exc:  # a failed run is a result of the sweep, not the end of it
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=5))
    record["wall_time_s"] = time.perf_counter() - started
    _write_atomically(Path(task.out_path), record)
    return record


def load_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every record saved in ``out_dir``, sorted by key."""
    records = []
    for path in sorted(Path(out_dir).glob("*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue  # a half-written file from a killed process: it will be redone
    return records


def _done(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") == "ok"
    except (OSError, json.JSONDecodeError):
        return False


def sweep(base: Mapping[str, Any] | str | Path, grid: Mapping[str, Sequence[Any]],
          out_dir: str | Path, *, policies: Sequence[str] | None = None, processes: int = 2,
          resume: bool = True, progress: bool = True, base_dir: str | Path | None = None,
          torch_threads: int | None = None,
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
        Policy names or ``[policies]`` labels to run at every point; ``None``: the scenario's.
    processes:
        Worker processes (1 runs in this process).
    resume:
        Skip runs whose record is already saved with status ok.
    base_dir:
        Where relative paths of a table ``base`` resolve (a file's own folder by default).
    torch_threads:
        ``torch.set_num_threads`` in each run's process (``None``: leave torch's default).
    run_fn:
        Replaces :func:`sim.runner.run` (only with ``processes=1``; used by tests).

    Returns
    -------
    pandas.DataFrame
        One row per run of this grid: the point's keys, ``policy``, ``status``, ``error`` and
        the run's record fields (``sim_time_s``, ``final_loss``, ...).
    """
    from sim.scenario import apply_overrides, read_scenario_file

    if isinstance(base, (str, Path)):
        raw, base_dir = read_scenario_file(base), str(Path(base).resolve().parent)
    else:
        raw = apply_overrides(base, [])
        base_dir = str(base_dir) if base_dir is not None else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks: list[SweepTask] = []
    for point in grid_points(grid):
        point_raw = raw
        for key, value in point.items():
            point_raw = set_dotted(point_raw, key, value)
        spec = parse_spec(point_raw, base_dir=base_dir)  # fail fast on a bad grid value
        from sim.compare import normalize_policies

        normalize_policies(spec, list(policies) if policies else None)
        for policy in (list(policies) if policies else [None]):
            key = point_key(raw, point, policy)
            tasks.append(SweepTask(key=key, raw=point_raw, point=point, policy=policy,
                                   base_dir=base_dir, out_path=str(out / f"{key}.json"),
                                   torch_threads=torch_threads))
    todo = [t for t in tasks if not (resume and _done(Path(t.out_path)))]
    if run_fn is not None and processes != 1:
        raise ValueError("sweep: run_fn can only replace the runner with processes=1")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="sweep", unit="run")
    if processes <= 1 or len(todo) <= 1:
        for task in todo:
            run_task(task, run_fn)
            if bar is not None:
                bar.update(1)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(processes, len(todo))) as pool:
            for _ in pool.imap_unordered(run_task, todo):
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    by_key = {r.get("key"): r for r in load_records(out)}
    rows = []
    for task in tasks:
        saved = by_key.get(task.key, {"status": "missing"})
        rows.append({**task.point, "policy": task.policy, "status": saved.get("status"),
                     "error": saved.get("error"), **saved.get("record", {})})
    return pd.DataFrame(rows)

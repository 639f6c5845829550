"""One mechanism for many runs: sweeps and comparisons both execute :class:`RunTask` lists here.

A run is one (scenario point, policy, seed). Its *key* is a hash of what defines it (the
file-shaped scenario table of the point, which holds the seed, and the policy's label), so the
same run has the same key in every sweep that contains it. :func:`execute` hands the tasks to a
backend (:mod:`sim.backends`: this process, a local process pool, or Ray) and, as each run
finishes, saves its record as ``OUT/<key>.json`` from *this* process, whatever the backend (so a
multi-machine Ray cluster needs no shared file system). Runs whose record is already saved with
status ``ok`` are skipped and reported as such: that is how an interrupted sweep resumes.

Two kinds of work run through it:

* a sweep's run (:func:`run_record`) builds its scenario from the point's table in the worker
  and returns a JSON-ready record (``status`` ok, or error with the exception: a failed run is
  a result of the sweep, not its end);
* a comparison's run (:func:`run_result`) runs a ready :class:`~sim.config.Scenario` and returns
  the whole :class:`~sim.runner.Result`, detached from its simulation (:func:`detach`) so that
  it can travel between processes: the recorder (intervals, metrics, bytes, trace) and every
  summary figure come back; the live world (nodes, network, SimPy environment) does not.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sim.backends import Backend, SerialBackend
from sim.records import record_of
from sim.runner import run
from sim.scenario import parse_spec
from sim.threads import DEFAULT_TORCH_THREADS

__all__ = ["Execution", "RunTask", "detach", "execute", "load_records", "run_key",
           "run_record", "run_result"]


def run_key(scenario: Mapping[str, Any], policy: str | None) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of (scenario table, policy label).

    ``scenario`` is the file-shaped table of the run's point (it holds the seed); equal runs
    get equal keys in any sweep, and any change to what defines a run changes its key.
    """
    text = json.dumps({"scenario": scenario, "policy": policy}, sort_keys=True, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class RunTask:
    """One run, as plain data that pickles into a worker process or a Ray task.

    A sweep's task carries the point's file-shaped table (``raw``, ``base_dir``) and the policy
    label; a comparison's carries the ready ``scenario`` (policy included).
    """

    key: str
    point: dict[str, Any] = field(default_factory=dict)
    policy: str | None = None
    raw: dict[str, Any] | None = None
    base_dir: str | None = None
    scenario: Any = None
    torch_threads: int | None = DEFAULT_TORCH_THREADS


@dataclass
class Execution:
    """What :func:`execute` did: the values of the runs it ran, by key, and what it skipped."""

    values: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def run_record(task: RunTask, run_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Run a sweep's task in this process; return its record (status ok or error).

    The record holds ``key``, ``point``, ``policy``, ``status``, ``record`` (the run's
    ``--json`` figures) or ``error`` and ``traceback``, and ``wall_time_s``.
    """
    record: dict[str, Any] = {"key": task.key, "point": task.point, "policy": task.policy}
    started = time.perf_counter()
    try:
        if task.raw is None:
            raise ValueError(f"run task {task.key!r}: no scenario table to run")
        spec = parse_spec(task.raw, base_dir=task.base_dir)
        label, config = spec.policy_configs([task.policy] if task.policy else None)[0]
        if run_fn is None:
            run_fn = functools.partial(run, threads=task.torch_threads)
        result = run_fn(dataclasses.replace(spec, policy=config))
        record.update(status="ok", record=record_of(result, label))
    except Exception as exc:  # a failed run is a result of the sweep, not the end of it
        record.update(status="error", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=5))
    record["wall_time_s"] = time.perf_counter() - started
    return record


def run_result(task: RunTask) -> Any:
    """Run a comparison's task (its ready scenario); return the detached Result."""
    return detach(run(task.scenario, threads=task.torch_threads))


class _Clock:
    """Stands in for a finished run's SimPy environment: its final time and event count."""

    def __init__(self, now: float, events_processed: int) -> None:
        self.now = now
        self.events_processed = events_processed


@dataclass
class DetachedWorld:
    """What a finished run's result keeps of its world: the recorder and the figures."""

    recorder: Any
    env: _Clock
    num_nodes: int
    failure_horizon_s: float | None = None


def detach(result: Any) -> Any:
    """Return ``result`` with its world replaced by a :class:`DetachedWorld` (picklable).

    Everything a result reports (``summary``, ``history``, ``recorder``, the trace) is the
    same before and after; the nodes, the network and the SimPy environment are dropped.
    """
    world = result.world
    if isinstance(world, DetachedWorld):
        return result
    clock = _Clock(world.recorder.elapsed_s, world.env.events_processed)
    recorder = copy.copy(world.recorder)
    recorder.env = clock
    detached = DetachedWorld(recorder=recorder, env=clock, num_nodes=world.num_nodes,
                             failure_horizon_s=world.failure_horizon_s)
    return dataclasses.replace(result, world=detached)


def _write_atomically(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _finished(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("status") == "ok"
    except (OSError, json.JSONDecodeError):
        return False


def load_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every record saved in ``out_dir``, sorted by key (half-written files are left out)."""
    records = []
    for path in sorted(Path(out_dir).glob("*.json")):
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError):
            continue  # a half-written file from a killed process: it will be redone
    return records


def execute(tasks: Sequence[RunTask], fn: Callable[[RunTask], Any], *,
            backend: Backend | None = None, out_dir: str | Path | None = None,
            resume: bool = True, progress: bool = False, desc: str = "runs") -> Execution:
    """Run ``fn`` on every task through ``backend``; save each record as it finishes.

    Parameters
    ----------
    tasks:
        The runs; their keys must be distinct.
    fn:
        A module-level function of one task (it is pickled to the workers).
    backend:
        Where the runs execute (default: this process, one after another).
    out_dir:
        If given, every value (a JSON-ready dict) is written to ``out_dir/<key>.json`` as soon
        as it arrives, and with ``resume`` the tasks whose file already says ``"status": "ok"``
        are skipped (listed in :attr:`Execution.skipped`, in task order).
    progress:
        A progress bar (on stderr) over all the tasks, the skipped ones counted as done.
    """
    backend = backend or SerialBackend()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    done = [resume and out is not None and _finished(out / f"{t.key}.json") for t in tasks]
    execution = Execution(skipped=[t.key for t, d in zip(tasks, done) if d])
    todo = [t for t, d in zip(tasks, done) if not d]
    bar = None
    if progress:
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="run",
                   desc=f"{desc} [{backend.describe()}]")
    try:
        for index, value in backend.map_unordered(fn, todo):
            key = todo[index].key
            if out is not None:
                _write_atomically(out / f"{key}.json", value)
            execution.values[key] = value
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return execution

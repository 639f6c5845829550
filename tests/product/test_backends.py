"""Sweeps and comparisons on every backend: serial, process pool, Ray (local instance).

The Ray tests are skipped when Ray is not installed (``pip install -e ".[ray]"``); they start one
local Ray instance for the module (2 CPUs).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from policies.data_parallel.ddp import DDP
from sim.backends import ProcessBackend, RayBackend, SerialBackend, make_backend
from sim.cli import main
from sim.compare import NONDETERMINISTIC_KEYS, compare
from sim.errors import ScenarioError
from sim.policy import register_policy
from sim.runs import execute, load_records, run_record
from sim.scenario import load
from sim.sweep import load_table, sweep, sweep_tasks

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='Ray is optional: pip install -e ".[ray]"')

GRID = {"run.steps": [2, 3, 4]}


def comparable(table):
    """A sweep's table without what varies between identical runs (wall time)."""
    return table.drop(columns=[c for c in NONDETERMINISTIC_KEYS if c in table.columns])


# -- process pool -------------------------------------------------------------------------------

def test_parallel_compare_equals_sequential(fast_toml):
    """Policies in two worker processes: the same records and traces as one after another."""
    spec = load(fast_toml, ["run.steps=3"])
    sequential = compare(spec, processes=1)
    parallel = compare(spec, processes=2)
    strip = [{k: v for k, v in r.items() if k not in NONDETERMINISTIC_KEYS}
             for r in sequential.records]
    assert [{k: v for k, v in r.items() if k not in NONDETERMINISTIC_KEYS}
            for r in parallel.records] == strip
    for one, other in zip(sequential.runs, parallel.runs, strict=True):
        assert one.result.trace_hash() == other.result.trace_hash()
        assert one.result.history.equals(other.result.history)


@register_policy("ddp_registered_in_a_test")
class DDPRegisteredHere(DDP):
    """DDP under another name, registered by this module (as a notebook would register one)."""


def test_compare_runs_policies_registered_outside_the_package_here(fast_toml):
    """A spawned worker imports the built-in policies only: a comparison that includes a policy
    registered elsewhere (a notebook, a test module) runs in this process, and still works."""
    spec = load(fast_toml, ["run.steps=3"])
    comparison = compare(spec, ["ddp", "ddp_registered_in_a_test"], processes=2)
    ddp, here = comparison.runs
    assert here.result.world is not None           # ran in this process: the live world is kept
    assert here.record["steps"] == ddp.record["steps"] == 3
    assert here.result.trace_hash() == ddp.result.trace_hash()


def test_make_backend_refuses_bad_options():
    with pytest.raises(ScenarioError, match=r"^--backend: unknown backend 'spark'"):
        make_backend("spark")
    with pytest.raises(ScenarioError, match=r"^--processes: must be >= 1"):
        make_backend("process", processes=0)
    with pytest.raises(ScenarioError, match=r"^--address: only the ray backend"):
        make_backend("process", address="auto")
    assert isinstance(make_backend("process", processes=3), ProcessBackend)
    assert isinstance(make_backend("serial"), SerialBackend)


def test_ray_missing_is_one_line_naming_the_extra(monkeypatch, capsys, fast_toml, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["sweep", str(fast_toml), "--grid", "run.steps=2", "--backend", "ray",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == ('dtsim: error: --backend: the ray backend needs Ray, which is not '
                           'installed: pip install -e ".[ray]" (or pip install ray)')


def test_cli_resumed_sweep_says_what_it_skipped(capsys, fast_toml, tmp_path):
    argv = ["sweep", str(fast_toml), "--grid", "run.steps=2", "--policies", "diloco",
            "--processes", "1", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "skipped" not in capsys.readouterr().err
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"resumed: skipped 1 of 1 runs already finished in {tmp_path}/" in err


# -- Ray ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # this module's helpers travel to the workers by value (the workers cannot import tests/)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def crash_once(task, marker_dir: str):
    """A run whose worker process dies the first time it is tried (a lost worker)."""
    marker = Path(marker_dir) / f"{task.key}.crashed"
    if task.point["run.steps"] == 3 and not marker.exists():
        marker.write_text("the first try of this run killed its worker")
        os._exit(1)
    return run_record(task)


class InterruptedAfter(RayBackend):
    """Ray, with the driver interrupted (Ctrl-C) after ``runs`` results came back."""

    def __init__(self, runs: int) -> None:
        super().__init__()
        object.__setattr__(self, "runs", runs)

    def map_unordered(self, fn, tasks):
        for count, item in enumerate(super().map_unordered(fn, tasks), start=1):
            yield item
            if count == self.runs:
                raise KeyboardInterrupt


@needs_ray
def test_ray_and_process_pool_give_identical_tables(ray_instance, fast_toml, tmp_path):
    by_ray = sweep(fast_toml, GRID, tmp_path / "ray", policies=["diloco"],
                   backend=RayBackend(), progress=False, torch_threads=1)
    by_pool = sweep(fast_toml, GRID, tmp_path / "pool", policies=["diloco"],
                    backend=ProcessBackend(processes=2), progress=False, torch_threads=1)
    assert list(by_ray.status) == ["ok"] * 3
    assert comparable(by_ray).equals(comparable(by_pool))
    assert comparable(load_table(tmp_path / "ray")).equals(
        comparable(load_table(tmp_path / "pool")))


@needs_ray
def test_ray_retries_a_run_whose_worker_was_lost(ray_instance, fast_toml, tmp_path):
    tasks = sweep_tasks(fast_toml, GRID, policies=["diloco"], torch_threads=1)
    fn = functools.partial(crash_once, marker_dir=str(tmp_path))
    execution = execute(tasks, fn, backend=RayBackend(max_retries=1), out_dir=tmp_path / "out")
    assert len(list(tmp_path.glob("*.crashed"))) == 1  # one worker died ...
    records = load_records(tmp_path / "out")
    assert [r["status"] for r in records] == ["ok"] * 3  # ... and its run was done again
    assert set(execution.values) == {t.key for t in tasks}


@needs_ray
def test_ray_sweep_interrupted_then_resumed(ray_instance, fast_toml, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        sweep(fast_toml, GRID, tmp_path, policies=["diloco"], backend=InterruptedAfter(1),
              progress=False, torch_threads=1)
    finished = [r["key"] for r in load_records(tmp_path) if r["status"] == "ok"]
    assert len(finished) >= 1  # at least the run that came back before the interruption
    resumed = sweep(fast_toml, GRID, tmp_path, policies=["diloco"], backend=RayBackend(),
                    progress=False, torch_threads=1)
    assert sorted(resumed.attrs["skipped"]) == sorted(finished)
    assert list(resumed.status) == ["ok"] * 3
    assert len(load_records(tmp_path)) == 3


@needs_ray
def test_ray_compare_equals_sequential(ray_instance, fast_toml):
    spec = load(fast_toml, ["run.steps=3"])
    by_ray = compare(spec, backend=RayBackend())
    here = compare(spec, processes=1)
    assert [{k: v for k, v in r.items() if k not in NONDETERMINISTIC_KEYS}
            for r in by_ray.records] == [
        {k: v for k, v in r.items() if k not in NONDETERMINISTIC_KEYS} for r in here.records]

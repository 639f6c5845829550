"""The library trains on the same number of torch threads as the CLI (issue 18, item 2).

A run's speed on a few cores is decided by torch's thread count (one thread is ~15x faster than
two for the tiny learners, docs/cli.md), so the same call must use the same count whether it
comes from Python, from ``sim.testing`` or from ``dtsim``. The tests watch the count *inside* a
run: the workload is built within the run, so a wrapper around ``build_workload`` sees it.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import sim.runner
from sim import compare, run
from sim.backends import Backend
from sim.cli import main
from sim.compare import record_of
from sim.scenario import load
from sim.threads import DEFAULT_TORCH_THREADS, torch_threads


@pytest.fixture
def threads_seen(monkeypatch) -> list[int]:
    """torch's thread count at the moment each run builds its workload."""
    seen: list[int] = []
    real = sim.runner.build_workload

    def watching(scenario, world):
        seen.append(torch.get_num_threads())
        return real(scenario, world)

    monkeypatch.setattr(sim.runner, "build_workload", watching)
    return seen


@pytest.fixture
def caller_uses_two_threads():
    """The caller (a notebook, a user's script) has torch on 2 threads; restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(saved)


def _short(spec):
    return dataclasses.replace(spec.scenario, run=dataclasses.replace(spec.scenario.run,
                                                                      max_steps=2))


def test_library_run_uses_one_thread_and_restores_the_callers(fast_toml, threads_seen,
                                                              caller_uses_two_threads):
    assert DEFAULT_TORCH_THREADS == 1
    run(_short(load(fast_toml)))
    assert threads_seen == [1]
    assert torch.get_num_threads() == caller_uses_two_threads


def test_library_threads_are_overridable(fast_toml, threads_seen, caller_uses_two_threads):
    run(_short(load(fast_toml)), threads=3)
    run(_short(load(fast_toml)), threads=None)  # None: the caller's own setting
    assert threads_seen == [3, caller_uses_two_threads]


class InlineWorkers(Backend):
    """A worker backend that runs its tasks here, so the test can watch them (the task and the
    worker function are those a process pool or Ray would get)."""

    def map_unordered(self, fn, tasks, progress=None):
        for index, task in enumerate(tasks):
            yield index, fn(task)


def test_compare_uses_one_thread_here_and_in_workers(fast_toml, threads_seen,
                                                     caller_uses_two_threads):
    """compare's default (which sim.testing uses) in this process and in worker tasks."""
    spec = load(fast_toml, ["run.steps=2"])
    compare(spec, ["ddp", "diloco"], processes=1)  # in this process
    compare(spec, ["ddp", "diloco"], backend=InlineWorkers())  # as in worker processes
    compare(spec, ["ddp"], processes=1, threads=2)
    compare(spec, ["ddp"], backend=InlineWorkers(), threads=2)
    assert threads_seen == [1, 1, 1, 1, 2, 2]
    assert torch.get_num_threads() == caller_uses_two_threads


def test_cli_and_library_use_the_same_threads(capsys, fast_toml, threads_seen,
                                              caller_uses_two_threads):
    """``dtsim run`` and ``sim.run`` on the same file: same thread count, same record."""
    assert main(["run", str(fast_toml), "--set", "run.steps=2", "--json", "--quiet"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    spec = load(fast_toml, ["run.steps=2"])
    from_python = record_of(run(spec.scenario), spec.scenario.policy.name)
    assert threads_seen == [1, 1]
    for key in ("wall_time_s",):
        from_cli.pop(key), from_python.pop(key)
    assert from_cli == from_python
    assert main(["run", str(fast_toml), "--set", "run.steps=2", "--json", "--quiet",
                 "--threads", "2"]) == 0
    assert threads_seen[-1] == 2


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_thread_counts_are_refused(threads):
    from sim.errors import ScenarioError

    with pytest.raises(ScenarioError, match="^threads: must be an integer >= 1"):
        with torch_threads(threads):
            pass

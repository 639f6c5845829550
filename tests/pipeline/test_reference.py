"""The full SkipPipe reference (20 nodes, 12 GCP regions, 6 stages, 33% skip), timing only.

Slow (about a minute): run with ``pytest -m slow tests/pipeline/test_reference.py``. The CI
versions are in test_methods.py (12 nodes) and test_cbs.py.
"""

from pathlib import Path

import pytest

from sim.compare import compare
from sim.scenario import load

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def iteration_times(network):
    spec = load(SCENARIOS / f"skippipe-reference-{network}.toml")
    runs = compare(spec).runs
    times = {}
    for run in runs:
        h = run.result.history
        times[run.label] = float(h[h.metric == "pipeline_time_s"].value.mean())
    return times


@pytest.mark.slow
def test_reference_ideal_network():
    t = iteration_times("ideal")
    assert t["skippipe"] <= 0.6 * t["full_pipeline"]
    assert t["full_pipeline"] > t["random_skip"] > t["skippipe_blind"] >= t["skippipe"]


@pytest.mark.slow
def test_reference_maxmin_network():
    # Under contention the collision-aware schedule is 2.4% slower than the blind one (88.98
    # against 86.85 s): its candidates are ranked by a timeline that assumes no link sharing
    # (docs/methods/pipeline-skippipe.md, the maxmin table). Pinned, not hidden.
    t = iteration_times("maxmin")
    assert t["skippipe"] <= 0.6 * t["full_pipeline"]
    assert t["full_pipeline"] > t["random_skip"] > t["skippipe_blind"]
    assert t["skippipe_blind"] < t["skippipe"] <= 1.03 * t["skippipe_blind"]


@pytest.mark.slow
def test_training_scenario_skip_model_loses_less_at_half_depth():
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest on a shared machine
    try:
        runs = compare(load(SCENARIOS / "skippipe-training.toml")).runs
    finally:
        torch.set_num_threads(saved)
    gaps = {}
    for run in runs:
        h = run.result.history
        loss = h[h.metric == "loss"].value.to_numpy()
        assert loss[-5:].mean() < loss[:5].mean() - 1.5
        full = float(h[h.metric == "eval_loss"].value.iloc[-1])
        half = float(h[h.metric == "eval_loss_half"].value.iloc[-1])
        gaps[run.label] = half - full
    assert gaps["skippipe"] < gaps["full_pipeline"] - 0.01

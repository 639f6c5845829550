"""Reference scenario files: valid, five methods, one failure setting, the paper's rates."""

from pathlib import Path

import pytest

from experiments.recovery_family import PAPER_P_ITER, p_iter
from policies.recovery.policies import RECOVERY_POLICIES
from sim.faults.stages import StageFailuresConfig
from sim.scenario import load, resolve_policies

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("pct", [5, 10, 16])
def test_scenario_file(pct):
    spec = load(SCENARIOS / f"checkfree-{pct}pct.toml")
    chosen = dict(resolve_policies(spec))
    assert sorted(chosen) == sorted(RECOVERY_POLICIES)
    # every method faces the same failures: one [faults] stage model, no per-method keys
    (failures,) = spec.faults.failures
    assert isinstance(failures, StageFailuresConfig)
    assert failures.p_hour == pytest.approx(pct / 100)
    assert failures.time_scale == 1.0  # no compression
    assert 63.0 <= failures.failure_period_s <= 90.0  # the paper's iteration times
    # the per-iteration probability is the authors' (their 500M config) within 20%
    assert p_iter(pct / 100, failures.failure_period_s) == pytest.approx(
        PAPER_P_ITER[pct / 100], rel=0.2)
    assert failures.rejoin_delay_s == 0.0  # a replacement at hand, as in the authors' code
    # the paper's checkpointing (its Figure 1a, the authors' throughput code): every 100
    # iterations, a replacement restores its stage's stale state, the others keep theirs
    assert chosen["checkpointing"].params["checkpoint_every"] == 100
    assert chosen["checkpointing"].params["restore"] == "stale_stage"
    for config in chosen.values():  # one pipeline shape (the authors' layout), stated once
        assert (config.config.num_stages, config.config.replicas_per_stage,
                config.config.microbatches_per_replica, config.config.embedding_stage) == (
                    5, 2, 2, True)
    assert spec.scenario.cluster.num_nodes == 5 * 2 + 1  # the pipeline + the store


@pytest.mark.slow
def test_scenario_numbers_come_from_the_measured_iteration_time():
    """The TOMLs' failure_period_s is reference_setup's failure-free iteration (~1 min CPU)."""
    import dataclasses

    from experiments.recovery_family import (
        failure_free_iteration_s,
        params_for,
        reference_setup,
        scenario_of,
    )
    from sim.policy import get_policy
    from sim.runner import run

    setup = dataclasses.replace(reference_setup(0.10), until_s=1500.0)
    base = run(scenario_of(setup), get_policy("no_failure")(**params_for("no_failure", setup, {})))
    (failures,) = load(SCENARIOS / "checkfree-10pct.toml").faults.failures
    assert failures.failure_period_s == pytest.approx(failure_free_iteration_s(base), rel=1e-4)

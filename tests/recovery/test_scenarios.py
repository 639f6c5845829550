"""Full-version scenario files: valid, five methods, one failure setting, scaled as documented."""

from pathlib import Path

import pytest

from experiments.recovery_family import REFERENCE_CHECKPOINT_EVERY, REFERENCE_ITERATION_S
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
    # kappa = time_scale * T_iter / T_ref, and the checkpoint interval shrinks by kappa
    kappa = failures.time_scale * failures.failure_period_s / REFERENCE_ITERATION_S
    every = max(1, round(REFERENCE_CHECKPOINT_EVERY / kappa))
    assert chosen["checkpointing"].params["checkpoint_every"] == every
    assert chosen["checkfree"].params["edge_checkpoint_every"] == every
    for config in chosen.values():  # one pipeline shape, stated once
        assert (config.config.num_stages, config.config.replicas_per_stage,
                config.config.microbatches_per_replica) == (4, 2, 2)
    assert spec.scenario.cluster.num_nodes == 4 * 2 + 1  # the pipeline + the store


@pytest.mark.slow
def test_scenario_numbers_come_from_the_measured_iteration_time():
    """The TOMLs' failure_period_s is full_setup's failure-free iteration time (~1 min CPU)."""
    from experiments.recovery_family import full_setup, params_for, scenario_of
    from sim.policy import get_policy
    from sim.runner import run

    setup = full_setup(0.10)
    base = run(scenario_of(setup), get_policy("no_failure")(**params_for("no_failure", setup, {})))
    iteration_s = base.sim_time_s / base.steps
    (failures,) = load(SCENARIOS / "checkfree-10pct.toml").faults.failures
    assert failures.failure_period_s == pytest.approx(iteration_s, rel=1e-3)
    assert failures.time_scale == pytest.approx(setup.kappa * REFERENCE_ITERATION_S
                                                / iteration_s, rel=1e-3)

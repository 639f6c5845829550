"""Headline, CI size, written with ``sim.testing``: CheckFree and CheckFree+ against
checkpointing and redundant computation at 5% and 10% failures per stage-hour.

Published (CheckFree, Gensyn 2025): both >12% faster in wall-clock time than both baselines at
5-10%. Here the runs are short (300 simulated s, iterations of ~9 s with the tcp transport) and
the failure clock is compressed by kappa = 100 (``experiments.recovery_family.ci_setup``: at
10%/h a stage fails in an iteration with probability ~2.6%, the paper's 0.2%). Measured (seed 0,
tcp transport, time to 2.0 nats, evaluations every 5 s; checkpointing every iteration):

    5%/h,  4 failures: checkfree 185 s, checkfree_plus 230 s, checkpointing not reached in 300 s
                       (4 rollbacks), redundant 225 s, no_failure 175 s
    10%/h, 6 failures: checkfree 185 s, checkfree_plus 235 s, checkpointing not reached,
                       redundant 250 s

CheckFree is ahead of both. CheckFree+ is ahead of checkpointing but not of redundant
computation at 5% (0.98x): its out-of-order microbatches use node pairs that carry little other
traffic, so their TCP windows restart small, and its failure-free iteration is 10.5 s against
9.1 s (with fluid transfers both take 7.0 s). The uncompressed reference:
scenarios/checkfree-*.toml, figures in docs/methods/recovery-checkfree.md.
"""

import pytest

from experiments.recovery_family import (
    ci_setup,
    failure_free_iteration_s,
    params_for,
    scaled_checkpoints,
    scaled_failures,
    scenario_of,
)
from sim.config import PolicyConfig
from sim.policy import get_policy
from sim.runner import run
from sim.testing import assert_speedup, measure_speedup


@pytest.fixture(scope="module")
def iteration_s():
    """The CI pipeline's failure-free iteration time (the failure period), measured once."""
    setup = ci_setup(0.05)
    base = run(scenario_of(setup), get_policy("no_failure")(**params_for("no_failure", setup, {})))
    return failure_free_iteration_s(base)


def family(p_hour, iteration_s):
    """The CI scenario with its [faults] stage model, and a PolicyConfig maker."""
    setup = ci_setup(p_hour)
    scenario = scenario_of(setup, scaled_failures(setup, iteration_s))

    def policy(name):
        return PolicyConfig(name=name, params=params_for(name, setup, scaled_checkpoints(setup)))

    return scenario, policy


def missed_by_checkpointing(scenario, policy, method):
    """``method`` reached the target and checkpointing did not (its rollbacks kept it back)."""
    measured = measure_speedup(scenario, policy(method), policy("checkpointing"), run_fn=run)
    assert measured.basis == "baseline_missed_target", measured.report()
    assert measured.baseline["stage_failures"] >= 2 and measured.baseline["rollback_steps"] > 0


@pytest.mark.parametrize("p_hour", [0.05, 0.10])
def test_checkfree_reaches_target_sooner_than_both_baselines(iteration_s, p_hour):
    scenario, policy = family(p_hour, iteration_s)
    assert_speedup(scenario, policy("checkfree"), policy("redundant"), at_least=1.15,
                   basis="time_to_target", run_fn=run)
    missed_by_checkpointing(scenario, policy, "checkfree")


@pytest.mark.parametrize("p_hour, low, high", [(0.05, 0.9, 1.05), (0.10, 1.0, 1.15)])
def test_checkfree_plus_against_the_baselines(iteration_s, p_hour, low, high):
    # measured 0.98x redundant at 5%, 1.06x at 10% (module docstring: not the paper's lead)
    scenario, policy = family(p_hour, iteration_s)
    assert_speedup(scenario, policy("checkfree_plus"), policy("redundant"), at_least=low,
                   at_most=high, basis="time_to_target", run_fn=run)
    missed_by_checkpointing(scenario, policy, "checkfree_plus")

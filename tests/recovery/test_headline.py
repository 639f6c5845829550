"""Headline, CI size, written with ``sim.testing``: CheckFree and CheckFree+ against
checkpointing and redundant computation at 5% and 10% failures per stage-hour.

Published (CheckFree, Gensyn 2025): both >12% faster in wall-clock time than both baselines at
5-10%. Here the runs are short (300 simulated s, iterations of ~9 s with the tcp transport) and
the failure clock is compressed by kappa = 100 (``experiments.recovery_family.ci_setup``: at
10%/h a stage fails in an iteration with probability ~2.6%, the paper's 0.2%). Checkpointing is
the paper's protocol (a replacement restores its stage's stored, stale state; no rollback),
every iteration (the paper's C = 100 over kappa). Measured (seed 0, tcp transport, time to 2.0
nats, evaluations every 5 s):

    5%/h,  4 failures: checkfree 185 s, checkfree_plus 230 s, checkpointing 200 s,
                       redundant 225 s, no_failure 175 s
    10%/h, 6 failures: checkfree 185 s, checkfree_plus 235 s, checkpointing 200 s,
                       redundant 250 s

CheckFree is ahead of both (1.08x checkpointing; over seeds 0-4 ahead or tied, never behind).
CheckFree+ trails both checkpointing (0.87x, 0.85x) and, at 5%, redundant computation (0.98x):
its failure-free iteration is 10.5 s against 9.1 s (with fluid transfers both take 7.0 s)
because its per-iteration embedding copy (98 MB) occupies the TCP connection the next
iteration's first activation takes (data node -> stage 1), which waits 1.9 s behind it; its
swapped pairs cost nothing extra (every pipeline connection of both methods restarts slow start
each iteration: python -m experiments.recovery_connections). Before (rollback to the newest
complete checkpoint, which lagged behind: checkpointing never reached the target) both were
ahead of checkpointing. The
uncompressed reference: scenarios/checkfree-*.toml, figures in
docs/methods/recovery-checkfree.md.
"""

import dataclasses

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
from sim.testing import assert_speedup


@pytest.fixture(scope="module")
def iteration_s():
    """The CI pipeline's failure-free iteration time (the failure period), measured once."""
    setup = ci_setup(0.05)
    base = run(scenario_of(setup), get_policy("no_failure")(**params_for("no_failure", setup, {})))
    return failure_free_iteration_s(base)


def family(p_hour, iteration_s, **changes):
    """The CI scenario with its [faults] stage model, and a PolicyConfig maker."""
    setup = dataclasses.replace(ci_setup(p_hour), **changes)
    scenario = scenario_of(setup, scaled_failures(setup, iteration_s))

    def policy(name):
        return PolicyConfig(name=name, params=params_for(name, setup, scaled_checkpoints(setup)))

    return scenario, policy


@pytest.mark.parametrize("p_hour", [0.05, 0.10])
def test_checkfree_reaches_target_sooner_than_both_baselines(iteration_s, p_hour):
    scenario, policy = family(p_hour, iteration_s)
    assert_speedup(scenario, policy("checkfree"), policy("redundant"), at_least=1.15,
                   basis="time_to_target", run_fn=run)
    measured = assert_speedup(scenario, policy("checkfree"), policy("checkpointing"),
                              at_least=1.05, basis="time_to_target", run_fn=run)
    # the paper's checkpointing restored stale stages and rolled nothing back
    assert measured.baseline["stage_failures"] >= 4
    assert measured.baseline["stale_restore_steps"] > 0
    assert measured.baseline["rollback_steps"] == 0


@pytest.mark.parametrize("p_hour, low, high", [(0.05, 0.9, 1.05), (0.10, 1.0, 1.15)])
def test_checkfree_plus_against_the_baselines(iteration_s, p_hour, low, high):
    # measured 0.98x redundant at 5%, 1.06x at 10%, and 0.87x / 0.85x checkpointing: behind it
    # under tcp (module docstring: not the paper's lead)
    scenario, policy = family(p_hour, iteration_s)
    assert_speedup(scenario, policy("checkfree_plus"), policy("redundant"), at_least=low,
                   at_most=high, basis="time_to_target", run_fn=run)
    assert_speedup(scenario, policy("checkfree_plus"), policy("checkpointing"), at_least=0.8,
                   at_most=0.95, basis="time_to_target", run_fn=run)


def test_with_fluid_transfers_checkfree_plus_is_ahead_of_checkpointing():
    # The cause of CheckFree+'s lag above is the transport (its embedding copy queued ahead of
    # an activation on one TCP connection): with fluid transfers its iteration is the plain
    # pipeline's, and at 10%/h (seed 0) it reaches 2.0 nats in 140 s against
    # checkpointing's 155 s (1.11x; 5%/h: 135 vs 140 s).
    setup = dataclasses.replace(ci_setup(0.10), transport="fluid")
    base = run(scenario_of(setup), get_policy("no_failure")(**params_for("no_failure", setup, {})))
    scenario, policy = family(0.10, failure_free_iteration_s(base), transport="fluid")
    assert_speedup(scenario, policy("checkfree_plus"), policy("checkpointing"), at_least=1.05,
                   basis="time_to_target", run_fn=run)

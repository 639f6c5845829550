"""Headline, CI size, written with ``sim.testing``: CheckFree and CheckFree+ against
checkpointing and redundant computation at 5% and 10% failures per stage-hour.

Published (CheckFree, Gensyn 2025): both >12% faster in wall-clock time than both baselines at
5-10%. Here the runs are short (300 simulated s, iterations of ~9 s with the tcp transport) and
the failure clock is compressed by kappa = 100 (``experiments.recovery_family.ci_setup``: at
10%/h a stage fails in an iteration with probability ~2.6%, the paper's 0.2%). Checkpointing is
the paper's protocol (a replacement restores its stage's stored, stale state; no rollback),
every iteration (the paper's C = 100 over kappa). Measured (seed 0, tcp transport, time to 2.0
nats, evaluations every 5 s):

    5%/h,  4 failures: checkfree 185 s, checkfree_plus 185 s, checkpointing 200 s,
                       redundant 225 s, no_failure 175 s
    10%/h, 6 failures: checkfree 185 s, checkfree_plus 185 s, checkpointing 200 s,
                       redundant 250 s

Both are ahead of both baselines (1.08x checkpointing; 1.22x / 1.35x redundant). CheckFree+
used to trail checkpointing under tcp (230 / 235 s, 0.87x / 0.85x): it copied stage 0's embedding
and head (98 MB) to its neighbours every iteration, and the copy held the TCP connection the next
iteration's first activation takes (data node -> stage 1) for 1.9 s. Those copies guard stage 0,
which never fails here (it holds the data, as in the paper's experiments, and the authors' runs
with swaps copy nothing), so they are now sent only where stage 0 can fail
(``CheckFreePlus.after_step``; ``python -m experiments.recovery_connections`` shows the queue).
Its swapped pairs cost nothing extra: every pipeline connection of both methods restarts slow
start each iteration. Before the paper's checkpointing protocol (rollback to the newest complete
checkpoint, which lagged behind: checkpointing never reached the target) both were ahead of
checkpointing for the wrong reason. The
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
@pytest.mark.parametrize("method", ["checkfree", "checkfree_plus"])
def test_checkfree_reaches_target_sooner_than_both_baselines(iteration_s, p_hour, method):
    # measured (seed 0): 1.22x / 1.35x redundant at 5% / 10%, 1.08x checkpointing, both methods
    scenario, policy = family(p_hour, iteration_s)
    assert_speedup(scenario, policy(method), policy("redundant"), at_least=1.15,
                   basis="time_to_target", run_fn=run)
    measured = assert_speedup(scenario, policy(method), policy("checkpointing"),
                              at_least=1.05, basis="time_to_target", run_fn=run)
    # the paper's checkpointing restored stale stages and rolled nothing back
    assert measured.baseline["stage_failures"] >= 4
    assert measured.baseline["stale_restore_steps"] > 0
    assert measured.baseline["rollback_steps"] == 0


def test_with_fluid_transfers_checkfree_plus_is_ahead_of_checkpointing():
    # With fluid transfers too (no slow start, no connection to queue on): at 10%/h (seed 0)
    # it reaches 2.0 nats in 140 s against checkpointing's 155 s (1.11x; 5%/h: 135 vs 140 s).
    setup = dataclasses.replace(ci_setup(0.10), transport="fluid")
    base = run(scenario_of(setup), get_policy("no_failure")(**params_for("no_failure", setup, {})))
    scenario, policy = family(0.10, failure_free_iteration_s(base), transport="fluid")
    assert_speedup(scenario, policy("checkfree_plus"), policy("checkpointing"), at_least=1.05,
                   basis="time_to_target", run_fn=run)

"""Evaluation a deployment could reproduce: every worker's own model, for every method.

Oracle: each worker's learner evaluates its *own* weights on the held-out batches directly
(``learner.eval_loss``), without the policy's borrowing of learner 0; the averaged model is
rebuilt from the policy's state by hand.
"""

import pytest
import torch

from tests.data_parallel.helpers import run_policy, tiny_scenario

METHODS = [
    ("ddp", {}),
    ("diloco", dict(inner_steps=4)),
    ("streaming_diloco", dict(inner_steps=4, num_fragments=2, overlap_steps=1)),
    ("palsgd", dict(inner_steps=4, warmup_ddp_steps=2)),
    ("noloco", dict(inner_steps=4)),
    ("gossip", dict(variant="dpsgd")),
    ("gossip", dict(variant="adpsgd")),
    ("eager_diloco", dict(inner_steps=4)),
    ("co2", dict(inner_steps=4)),
    ("compressed_diloco", dict(inner_steps=4)),
]


def direct_losses(pol, batches):
    return [pol.learners[i].eval_loss(batches) for i in range(pol.num_workers)]


@pytest.mark.parametrize("policy, params", METHODS)
def test_worker_losses_equal_evaluating_each_workers_weights(policy, params):
    # 10 steps: mid-round for the local methods, so the workers hold different weights
    result, pol = run_policy(tiny_scenario(policy, nodes=4, steps=10, **params))
    batches = pol.ctx.run.eval_batches
    losses = pol.evaluate_workers(pol.ctx)
    direct = direct_losses(pol, batches)
    assert [losses.per_worker[i] for i in range(4)] == pytest.approx(direct, rel=1e-6)
    assert losses.mean == pytest.approx(sum(direct) / 4, rel=1e-6)
    assert losses.best == pytest.approx(min(direct), rel=1e-6)
    assert losses.worst == pytest.approx(max(direct), rel=1e-6)
    # the run's eval_loss is that mean; best and worst are recorded beside it
    h = result.history
    last = {m: h[h.metric == m].value.iloc[-1] for m in ("eval_loss", "eval_loss_best",
                                                         "eval_loss_worst")}
    assert last["eval_loss_best"] <= last["eval_loss"] <= last["eval_loss_worst"]


def test_local_methods_workers_differ_mid_round():
    _, pol = run_policy(tiny_scenario("diloco", nodes=4, steps=10, inner_steps=4))
    direct = direct_losses(pol, pol.ctx.run.eval_batches)
    assert max(direct) > min(direct)            # the oracle can tell workers apart


@pytest.mark.parametrize("policy, params, averaged", [
    ("diloco", dict(inner_steps=4), lambda pol: pol.outer.phi),
    ("co2", dict(inner_steps=4), lambda pol: pol.phi),
    ("noloco", dict(inner_steps=4), lambda pol: torch.stack(pol.phi).mean(0)),
    ("gossip", dict(variant="dpsgd"),
     lambda pol: torch.stack([lr.get_flat() for lr in pol.learners]).mean(0)),
])
def test_averaged_model_is_reported_apart(policy, params, averaged):
    result, pol = run_policy(tiny_scenario(policy, nodes=4, steps=10, **params))
    learner = pol.learners[0]
    own = learner.get_flat()
    learner.set_flat(averaged(pol))
    by_hand = learner.eval_loss(pol.ctx.run.eval_batches)
    learner.set_flat(own)
    assert pol.evaluate_workers(pol.ctx).averaged == pytest.approx(by_hand, rel=1e-6)
    assert "eval_loss_averaged" in set(result.history.metric)


def test_ddp_has_no_averaged_model_and_identical_replicas():
    result, pol = run_policy(tiny_scenario("ddp", nodes=4, steps=6))
    losses = pol.evaluate_workers(pol.ctx)
    assert losses.averaged is None and losses.best == losses.worst
    assert "eval_loss_averaged" not in set(result.history.metric)


def test_timing_only_has_no_evaluation():
    _, pol = run_policy(tiny_scenario("diloco", nodes=4, steps=6, timing_only=True,
                                      inner_steps=2))
    assert pol.evaluate_workers(pol.ctx) is None

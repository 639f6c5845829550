"""The delayed outer step (eager DiLoCo, CO2): block times in closed form, rules by hand."""

from __future__ import annotations

import pytest
import torch

from policies.data_parallel.delayed import clip_norm, staleness_gap
from sim import collectives
from tests.data_parallel.helpers import run_policy, tiny_scenario

ALPHA_S, BETA_BPS = 0.01, 1e9 / 8          # tiny_scenario's links: 10 ms, 1 Gbit/s


def block_times(result, node=0):
    h = result.history
    return h[(h.metric == "block_s") & (h.node == node)].value.tolist()


@pytest.mark.parametrize("tau", [2, 8, 40])
def test_co2_block_takes_max_of_tau_steps_and_the_allreduce_once_warm(tau):
    blocks = 8
    scen = tiny_scenario("co2", nodes=4, steps=tau * blocks, inner_steps=tau, timing_only=True)
    result, co2 = run_policy(scen)
    t_allreduce = collectives.ring_allreduce_cost(4, co2.group.nbytes, ALPHA_S, BETA_BPS)
    assert co2.group.sync_seconds == pytest.approx([t_allreduce] * len(co2.group.sync_seconds))
    expected = max(tau * co2.step_s, t_allreduce)
    warm = block_times(result)[1:]                 # block 0 waits for nothing
    assert len(warm) >= blocks - 2
    assert warm == pytest.approx([expected] * len(warm), rel=1e-9)


def test_eager_diloco_hides_an_allreduce_shorter_than_the_inner_phase():
    tau, rounds = 40, 6                            # 40 steps ~ 0.18 s > all-reduce ~ 0.06 s
    runs = {}
    for policy in ("diloco", "eager_diloco"):
        scen = tiny_scenario(policy, nodes=4, steps=tau * rounds, inner_steps=tau,
                             timing_only=True)
        runs[policy] = run_policy(scen)
    (diloco, dpol), (eager, epol) = runs["diloco"], runs["eager_diloco"]
    t_allreduce = collectives.ring_allreduce_cost(4, dpol.group.nbytes, ALPHA_S, BETA_BPS)
    assert t_allreduce < tau * epol.step_s
    # DiLoCo: every round is H steps then the all-reduce (the last one ends the run first)
    assert diloco.sim_time_s == pytest.approx(rounds * tau * dpol.step_s
                                              + (rounds - 1) * t_allreduce)
    # eager: the all-reduce runs under the next round's steps; nothing is waited for
    assert eager.sim_time_s == pytest.approx(rounds * tau * epol.step_s)
    assert eager.summary["goodput"] == pytest.approx(1.0)
    assert diloco.summary["goodput"] < 0.9


def test_eager_diloco_does_not_hide_an_allreduce_longer_than_the_inner_phase():
    tau, rounds = 4, 6
    scen = tiny_scenario("eager_diloco", nodes=4, steps=tau * rounds, inner_steps=tau,
                         timing_only=True)
    result, pol = run_policy(scen)
    t_allreduce = collectives.ring_allreduce_cost(4, pol.group.nbytes, ALPHA_S, BETA_BPS)
    assert t_allreduce > tau * pol.step_s
    # block 0 and the last block compute; rounds 0..rounds-3 are waited for in between
    assert result.sim_time_s == pytest.approx(2 * tau * pol.step_s
                                              + (rounds - 2) * t_allreduce)


def test_staleness_gap_and_momentum_clip_by_hand():
    prev = torch.tensor([3.0, 4.0])                       # norm 5
    now = torch.tensor([3.0, 1.0])                        # change (0, -3): norm 3
    assert staleness_gap(now, prev, penalty=2.0) == pytest.approx(1 + 2 * 3 / 5)
    assert staleness_gap(now, None, penalty=2.0) == 1.0
    assert staleness_gap(now, prev, penalty=0.0) == 1.0
    assert clip_norm(prev, 2.5).tolist() == pytest.approx([1.5, 2.0])
    assert clip_norm(prev, 10.0).tolist() == [3.0, 4.0]
    assert clip_norm(prev, None) is prev


def test_outer_step_applies_the_stale_mean_with_penalty_and_clipping():
    scen = tiny_scenario("co2", nodes=2, steps=2, inner_steps=1, timing_only=True)
    _, pol = run_policy(scen)
    pol.timing_only = False                               # drive the combine hook by hand
    pol.phi = torch.zeros(2)
    pol.velocity = torch.zeros(2)
    pol.previous_mean = None
    cfg = pol.config                                      # lr 0.7, mu 0.9, lambda 1, clip 1
    phi1 = pol._outer_step(torch.tensor([0.3, 0.4]), [0, 1], 0)   # |v| = 0.5: no clip
    assert phi1.tolist() == pytest.approx((-cfg.outer_lr * 1.9 * torch.tensor([0.3, 0.4]))
                                          .tolist())
    # second round: Δ̄ = (0.6, 0.8): gap 1 + 1·|(0.3, 0.4)|/|(0.3, 0.4)| = 2, so Δ = (0.3, 0.4);
    # v = 0.9·(0.3, 0.4) + (0.3, 0.4) = 1.9·(0.3, 0.4), norm 0.95: no clip
    phi2 = pol._outer_step(torch.tensor([0.6, 0.8]), [0, 1], 1)
    v = 1.9 * torch.tensor([0.3, 0.4])
    expected = phi1 - cfg.outer_lr * (torch.tensor([0.3, 0.4]) + 0.9 * v)
    assert phi2.tolist() == pytest.approx(expected.tolist())
    assert pol.gaps == pytest.approx([1.0, 2.0])
    # third: Δ̄ = (6, 8): gap 1 + |(5.4, 7.2)|/1 = 10, Δ = (0.6, 0.8); v clipped to norm 1
    pol._outer_step(torch.tensor([6.0, 8.0]), [0, 1], 2)
    assert float(pol.velocity.norm()) == pytest.approx(1.0)


def test_real_training_with_the_delayed_step_decreases_the_loss():
    scen = tiny_scenario("eager_diloco", nodes=4, steps=60, inner_steps=5, outer_lr=0.7,
                         run_extra=dict(eval_every="0.1s"))
    result, pol = run_policy(scen)
    curve = result.loss_curve()
    assert torch.isfinite(pol.phi).all()
    assert curve.value.iloc[-1] < curve.value.iloc[0] - 0.3

"""Update rules on tiny tensors against hand-computed values."""

import pytest
import torch

from policies.data_parallel import rules
from policies.data_parallel.outer import OuterNesterov, OuterNesterovConfig


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_average_is_elementwise_mean():
    assert torch.allclose(rules.average([t(1, 2), t(3, 6)]), t(2, 4))
    with pytest.raises(ValueError, match="tensors"):
        rules.average([])


def test_average_kept_leaves_dropped_payloads_out():
    # φ = 1; θ = 0.8, 0.6, 0.0 and the third outer gradient is dropped (None):
    # Δ = mean(0.2, 0.4) = 0.3, not (0.2 + 0.4 + 0)/3 = 0.2
    phi = t(1.0)
    deltas = [rules.outer_gradient(phi, t(0.8)), rules.outer_gradient(phi, t(0.6)), None]
    assert torch.allclose(rules.average_kept(deltas), t(0.3))
    assert torch.equal(rules.average_kept([t(1, 2), t(3, 6)]), rules.average([t(1, 2), t(3, 6)]))
    assert rules.average_kept([None, None]) is None
    assert rules.average_kept([]) is None


def test_outer_gradient_is_global_minus_local():
    # φ = 1, θ_1 = 0.8, θ_2 = 0.6: Δ = mean(0.2, 0.4) = 0.3, pointing from θ back to φ.
    delta = rules.average([rules.outer_gradient(t(1.0), t(0.8)),
                           rules.outer_gradient(t(1.0), t(0.6))])
    assert torch.allclose(delta, t(0.3))
    # lr_out = 1, μ = 0 is plain model averaging: φ lands on mean θ = 0.7.
    phi, _ = rules.nesterov_outer_step(t(1.0), delta, t(0.0), lr=1.0, momentum=0.0)
    assert torch.allclose(phi, t(0.7))


def test_nesterov_outer_step_two_steps_by_hand():
    phi, v = t(1.0, 2.0), t(0.0, 0.0)
    delta = t(0.1, -0.2)
    phi, v = rules.nesterov_outer_step(phi, delta, v, lr=0.7, momentum=0.9)
    # v = Δ = (0.1, -0.2); φ = φ - 0.7·(Δ + 0.9·v) = (1 - 0.133, 2 + 0.266)
    assert torch.allclose(v, t(0.1, -0.2))
    assert torch.allclose(phi, t(0.867, 2.266))
    phi, v = rules.nesterov_outer_step(phi, delta, v, lr=0.7, momentum=0.9)
    # v = 0.9·(0.1, -0.2) + Δ = (0.19, -0.38); step = Δ + 0.9·v = (0.271, -0.542)
    assert torch.allclose(v, t(0.19, -0.38))
    assert torch.allclose(phi, t(0.867 - 0.7 * 0.271, 2.266 + 0.7 * 0.542))


def test_nesterov_outer_step_matches_torch_sgd_nesterov():
    gen = torch.Generator().manual_seed(0)
    phi0 = torch.randn(5, generator=gen)
    deltas = [torch.randn(5, generator=gen) for _ in range(4)]
    param = torch.nn.Parameter(phi0.clone())
    opt = torch.optim.SGD([param], lr=0.7, momentum=0.9, nesterov=True)
    phi, v = phi0.clone(), torch.zeros(5)
    for d in deltas:
        param.grad = d.clone()
        opt.step()
        phi, v = rules.nesterov_outer_step(phi, d, v, lr=0.7, momentum=0.9)
    assert torch.allclose(phi, param.detach(), atol=1e-6)


def test_outer_nesterov_keeps_state_per_fragment():
    fragments = [torch.tensor([0]), torch.tensor([1, 2])]
    outer = OuterNesterov(t(1.0, 2.0, 3.0), config=OuterNesterovConfig(lr=0.7, momentum=0.9),
                          fragments=fragments)
    outer.step(t(0.1), p=0)
    new0 = outer.step(t(0.1), p=0)             # second step of fragment 0: uses its momentum
    new1 = outer.step(t(0.1, -0.2), p=1)       # first step of fragment 1: fresh momentum
    assert torch.allclose(new0, t(1.0 - 0.7 * 0.19 - 0.7 * 0.271))
    assert torch.allclose(new1, t(2.0 - 0.7 * 0.19, 3.0 + 0.7 * 0.38))
    assert torch.allclose(outer.phi, torch.cat([new0, new1]))
    assert outer.steps == [2, 1]


def test_outer_config_rejects_bad_values():
    with pytest.raises(ValueError, match="outer_momentum"):
        OuterNesterovConfig(momentum=1.0)
    with pytest.raises(ValueError, match="outer_lr"):
        OuterNesterovConfig(lr=0.0)


def test_noloco_outer_step_by_hand():
    # Pair {i, j}: θ_i=1.5, φ_i=1.0, δ_i=0.1; θ_j=0.0, φ_j=2.0; β=0.5, γ=0.7.
    # progress = mean(0.5, -2.0) = -0.75; consensus = mean(1, 2) - 1 = 0.5
    # δ = 0.05 - 0.525 + 0.35 = -0.125; φ = 1.0 - 0.125 = 0.875
    phi, delta = rules.noloco_outer_step(
        t(1.0), t(0.1), group_thetas=[t(1.5), t(0.0)], group_phis=[t(1.0), t(2.0)],
        beta=0.5, gamma=0.7)
    assert torch.allclose(delta, t(-0.125))
    assert torch.allclose(phi, t(0.875))


def test_noloco_alone_only_follows_own_progress():
    # A worker whose partner failed is a group of one: no consensus term.
    phi, delta = rules.noloco_outer_step(t(1.0), t(0.0), group_thetas=[t(2.0)],
                                         group_phis=[t(1.0)], beta=0.5, gamma=0.7)
    assert torch.allclose(phi, t(1.7)) and torch.allclose(delta, t(0.7))


def test_noloco_pair_with_equal_slow_weights_agrees():
    # Both members of a pair compute the same δ when they start from the same φ and δ.
    kw = dict(group_thetas=[t(3.0), t(1.0)], group_phis=[t(2.0), t(2.0)], beta=0.5, gamma=0.7)
    a = rules.noloco_outer_step(t(2.0), t(0.2), **kw)
    b = rules.noloco_outer_step(t(2.0), t(0.2), **kw)
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="group_thetas"):
        rules.noloco_outer_step(t(1.0), t(0.0), group_thetas=[t(1.0)], group_phis=[],
                                beta=0.5, gamma=0.7)


def test_alpha_merge():
    assert torch.allclose(rules.alpha_merge(t(2.0), t(4.0), alpha=0.5), t(3.0))
    assert torch.allclose(rules.alpha_merge(t(2.0), t(4.0), alpha=0.0), t(4.0))
    assert torch.allclose(rules.alpha_merge(t(2.0), t(4.0), alpha=1.0), t(2.0))
    with pytest.raises(ValueError, match="alpha"):
        rules.alpha_merge(t(2.0), t(4.0), alpha=1.5)


def test_palsgd_pull_and_inner_lr():
    # x = 1, x̄ = 0, γ = 0.01, p = 0.2, η = 0.5: x - (0.01/0.2)·0.5·1 = 0.975
    assert torch.allclose(rules.palsgd_pull(t(1.0), t(0.0), gamma=0.01, p=0.2, eta=0.5), t(0.975))
    assert rules.palsgd_inner_lr(0.01, 0.2) == pytest.approx(0.0125)
    with pytest.raises(ValueError, match="p:"):
        rules.palsgd_pull(t(1.0), t(0.0), gamma=0.01, p=0.0, eta=0.5)


def test_dpsgd_mix_and_step():
    mixed = rules.mix([1 / 3, 1 / 3, 1 / 3], [t(3.0), t(6.0), t(9.0)])
    assert torch.allclose(mixed, t(6.0))
    assert torch.allclose(rules.dpsgd_step(mixed, t(2.0), lr=0.1), t(5.8))
    with pytest.raises(ValueError, match="weights"):
        rules.mix([1.0], [])


def test_pairwise_average():
    assert torch.allclose(rules.pairwise_average(t(1.0, 4.0), t(3.0, 0.0)), t(2.0, 2.0))

"""PALSGD as the reference code runs it: repeated outer steps and the warm-up's extra traffic."""

import pytest
import torch

from policies.data_parallel.palsgd import PALSGDConfig
from tests.data_parallel.helpers import run_policy, tiny_scenario

H, K0 = 4, 2
"""Local steps per synchronisation and DDP warm-up steps of the tiny runs."""


def one_sync(repeats: int):
    """A run that ends right after its first synchronisation (and one more local step)."""
    return run_policy(tiny_scenario("palsgd", nodes=3, steps=K0 + H + 1, inner_steps=H,
                                    warmup_ddp_steps=K0, outer_steps_per_sync=repeats))


def test_repeated_outer_steps_are_one_step_on_delta_then_momentum_only():
    # The reference's example averages on every micro-batch call of the step that ends a round:
    # the first outer step uses Δ = mean(x̄ − x_i), the others the outer gradient x̄ − x_i = 0
    # (x_i was just set to x̄). Oracle: torch's own Nesterov SGD fed Δ, then zeros.
    repeats = 4
    _, once = one_sync(1)
    _, rep = one_sync(repeats)
    assert once.outer.steps == [1] and rep.outer.steps == [repeats]
    assert len(rep.outer_group.bytes_per_round) == repeats       # one all-reduce each
    lr, mu = once.config.outer_lr, once.config.outer_momentum
    delta = once.outer.velocity[0]                  # v after one step from v = 0 is Δ itself
    assert delta.abs().max() > 0
    phi0 = once.outer.phi + lr * (1 + mu) * delta   # x̄ before the step (identical in both runs)
    x = torch.nn.Parameter(phi0.clone())
    opt = torch.optim.SGD([x], lr=lr, momentum=mu, nesterov=True)
    for g in [delta] + [torch.zeros_like(delta)] * (repeats - 1):
        x.grad = g.clone()
        opt.step()
    assert torch.allclose(rep.outer.phi, x.detach(), atol=1e-6)
    # momentum-only steps move x̄ further along Δ: lr·(μ² + μ³ + μ⁴)·Δ beyond the single step
    extra = lr * sum(mu ** (k + 1) for k in range(1, repeats)) * delta
    assert torch.allclose(once.outer.phi - rep.outer.phi, extra, atol=1e-6)


@pytest.mark.parametrize("optimizer, moments", [("adamw", 2), ("sgd", 0)])
def test_warmup_allreduce_carries_the_optimizer_state(optimizer, moments):
    # The reference all-reduces AdamW's m and v after the gradients at every warm-up step: the
    # same ring moves (1 + moments)·|θ|·b instead of |θ|·b, so bytes scale by exactly that.
    workload = {"optimizer": optimizer, "momentum": 0.0}
    ddp, _ = run_policy(tiny_scenario("ddp", nodes=4, steps=K0, timing_only=True,
                                      workload=workload))
    pal, _ = run_policy(tiny_scenario("palsgd", nodes=4, steps=K0, timing_only=True,
                                      workload=workload, warmup_ddp_steps=K0, inner_steps=H))
    ratio = pal.summary["bytes_sent"] / ddp.summary["bytes_sent"]
    assert ratio == pytest.approx(1 + moments, rel=1e-9)


def test_outer_steps_per_sync_must_be_positive():
    with pytest.raises(ValueError, match="outer_steps_per_sync"):
        PALSGDConfig(outer_steps_per_sync=0)
    assert PALSGDConfig().outer_steps_per_sync == 1      # the paper's Algorithm 1

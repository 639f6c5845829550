"""The CheckFree rule against hand-worked values and its defining properties."""

import numpy as np
import pytest
import torch

from policies.recovery.formula import checkfree_average, copy_weights, neighbour_coefficients


def test_coefficients_hand_worked():
    # a weighs W_{i+1} with the *next* stage's norm, b weighs W_{i-1} with the previous one's.
    assert neighbour_coefficients(0.25, 0.5, eps=1e-4) == (0.5 + 1e-4, 0.25 + 1e-4)
    assert neighbour_coefficients(0.25, 0.5, eps=0.0, squared=True) == (0.25, 0.0625)


def test_average_exact_on_representable_values():
    # eps=0, norms 1 and 3: W = (3 * W_next + 1 * W_prev) / 4, exact in float32.
    prev = {"w": torch.tensor([1.0, -2.0, 4.0]), "b": torch.tensor([8.0])}
    nxt = {"w": torch.tensor([5.0, 2.0, 0.0]), "b": torch.tensor([0.0])}
    out = checkfree_average(prev, nxt, grad_norm_prev=1.0, grad_norm_next=3.0, eps=0.0)
    assert torch.equal(out["w"], torch.tensor([4.0, 1.0, 1.0]))
    assert torch.equal(out["b"], torch.tensor([2.0]))


def test_average_matches_float64_oracle_with_default_eps():
    gen = torch.Generator().manual_seed(0)
    prev = {"x": torch.randn(4, 5, generator=gen)}
    nxt = {"x": torch.randn(4, 5, generator=gen)}
    gp, gn = 0.31, 0.87
    out = checkfree_average(prev, nxt, grad_norm_prev=gp, grad_norm_next=gn)
    a, b = gn + 1e-4, gp + 1e-4
    oracle = (a * nxt["x"].double().numpy() + b * prev["x"].double().numpy()) / (a + b)
    np.testing.assert_allclose(out["x"].double().numpy(), oracle, rtol=1e-6, atol=1e-7)


def test_equal_norms_give_plain_mean_and_zero_norms_too():
    prev = {"x": torch.tensor([2.0, 0.0])}
    nxt = {"x": torch.tensor([4.0, 8.0])}
    for norm in (0.0, 0.5):
        out = checkfree_average(prev, nxt, grad_norm_prev=norm, grad_norm_next=norm)
        assert torch.allclose(out["x"], torch.tensor([3.0, 4.0]))


def test_large_next_gradient_pulls_towards_next_stage():
    prev = {"x": torch.zeros(3)}
    nxt = {"x": torch.ones(3)}
    out = checkfree_average(prev, nxt, grad_norm_prev=0.0, grad_norm_next=1.0)
    assert out["x"][0] > 0.99  # a = 1.0001, b = 1e-4


def test_squared_variant_changes_result():
    prev = {"x": torch.zeros(1)}
    nxt = {"x": torch.ones(1)}
    plain = checkfree_average(prev, nxt, grad_norm_prev=0.2, grad_norm_next=0.5)["x"].item()
    sq = checkfree_average(prev, nxt, grad_norm_prev=0.2, grad_norm_next=0.5, squared=True)["x"]
    assert plain == pytest.approx(0.5001 / 0.7002)
    assert sq.item() == pytest.approx(0.2501 / 0.2902, rel=1e-6)


def test_extra_neighbour_tensors_are_ignored_and_missing_ones_rejected():
    prev = {"x": torch.zeros(2), "embed": torch.zeros(7)}  # stage 0 also holds the embedding
    nxt = {"x": torch.ones(2)}
    out = checkfree_average(prev, nxt, grad_norm_prev=1, grad_norm_next=1, names=["x"])
    assert list(out) == ["x"]
    with pytest.raises(ValueError, match="weights_next: has no parameter 'embed'"):
        checkfree_average(prev, nxt, grad_norm_prev=1, grad_norm_next=1, names=["embed"])


def test_bad_inputs_name_the_field():
    with pytest.raises(ValueError, match="grad_norm_prev=-1"):
        neighbour_coefficients(-1.0, 0.0)
    with pytest.raises(ValueError, match="grad_norm_next=nan"):
        neighbour_coefficients(0.0, float("nan"))
    with pytest.raises(ValueError, match="eps=0"):
        neighbour_coefficients(0.0, 0.0, eps=0.0)
    with pytest.raises(ValueError, match="shapes differ"):
        checkfree_average({"x": torch.zeros(2)}, {"x": torch.zeros(3)},
                          grad_norm_prev=1, grad_norm_next=1)


def test_copy_weights_is_a_detached_copy():
    src = {"x": torch.ones(2, requires_grad=True)}
    out = copy_weights(src)
    assert torch.equal(out["x"], src["x"].detach()) and not out["x"].requires_grad
    out["x"].add_(1.0)
    assert torch.equal(src["x"].detach(), torch.ones(2))

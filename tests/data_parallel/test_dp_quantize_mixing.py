"""4-bit E3M0 codes, gossip mixing matrices, shared-seed pairing, fragments."""

import numpy as np
import pytest
import torch

from policies.data_parallel import mixing
from policies.data_parallel.quantize import (
    packed_nbytes,
    quantize_e3m0,
    quantized_nbytes,
    roundtrip_e3m0,
)


def test_e3m0_rounds_to_nearest_power_of_two_by_hand():
    x = torch.tensor([1.0, -0.5, 0.3, 0.0, 0.01, -0.74, 0.76])
    # scale 1; levels 0, 2^-6 .. 1. 0.3 -> 0.25; 0.01 -> 2^-6 (above half of it);
    # -0.74 -> -0.5 (below the 0.75 midpoint); 0.76 -> 1.
    expected = torch.tensor([1.0, -0.5, 0.25, 0.0, 0.015625, -0.5, 1.0])
    assert torch.equal(roundtrip_e3m0(x), expected)
    assert torch.equal(roundtrip_e3m0(2 * x), 2 * expected)      # scale-equivariant


def test_e3m0_uses_16_codes_and_zero_tensor():
    codes, negative, scale = quantize_e3m0(torch.linspace(-3, 3, 101))
    assert codes.max() <= 7 and scale == 3.0                      # 3 exponent bits + sign
    assert torch.equal(roundtrip_e3m0(torch.zeros(4)), torch.zeros(4))


def test_e3m0_relative_error_is_bounded():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    y = roundtrip_e3m0(x)
    big = x.abs() > x.abs().max() / 64                            # above the smallest level
    # nearest power of two is within a factor 4/3 below or 3/2 above
    ratio = (y[big] / x[big])
    assert ratio.min() >= 2 / 3 - 1e-6 and ratio.max() <= 4 / 3 + 1e-6


def test_quantized_bytes_are_four_thirty_seconds():
    assert quantized_nbytes(32_000.0) == 4_000.0
    assert packed_nbytes(7) == 4


def test_metropolis_hastings_path_by_hand():
    w = mixing.metropolis_hastings_weights([[1], [0, 2], [1]])
    expected = np.array([[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]])
    assert np.allclose(w, expected)


@pytest.mark.parametrize("n, gap", [(8, 0.195), (16, 0.0507), (64, 0.0032)])
def test_ring_spectral_gap_matches_method_card(n, gap):
    w = mixing.metropolis_hastings_weights(mixing.gossip_neighbours("ring", n))
    assert np.allclose(w, w.T) and np.allclose(w.sum(axis=0), 1) and np.allclose(w.sum(axis=1), 1)
    assert np.allclose(np.diag(w), 1 / 3)
    # closed form: 1 - (1/3 + 2/3·cos(2π/n))
    assert mixing.spectral_gap(w) == pytest.approx(1 - (1 / 3 + 2 / 3 * np.cos(2 * np.pi / n)))
    assert mixing.spectral_gap(w) == pytest.approx(gap, rel=0.02)


def test_complete_and_hypercube_graphs():
    w = mixing.metropolis_hastings_weights(mixing.gossip_neighbours("complete", 4))
    assert np.allclose(w, 0.25) and mixing.spectral_gap(w) == pytest.approx(1.0)
    cube = mixing.gossip_neighbours("hypercube", 8)
    assert cube[0] == [1, 2, 4] and cube[5] == [1, 4, 7]
    with pytest.raises(ValueError, match="hypercube"):
        mixing.gossip_neighbours("hypercube", 6)
    with pytest.raises(ValueError, match="graph"):
        mixing.gossip_neighbours("star", 6)


def test_shared_seed_pairing_is_a_perfect_matching_agreed_by_all():
    for k in (2, 8, 16):
        partner = mixing.shared_seed_pairing(seed=3, round_index=5, num_workers=k)
        assert all(partner[partner[i]] == i and partner[i] != i for i in range(k))
        assert partner == mixing.shared_seed_pairing(seed=3, round_index=5, num_workers=k)
    rounds = {tuple(mixing.shared_seed_pairing(seed=3, round_index=r, num_workers=8))
              for r in range(20)}
    assert len(rounds) > 10                                       # a fresh matching each round
    odd = mixing.shared_seed_pairing(seed=0, round_index=0, num_workers=7)
    assert sum(odd[i] == i for i in range(7)) == 1


def test_pairing_partners_are_uniform():
    counts = np.zeros((6, 6))
    for r in range(3000):
        partner = mixing.shared_seed_pairing(seed=1, round_index=r, num_workers=6)
        for i, j in enumerate(partner):
            counts[i, j] += 1
    off = counts[~np.eye(6, dtype=bool)]
    assert np.all(np.abs(off / 3000 - 1 / 5) < 0.03)              # each of 5 partners, 1/5


def test_layer_stride_fragments_by_hand():
    frags = mixing.layer_stride_fragments([2, 3, 1, 4], 2)
    assert frags == [[0, 1, 5], [2, 3, 4, 6, 7, 8, 9]]
    with pytest.raises(ValueError, match="num_fragments"):
        mixing.layer_stride_fragments([2, 3], 3)

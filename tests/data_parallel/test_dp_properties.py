"""Properties of the rules and mixing matrices over many random inputs (hypothesis)."""

import networkx as nx
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.data_parallel import mixing, rules
from policies.data_parallel.quantize import roundtrip_e3m0

vectors = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.floats(0.1, 0.9), st.integers(0, 10_000))
def test_mh_weights_are_symmetric_doubly_stochastic_on_random_graphs(n, p, seed):
    g = nx.gnp_random_graph(n, p, seed=seed)
    w = mixing.metropolis_hastings_weights([sorted(g.neighbors(i)) for i in range(n)])
    assert np.allclose(w, w.T) and np.allclose(w.sum(axis=1), 1.0)
    assert (w >= -1e-12).all()
    assert all(w[i, j] == 0 for i in range(n) for j in range(n) if i != j and not g.has_edge(i, j))


@settings(max_examples=50, deadline=None)
@given(vectors, vectors, vectors, vectors, st.floats(0, 0.9), st.floats(0.1, 1.0))
def test_noloco_consensus_term_cancels_over_a_pair(phi_a, phi_b, th_a, th_b, beta, gamma):
    n = min(map(len, (phi_a, phi_b, th_a, th_b)))
    pa, pb, ta, tb = (torch.tensor(v[:n]) for v in (phi_a, phi_b, th_a, th_b))
    delta = torch.zeros(n)
    kw = dict(group_thetas=[ta, tb], group_phis=[pa, pb], beta=beta, gamma=gamma)
    new_a, _ = rules.noloco_outer_step(pa, delta, **kw)
    new_b, _ = rules.noloco_outer_step(pb, delta, **kw)
    # the pair's mean slow weights move by γ·(mean progress) only
    progress = ((ta - pa) + (tb - pb)) / 2
    assert torch.allclose((new_a + new_b) / 2, (pa + pb) / 2 + gamma * progress, atol=1e-4)


@settings(max_examples=50, deadline=None)
@given(vectors)
def test_e3m0_roundtrip_is_idempotent_and_keeps_signs(values):
    x = torch.tensor(values)
    y = roundtrip_e3m0(x)
    assert torch.equal(roundtrip_e3m0(y), y)
    assert torch.all((y == 0) | (torch.sign(y) == torch.sign(x)))
    assert y.abs().max() == x.abs().max()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(0, 1000), st.integers(0, 1000))
def test_pairing_is_an_involution_for_any_k(k, seed, r):
    partner = mixing.shared_seed_pairing(seed, r, k)
    assert all(partner[partner[i]] == i for i in range(k))
    assert sum(partner[i] == i for i in range(k)) == k % 2

"""The synthetic language: exact entropy rate, sampling that matches it, a model that reaches it."""

import math

import numpy as np
import pytest

from tests.workloads.conftest import FAST_LM
from workloads import MarkovLanguage, WorkloadConfig, build_workload, random_sparse_markov
from workloads.markov import dialect


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_two_state_chain_matches_closed_form():
    a, b = 0.3, 0.1  # P(0->1), P(1->0)
    chain = MarkovLanguage(np.array([[1 - a, a], [b, 1 - b]]))
    pi = chain.stationary()
    np.testing.assert_allclose(pi, [b / (a + b), a / (a + b)], rtol=1e-12)
    expected = pi[0] * binary_entropy(a) + pi[1] * binary_entropy(b)
    assert chain.entropy_rate() == pytest.approx(expected, rel=1e-12)


def test_random_chain_is_sparse_stochastic_and_irreducible():
    chain = random_sparse_markov(32, branching=4, concentration=1.0, rng=np.random.default_rng(1))
    P = chain.transition
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    assert ((P > 0).sum(axis=1) <= 4).all()
    pi = chain.stationary()
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    assert (pi > 0).all()  # irreducible: every token is visited
    # The optimum lies between 0 and log(branching).
    assert 0 < chain.entropy_rate() < math.log(4)


def test_samples_match_stationary_distribution_and_entropy_rate():
    chain = random_sparse_markov(8, branching=3, concentration=1.0, rng=np.random.default_rng(2))
    seqs = chain.sample(np.random.default_rng(3), 400, 200)
    freq = np.bincount(seqs.ravel(), minlength=8) / seqs.size
    np.testing.assert_allclose(freq, chain.stationary(), atol=0.01)
    # Empirical conditional entropy of the next token given the current one.
    counts = np.zeros((8, 8))
    np.add.at(counts, (seqs[:, :-1].ravel(), seqs[:, 1:].ravel()), 1)
    cond = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h_rows = -np.where(cond > 0, cond * np.log(cond), 0).sum(axis=1)
    empirical = (counts.sum(axis=1) / counts.sum()) @ h_rows
    assert empirical == pytest.approx(chain.entropy_rate(), abs=0.01)


def test_dialects_keep_support_but_change_weights():
    base = random_sparse_markov(16, branching=4, concentration=1.0, rng=np.random.default_rng(4))
    d = dialect(base, mix=0.5, rng=np.random.default_rng(5))
    assert ((d.transition > 0) == (base.transition > 0)).all()
    assert np.abs(d.transition - base.transition).max() > 0.05
    with pytest.raises(ValueError, match="mix"):
        dialect(base, mix=1.5, rng=np.random.default_rng(5))


def test_trained_model_approaches_the_entropy_rate():
    wl = build_workload(WorkloadConfig(**FAST_LM), num_replicas=1, seed=0)
    learner = wl.make_learner(0)
    start = learner.eval_loss()
    assert start == pytest.approx(math.log(32), abs=0.15)  # uniform guess at initialisation
    for _ in range(150):
        learner.train_step()
    end = learner.eval_loss()
    assert wl.optimum_loss is not None
    assert end >= wl.optimum_loss - 0.05  # nothing beats the entropy rate (up to sampling noise)
    assert end - wl.optimum_loss < 0.1  # within 0.1 nat of the optimum


def test_pi_solved_once_is_not_shared_with_callers():
    """pi and the CDF are cached per chain: a caller that edits pi must not change later draws."""
    chain = random_sparse_markov(32, branching=4, concentration=0.5, rng=np.random.default_rng(1))
    twin = MarkovLanguage(chain.transition.copy())
    chain.stationary()[:] = 0.0
    np.testing.assert_array_equal(chain.sample(np.random.default_rng(5), 8, 16),
                                  twin.sample(np.random.default_rng(5), 8, 16))
    np.testing.assert_allclose(chain.stationary(), twin.stationary())

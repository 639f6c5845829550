"""A synthetic language with a known entropy rate: a random sparse first-order Markov chain.

Each token i has ``branching`` possible successors, always including i+1 and i+2 (mod V) so the
chain is irreducible (the i -> i+1 cycle visits every state) and aperiodic (cycles of length V
and V-1 have gcd 1). The successor probabilities come from a symmetric Dirichlet.

Sequences start from the stationary distribution pi, so every position's best prediction has
expected loss equal to the entropy rate

    H = - sum_i pi_i sum_j P_ij log P_ij     (nats per token),

the lowest cross-entropy any model can reach on this data. ``pi`` is the left eigenvector of P
with eigenvalue 1, found exactly by a linear solve.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MarkovLanguage:
    """A first-order Markov chain over ``vocab`` tokens."""

    transition: np.ndarray
    """Row-stochastic matrix P of shape (V, V): P[i, j] = Pr(next = j | current = i)."""

    @property
    def vocab(self) -> int:
        """Number of tokens V."""
        return self.transition.shape[0]

    def stationary(self) -> np.ndarray:
        """Stationary distribution pi (V,): pi P = pi, sum(pi) = 1, by a linear solve."""
        return self._pi.copy()

    @functools.cached_property
    def _pi(self) -> np.ndarray:
        """pi, solved once per chain: every batch drawn starts from it."""
        V = self.vocab
        # (P^T - I) pi = 0 with one equation replaced by sum(pi) = 1.
        a = self.transition.T - np.eye(V)
        a[-1, :] = 1.0
        b = np.zeros(V)
        b[-1] = 1.0
        pi = np.linalg.solve(a, b)
        return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()

    def entropy_rate(self) -> float:
        """Entropy rate H in nats per token: the optimum next-token cross-entropy."""
        P = self.transition
        with np.errstate(divide="ignore", invalid="ignore"):
            row_entropy = -np.where(P > 0, P * np.log(P), 0.0).sum(axis=1)  # (V,)
        return float(self._pi @ row_entropy)

    @functools.cached_property
    def _successor_cdf(self) -> np.ndarray:
        """Row-wise cumulative P (V, V), last column exactly 1: a draw u < 1 picks a successor."""
        cdf = np.cumsum(self.transition, axis=1)
        cdf[:, -1] = 1.0
        return cdf

    def sample(self, rng: np.random.Generator, num_seqs: int, length: int) -> np.ndarray:
        """Draw ``num_seqs`` sequences of ``length`` tokens, starting from pi; int64 (N, L)."""
        cdf = self._successor_cdf
        out = np.empty((num_seqs, length), dtype=np.int64)
        out[:, 0] = rng.choice(self.vocab, size=num_seqs, p=self._pi)
        u = rng.random((num_seqs, length - 1))
        for t in range(1, length):
            rows = cdf[out[:, t - 1]]  # (N, V)
            out[:, t] = (rows < u[:, t - 1 : t]).sum(axis=1)
        return out


def random_sparse_markov(
    vocab: int, *, branching: int, concentration: float, rng: np.random.Generator
) -> MarkovLanguage:
    """Random sparse chain: ``branching`` successors per token, Dirichlet(concentration) weights."""
    if vocab < 3:
        raise ValueError(f"vocab={vocab}: the synthetic language needs at least 3 tokens")
    if not 2 <= branching <= vocab:
        raise ValueError(f"branching={branching}: must be between 2 and vocab={vocab}")
    P = np.zeros((vocab, vocab))
    for i in range(vocab):
        others = np.setdiff1d(np.arange(vocab), [(i + 1) % vocab, (i + 2) % vocab])
        extra = rng.choice(others, size=branching - 2, replace=False)
        successors = np.concatenate([[(i + 1) % vocab, (i + 2) % vocab], extra]).astype(int)
        P[i, successors] = rng.dirichlet(np.full(branching, concentration))
    return MarkovLanguage(P)


def dialect(base: MarkovLanguage, *, mix: float, rng: np.random.Generator) -> MarkovLanguage:
    """Make a dialect of ``base``: same successor sets, weights (1-mix) P + mix Q with Q random.

    Dialects give non-iid shards of the synthetic language: each node sees its own dialect while
    held-out data comes from the base chain.
    """
    if not 0.0 <= mix <= 1.0:
        raise ValueError(f"dialect mix={mix}: must be in [0, 1]")
    P = base.transition
    Q = np.zeros_like(P)
    for i in range(base.vocab):
        nz = np.flatnonzero(P[i])
        Q[i, nz] = rng.dirichlet(np.ones(len(nz)))
    return MarkovLanguage((1.0 - mix) * P + mix * Q)

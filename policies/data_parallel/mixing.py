"""Who talks to whom: gossip mixing matrices, NoLoCo's shared-seed pairing, fragment layout.

Pure functions of integers and seeds (numpy only, no simulator): the policies call them to
choose peers, the tests check them against closed forms.
"""

from __future__ import annotations

import numpy as np

from sim.errors import FieldError


def gossip_neighbours(kind: str, n: int) -> list[list[int]]:
    """Adjacency lists of the logical gossip graph over workers 0..n−1.

    ``"ring"``: i talks to i±1; ``"complete"``: everyone; ``"hypercube"`` (n a power of two):
    i talks to i XOR 2^b for every bit b. Lists are sorted, self excluded.
    """
    if n < 1:
        raise FieldError("num_workers", f"must be >= 1, got {n}")
    if kind == "ring":
        if n == 1:
            return [[]]
        return [sorted({(i - 1) % n, (i + 1) % n}) for i in range(n)]
    if kind == "complete":
        return [[j for j in range(n) if j != i] for i in range(n)]
    if kind == "hypercube":
        if n & (n - 1):
            raise FieldError("graph", f"'hypercube' needs a power-of-two worker count, got {n}")
        bits = n.bit_length() - 1
        return [sorted(i ^ (1 << b) for b in range(bits)) for i in range(n)]
    raise FieldError("graph", f"unknown gossip graph {kind!r}; allowed: complete, hypercube, ring")


def metropolis_hastings_weights(neighbours: list[list[int]]) -> np.ndarray:
    """Mixing matrix W with Metropolis–Hastings weights, shape (n, n).

    ``W_ij = 1/(1 + max(d_i, d_j))`` on edges, ``W_ii = 1 − Σ_{j≠i} W_ij``, zero elsewhere. W is
    symmetric and doubly stochastic for any undirected graph, with no global knowledge needed.
    """
    n = len(neighbours)
    degree = [len(nb) for nb in neighbours]
    w = np.zeros((n, n))
    for i, nb in enumerate(neighbours):
        for j in nb:
            w[i, j] = 1.0 / (1 + max(degree[i], degree[j]))
    w[np.diag_indices(n)] = 1.0 - w.sum(axis=1)
    return w


def spectral_gap(w: np.ndarray) -> float:
    """δ = 1 − ρ with ρ = ||W − 11ᵀ/n||₂: how fast gossip with W reaches consensus."""
    n = w.shape[0]
    rho = np.linalg.norm(w - np.full((n, n), 1.0 / n), ord=2)
    return float(1.0 - rho)


def shared_seed_pairs(seed: int, round_index: int, num_workers: int) -> list[tuple[int, int]]:
    """NoLoCo's groups for one outer round: ``(root, other)`` pairs; an unpaired worker sits out.

    Every worker draws the same permutation ``perm`` from the seed shared by all and the round
    index, so no message is needed to agree on it; the groups are ``{perm[j], perm[j + k//2]}``,
    a perfect matching (with an odd k, ``perm[k − 1]`` sits the round out alone). The group's
    root is ``perm[j]``, the first of the group as the reference code batches it: the worker
    the other reduces to.
    """
    if num_workers < 1:
        raise ValueError(f"num_workers: must be >= 1, got {num_workers}")
    perm = np.random.default_rng([seed, round_index]).permutation(num_workers)
    half = num_workers // 2
    return [(int(perm[j]), int(perm[j + half])) for j in range(half)]


def shared_seed_pairing(seed: int, round_index: int, num_workers: int) -> list[int]:
    """NoLoCo's pairing for one outer round: ``partner[i]`` for every worker (itself if unpaired).

    The groups of :func:`shared_seed_pairs`, as a partner list.
    """
    partner = list(range(num_workers))
    for a, b in shared_seed_pairs(seed, round_index, num_workers):
        partner[a], partner[b] = b, a
    return partner


def layer_stride_fragments(layer_sizes: list[int], num_fragments: int) -> list[list[int]]:
    """Streaming DiLoCo's fragments: layer l goes to fragment ``l mod P``.

    ``layer_sizes`` are the numbers of values in consecutive layers of the flat parameter vector;
    returns, per fragment, the flat indices it owns (sorted). Strided rather than contiguous, so
    every fragment spans the depth of the network.
    """
    if num_fragments < 1:
        raise ValueError(f"num_fragments: must be >= 1, got {num_fragments}")
    if num_fragments > len(layer_sizes):
        raise ValueError(
            f"num_fragments: {num_fragments} exceeds the {len(layer_sizes)} layers to split"
        )
    fragments: list[list[int]] = [[] for _ in range(num_fragments)]
    start = 0
    for layer, size in enumerate(layer_sizes):
        fragments[layer % num_fragments].extend(range(start, start + size))
        start += size
    return fragments

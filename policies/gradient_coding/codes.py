"""Gradient codes: encoding matrices and decoders (Tandon, Lei, Dimakis, Karampatziakis 2017).

The data is split into ``n`` partitions with gradients ``g_1 .. g_n``; the master wants
``sum_j g_j``. Worker ``i`` holds the partitions in the support of row ``b_i`` of the encoding
matrix ``B`` (n x n) and sends one vector ``f_i = sum_j B[i, j] g_j``. For a set ``F`` of
responders a decoding vector ``a`` with ``B_F^T a = 1`` gives ``sum_{i in F} a_i f_i = sum_j g_j``.

Everything here is pure numpy in float64; no SimPy, no torch. A :class:`GradientCode` bundles a
matrix with its decoder; :func:`make_code` builds one by scheme name:

- ``"uncoded"``: ``B = I`` (s = 0); every worker is needed.
- ``"fractional"``: fractional repetition, ``(s+1) | n``; groups of ``s+1`` workers hold the same
  ``s+1`` partitions and send their plain sum; decode with the first arrival of every group.
- ``"cyclic"``: cyclic repetition with a random ``H`` (``H 1 = 0``); any ``n - s`` rows span
  ``null(H)``, which holds ``1``; decode by least squares and check the residual.
- ``"expander"``: approximate only (Raviv, Tamo, Tandon, Dimakis 2018): ``B`` is the adjacency
  matrix of a random ``d``-regular graph (``d = s+1``, load ``d/n``), decoded with the fixed
  decoder ``a_i = n / (d |F|)``; its error is at most ``(lam2/d)^2 n (n - |F|) / |F|``, with
  ``lam2`` the second-largest absolute eigenvalue (:func:`expander_error_bound`).

Decoding with fewer responders than a code needs is *approximate* gradient coding: the
least-squares decoder returns the best fit and reports its error ``||B_F^T a - 1||^2``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from math import comb

import networkx as nx
import numpy as np

from sim.errors import FieldError

#: Residual below which a decoding counts as exact (infinity norm of ``B_F^T a - 1``).
EXACT_TOL = 1e-6

SCHEMES = ("uncoded", "fractional", "cyclic", "expander")


@dataclass(frozen=True, kw_only=True)
class Decoding:
    """The result of decoding one set of responders.

    coefficients:
        ``a``, shape (n,), float64; zero for workers that did not respond (or were not used).
    used:
        Worker ids whose coded vectors enter the sum (``a_i`` may still be 0 for some of them).
    residual:
        ``||B_F^T a - 1||_inf``: the largest error of any partition's weight in the sum.
    error_sq:
        ``||B_F^T a - 1||_2^2``: the decoding error of approximate gradient coding.
    """

    coefficients: np.ndarray
    used: tuple[int, ...]
    residual: float
    error_sq: float

    @property
    def exact(self) -> bool:
        """Whether every partition's weight is 1 within :data:`EXACT_TOL`."""
        return self.residual < EXACT_TOL


def _check_ns(n: int, s: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    if not isinstance(s, (int, np.integer)) or not 0 <= s < n:
        raise FieldError("s", f"must be an integer with 0 <= s < n={n}, got {s!r}")


def uncoded_matrix(n: int) -> np.ndarray:
    """``B = I``: worker ``i`` computes only partition ``i`` (plain data parallelism)."""
    _check_ns(n, 0)
    return np.eye(n, dtype=np.float64)


def fractional_repetition_matrix(n: int, s: int) -> np.ndarray:
    """Fractional repetition: ``n/(s+1)`` groups of ``s+1`` workers, 0/1 coefficients.

    Worker ``i`` belongs to group ``i // (s+1)`` and holds that group's ``s+1`` consecutive
    partitions. Every group survives any ``s`` stragglers, so one arrival per group decodes.
    """
    _check_ns(n, s)
    if n % (s + 1) != 0:
        raise FieldError("s", f"fractional repetition needs (s+1) to divide n={n}, got s={s}")
    group_size = s + 1
    B = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        g = i // group_size
        B[i, g * group_size:(g + 1) * group_size] = 1.0
    return B


def cyclic_support(n: int, s: int, i: int) -> list[int]:
    """Partitions held by worker ``i`` under cyclic repetition: ``{i, ..., i+s} mod n``."""
    return [(i + k) % n for k in range(s + 1)]


def cyclic_repetition_matrix(n: int, s: int, rng: np.random.Generator | None = None,
                             H: np.ndarray | None = None) -> np.ndarray:
    """Cyclic repetition code (Tandon et al., Algorithm 2) from a random ``H`` with ``H 1 = 0``.

    Parameters
    ----------
    n, s:
        Workers (= partitions) and stragglers tolerated.
    rng:
        Draws ``H`` (s x n): i.i.d. N(0, 1) in the first ``n-1`` columns, last column minus the
        row sums. Needed unless ``H`` is given.
    H:
        An explicit ``H`` (s x n) with ``H 1 = 0`` (e.g. to reproduce a published example).

    Returns
    -------
    numpy.ndarray
        ``B`` (n x n, float64) with ``B[i, i] = 1``, support ``{i..i+s} mod n`` and ``H b_i = 0``
        for every row, so every row lies in ``null(H)`` (dimension ``n-s``, holding ``1``); any
        ``n-s`` rows span it with probability 1, so they can combine to ``1``.
    """
    _check_ns(n, s)
    if H is None:
        if rng is None:
            raise ValueError("rng: cyclic_repetition_matrix needs a numpy Generator or an H")
        H = rng.standard_normal((s, n))
        H[:, n - 1] = -H[:, : n - 1].sum(axis=1)
    H = np.asarray(H, dtype=np.float64)
    if H.shape != (s, n):
        raise ValueError(f"H: must have shape (s, n)=({s}, {n}), got {H.shape}")
    if s > 0 and np.abs(H.sum(axis=1)).max() > 1e-9 * max(1.0, np.abs(H).max()):
        raise ValueError("H: rows must sum to 0 (H 1 = 0)")
    B = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        others = cyclic_support(n, s, i)[1:]
        B[i, i] = 1.0
        if s > 0:
            # H[:, others] x = -H[:, i]  (s x s system) puts row i in null(H).
            B[i, others] = np.linalg.solve(H[:, others], -H[:, i])
    return B


def expander_matrix(n: int, degree: int, rng: np.random.Generator) -> np.ndarray:
    """Adjacency matrix of a random ``degree``-regular graph on ``n`` workers (float64, 0/1).

    Worker ``i`` holds the partitions of its ``degree`` neighbours (not its own). Random regular
    graphs are good expanders with high probability; ``n * degree`` must be even.
    """
    if not 1 <= degree < n:
        raise FieldError("s", f"the expander degree s+1 must be in [1, n={n}), got {degree}")
    if (n * degree) % 2:
        raise FieldError("s", f"an expander needs n*(s+1) even, got n={n}, s+1={degree}")
    graph = nx.random_regular_graph(degree, n, seed=int(rng.integers(2**31)))
    return nx.to_numpy_array(graph, nodelist=range(n), dtype=np.float64)


def expander_error_bound(B: np.ndarray, num_responders: int) -> float:
    """Bound on the fixed decoder's error: ``(lam2/d)^2 n (n - k) / k`` for ``k`` responders.

    Why: write ``1_F = (k/n) 1 + y`` with ``y`` orthogonal to ``1``, ``|y|^2 = k(n-k)/n``. Then
    ``B^T a = c B 1_F = 1 + c B y`` for ``c = n/(d k)``, and ``|B y| <= lam2 |y|``.
    """
    n = B.shape[0]
    d = float(B[0].sum())
    eigenvalues = np.sort(np.abs(np.linalg.eigvalsh(B)))
    lam2 = float(eigenvalues[-2])
    k = num_responders
    return (lam2 / d) ** 2 * n * (n - k) / k


def fixed_decode(B: np.ndarray, responders: Iterable[int]) -> Decoding:
    """Decode with the expander code's fixed decoder: ``a_i = n / (d |F|)`` per responder."""
    B = np.asarray(B, dtype=np.float64)
    n = B.shape[0]
    used = tuple(int(i) for i in responders)
    coefficients = np.zeros(n, dtype=np.float64)
    if used:
        coefficients[list(used)] = n / (float(B[0].sum()) * len(used))
    return _finish(B, coefficients, used)


def least_squares_decode(B: np.ndarray, responders: Iterable[int]) -> Decoding:
    """Best-fit decoder: ``a_F = argmin ||B_F^T a - 1||_2`` in float64.

    Exact (residual ~ 1e-12) when ``1`` is in the row space of ``B_F``; otherwise the
    approximate-gradient-coding decoder, whose error ``error_sq`` says how far off it is.
    """
    B = np.asarray(B, dtype=np.float64)
    n = B.shape[0]
    used = tuple(int(i) for i in responders)
    coefficients = np.zeros(n, dtype=np.float64)
    if used:
        B_F = B[list(used)]                                  # (|F|, n)
        a_F, *_ = np.linalg.lstsq(B_F.T, np.ones(n), rcond=None)
        coefficients[list(used)] = a_F
    return _finish(B, coefficients, used)


def fractional_repetition_decode(n: int, s: int, arrivals: Sequence[int]) -> Decoding:
    """Fractional repetition decoder: the first arrival of each group, coefficient 1.

    ``arrivals`` is in arrival order; groups without an arrival are simply missing (the decoding
    error then counts their ``s+1`` partitions).
    """
    B = fractional_repetition_matrix(n, s)
    group_size = s + 1
    coefficients = np.zeros(n, dtype=np.float64)
    used: list[int] = []
    seen_groups: list[int] = []
    for i in arrivals:
        g = int(i) // group_size
        if g not in seen_groups:
            seen_groups.append(g)
            used.append(int(i))
            coefficients[int(i)] = 1.0
    return _finish(B, coefficients, tuple(used))


def _finish(B: np.ndarray, coefficients: np.ndarray, used: tuple[int, ...]) -> Decoding:
    weights = B.T @ coefficients                              # (n,) weight of each partition
    error = weights - 1.0
    return Decoding(coefficients=coefficients, used=used,
                    residual=float(np.abs(error).max()), error_sq=float(error @ error))


@dataclass(frozen=True, kw_only=True)
class GradientCode:
    """An encoding matrix and its decoder.

    scheme:
        ``"uncoded"``, ``"fractional"``, ``"cyclic"`` or ``"expander"`` (module docstring).
    n:
        Workers, equal to the number of data partitions.
    s:
        Stragglers tolerated: any ``n - s`` responders decode exactly (``"expander"``: degree
        ``s+1``, always approximate).
    B:
        Encoding matrix, (n, n) float64.
    """

    scheme: str
    n: int
    s: int
    B: np.ndarray

    @property
    def load(self) -> float:
        """Fraction of the data each worker computes on: ``(s+1)/n`` (optimal for ``s``)."""
        return float(np.count_nonzero(self.B, axis=1).max()) / self.n

    def support(self, i: int) -> list[int]:
        """Partitions worker ``i`` needs (the nonzeros of row ``b_i``)."""
        return [int(j) for j in np.flatnonzero(self.B[i])]

    def decode(self, arrivals: Sequence[int]) -> Decoding:
        """Decode from responders in arrival order (exact or best fit, see ``Decoding``)."""
        for i in arrivals:
            if not 0 <= int(i) < self.n:
                raise ValueError(f"arrivals: worker id {i} outside 0..{self.n - 1}")
        if self.scheme == "fractional":
            return fractional_repetition_decode(self.n, self.s, arrivals)
        if self.scheme == "expander":
            return fixed_decode(self.B, arrivals)
        return least_squares_decode(self.B, arrivals)

    def can_decode(self, arrivals: Sequence[int]) -> bool:
        """Whether these responders give the exact sum (residual below :data:`EXACT_TOL`)."""
        if self.scheme == "fractional":
            groups = {int(i) // (self.s + 1) for i in arrivals}
            return len(groups) == self.n // (self.s + 1)
        if len(set(arrivals)) < self.n - self.s:
            return False  # fewer than n-s generic rows cannot span null(H) (dimension n-s)
        return self.decode(arrivals).exact

    def encode(self, partition_grads: np.ndarray) -> np.ndarray:
        """Coded vectors ``f = B G`` for partition gradients ``G`` (n, d) -> (n, d), float64."""
        G = np.asarray(partition_grads, dtype=np.float64)
        if G.shape[0] != self.n:
            raise ValueError(f"partition_grads: need {self.n} rows, got {G.shape[0]}")
        return self.B @ G

    def combine(self, decoding: Decoding, coded: np.ndarray) -> np.ndarray:
        """``sum_i a_i f_i`` over the used workers: the decoded gradient sum, shape (d,)."""
        used = list(decoding.used)
        return decoding.coefficients[used] @ np.asarray(coded, dtype=np.float64)[used]


def make_code(scheme: str, n: int, s: int, rng: np.random.Generator | None = None) -> GradientCode:
    """Build the gradient code ``scheme`` for ``n`` workers tolerating ``s`` stragglers."""
    if scheme == "uncoded":
        if s != 0:
            raise FieldError("s", f"the uncoded scheme tolerates no stragglers, got s={s}")
        B = uncoded_matrix(n)
    elif scheme == "fractional":
        B = fractional_repetition_matrix(n, s)
    elif scheme == "cyclic":
        B = cyclic_repetition_matrix(n, s, rng=rng)
    elif scheme == "expander":
        _check_ns(n, s)
        if rng is None:
            raise ValueError("rng: an expander code needs a numpy Generator")
        B = expander_matrix(n, s + 1, rng)
    else:
        raise FieldError("scheme",
                         f"unknown gradient code {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return GradientCode(scheme=scheme, n=n, s=s, B=B)


def responder_subsets(n: int, size: int, *, max_subsets: int | None = None,
                      rng: np.random.Generator | None = None) -> list[tuple[int, ...]]:
    """Subsets of ``size`` workers: all of them, or ``max_subsets`` random ones when there are more.

    Used to check the decoding property: exhaustively for small ``n``, sampled for large ``n``.
    """
    count = comb(n, size)
    if max_subsets is None or count <= max_subsets:
        return list(itertools.combinations(range(n), size))
    if rng is None:
        raise ValueError("rng: sampling responder subsets needs a numpy Generator")
    return [tuple(sorted(int(i) for i in rng.choice(n, size=size, replace=False)))
            for _ in range(max_subsets)]


def worst_residual(code: GradientCode, subsets: Iterable[Sequence[int]]) -> float:
    """Largest decoding residual ``||B_F^T a - 1||_inf`` over the given responder sets."""
    return max(code.decode(list(F)).residual for F in subsets)

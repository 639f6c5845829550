"""Straggler models whose factor depends on the node and on its history.

The models of :mod:`sim.faults.stragglers` draw every task's factor independently; these keep
state per node: Gilbert-Elliott's two-state Markov chain (bursts in time), a replayed
``(B, W, lam)``-bursty pattern or a measured trace (indexed by the node's task count, i.e. its
round), and a different model per node. Each still states its distribution in closed form
(``mean``, ``quantile``, ``cdf``) and is reset at the start of every world (``reset``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from sim.faults.stragglers import (
    NoStragglers,
    ShiftedExponential,
    StragglerModel,
    check_probability,
    check_quantile_level,
    check_slowdown,
    two_point_cdf,
    two_point_quantile,
)
from sim.faults.traces import read_straggler_trace

__all__ = ["BurstyPattern", "GilbertElliott", "PerNodeModels", "TraceReplay"]


class GilbertElliott(StragglerModel):
    """Bursty stragglers: a two-state Markov chain per node, slow in the *bad* state.

    Each node has its own chain, advanced once per task: good -> bad with probability ``p``,
    bad -> good with probability ``q``. A node's first task draws its state from the stationary
    law, so the process is stationary from the start: ``P(bad) = p / (p + q)``; bad bursts
    last a geometric number of tasks with mean ``1 / q``.

    Parameters
    ----------
    p_good_to_bad:
        ``p``, per-task probability of entering the bad state, in [0, 1].
    p_bad_to_good:
        ``q``, per-task probability of leaving it, in (0, 1].
    slowdown:
        Factor of a task run in the bad state (>= 1).
    """

    def __init__(self, p_good_to_bad: float, p_bad_to_good: float, slowdown: float):
        self.p_good_to_bad = check_probability("p_good_to_bad", p_good_to_bad)
        self.p_bad_to_good = check_probability("p_bad_to_good", p_bad_to_good, open_low=True)
        self.slowdown = check_slowdown(slowdown)
        self._is_bad: dict[int, bool] = {}  # node id -> chain state after its last task

    @property
    def p_bad(self) -> float:
        """Stationary probability of the bad state, ``p / (p + q)``."""
        return self.p_good_to_bad / (self.p_good_to_bad + self.p_bad_to_good)

    @property
    def mean_burst_tasks(self) -> float:
        """Mean length of a bad burst in tasks, ``1 / q``."""
        return 1.0 / self.p_bad_to_good

    def is_bad(self, node_id: int, rng: np.random.Generator) -> bool:
        """Advance node ``node_id``'s chain by one task and return whether it is now bad."""
        u = float(rng.random())  # exactly one draw per task keeps streams aligned
        if node_id not in self._is_bad:
            bad = u < self.p_bad
        elif self._is_bad[node_id]:
            bad = u >= self.p_bad_to_good
        else:
            bad = u < self.p_good_to_bad
        self._is_bad[node_id] = bad
        return bad

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Advance the node's chain and return ``slowdown`` if it is bad, else 1."""
        return self.slowdown if self.is_bad(node_id, rng) else 1.0

    def mean(self) -> float:
        """Return ``1 + pi_bad (kappa - 1)``."""
        return 1.0 + self.p_bad * (self.slowdown - 1.0)

    def quantile(self, q: float) -> float:
        """Marginal (stationary) quantile: 1 for ``q <= 1 - pi_bad``, else ``kappa``."""
        return two_point_quantile(q, self.p_bad, self.slowdown)

    def cdf(self, x: float) -> float:
        """Marginal (stationary) distribution function."""
        return two_point_cdf(x, self.p_bad, self.slowdown)

    def reset(self) -> None:
        """Forget every node's chain state."""
        self._is_bad.clear()


class _RoundIndexed(StragglerModel):
    """Shared machinery of models indexed by (round, node): a per-node task counter."""

    def __init__(self) -> None:
        self._next_round: dict[int, int] = {}

    @abstractmethod
    def factor_at(self, node_id: int, round_index: int) -> float:
        """Factor of node ``node_id`` in round ``round_index`` (no randomness)."""

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Factor of the node's next round; the round is the node's task counter."""
        round_index = self._next_round.get(node_id, 0)
        self._next_round[node_id] = round_index + 1
        return self.factor_at(node_id, round_index)

    def reset(self) -> None:
        """Restart every node's task counter at round 0."""
        self._next_round.clear()


class BurstyPattern(_RoundIndexed):
    """Replay a straggler pattern: node ``i`` straggles in round ``r`` iff ``pattern[r, i]``.

    The pattern usually comes from :func:`sim.faults.bursty.generate_bursty_pattern`. The round
    is the node's own task counter (:meth:`factor`) or an explicit index (:meth:`factor_at`).
    Rounds past the end of the pattern and nodes beyond its columns do not straggle.

    Parameters
    ----------
    pattern:
        Boolean array, shape ``(rounds, nodes)``.
    slowdown:
        Factor of a straggling task (>= 1).
    """

    def __init__(self, pattern: np.ndarray, slowdown: float):
        super().__init__()
        pattern = np.asarray(pattern)
        if pattern.ndim != 2 or pattern.dtype != np.bool_:
            raise ValueError(
                f"pattern must be a 2-D boolean array (rounds, nodes), got dtype "
                f"{pattern.dtype} and shape {pattern.shape}"
            )
        self.pattern = pattern.copy()
        self.pattern.flags.writeable = False
        self.slowdown = check_slowdown(slowdown)

    def factor_at(self, node_id: int, round_index: int) -> float:
        """Return ``slowdown`` if ``pattern[round_index, node_id]`` else 1."""
        rounds, nodes = self.pattern.shape
        if 0 <= round_index < rounds and 0 <= node_id < nodes:
            if self.pattern[round_index, node_id]:
                return self.slowdown
        return 1.0

    @property
    def straggle_fraction(self) -> float:
        """Fraction of (round, node) cells that straggle."""
        return float(self.pattern.mean()) if self.pattern.size else 0.0

    def mean(self) -> float:
        """Mean over the pattern's cells: ``1 + f (kappa - 1)``."""
        return 1.0 + self.straggle_fraction * (self.slowdown - 1.0)

    def quantile(self, q: float) -> float:
        """Quantile over the pattern's cells."""
        return two_point_quantile(q, self.straggle_fraction, self.slowdown)

    def cdf(self, x: float) -> float:
        """Distribution function over the pattern's cells."""
        return two_point_cdf(x, self.straggle_fraction, self.slowdown)


class TraceReplay(_RoundIndexed):
    """Replay measured per-node, per-round factors (see :func:`sim.faults.traces`).

    A node's round is its task counter; a node's trace repeats from its first round once it
    runs out (a short trace stands in for a long run). A node absent from the trace runs at
    factor 1.

    Parameters
    ----------
    factors:
        ``{node_id: array of factors, round 0 first}``; every factor > 0.
    """

    def __init__(self, factors: Mapping[int, Sequence[float] | np.ndarray]):
        super().__init__()
        self.factors: dict[int, np.ndarray] = {}
        for node_id in sorted(factors):
            values = np.asarray(factors[node_id], dtype=float)
            if values.ndim != 1 or values.size == 0:
                raise ValueError(f"trace of node {node_id} must be a non-empty 1-D sequence")
            if not np.all(np.isfinite(values) & (values > 0)):
                raise ValueError(f"trace of node {node_id} has factors that are not finite > 0")
            values.flags.writeable = False
            self.factors[int(node_id)] = values
        if not self.factors:
            raise ValueError("factors must name at least one node")
        self._all = np.sort(np.concatenate([self.factors[i] for i in self.factors]))
        self.floor = float(self._all[0])

    @classmethod
    def from_csv(cls, path: str, *, nominal_s: float | None = None) -> TraceReplay:
        """Load a trace CSV with columns ``node, round`` and ``factor`` or ``duration_s``.

        With ``duration_s`` the factor is ``duration_s / nominal_s``; ``nominal_s`` defaults
        to the shortest duration in the trace, so the fastest task observed has factor 1.
        """
        return cls(read_straggler_trace(path, nominal_s=nominal_s))

    def factor_at(self, node_id: int, round_index: int) -> float:
        """Factor of ``node_id`` in ``round_index`` (cycling through its trace)."""
        values = self.factors.get(node_id)
        if values is None:
            return 1.0
        return float(values[round_index % values.size])

    def mean(self) -> float:
        """Mean of all factors in the trace."""
        return float(self._all.mean())

    def quantile(self, q: float) -> float:
        """Empirical quantile of all factors (inverted CDF, no interpolation)."""
        q = check_quantile_level(q)
        return float(np.quantile(self._all, q, method="inverted_cdf"))

    def cdf(self, x: float) -> float:
        """Empirical distribution function of all factors."""
        return float(np.searchsorted(self._all, x, side="right")) / self._all.size


class PerNodeModels(StragglerModel):
    """A different straggler model per node (heterogeneous stragglers).

    Node ``i`` uses ``models[i]``; nodes without an entry use ``default``. The marginal
    distribution (:meth:`mean`, :meth:`quantile`, :meth:`cdf`) is the equal-weight mixture over
    the listed nodes, i.e. the law of the factor of a task on a uniformly chosen listed node.

    Parameters
    ----------
    models:
        A sequence (index = node id) or mapping ``{node_id: model}``.
    default:
        Model of nodes not listed (``NoStragglers()`` if omitted).
    """

    def __init__(
        self,
        models: Sequence[StragglerModel] | Mapping[int, StragglerModel],
        default: StragglerModel | None = None,
    ):
        items = models.items() if isinstance(models, Mapping) else enumerate(models)
        self.models: dict[int, StragglerModel] = {int(i): m for i, m in items}
        if not self.models:
            raise ValueError("models must name at least one node")
        self.default = default if default is not None else NoStragglers()
        self.floor = min(m.floor for m in self.models.values())

    @classmethod
    def shifted_exponential(cls, shifts: Sequence[float], rates: Sequence[float]) -> PerNodeModels:
        """Per-worker shifted exponential ``(a_i, mu_i)``: node ``i`` has ``a_i + E / mu_i``."""
        if len(shifts) != len(rates):
            raise ValueError(
                f"shifts and rates must have one entry per node, got {len(shifts)} and {len(rates)}"
            )
        return cls([ShiftedExponential(mu=m, shift=a) for a, m in zip(shifts, rates)])

    def model_of(self, node_id: int) -> StragglerModel:
        """Model that node ``node_id`` uses."""
        return self.models.get(node_id, self.default)

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Delegate to the node's own model."""
        return self.model_of(node_id).factor(node_id, rng)

    def mean(self) -> float:
        """Equal-weight mean of the listed nodes' means."""
        return float(np.mean([self.models[i].mean() for i in sorted(self.models)]))

    def cdf(self, x: float) -> float:
        """Equal-weight mixture of the listed nodes' distribution functions."""
        return float(np.mean([self.models[i].cdf(x) for i in sorted(self.models)]))

    def quantile(self, q: float) -> float:
        """Quantile of the mixture, by bisection on :meth:`cdf` (relative tolerance 1e-12)."""
        q = check_quantile_level(q)
        ordered = [self.models[i] for i in sorted(self.models)]
        low = min(m.quantile(q) for m in ordered)
        high = max(m.quantile(q) for m in ordered)
        # The mixture's q-quantile lies between the smallest and largest component quantiles.
        for _ in range(200):
            if high - low <= 1e-12 * max(1.0, abs(high)):
                break
            mid = 0.5 * (low + high)
            if self.cdf(mid) >= q:
                high = mid
            else:
                low = mid
        return high

    def reset(self) -> None:
        """Reset every node's model."""
        for node_id in sorted(self.models):
            self.models[node_id].reset()
        self.default.reset()

"""Straggler models: how much longer than nominal one compute task takes.

A :class:`StragglerModel` turns a node id and a random stream into a *factor*: the node
multiplies one task's nominal duration by it. ``factor`` is called once per compute task, in
the deterministic order the simulation runs tasks, so the same seed gives the same factors.

Each model also states its distribution in closed form (:meth:`StragglerModel.mean`,
:meth:`StragglerModel.quantile`, :meth:`StragglerModel.cdf`) so tests and docs can check the
sampler against the formula. Formulas (``F`` is the factor, ``E ~ Exp(1)``, ``Z ~ N(0, 1)``,
``U ~ Uniform[0, 1)``):

==================  ==================================  ==============================
model               sample                              mean
==================  ==================================  ==============================
shifted exp.        ``F = a + E / mu``                  ``a + 1/mu``
Pareto              ``F = x_m (1 - U)^(-1/alpha)``      ``alpha x_m / (alpha - 1)``
log-normal          ``F = exp(m + sigma Z)``            ``exp(m + sigma^2 / 2)``
bimodal             ``kappa`` w.p. ``p`` else 1         ``1 + p (kappa - 1)``
Gilbert-Elliott     ``kappa`` in the bad state else 1   ``1 + pi_bad (kappa - 1)``
==================  ==================================  ==============================

Models whose factor depends on the node or on its history (Gilbert-Elliott's Markov chain, a
replayed pattern or trace, a model per node) are in :mod:`sim.faults.node_stragglers`.

Persistent heterogeneity (a node that is *always* slower) is not a straggler model: it is the
node's speed, drawn once by :func:`sim.faults.speeds.speed_multipliers` (re-exported here).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from statistics import NormalDist

import numpy as np

from sim.errors import FieldError
from sim.faults.speeds import speed_multipliers

__all__ = [
    "Bimodal",
    "LogNormal",
    "NoStragglers",
    "Pareto",
    "ShiftedExponential",
    "StragglerModel",
    "speed_multipliers",  # re-exported from sim.faults.speeds
]

_STANDARD_NORMAL = NormalDist()


def check_probability(name: str, value: float, *, open_low: bool = False) -> float:
    """``value`` as a probability; refuses it naming ``name`` (a :class:`FieldError`)."""
    low_ok = isinstance(value, (int, float)) and (value > 0.0 if open_low else value >= 0.0)
    if not (low_ok and value <= 1.0 and math.isfinite(value)):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise FieldError(name, f"must be a probability in {interval}, got {value!r}")
    return float(value)


def check_positive(name: str, value: float) -> float:
    """``value`` as a finite number > 0; refuses it naming ``name``."""
    if not (isinstance(value, (int, float)) and value > 0.0 and math.isfinite(value)):
        raise FieldError(name, f"must be a finite number > 0, got {value!r}")
    return float(value)


def check_slowdown(value: float, name: str = "slowdown") -> float:
    """A straggler's slowdown factor: a finite number >= 1."""
    if not (isinstance(value, (int, float)) and value >= 1.0 and math.isfinite(value)):
        raise FieldError(name, f"must be a finite number >= 1, got {value!r}")
    return float(value)


def check_quantile_level(q: float) -> float:
    q = float(q)
    if not 0.0 <= q < 1.0:
        raise ValueError(f"quantile level q must be in [0, 1), got {q!r}")
    return q


class StragglerModel(ABC):
    """Per-task slowdown factor of a node.

    Subclasses implement :meth:`factor` and, where a closed form exists, :meth:`mean`,
    :meth:`quantile` and :meth:`cdf` of the factor's (marginal) distribution.
    """

    #: Smallest factor the model can return (1.0 for pure slowdown models).
    floor: float = 1.0

    @abstractmethod
    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Return the multiplier of one task's nominal duration on node ``node_id``."""

    @abstractmethod
    def mean(self) -> float:
        """Mean factor, E[F] (``inf`` when it does not exist)."""

    @abstractmethod
    def quantile(self, q: float) -> float:
        """Smallest factor x with P[F <= x] >= q, for q in [0, 1)."""

    @abstractmethod
    def cdf(self, x: float) -> float:
        """P[F <= x]."""

    def reset(self) -> None:
        """Forget per-node state (chains, task counters) before a new run."""


class NoStragglers(StragglerModel):
    """Every task takes exactly its nominal time (factor 1)."""

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Return 1.0 without touching ``rng``."""
        return 1.0

    def mean(self) -> float:
        """Return 1.0."""
        return 1.0

    def quantile(self, q: float) -> float:
        """Return 1.0."""
        check_quantile_level(q)
        return 1.0

    def cdf(self, x: float) -> float:
        """Step at 1."""
        return 1.0 if x >= 1.0 else 0.0


class ShiftedExponential(StragglerModel):
    """Shifted exponential: ``P[T <= t] = 1 - exp(-mu (t/l - a))`` for ``t >= a l``.

    With nominal duration ``l`` the factor is ``F = a + E / mu``, ``E ~ Exp(1)``.

    Parameters
    ----------
    mu:
        Straggling rate ``mu`` (dimensionless, per unit of nominal duration). Larger is tamer:
        the mean excess is ``1/mu`` nominal durations.
    shift:
        Minimum factor ``a`` (1.0: a task never runs faster than nominal).
    """

    def __init__(self, mu: float, shift: float = 1.0):
        self.mu = check_positive("mu", mu)
        self.shift = check_positive("shift", shift)
        self.floor = self.shift

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Draw ``a + E / mu``."""
        return self.shift + float(rng.standard_exponential()) / self.mu

    def mean(self) -> float:
        """Return ``a + 1/mu``."""
        return self.shift + 1.0 / self.mu

    def quantile(self, q: float) -> float:
        """Return ``a - ln(1 - q) / mu``."""
        q = check_quantile_level(q)
        return self.shift - math.log1p(-q) / self.mu

    def cdf(self, x: float) -> float:
        """Return ``1 - exp(-mu (x - a))`` for ``x >= a``."""
        if x < self.shift:
            return 0.0
        return -math.expm1(-self.mu * (x - self.shift))


class Pareto(StragglerModel):
    """Pareto (heavy tail): ``P[F > x] = (x_m / x)^alpha`` for ``x >= x_m``.

    Parameters
    ----------
    alpha:
        Tail index (> 0). The mean is finite for ``alpha > 1``, the variance for ``alpha > 2``;
        measured task-time tails sit around ``alpha`` in (1, 3).
    scale:
        Minimum factor ``x_m``.
    """

    def __init__(self, alpha: float, scale: float = 1.0):
        self.alpha = check_positive("alpha", alpha)
        self.scale = check_positive("scale", scale)
        self.floor = self.scale

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Draw by inversion: ``x_m (1 - U)^(-1/alpha)``."""
        return self.scale * (1.0 - float(rng.random())) ** (-1.0 / self.alpha)

    def mean(self) -> float:
        """Return ``alpha x_m / (alpha - 1)`` (``inf`` for ``alpha <= 1``)."""
        if self.alpha <= 1.0:
            return math.inf
        return self.alpha * self.scale / (self.alpha - 1.0)

    def quantile(self, q: float) -> float:
        """Return ``x_m (1 - q)^(-1/alpha)``."""
        q = check_quantile_level(q)
        return self.scale * (1.0 - q) ** (-1.0 / self.alpha)

    def cdf(self, x: float) -> float:
        """Return ``1 - (x_m / x)^alpha`` for ``x >= x_m``."""
        if x < self.scale:
            return 0.0
        return 1.0 - (self.scale / x) ** self.alpha


class LogNormal(StragglerModel):
    """Log-normal: ``F = exp(m + sigma Z)``, ``Z ~ N(0, 1)``.

    Unlike the other models this one can speed a task up (``F < 1``): with ``mu = 0`` the
    *median* task takes nominal time. Its floor is 0.

    Parameters
    ----------
    sigma:
        Standard deviation of ``ln F`` (> 0).
    mu:
        Mean of ``ln F`` (``m``); the median factor is ``exp(m)``.
    """

    floor = 0.0

    def __init__(self, sigma: float, mu: float = 0.0):
        self.sigma = check_positive("sigma", sigma)
        if not math.isfinite(float(mu)):
            raise FieldError("mu", f"must be finite, got {mu!r}")
        self.mu = float(mu)

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Draw ``exp(m + sigma Z)``."""
        return math.exp(self.mu + self.sigma * float(rng.standard_normal()))

    def mean(self) -> float:
        """Return ``exp(m + sigma^2 / 2)``."""
        return math.exp(self.mu + 0.5 * self.sigma**2)

    def quantile(self, q: float) -> float:
        """Return ``exp(m + sigma Phi^-1(q))``."""
        q = check_quantile_level(q)
        if q == 0.0:
            return 0.0
        return math.exp(self.mu + self.sigma * _STANDARD_NORMAL.inv_cdf(q))

    def cdf(self, x: float) -> float:
        """Return ``Phi((ln x - m) / sigma)``."""
        if x <= 0.0:
            return 0.0
        return _STANDARD_NORMAL.cdf((math.log(x) - self.mu) / self.sigma)


def two_point_quantile(q: float, p_slow: float, slowdown: float) -> float:
    """Quantile of a factor that is ``slowdown`` w.p. ``p_slow`` and 1 otherwise."""
    q = check_quantile_level(q)
    return 1.0 if q <= 1.0 - p_slow else slowdown


def two_point_cdf(x: float, p_slow: float, slowdown: float) -> float:
    if x < 1.0:
        return 0.0
    return 1.0 if x >= slowdown else 1.0 - p_slow


class Bimodal(StragglerModel):
    """With probability ``p`` a task is ``kappa`` times slower, else nominal.

    Parameters
    ----------
    p:
        Probability that one task straggles, in [0, 1].
    slowdown:
        Factor ``kappa >= 1`` of a straggling task (EC2 nodes up to 5x slower are reported).
    """

    def __init__(self, p: float, slowdown: float):
        self.p = check_probability("p", p)
        self.slowdown = check_slowdown(slowdown)

    def factor(self, node_id: int, rng: np.random.Generator) -> float:
        """Return ``kappa`` if ``U < p`` else 1 (one uniform draw per task)."""
        return self.slowdown if float(rng.random()) < self.p else 1.0

    def mean(self) -> float:
        """Return ``1 + p (kappa - 1)``."""
        return 1.0 + self.p * (self.slowdown - 1.0)

    def quantile(self, q: float) -> float:
        """Return 1 for ``q <= 1 - p``, else ``kappa``."""
        return two_point_quantile(q, self.p, self.slowdown)

    def cdf(self, x: float) -> float:
        """Two-point distribution function."""
        return two_point_cdf(x, self.p, self.slowdown)

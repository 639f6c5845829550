"""The built-in straggler models as components: one typed Config each, built by the registry.

A ``[faults] stragglers`` table names a model and its parameters in SI units::

    stragglers = { model = "bimodal", p = 0.05, slowdown = 4 }

:func:`sim.components.config_from_table` turns the table into the model's Config (unit rules,
unknown keys, simple types); the Config checks its own values and refuses one by raising
:class:`~sim.errors.FieldError` with the field's name, so the error names
``faults.stragglers.p`` from structured data. ``build(num_nodes=, rng=)`` makes the working
:class:`~sim.faults.stragglers.StragglerModel` when the world is built; only ``bursty`` uses
``rng`` (it draws its pattern once).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.components import component, make_config, register_component
from sim.errors import FieldError, ScenarioError
from sim.faults.bursty import check_bursty_params, generate_bursty_pattern
from sim.faults.node_stragglers import BurstyPattern, GilbertElliott, PerNodeModels, TraceReplay
from sim.faults.stragglers import (
    Bimodal,
    LogNormal,
    NoStragglers,
    Pareto,
    ShiftedExponential,
    StragglerModel,
    check_positive,
    check_probability,
    check_slowdown,
)
from sim.faults.traces import read_straggler_trace

__all__ = ["make_straggler_model"]


@register_component("stragglers", "none")
@dataclass(frozen=True, kw_only=True)
class NoStragglersConfig:
    """No stragglers: every task takes exactly its nominal time."""

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.NoStragglers`."""
        return NoStragglers()


@register_component("stragglers", "shifted_exponential")
@dataclass(frozen=True, kw_only=True)
class ShiftedExponentialConfig:
    """Shifted exponential factor ``shift + E / mu`` (Lee et al.; gradient coding's model).

    mu:
        Rate of the exponential tail (per unit of nominal time).
    shift:
        Smallest factor ``a`` (1: never faster than nominal).
    """

    mu: float
    shift: float = 1.0

    def __post_init__(self) -> None:
        check_positive("mu", self.mu)
        check_positive("shift", self.shift)

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.ShiftedExponential`."""
        return ShiftedExponential(mu=self.mu, shift=self.shift)


@register_component("stragglers", "pareto")
@dataclass(frozen=True, kw_only=True)
class ParetoConfig:
    """Pareto factor: ``P[F > x] = (scale / x)^alpha`` (heavy tail).

    alpha:
        Tail index (smaller: heavier tail; the mean is infinite for ``alpha <= 1``).
    scale:
        Smallest factor ``x_m``.
    """

    alpha: float
    scale: float = 1.0

    def __post_init__(self) -> None:
        check_positive("alpha", self.alpha)
        check_positive("scale", self.scale)

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.Pareto`."""
        return Pareto(alpha=self.alpha, scale=self.scale)


@register_component("stragglers", "lognormal")
@dataclass(frozen=True, kw_only=True)
class LogNormalConfig:
    """Log-normal factor ``exp(mu + sigma Z)``.

    sigma:
        Standard deviation of the log-factor.
    mu:
        Mean of the log-factor (0: median factor 1).
    """

    sigma: float
    mu: float = 0.0

    def __post_init__(self) -> None:
        check_positive("sigma", self.sigma)
        if not (isinstance(self.mu, (int, float)) and math.isfinite(self.mu)):
            raise FieldError("mu", f"must be finite, got {self.mu!r}")

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.LogNormal`."""
        return LogNormal(sigma=self.sigma, mu=self.mu)


@register_component("stragglers", "bimodal")
@dataclass(frozen=True, kw_only=True)
class BimodalConfig:
    """With probability ``p`` a task is ``slowdown`` times slower, else nominal.

    p:
        Probability that a task straggles.
    slowdown:
        Factor of a straggling task (>= 1).
    """

    p: float
    slowdown: float

    def __post_init__(self) -> None:
        check_probability("p", self.p)
        check_slowdown(self.slowdown)

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.Bimodal`."""
        return Bimodal(p=self.p, slowdown=self.slowdown)


@register_component("stragglers", "gilbert_elliott")
@dataclass(frozen=True, kw_only=True)
class GilbertElliottConfig:
    """Bursty stragglers: a two-state Markov chain per node, ``slowdown`` in the bad state.

    p_good_to_bad, p_bad_to_good:
        Transition probabilities per task.
    slowdown:
        Factor in the bad state (>= 1).
    """

    p_good_to_bad: float
    p_bad_to_good: float
    slowdown: float

    def __post_init__(self) -> None:
        check_probability("p_good_to_bad", self.p_good_to_bad)
        check_probability("p_bad_to_good", self.p_bad_to_good, open_low=True)
        check_slowdown(self.slowdown)

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.GilbertElliott`."""
        return GilbertElliott(p_good_to_bad=self.p_good_to_bad,
                              p_bad_to_good=self.p_bad_to_good, slowdown=self.slowdown)


@register_component("stragglers", "bursty")
@dataclass(frozen=True, kw_only=True)
class BurstyConfig:
    """An adversarial ``(B, W, lam)``-bursty pattern, drawn once per world.

    B, W, lam:
        Burst length (rounds), window (rounds), distinct stragglers per window.
    num_rounds:
        Rounds the pattern covers (later rounds are nominal).
    slowdown:
        Factor of a straggling task (>= 1).
    intensity:
        Probability that an admissible new burst starts (1: adversarial).
    """

    B: int
    W: int
    lam: int
    num_rounds: int
    slowdown: float
    intensity: float = 1.0

    def __post_init__(self) -> None:
        check_bursty_params(self.B, self.W, self.lam)
        if not (isinstance(self.num_rounds, int) and self.num_rounds >= 0):
            raise FieldError("num_rounds", f"must be an integer >= 0, got {self.num_rounds!r}")
        check_probability("intensity", self.intensity)
        check_slowdown(self.slowdown)

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Draw the pattern from ``rng`` over ``num_nodes`` nodes."""
        if num_nodes is None or rng is None:
            raise ValueError("faults.stragglers: model 'bursty' needs num_nodes and rng to "
                             "draw its pattern")
        pattern = generate_bursty_pattern(self.num_rounds, num_nodes, B=self.B, W=self.W,
                                          lam=self.lam, rng=rng, intensity=self.intensity)
        return BurstyPattern(pattern, self.slowdown)


@register_component("stragglers", "trace")
@dataclass(frozen=True, kw_only=True)
class TraceStragglersConfig:
    """Replay measured per-node, per-round factors from a CSV (:mod:`sim.faults.traces`).

    path:
        The trace file (relative paths resolve in the scenario file's folder).
    nominal_s:
        Nominal task duration, seconds, for a trace of durations (default: the shortest).
    """

    path: str
    nominal_s: float | None = None
    factors: dict[int, Any] = field(init=False, repr=False, compare=False)
    """The trace, read once when the scenario is loaded."""

    def __post_init__(self) -> None:
        if self.nominal_s is not None:
            check_positive("nominal_s", self.nominal_s)
        object.__setattr__(self, "factors", _read(self.path, read_straggler_trace,
                                                  nominal_s=self.nominal_s))

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.TraceReplay` of the trace."""
        return TraceReplay(self.factors)


@register_component("stragglers", "per_node")
@dataclass(frozen=True, kw_only=True)
class PerNodeConfig:
    """A different straggler model per node.

    models:
        One straggler table per node (node ``i`` takes ``models[i]``; others are nominal).
    shifts, rates:
        Instead of ``models``: per-node shifted exponential ``shift_i + E / rate_i``.
    """

    models: tuple[Any, ...] = ()
    shifts: tuple[float, ...] | None = None
    rates: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.models and (self.shifts is not None or self.rates is not None):
            raise FieldError("models", "give either models or shifts/rates, not both")
        if self.models:
            object.__setattr__(self, "models", tuple(
                _nested(table, f"models[{i}]") for i, table in enumerate(self.models)))
            return
        if self.shifts is None or self.rates is None:
            raise FieldError("models", "is required (or shifts and rates)")
        if len(self.shifts) != len(self.rates):
            raise FieldError("rates", f"one entry per node, like shifts: got {len(self.rates)} "
                                      f"rates and {len(self.shifts)} shifts")
        for name, values in (("shifts", self.shifts), ("rates", self.rates)):
            for value in values:
                check_positive(name, value)
        object.__setattr__(self, "shifts", tuple(float(v) for v in self.shifts))
        object.__setattr__(self, "rates", tuple(float(v) for v in self.rates))

    def build(self, *, num_nodes: int | None = None,
              rng: np.random.Generator | None = None) -> StragglerModel:
        """Return :class:`~sim.faults.stragglers.PerNodeModels` (nested models share ``rng``)."""
        if self.models:
            return PerNodeModels([m.build(num_nodes=num_nodes, rng=rng) for m in self.models])
        assert self.shifts is not None and self.rates is not None
        return PerNodeModels.shifted_exponential(self.shifts, self.rates)


def _nested(table: Any, where: str) -> Any:
    """A nested straggler table (``per_node.models[i]``) -> its Config; errors name the field."""
    if not isinstance(table, Mapping):
        raise FieldError(where, f"must be a straggler table with a model, got {table!r}")
    try:
        return straggler_config(table, where="")
    except ScenarioError as exc:
        raise FieldError(f"{where}{exc.field}", exc.message) from None


def _read(path: str, reader: Any, **kwargs: Any) -> Any:
    """Read a trace file; a missing or malformed file is a refusal of ``path``."""
    try:
        return reader(path, **kwargs)
    except FileNotFoundError:
        raise FieldError("path", f"file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise FieldError("path", f"cannot read {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise FieldError("path", f"{Path(path).name}: {exc}") from None


def straggler_config(spec: Mapping[str, Any], *, where: str = "faults.stragglers") -> Any:
    """The typed Config of a straggler table in SI units (``{"model": "bimodal", ...}``)."""
    entry = component("stragglers", spec.get("model"), field=f"{where}.model")
    params = {k: v for k, v in spec.items() if k != "model"}
    return make_config(entry.config, params, where=where) if entry.config else None


def make_straggler_model(spec: Mapping[str, Any] | Sequence[Any] | None, *,
                         num_nodes: int | None = None,
                         rng: np.random.Generator | None = None) -> StragglerModel:
    """Build a straggler model from a table in SI units (``None`` or ``{}``: no stragglers).

    E.g. ``{"model": "bimodal", "p": 0.05, "slowdown": 4}``. The same path as a scenario's
    ``[faults] stragglers``: the model's Config, then ``build(num_nodes=, rng=)`` (``bursty``
    needs both to draw its pattern).
    """
    if not spec:
        return NoStragglers()
    if not isinstance(spec, Mapping):
        raise ValueError(f"faults.stragglers: must be a table with a model, got {spec!r}")
    return straggler_config(spec).build(num_nodes=num_nodes, rng=rng)

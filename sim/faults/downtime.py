"""How long a failed node stays down: a small family of duration distributions (seconds)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DOWNTIME_DISTRIBUTIONS = ("constant", "exponential", "lognormal", "uniform", "never")


@dataclass(frozen=True, kw_only=True)
class Downtime:
    """How long a node stays down after a failure.

    dist:
        ``"constant"`` (``value_s``), ``"exponential"`` (``mean_s``), ``"lognormal"``
        (``median_s`` and ``sigma``: ``median_s * exp(sigma Z)``), ``"uniform"`` (``low_s``,
        ``high_s``) or ``"never"`` (the node does not come back).
    """

    dist: str = "constant"
    value_s: float = 0.0
    mean_s: float = 0.0
    median_s: float = 0.0
    sigma: float = 0.0
    low_s: float = 0.0
    high_s: float = 0.0

    def __post_init__(self) -> None:
        if self.dist not in DOWNTIME_DISTRIBUTIONS:
            raise ValueError(
                f"downtime.dist must be one of {list(DOWNTIME_DISTRIBUTIONS)}, got {self.dist!r}"
            )
        checks = {
            "constant": self.value_s >= 0,
            "exponential": self.mean_s > 0,
            "lognormal": self.median_s > 0 and self.sigma >= 0,
            "uniform": 0 <= self.low_s <= self.high_s,
            "never": True,
        }
        if not checks[self.dist]:
            raise ValueError(f"downtime: invalid parameters for dist {self.dist!r}: {self!r}")

    @classmethod
    def from_spec(cls, spec: float | Mapping[str, Any] | Downtime | None) -> Downtime:
        """Build from a number of seconds (constant), ``None`` (never back) or a dict."""
        if isinstance(spec, Downtime):
            return spec
        if spec is None:
            return cls(dist="never")
        if isinstance(spec, (int, float)):
            return cls(dist="constant", value_s=float(spec))
        params = dict(spec)
        allowed = {"dist", "value_s", "mean_s", "median_s", "sigma", "low_s", "high_s"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"downtime: unknown parameter(s) {unknown}; allowed {sorted(allowed)}")
        values: dict[str, Any] = {k: (v if k == "dist" else float(v)) for k, v in params.items()}
        return cls(**values)

    def sample(self, rng: np.random.Generator) -> float | None:
        """Draw one downtime in seconds (``None`` for ``never``)."""
        if self.dist == "never":
            return None
        if self.dist == "constant":
            return self.value_s
        if self.dist == "exponential":
            return self.mean_s * float(rng.standard_exponential())
        if self.dist == "lognormal":
            return self.median_s * math.exp(self.sigma * float(rng.standard_normal()))
        return float(rng.uniform(self.low_s, self.high_s))

    def mean(self) -> float:
        """Mean downtime in seconds (``inf`` for ``never``)."""
        return {
            "never": math.inf,
            "constant": self.value_s,
            "exponential": self.mean_s,
            "lognormal": self.median_s * math.exp(0.5 * self.sigma**2),
            "uniform": 0.5 * (self.low_s + self.high_s),
        }[self.dist]

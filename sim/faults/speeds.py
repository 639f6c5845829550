"""Persistent heterogeneity: each node's speed multiplier, drawn once per run.

A node's compute time is ``nominal / speed * straggler factor``: the speed is a property of the
machine (mixed GPU generations, a slower region), the straggler factor a property of one task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.errors import ScenarioError

SPEED_DISTRIBUTIONS = ("constant", "lognormal", "uniform", "list")


def speed_multipliers(
    num_nodes: int, *, dist: str = "constant", rng: np.random.Generator, **params: Any
) -> np.ndarray:
    """Draw each node's persistent speed (compute time is divided by it), shape ``(num_nodes,)``.

    Parameters
    ----------
    num_nodes:
        Number of nodes.
    dist:
        ``"constant"`` (``value``, default 1.0), ``"lognormal"`` (``sigma``, ``mu`` = 0:
        ``exp(mu + sigma Z)``, median ``exp(mu)``), ``"uniform"`` (``low``, ``high``) or
        ``"list"`` (``values``: one speed per node, e.g. mixed GPU generations).
    rng:
        Random stream (drawn from only by ``lognormal`` and ``uniform``).

    Raises
    ------
    ScenarioError
        Naming the ``cluster.speed`` key that is not allowed (a scenario's ``[cluster] speed``).
    """
    if num_nodes < 0:
        raise ValueError(f"num_nodes must be >= 0, got {num_nodes!r}")
    allowed = {
        "constant": {"value"},
        "lognormal": {"sigma", "mu"},
        "uniform": {"low", "high"},
        "list": {"values"},
    }
    if dist not in allowed:
        raise ScenarioError("cluster.speed.dist", f"must be one of {list(SPEED_DISTRIBUTIONS)}, "
                                                  f"got {dist!r}")
    unknown = sorted(set(params) - allowed[dist])
    if unknown:
        raise ScenarioError(f"cluster.speed.{unknown[0]}", f"unknown parameter for dist {dist!r}; "
                                                           f"allowed: {sorted(allowed[dist])}")
    if dist == "constant":
        speeds = np.full(num_nodes, float(params.get("value", 1.0)))
    elif dist == "lognormal":
        if "sigma" not in params:
            raise ScenarioError("cluster.speed.sigma", "required for dist 'lognormal'")
        sigma = float(params["sigma"])
        if not sigma >= 0.0:
            raise ScenarioError("cluster.speed.sigma", f"must be >= 0, got {sigma!r}")
        speeds = np.exp(float(params.get("mu", 0.0)) + sigma * rng.standard_normal(num_nodes))
    elif dist == "uniform":
        if "low" not in params or "high" not in params:
            raise ScenarioError("cluster.speed", "low and high are required for dist 'uniform'")
        low, high = float(params["low"]), float(params["high"])
        if not 0.0 < low <= high:
            raise ScenarioError("cluster.speed", f"needs 0 < low <= high, got low={low!r}, "
                                                 f"high={high!r}")
        speeds = rng.uniform(low, high, size=num_nodes)
    else:
        if "values" not in params:
            raise ScenarioError("cluster.speed.values", "required for dist 'list'")
        speeds = np.asarray(params["values"], dtype=float).reshape(-1)
        if speeds.size != num_nodes:
            raise ScenarioError("cluster.speed.values", f"must have one entry per node "
                                                        f"({num_nodes}), got {speeds.size}")
    if not np.all(np.isfinite(speeds) & (speeds > 0)):
        raise ScenarioError("cluster.speed", f"every speed must be finite and > 0, got {speeds!r}")
    return speeds

"""The registry of topology presets by name, as scenario files spell them."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from topologies.datacenter import clusters_of_clusters
from topologies.gcp import gcp_regions
from topologies.residential import residential
from topologies.shapes import random_regular, ring, star, torus_2d, uniform
from topologies.topology import Topology

#: Preset name -> builder. Every builder is a pure function of its keyword arguments.
PRESETS: dict[str, Callable[..., Topology]] = {
    "clusters-of-clusters": clusters_of_clusters,
    "gcp-12-regions": gcp_regions,
    "random-regular": random_regular,
    "residential": residential,
    "ring": ring,
    "star": star,
    "torus-2d": torus_2d,
    "uniform": uniform,
}


def get_topology(name: str, **params: Any) -> Topology:
    """Build the preset ``name`` from keyword ``params`` in SI units.

    Example: ``get_topology("ring", num_nodes=8, latency_s=0.01, bandwidth_Bps=1.25e8)``.

    Raises
    ------
    ValueError
        If ``name`` is not a preset (the message lists the allowed names), or if ``params``
        lacks a required parameter or has an unknown one (the message lists the preset's
        parameters).
    """
    if name not in PRESETS:
        raise ValueError(f"topology: unknown preset {name!r}; allowed: {sorted(PRESETS)}")
    builder = PRESETS[name]
    signature = inspect.signature(builder)
    try:
        signature.bind(**params)
    except TypeError as error:
        raise ValueError(
            f"topology {name!r}: {error}; parameters: {list(signature.parameters)}"
        ) from None
    return builder(**params)

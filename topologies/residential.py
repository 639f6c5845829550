"""Home machines on asymmetric consumer links behind a shared internet core."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from topologies.topology import (
    Topology,
    check_bandwidth,
    check_non_negative,
    check_num_nodes,
    from_graph,
)

#: The one site every residential node attaches to.
CORE_SITE = "core"


def residential(
    num_nodes: int,
    *,
    uplink_Bps: float = 20e6 / 8,
    downlink_Bps: float = 200e6 / 8,
    core_latency_s: float = 10e-3,
    access_latency_s: float = 5e-3,
    access_latency_sigma: float = 0.5,
    bandwidth_sigma: float = 0.0,
    seed: int | np.random.Generator | None = None,
) -> Topology:
    """Put nodes on asymmetric access links (slow up, fast down) around one internet core.

    Every node attaches to the single site ``"core"``. A transfer from node ``i`` to node ``j``
    pays ``i``'s access latency, the core's ``local_latency_s`` (= ``core_latency_s``) and
    ``j``'s access latency; its bandwidth is bounded by ``i``'s uplink and ``j``'s downlink (the
    core itself has no bandwidth limit). Per node, drawn from ``seed``::

        access_latency_s[i] = access_latency_s * exp(access_latency_sigma * z_i)
        multiplier[i]       = exp(bandwidth_sigma * w_i)      # z_i, w_i ~ N(0, 1)
        uplink_Bps[i]       = uplink_Bps * multiplier[i]
        downlink_Bps[i]     = downlink_Bps * multiplier[i]

    so the access latency is log-normal with median ``access_latency_s``, and one multiplier
    scales both directions (a node keeps its up/down ratio). ``z`` is drawn before ``w``, so
    changing ``bandwidth_sigma`` leaves the latencies unchanged.

    Parameters
    ----------
    num_nodes:
        Number of nodes, >= 1.
    uplink_Bps, downlink_Bps:
        Median access bandwidth, bytes/s (default 20 Mbit/s up, 200 Mbit/s down).
    core_latency_s:
        One-way latency across the core between any two homes, seconds (default 10 ms).
    access_latency_s:
        Median one-way latency of a home's access link, seconds (default 5 ms).
    access_latency_sigma:
        Log-normal sigma of the access latency (0: every node exactly ``access_latency_s``).
    bandwidth_sigma:
        Log-normal sigma of the per-node bandwidth multiplier (0: every node the median).
    seed:
        Seed or ``numpy.random.Generator`` for the per-node draws.
    """
    check_num_nodes(num_nodes)
    check_bandwidth("uplink_Bps", uplink_Bps)
    check_bandwidth("downlink_Bps", downlink_Bps)
    check_non_negative("core_latency_s", core_latency_s)
    check_non_negative("access_latency_s", access_latency_s)
    check_non_negative("access_latency_sigma", access_latency_sigma)
    check_non_negative("bandwidth_sigma", bandwidth_sigma)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(num_nodes)
    w = rng.standard_normal(num_nodes)
    latencies = tuple(float(access_latency_s * math.exp(access_latency_sigma * x)) for x in z)
    multipliers = [math.exp(bandwidth_sigma * float(x)) for x in w]
    graph = nx.Graph()
    graph.add_node(CORE_SITE, local_latency_s=core_latency_s)
    return from_graph(
        graph,
        (CORE_SITE,) * num_nodes,
        uplink_Bps=tuple(uplink_Bps * m for m in multipliers),
        downlink_Bps=tuple(downlink_Bps * m for m in multipliers),
        access_latency_s=latencies,
        name=f"residential({num_nodes})",
    )
